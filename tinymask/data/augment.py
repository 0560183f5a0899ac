"""The one augmentation the paper trains with, a horizontal flip, and batching.

Resizing, normalising and padding to a multiple of 32 happen inside the model
(``tinymask/model/transform.py``), so a batch here is just a list of (image, target) pairs
as a dataset returns them: image (H, W, 3) uint8, target boxes (M, 4) xyxy pixels, labels
(M,), masks (M, H, W). Randomness comes from a ``numpy.random.Generator`` passed in, so a
seeded run sees the same flips and the same order.
"""

from __future__ import annotations

import numpy


def horizontal_flip(image, target, keypoint_flip=None):
    """Mirror an image and its target left-right; returns new arrays, the inputs untouched.

    A box covers columns [x1, x2) (x2 is one past its last pixel), and column c goes to
    W - 1 - c, so the flipped box covers [W - x2, W - x1): no -1 with this convention.
    Keypoints ``(M, K, 3)`` are continuous coordinates too (x -> W - x), and a mirrored
    left wrist is a right wrist: ``keypoint_flip`` (K,) says which type each one becomes
    (``tinymask.keypoints.keypoint_flip_index``, the dataset's ``keypoint_flip``)."""
    width = image.shape[1]
    # --- task 3.1: a horizontal flip of an image and its target ---
    flipped_image = numpy.ascontiguousarray(image[:, ::-1])
    flipped = dict(target)
    boxes = numpy.asarray(target["boxes"])
    flipped["boxes"] = numpy.stack([width - boxes[:, 2], boxes[:, 1],
                                    width - boxes[:, 0], boxes[:, 3]], axis=1).astype(boxes.dtype)
    if "masks" in target:
        flipped["masks"] = numpy.ascontiguousarray(numpy.asarray(target["masks"])[:, :, ::-1])
    # --- end task ---
    if "keypoints" in target:
        if keypoint_flip is None:
            raise ValueError("horizontal_flip: the target has keypoints; pass keypoint_flip, "
                             "which keypoint each becomes when mirrored (left <-> right)")
        keypoints = numpy.array(target["keypoints"], dtype=numpy.float32)[:, keypoint_flip]
        labelled = keypoints[..., 2] > 0  # unlabelled ones stay at COCO's (0, 0, 0)
        keypoints[..., 0] = numpy.where(labelled, width - keypoints[..., 0], 0.0)
        flipped["keypoints"] = keypoints
    return flipped_image, flipped


def random_horizontal_flip(image, target, rng: numpy.random.Generator, probability=0.5,
                           keypoint_flip=None):
    """``horizontal_flip`` with the given probability (one draw from ``rng`` per call)."""
    if rng.random() < probability:
        return horizontal_flip(image, target, keypoint_flip)
    return image, target


def iterate_batches(dataset, batch_size: int, rng: numpy.random.Generator | None = None,
                    shuffle: bool = True, drop_last: bool = False):
    """Yield lists of ``batch_size`` (image, target) pairs: one pass over the dataset.

    With ``shuffle`` the order is a permutation drawn from ``rng`` (required then); the
    last batch is shorter unless ``drop_last``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if shuffle and rng is None:
        raise ValueError("shuffle=True needs an rng (numpy.random.default_rng(seed)) so the "
                         "order is reproducible")
    order = rng.permutation(len(dataset)) if shuffle else numpy.arange(len(dataset))
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        if drop_last and len(indices) < batch_size:
            return
        yield [dataset[int(index)] for index in indices]
