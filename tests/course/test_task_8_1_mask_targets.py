"""Task 8.1, mask targets: the ground truth cropped to each RoI
(``tinymask/model/roi_heads.py``, ``crop_mask_targets``): lesson 8. Needs tasks 6.1, 6.2."""

import numpy as np
import pytest
from expect import expect_close, expect_equal

from tinymask.model.roi_heads import crop_mask_targets

pytestmark = pytest.mark.task_8_1


@pytest.fixture
def gt_masks():
    masks = np.zeros((2, 12, 12), np.uint8)
    masks[0, 2:10, 2:10] = 1  # an 8 x 8 square: box (2, 2, 10, 10)
    masks[1, 0:6, 6:12] = 1  # another object, top right
    return masks


def test_a_roi_equal_to_the_box_sees_a_full_mask(gt_masks):
    targets = crop_mask_targets(gt_masks, np.array([0]), np.array([[2.0, 2, 10, 10]]), 4)
    expect_equal(targets, np.ones((1, 4, 4), np.float32), "target of the square's own box")


def test_the_roi_chooses_what_is_cropped(gt_masks):
    targets = crop_mask_targets(gt_masks, np.array([0, 0]),
                                np.array([[6.0, 2, 14, 10], [2.0, 2, 10, 10]]), 4)
    # the first RoI is the square's box moved right by half: only its left half is object
    expect_equal(targets[0], np.array([[1, 1, 0, 0]] * 4, np.float32),
                 "target of a RoI moved half a box to the right")
    expect_equal(targets[1], np.ones((4, 4), np.float32), "target of the box itself")


def test_each_roi_reads_its_own_ground_truth(gt_masks):
    targets = crop_mask_targets(gt_masks, np.array([1, 0]),
                                np.array([[6.0, 0, 12, 6], [6.0, 0, 12, 6]]), 2)
    expect_equal(targets[0], np.ones((2, 2), np.float32), "object 1 in its own box")
    # object 0 covers rows 2..9, columns 2..9: of the box's four 3 x 3 bins, only the
    # bottom-left one lies wholly inside it
    expect_equal(targets[1], np.array([[0, 0], [1, 0]], np.float32),
                 "object 0 seen through object 1's box")


def test_soft_targets_keep_fractions(gt_masks):
    soft = crop_mask_targets(gt_masks, np.array([0]), np.array([[1.0, 2, 9, 10]]), 4,
                             binarize=False)
    # the first column of bins samples pixels 1 (outside) and 2 (inside): half object
    expect_close(soft[0, 0], [0.5, 1.0, 1.0, 1.0], "soft target of a RoI one pixel left")
    expect_equal(soft.dtype.name, "float32", "dtype of the targets")


def test_no_positive_roi_gives_no_target(gt_masks):
    targets = crop_mask_targets(gt_masks, np.zeros(0, np.int64), np.zeros((0, 4)), 28)
    expect_equal(targets.shape, (0, 28, 28), "targets of zero RoIs")
