"""The image transform's checks of images and training targets: each bad input raises a
UserError naming the image or target, where it would otherwise become a NaN loss or be
reshaped into something else silently; and the resize of extreme aspect ratios."""

import numpy as np
import pytest

from tinymask.errors import UserError
from tinymask.model.transform import ImageTransform, check_target, resized_size

SIZE = (64, 64)


def good_target(count=1):
    masks = np.zeros((count, *SIZE), dtype=np.uint8)
    masks[:, 10:20, 10:20] = 1
    return {"boxes": np.tile(np.array([[10, 10, 20, 20]], np.float32), (count, 1)),
            "labels": np.ones(count, dtype=np.int64), "masks": masks}


def test_a_good_target_and_an_empty_one_pass():
    check_target(good_target(2), 0, SIZE, num_classes=4)
    check_target({"boxes": np.zeros((0, 4)), "labels": np.zeros(0, np.int64),
                  "masks": np.zeros((0, *SIZE), np.uint8)}, 0, SIZE, num_classes=4)
    check_target({"boxes": [], "labels": []}, 0, SIZE)  # no objects, written as lists


@pytest.mark.parametrize("change, message", [
    ({"boxes": np.array([[20, 10, 10, 20]], np.float32)}, "x2 > x1 and y2 > y1"),
    ({"boxes": np.array([[10, 10, 10, 20]], np.float32)}, "x2 > x1 and y2 > y1"),
    ({"boxes": np.array([[10, 10, 20, np.nan]], np.float32)}, "NaN or infinity"),
    ({"boxes": np.array([10, 10, 20, 20], np.float32)}, r"boxes must be \(M, 4\)"),
    ({"labels": np.array([0])}, r"labels must be in 1..3 \(0 is the background\)"),
    ({"labels": np.array([4])}, "labels must be in 1..3"),
    ({"labels": np.array([1.5])}, "labels must be integers"),
    ({"labels": np.array([1, 2])}, "one label per box"),
    ({"masks": np.ones((1, 32, 128), np.uint8)}, r"masks must be \(M, H, W\) = \(1, 64, 64\)"),
    ({"masks": np.ones(4096, np.uint8)}, r"got \(4096,\)"),
    ({"masks": np.full((1, *SIZE), 2, np.uint8)}, "masks must be binary"),
])
def test_bad_targets_are_named(change, message):
    target = {**good_target(), **change}
    with pytest.raises(UserError, match=f"target 3: .*{message}"):
        check_target(target, 3, SIZE, num_classes=4)


def test_labels_without_a_class_count_are_only_checked_from_below():
    check_target({**good_target(), "labels": np.array([90])}, 0, SIZE)
    with pytest.raises(UserError, match="1..K"):
        check_target({**good_target(), "labels": np.array([-1])}, 0, SIZE)


@pytest.mark.parametrize("image, message", [
    (np.full((3, 64, 64), 255.0, np.float32), r"values in \[0, 1\], found 255..255"),
    (np.full((3, 64, 64), np.nan, np.float32), "NaN"),
    (np.zeros((64, 64, 3), np.float32), r"a float image must be \(3, H, W\)"),
    (np.zeros((3, 64, 64), np.int64), "dtype int64"),
    (np.zeros((64, 64, 3), np.uint16), "dtype uint16"),
    (np.zeros((0, 64, 3), np.uint8), "empty"),
])
def test_bad_images_are_named(image, message):
    transform = ImageTransform(64, 64)
    with pytest.raises(UserError, match=f"image 0.*{message}"):
        transform([image])


def test_an_empty_image_list_and_a_missing_target():
    transform = ImageTransform(64, 64)
    with pytest.raises(UserError, match="no images"):
        transform([])
    with pytest.raises(UserError, match="2 images but 1 targets"):
        transform([np.zeros((64, 64, 3), np.uint8)] * 2, [good_target()])


def test_the_transform_checks_targets_against_its_class_count():
    transform = ImageTransform(64, 64, num_classes=3)
    image = np.zeros((64, 64, 3), np.uint8)
    transform([image], [good_target()])
    with pytest.raises(UserError, match="target 0: labels must be in 1..2"):
        transform([image], [{**good_target(), "labels": np.array([3])}])


def test_a_long_strip_keeps_one_pixel_of_height():
    assert resized_size(5, 500, 64, 64) == (1, 64)  # 5 * 64 / 500 = 0.64 rows
    batch, _ = ImageTransform(64, 64)([np.zeros((5, 500, 3), np.uint8)])
    assert batch.image_sizes == [(1, 64)] and batch.images.shape == (1, 3, 32, 64)  # padded to 32
