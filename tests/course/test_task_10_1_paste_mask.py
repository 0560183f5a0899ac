"""Task 10.1, pasting a mask into the image (``tinymask/postprocess.py``, ``paste_mask``):
lesson 10."""

import numpy as np
import pytest
from expect import expect_close, expect_equal

from tinymask.postprocess import paste_mask

pytestmark = pytest.mark.task_10_1


def test_a_mask_fills_its_box_both_ends_included():
    got = paste_mask(np.ones((4, 4)), (1, 2, 3, 4), (6, 5))
    expected = np.zeros((6, 5))
    expected[2:5, 1:4] = 1.0  # rows y1..y2, columns x1..x2
    expect_equal(got, expected, "a 4x4 mask of ones pasted at box (1, 2, 3, 4) in 6x5")


def test_the_mask_is_resized_to_the_box():
    mask = np.array([[0.0, 1.0], [0.0, 1.0]])
    got = paste_mask(mask, (0, 0, 3, 0), (1, 4))  # 2 columns stretched over 4
    # align_corners=False: output columns sit at 0.25, 0.75, 1.25, 1.75 input columns
    expect_close(got, [[0.0, 0.25, 0.75, 1.0]], "a 2-column ramp stretched over 4 columns")


def test_the_part_outside_the_image_is_cut_off():
    got = paste_mask(np.ones((2, 2)), (-1, -1, 0, 0), (3, 3))
    expected = np.zeros((3, 3))
    expected[0, 0] = 1.0
    expect_equal(got, expected, "a mask at box (-1, -1, 0, 0), half outside the image")


def test_a_box_wholly_outside_pastes_nothing():
    got = paste_mask(np.ones((2, 2)), (10, 10, 12, 12), (4, 4))
    expect_equal(got, np.zeros((4, 4)), "a mask whose box lies outside the image")
