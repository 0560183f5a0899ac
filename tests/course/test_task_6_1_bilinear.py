"""Task 6.1, bilinear interpolation of one point (``tinymask/ops/roi_geometry.py``,
``bilinear_weights``): lesson 6."""

import numpy as np
import pytest
from expect import expect_close, expect_equal

from tinymask.ops.roi_geometry import bilinear_weights

pytestmark = pytest.mark.task_6_1


def read(feature, y, x):
    y_low, x_low, y_high, x_high, w_tl, w_tr, w_bl, w_br = bilinear_weights(
        y, x, *feature.shape)
    if y_low < 0:
        return 0.0
    return (w_tl * feature[y_low, x_low] + w_tr * feature[y_low, x_high]
            + w_bl * feature[y_high, x_low] + w_br * feature[y_high, x_high])


def test_a_point_between_four_cells_by_hand():
    got = bilinear_weights(1.25, 2.5, 4, 4)
    # rows 1 and 2 (0.75 and 0.25 of the way), columns 2 and 3 (half way)
    expect_equal(got[:4], (1, 2, 2, 3), "cells (y_low, x_low, y_high, x_high) at (1.25, 2.5)")
    expect_close(got[4:], [0.75 * 0.5, 0.75 * 0.5, 0.25 * 0.5, 0.25 * 0.5],
                 "weights (top-left, top-right, bottom-left, bottom-right) at (1.25, 2.5)")


def test_a_plane_is_read_exactly_inside_the_map():
    feature = 3.0 * np.arange(5)[:, None] - 2.0 * np.arange(6)[None, :] + 1.0  # 5 x 6
    for y, x in [(0.0, 0.0), (1.5, 2.25), (3.9, 4.1), (2.0, 5.0)]:
        expect_close(read(feature, y, x), 3 * y - 2 * x + 1, f"bilinear read of a plane at {y, x}")


def test_on_a_cell_the_read_is_that_cell():
    feature = np.arange(12.0).reshape(3, 4)
    expect_close(read(feature, 2.0, 1.0), feature[2, 1], "read exactly at cell (2, 1)")


def test_within_one_cell_outside_the_border_cell_is_read():
    feature = np.arange(12.0).reshape(3, 4)
    expect_close(read(feature, -0.5, 1.0), feature[0, 1], "read at y = -0.5 (above the map)")
    expect_close(read(feature, 2.7, 3.5), feature[2, 3], "read past the bottom-right corner")


def test_farther_outside_reads_zero():
    for y, x in [(-1.5, 1.0), (1.0, 4.5), (3.2, 0.0), (float("nan"), 1.0)]:
        got = bilinear_weights(y, x, 3, 4)
        expect_equal(got, (-1, -1, -1, -1, 0.0, 0.0, 0.0, 0.0),
                     f"bilinear_weights at {y, x} on a 3 x 4 map (outside: nothing read)")
