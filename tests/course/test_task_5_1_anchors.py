"""Task 5.1, the anchors of one level (``tinymask/anchors.py``, ``cell_anchors`` and
``grid_anchors``): lesson 5."""

import numpy as np
import pytest
from expect import expect_close, expect_equal

from tinymask.anchors import cell_anchors, grid_anchors

pytestmark = pytest.mark.task_5_1


def test_cell_anchors_of_size_32_by_hand():
    # ratio = h / w; h = sqrt(r) * 32, w = 32 / sqrt(r); corners rounded (REFERENCE §2)
    expected = [[-23.0, -11.0, 23.0, 11.0],   # ratio 0.5: 45.25 x 22.63
                [-16.0, -16.0, 16.0, 16.0],   # ratio 1
                [-11.0, -23.0, 11.0, 23.0]]   # ratio 2
    expect_close(cell_anchors((32,), (0.5, 1.0, 2.0)), expected, "cell anchors, size 32")


def test_cell_anchors_are_ratio_major():
    anchors = cell_anchors((16, 32), (0.5, 1.0))
    sizes = np.sqrt((anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1]))
    expect_close(np.round(sizes), [16, 32, 16, 32], "sizes of (16, 32) x ratios (0.5, 1), "
                 "in order ratio 0.5 (both sizes), then ratio 1", atol=1.0)
    expect_equal(anchors.dtype.name, "float32", "dtype of the cell anchors")


def test_the_grid_of_one_level():
    base = np.array([[-2.0, -1.0, 2.0, 1.0], [-1.0, -2.0, 1.0, 2.0]], np.float32)  # A = 2
    anchors = grid_anchors([(2, 3)], [4], [base])
    # centres at (j * 4, i * 4): no half-stride offset; order [H, W, A]
    centres = [(x, y) for y in (0, 4) for x in (0, 4, 8) for _ in range(2)]
    expected = [np.array([cx, cy, cx, cy]) + base[k % 2] for k, (cx, cy) in enumerate(centres)]
    expect_close(anchors, expected, "anchors of a 2 x 3 map at stride 4, two per position")


def test_levels_are_concatenated_finest_first():
    base = np.array([[-1.0, -1.0, 1.0, 1.0]], np.float32)
    anchors = grid_anchors([(2, 2), (1, 1)], [4, (8, 6)], [base, base * 4])
    expect_equal(anchors.shape, (5, 4), "shape of 2x2 + 1x1 anchors, one per position")
    expect_close(anchors[3], [3.0, 3.0, 5.0, 5.0], "the last anchor of the first level")
    expect_close(anchors[4], [-4.0, -4.0, 4.0, 4.0], "the one anchor of the second level")
