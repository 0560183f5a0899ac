"""Images and targets in, one padded batch out; predictions back to the original images.

torchvision's ``GeneralizedRCNNTransform`` (REFERENCE.md §9):
1. each image to float (C, H, W) in [0, 1] (HxWx3 uint8 as read from disk is accepted),
2. normalised by the ImageNet mean and std,
3. resized so the shorter side is ``min_size`` unless the longer would pass ``max_size``
   (bilinear; masks nearest, boxes scaled),
4. zero-padded into one (N, 3, H_pad, W_pad) batch, both sides a multiple of 32 so every
   stride-2 step of the backbone divides evenly.
Each image keeps its own resized (h, w), the area inside the padding, which the RPN
clips proposals to. Parameter-free: a plain class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy

from tinymask.backend import array_module, xp
from tinymask.functional.interpolation import bilinear_matrix, nearest_source_index
from tinymask.postprocess import paste_masks_in_image, resize_boxes


def to_chw_float(image):
    """An image as float32 (3, H, W) in [0, 1].

    Accepts (H, W, 3) or (H, W) uint8 (as read from disk; grey is repeated to 3 channels),
    (H, W, 4) uint8 (alpha dropped), or float (3, H, W) already in [0, 1] (torchvision's
    convention)."""
    array = image if hasattr(image, "dtype") else numpy.asarray(image)
    if array.dtype == numpy.uint8:
        if array.ndim == 2:
            array = array[:, :, None].repeat(3, axis=2)
        if array.ndim != 3 or array.shape[2] not in (3, 4):
            raise ValueError(f"a uint8 image must be (H, W), (H, W, 3) or (H, W, 4), got "
                             f"{array.shape}")
        return (array[:, :, :3].transpose(2, 0, 1) / 255.0).astype(numpy.float32)
    if array.ndim != 3 or array.shape[0] != 3:
        raise ValueError(f"a float image must be (3, H, W) in [0, 1], got shape {array.shape} "
                         f"and dtype {array.dtype}")
    return array.astype(numpy.float32, copy=False)


def resized_size(height, width, min_size, max_size):
    """(h, w) after scaling the shorter side to ``min_size``, capped by ``max_size``."""
    scale = min(min_size / min(height, width), max_size / max(height, width))
    return int(math.floor(height * scale)), int(math.floor(width * scale))


def _resize_image(image, size):
    """(3, H, W) -> (3, h, w), bilinear with align_corners=False (separable matrices)."""
    xpm = array_module(image)
    rows = xpm.asarray(bilinear_matrix(image.shape[1], size[0], False), dtype=image.dtype)
    cols = xpm.asarray(bilinear_matrix(image.shape[2], size[1], False), dtype=image.dtype)
    return rows @ image @ cols.T


def _resize_masks(masks, size):
    """(M, H, W) -> (M, h, w) by nearest neighbour (masks stay binary)."""
    xpm = array_module(masks)
    rows = xpm.asarray(nearest_source_index(masks.shape[1], size[0]))
    cols = xpm.asarray(nearest_source_index(masks.shape[2], size[1]))
    return masks[:, rows][:, :, cols]


@dataclass
class ImageBatch:
    images: object  # (N, 3, H_pad, W_pad) float32 array
    image_sizes: list  # [(h, w)] of each resized image inside the padding
    original_sizes: list  # [(H, W)] of each image as given


class ImageTransform:
    def __init__(self, min_size=800, max_size=1333, image_mean=(0.485, 0.456, 0.406),
                 image_std=(0.229, 0.224, 0.225), size_divisibility=32):
        self.min_size, self.max_size = min_size, max_size
        self.image_mean = numpy.asarray(image_mean, dtype=numpy.float32)
        self.image_std = numpy.asarray(image_std, dtype=numpy.float32)
        self.size_divisibility = size_divisibility

    def __call__(self, images, targets=None):
        """images: list of arrays (see ``to_chw_float``); targets: list of dicts with
        ``boxes`` (M, 4) xyxy in the image's pixels, ``labels`` (M,), ``masks`` (M, H, W).
        Returns (ImageBatch, resized targets)."""
        if targets is not None and len(targets) != len(images):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        backend = xp()
        resized, sizes, originals, new_targets = [], [], [], []
        for index, image in enumerate(images):
            chw = backend.asarray(to_chw_float(image))
            _, height, width = chw.shape
            originals.append((height, width))
            chw = (chw - backend.asarray(self.image_mean)[:, None, None]) / backend.asarray(
                self.image_std)[:, None, None]
            size = resized_size(height, width, self.min_size, self.max_size)
            chw = _resize_image(chw, size) if size != (height, width) else chw
            resized.append(chw)
            sizes.append(size)
            if targets is not None:
                new_targets.append(self._resize_target(targets[index], (height, width), size))
        batch = self._pad(resized)
        return ImageBatch(batch, sizes, originals), (new_targets if targets is not None else None)

    def _resize_target(self, target, original_size, size):
        backend = xp()
        boxes = backend.asarray(target["boxes"], dtype=numpy.float32).reshape(-1, 4)
        labels = backend.asarray(target["labels"], dtype=numpy.int64).reshape(-1)
        if labels.shape[0] != boxes.shape[0]:
            raise ValueError(f"target has {boxes.shape[0]} boxes but {labels.shape[0]} labels")
        out = {"boxes": resize_boxes(boxes, original_size, size), "labels": labels}
        if "masks" in target and target["masks"] is not None:
            masks = backend.asarray(target["masks"]).reshape(-1, *original_size) \
                if numpy.size(target["masks"]) else backend.zeros((0, *original_size), numpy.uint8)
            if masks.shape[0] != boxes.shape[0]:
                raise ValueError(f"target has {boxes.shape[0]} boxes but {masks.shape[0]} masks")
            out["masks"] = _resize_masks(masks, size) if size != original_size else masks
        return out

    def _pad(self, images):
        backend = xp()
        divisor = self.size_divisibility
        height = max(image.shape[1] for image in images)
        width = max(image.shape[2] for image in images)
        height = int(math.ceil(height / divisor) * divisor)
        width = int(math.ceil(width / divisor) * divisor)
        batch = backend.zeros((len(images), 3, height, width), dtype=numpy.float32)
        for index, image in enumerate(images):
            batch[index, :, : image.shape[1], : image.shape[2]] = image
        return batch

    def postprocess(self, detections, image_sizes, original_sizes, mask_threshold=None):
        """Boxes back to the original pixels; masks pasted at the original size."""
        results = []
        for detection, size, original in zip(detections, image_sizes, original_sizes):
            boxes = resize_boxes(detection["boxes"], size, original)
            result = {"boxes": boxes, "labels": detection["labels"], "scores": detection["scores"]}
            if "masks" in detection:
                masks = paste_masks_in_image(detection["masks"], boxes, original)
                if mask_threshold is not None:
                    masks = masks > mask_threshold
                result["masks"] = masks
            results.append(result)
        return results
