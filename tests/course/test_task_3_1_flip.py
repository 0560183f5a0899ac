"""Task 3.1, a horizontal flip of an image and its target (``tinymask/data/augment.py``,
``horizontal_flip``): lesson 3."""

import numpy as np
import pytest
from expect import expect_equal, expect_true

from tinymask.data.augment import horizontal_flip

pytestmark = pytest.mark.task_3_1


@pytest.fixture
def sample():
    image = np.arange(2 * 5 * 3, dtype=np.uint8).reshape(2, 5, 3)
    masks = np.zeros((1, 2, 5), np.uint8)
    masks[0, :, 0:2] = 1  # columns 0 and 1
    target = {"boxes": np.array([[0.0, 0, 2, 2]], np.float32), "labels": np.array([1]),
              "masks": masks}
    return image, target


def test_pixels_boxes_and_masks_are_mirrored(sample):
    image, target = sample
    flipped_image, flipped = horizontal_flip(image, target)
    expect_equal(flipped_image, image[:, ::-1], "the flipped image")
    # columns 0..1 become 3..4: the box [0, 2) becomes [3, 5)
    expect_equal(flipped["boxes"], [[3.0, 0, 5, 2]], "the flipped box of columns [0, 2)")
    expect_equal(flipped["masks"][0, 0], [0, 0, 0, 1, 1], "a row of the flipped mask")
    expect_equal(flipped["labels"], [1], "labels after the flip")


def test_the_box_still_hugs_the_flipped_mask(sample):
    image, target = sample
    _, flipped = horizontal_flip(image, target)
    columns = np.flatnonzero(flipped["masks"][0].any(axis=0))
    expect_equal(flipped["boxes"][0, [0, 2]], [columns[0], columns[-1] + 1],
                 "flipped box x1, x2 against the flipped mask's first column and last + 1")


def test_the_inputs_are_left_alone(sample):
    image, target = sample
    before = image.copy(), target["boxes"].copy(), target["masks"].copy()
    horizontal_flip(image, target)
    expect_true(np.array_equal(image, before[0]) and np.array_equal(target["boxes"], before[1])
                and np.array_equal(target["masks"], before[2]),
                "horizontal_flip changed its input arrays")


def test_flipping_twice_gives_the_original(sample):
    image, target = sample
    twice_image, twice = horizontal_flip(*horizontal_flip(image, target))
    expect_equal(twice_image, image, "the image flipped twice")
    expect_equal(twice["boxes"], target["boxes"], "the box flipped twice")
