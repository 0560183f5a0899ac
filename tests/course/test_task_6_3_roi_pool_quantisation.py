"""Task 6.3, RoIPool's quantisation of a box and its bins (``tinymask/ops/roi_geometry.py``):
lesson 6."""

import numpy as np
import pytest
from expect import expect_close, expect_equal

from tinymask.ops import roi_pool
from tinymask.ops.roi_geometry import (
    quantize_rois,
    roi_pool_bin_range,
    roi_pool_size,
    round_half_away_from_zero,
)

pytestmark = pytest.mark.task_6_3


def test_rounding_is_half_away_from_zero():
    got = round_half_away_from_zero(np.array([2.5, -2.5, 0.49, 1.5, -0.5, 3.0]))
    expect_close(got, [3.0, -3.0, 0.0, 2.0, -1.0, 3.0], "C's round() of 2.5, -2.5, 0.49, ...")


def test_a_roi_is_snapped_to_cells():
    rois = np.array([[1.0, 5.0, 10.0, 30.0, 42.0]])  # batch index 1, corners in pixels
    expect_close(quantize_rois(rois, 0.25), [[1.0, 1.0, 3.0, 8.0, 11.0]],
                 "quantize_rois at stride 4: round(5/4), round(10/4), round(30/4), round(42/4)")


def test_both_ends_are_included():
    expect_equal([roi_pool_size(2, 5), roi_pool_size(3, 3), roi_pool_size(5, 2)], [4, 1, 1],
                 "cells covered by start..end: (2, 5), (3, 3), (5, 2)")


def test_bins_round_outwards_and_may_share_a_cell():
    # 5 cells in 2 bins of 2.5: [0, ceil 2.5) and [floor 2.5, 5) share cell 2
    got = [roi_pool_bin_range(0, 5, 2, index, 10) for index in range(2)]
    expect_equal(got, [(0, 3), (2, 5)], "bins of a 5-cell RoI split in 2")
    got = [roi_pool_bin_range(3, 4, 2, index, 10) for index in range(2)]
    expect_equal(got, [(3, 5), (5, 7)], "bins of a 4-cell RoI starting at cell 3")


def test_bins_are_clipped_to_the_map():
    expect_equal(roi_pool_bin_range(-2, 4, 2, 0, 10), (0, 0), "a bin wholly left of the map")
    expect_equal(roi_pool_bin_range(8, 6, 2, 1, 10), (10, 10), "a bin wholly right of the map")


def test_roi_pool_on_a_small_map():
    feature = np.arange(36.0).reshape(1, 1, 6, 6)
    # x 0.6..3.4 rounds to cells 1..3, y 1.5..4.5 to cells 2..5 (half away from zero)
    out = roi_pool(feature, np.array([[0.0, 0.6, 1.5, 3.4, 4.5]]), 2, 1.0).data[0, 0]
    # rows 2..5 in bins [2, 4) and [4, 6); columns 1..3 in bins [1, 3) and [2, 4)
    expect_close(out, [[20.0, 21.0], [32.0, 33.0]], "2x2 RoIPool of arange(36) as 6x6")
