"""Horizontal flip (boxes and masks move with the image) and batching."""

import numpy
import pytest

from tinymask.data import (
    ShapesDataset,
    horizontal_flip,
    iterate_batches,
    masks_to_boxes,
    random_horizontal_flip,
)


def test_flip_hand_example():
    image = numpy.zeros((4, 8, 3), dtype=numpy.uint8)
    image[2, 1] = 255
    masks = numpy.zeros((1, 4, 8), dtype=numpy.uint8)
    masks[0, 2:4, 1:3] = 1  # columns 1..2: the box [1, 2, 3, 4]
    target = {"boxes": numpy.array([[1, 2, 3, 4]], numpy.float32), "labels": numpy.array([1]),
              "masks": masks, "image_id": 7}
    flipped_image, flipped = horizontal_flip(image, target)
    # columns 1..2 go to 8 - 1 - 1 = 6 and 8 - 1 - 2 = 5: the box [5, 2, 7, 4]
    numpy.testing.assert_array_equal(flipped["boxes"], [[5, 2, 7, 4]])
    assert flipped["boxes"].dtype == numpy.float32
    assert flipped_image[2, 6].tolist() == [255, 255, 255]
    assert flipped["masks"][0, 2:4, 5:7].all() and flipped["masks"].sum() == 4
    assert flipped["labels"] is target["labels"] and flipped["image_id"] == 7
    numpy.testing.assert_array_equal(target["boxes"], [[1, 2, 3, 4]])  # input untouched
    assert image[2, 1].tolist() == [255, 255, 255]


def test_flipped_boxes_stay_tight_around_flipped_masks():
    dataset = ShapesDataset(10, image_size=(40, 52), seed=3, max_objects=5)
    for index in range(len(dataset)):
        image, target = dataset[index]
        flipped_image, flipped = horizontal_flip(image, target)
        numpy.testing.assert_array_equal(flipped["boxes"], masks_to_boxes(flipped["masks"]))
        back_image, back = horizontal_flip(flipped_image, flipped)
        numpy.testing.assert_array_equal(back_image, image)
        numpy.testing.assert_array_equal(back["boxes"], target["boxes"])
        numpy.testing.assert_array_equal(back["masks"], target["masks"])


def test_random_flip_is_seeded():
    image, target = ShapesDataset(1, image_size=32, seed=0)[0]

    def decisions(seed):
        rng = numpy.random.default_rng(seed)
        return [random_horizontal_flip(image, target, rng)[0] is not image for _ in range(40)]

    assert decisions(1) == decisions(1)
    assert 5 < sum(decisions(1)) < 35
    never = numpy.random.default_rng(0)
    assert random_horizontal_flip(image, target, never, probability=0.0)[0] is image
    assert random_horizontal_flip(image, target, never, probability=1.0)[0] is not image


def test_iterate_batches():
    dataset = ShapesDataset(7, image_size=16, seed=0)
    in_order = list(iterate_batches(dataset, 3, shuffle=False))
    assert [len(batch) for batch in in_order] == [3, 3, 1]
    assert [t["image_id"] for batch in in_order for _, t in batch] == [1, 2, 3, 4, 5, 6, 7]

    def order(seed, **kwargs):
        batches = iterate_batches(dataset, 3, numpy.random.default_rng(seed), **kwargs)
        return [[t["image_id"] for _, t in batch] for batch in batches]

    shuffled = order(5)
    assert order(5) == shuffled
    assert sorted(sum(shuffled, [])) == [1, 2, 3, 4, 5, 6, 7]
    assert sum(shuffled, []) != [1, 2, 3, 4, 5, 6, 7]
    assert [len(batch) for batch in order(5, drop_last=True)] == [3, 3]
    with pytest.raises(ValueError, match="needs an rng"):
        next(iterate_batches(dataset, 3))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        next(iterate_batches(dataset, 0, shuffle=False))
