"""Task 12.1, keypoint targets, one heatmap cell per keypoint (``tinymask/keypoints.py``,
``keypoints_to_heatmap``): lesson 12."""

import numpy as np
import pytest
from expect import expect_equal

from tinymask.keypoints import keypoints_to_heatmap

pytestmark = pytest.mark.task_12_1


def test_hand_placed_keypoints_fall_in_their_cells():
    # one RoI of 8 x 4 pixels from (10, 20): a heatmap of m = 4 has cells 2 x 1 pixels
    rois = np.array([[10.0, 20.0, 18.0, 24.0]])
    keypoints = np.array([[[10.0, 20.0, 2],    # the top-left corner: cell (0, 0)
                           [13.9, 21.5, 2],    # x -> 1.95 -> column 1; y -> 1.5 -> row 1
                           [14.0, 23.2, 1],    # hidden but labelled: column 2, row 3
                           [17.5, 20.9, 2]]])  # column 3, row 0
    targets, valid = keypoints_to_heatmap(keypoints, rois, 4)
    expect_equal(valid, [[True, True, True, True]], "valid (labelled, inside the RoI)")
    expect_equal(targets, [[0 * 4 + 0, 1 * 4 + 1, 3 * 4 + 2, 0 * 4 + 3]],
                 "flat cell index row * m + column of each keypoint")


def test_the_right_and_bottom_edges_belong_to_the_last_cell():
    rois = np.array([[0.0, 0.0, 10.0, 10.0]])
    keypoints = np.array([[[10.0, 10.0, 2], [10.0, 3.0, 2]]])
    targets, valid = keypoints_to_heatmap(keypoints, rois, 5)
    expect_equal(valid, [[True, True]], "valid for keypoints on the RoI's far edges")
    expect_equal(targets, [[4 * 5 + 4, 1 * 5 + 4]], "cells of keypoints on the far edges")


def test_unlabelled_or_outside_keypoints_are_not_valid():
    rois = np.array([[0.0, 0.0, 10.0, 10.0], [5.0, 5.0, 15.0, 15.0]])
    keypoints = np.array([[[3.0, 3.0, 0], [-0.5, 4.0, 2], [4.0, 10.5, 2]],
                          [[3.0, 3.0, 2], [6.0, 6.0, 2], [14.0, 5.0, 0]]])
    targets, valid = keypoints_to_heatmap(keypoints, rois, 4)
    expect_equal(valid, [[False, False, False], [False, True, False]],
                 "valid (v > 0 and inside the RoI)")
    expect_equal(targets, [[0, 0, 0], [0, 0, 0]], "targets (0 where not valid)")
