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

Images and training targets are checked on the way in, as torchvision's
``GeneralizedRCNN`` checks boxes, and further: a bad one raises a ``UserError`` naming the
image or target and what is wrong, where it would otherwise become a NaN loss or be
reshaped into something else without a word. Shape letters: M objects in an image of
H x W pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy

from tinymask.backend import array_module, to_numpy, xp
from tinymask.errors import UserError
from tinymask.functional.interpolation import bilinear_matrix, nearest_source_index
from tinymask.postprocess import paste_masks_in_image, resize_boxes, resize_keypoints


def to_chw_float(image, index: int = 0):
    """An image as float32 (3, H, W) in [0, 1].

    Accepts (H, W, 3) or (H, W) uint8 (as read from disk; grey is repeated to 3 channels),
    (H, W, 4) uint8 (alpha dropped), or float (3, H, W) in [0, 1] (torchvision's
    convention). Anything else, an empty image, NaN or a float outside [0, 1] raises
    ``UserError`` (``index`` names the image in the message)."""
    array = image if hasattr(image, "dtype") else numpy.asarray(image)
    where = f"image {index}"
    if array.dtype == numpy.uint8:
        if array.ndim == 2:
            array = array[:, :, None].repeat(3, axis=2)
        if array.ndim != 3 or array.shape[2] not in (3, 4):
            raise UserError(f"{where}: a uint8 image must be (H, W), (H, W, 3) or (H, W, 4), "
                            f"got {array.shape}")
        if 0 in array.shape[:2]:
            raise UserError(f"{where} is empty: shape {array.shape}")
        return (array[:, :, :3].transpose(2, 0, 1) / 255.0).astype(numpy.float32)
    if array.dtype.kind != "f":
        raise UserError(f"{where} has dtype {array.dtype}; pass uint8 (H, W, 3) or float "
                        f"(3, H, W) in [0, 1] (scale other integer images into float)")
    if array.ndim != 3 or array.shape[0] != 3:
        raise UserError(f"{where}: a float image must be (3, H, W) in [0, 1] (uint8 images "
                        f"are (H, W, 3)), got shape {array.shape} and dtype {array.dtype}")
    if 0 in array.shape[1:]:
        raise UserError(f"{where} is empty: shape {array.shape}")
    lowest, highest = float(array.min()), float(array.max())
    if not 0.0 <= lowest <= highest <= 1.0:  # also false for NaN
        raise UserError(f"{where}: a float image must hold values in [0, 1], found "
                        f"{lowest:g}..{highest:g}; divide 0..255 images by 255 (or pass "
                        f"them as uint8), and replace NaN pixels")
    return array.astype(numpy.float32, copy=False)


def resized_size(height, width, min_size, max_size):
    """(h, w) after scaling the shorter side to ``min_size``, capped by ``max_size``.

    Each side keeps at least one pixel: torchvision's interpolation would fail on the zero
    height of, say, a 5 x 500 strip capped at 64 pixels."""
    scale = min(min_size / min(height, width), max_size / max(height, width))
    return max(1, int(math.floor(height * scale))), max(1, int(math.floor(width * scale)))


def check_target(target, index: int, image_size, num_classes=None, num_keypoints=None) -> None:
    """A training target as the model needs it, or a ``UserError`` saying what is wrong.

    ``boxes`` (M, 4) xyxy, finite, x2 > x1 and y2 > y1 (torchvision's check); ``labels``
    (M,) integers in 1..K (K = num_classes - 1 when known; 0 is the background);
    ``masks`` (M, H, W) for an H x W image, every value 0 or 1; with ``num_keypoints``
    (a keypoint model) ``keypoints`` (M, num_keypoints, 3), finite ``(x, y, v)``. An image
    without objects has M = 0 (boxes of any empty shape are taken as (0, 4))."""
    where = f"target {index}"
    if not isinstance(target, dict) or "boxes" not in target or "labels" not in target:
        raise UserError(f"{where} must be a dict with 'boxes' (M, 4) and 'labels' (M,), got "
                        f"{type(target).__name__}")
    boxes, labels = to_numpy(target["boxes"]), to_numpy(target["labels"])
    if boxes.size and (boxes.ndim != 2 or boxes.shape[1] != 4):
        raise UserError(f"{where}: boxes must be (M, 4) xyxy, got shape {boxes.shape}")
    boxes = boxes.reshape(-1, 4)
    if boxes.dtype.kind not in "iuf":
        raise UserError(f"{where}: boxes must be numbers, got dtype {boxes.dtype}")
    if not numpy.isfinite(boxes).all():
        raise UserError(f"{where}: a box holds NaN or infinity: "
                        f"{boxes[~numpy.isfinite(boxes).all(axis=1)][0].tolist()}")
    degenerate = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if degenerate.any():
        raise UserError(f"{where}: every box needs x2 > x1 and y2 > y1 (xyxy, positive width "
                        f"and height); found {boxes[degenerate][0].tolist()}")
    if labels.ndim != 1 or labels.shape[0] != boxes.shape[0]:
        raise UserError(f"{where}: labels must be (M,) with one label per box; got shape "
                        f"{labels.shape} for {boxes.shape[0]} boxes")
    if labels.size and labels.dtype.kind not in "iu":
        raise UserError(f"{where}: labels must be integers (class indices 1..K), got dtype "
                        f"{labels.dtype}")
    highest = None if num_classes is None else num_classes - 1
    if labels.size and (labels.min() < 1 or (highest is not None and labels.max() > highest)):
        span = "1..K" if highest is None else f"1..{highest}"
        raise UserError(f"{where}: labels must be in {span} (0 is the background), found "
                        f"{labels.min()}..{labels.max()}")
    if num_keypoints is not None:
        check_keypoints(target.get("keypoints"), where, boxes.shape[0], num_keypoints)
    masks = target.get("masks")
    if masks is None:
        return
    masks = to_numpy(masks)
    expected = (boxes.shape[0], *image_size)
    if masks.shape != expected and not (masks.size == 0 and boxes.shape[0] == 0):
        raise UserError(f"{where}: masks must be (M, H, W) = {expected} for {boxes.shape[0]} "
                        f"boxes on a {image_size[0]}x{image_size[1]} image, got {masks.shape}")
    if masks.size and not ((masks == 0) | (masks == 1)).all():
        raise UserError(f"{where}: masks must be binary (0 or 1); found values such as "
                        f"{masks[(masks != 0) & (masks != 1)].flat[0].item()!r}")


def check_keypoints(keypoints, where: str, num_objects: int, num_keypoints: int) -> None:
    """A keypoint model's targets: (M, K, 3) finite ``(x, y, v)`` for M boxes."""
    if keypoints is None:
        raise UserError(f"{where}: the model has a keypoint branch, so every target needs "
                        f"'keypoints' (M, {num_keypoints}, 3) (x, y, visibility); train on a "
                        f"COCO keypoint file or set keypoint_branch=false")
    keypoints = to_numpy(keypoints)
    expected = (num_objects, num_keypoints, 3)
    if keypoints.shape != expected and not (keypoints.size == 0 and num_objects == 0):
        raise UserError(f"{where}: keypoints must be (M, K, 3) = {expected}, got "
                        f"{keypoints.shape}; num_keypoints must match the data's keypoints")
    if keypoints.size and not numpy.isfinite(keypoints.astype(numpy.float64)).all():
        raise UserError(f"{where}: keypoints hold NaN or infinity")


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
                 image_std=(0.229, 0.224, 0.225), size_divisibility=32, num_classes=None,
                 num_keypoints=None):
        self.min_size, self.max_size = min_size, max_size
        self.num_classes = num_classes  # K + 1, for the labels check; None: only labels >= 1
        self.num_keypoints = num_keypoints  # a keypoint model's K: targets need keypoints
        self.image_mean = numpy.asarray(image_mean, dtype=numpy.float32)
        self.image_std = numpy.asarray(image_std, dtype=numpy.float32)
        self.size_divisibility = size_divisibility

    def __call__(self, images, targets=None):
        """images: list of arrays (see ``to_chw_float``); targets: list of dicts with
        ``boxes`` (M, 4) xyxy in the image's pixels, ``labels`` (M,), ``masks`` (M, H, W).
        Returns (ImageBatch, resized targets)."""
        if len(images) == 0:
            raise UserError("no images: pass a list of at least one image")
        if targets is not None and len(targets) != len(images):
            raise UserError(f"{len(images)} images but {len(targets)} targets; pass one target "
                            f"per image")
        backend = xp()
        resized, sizes, originals, new_targets = [], [], [], []
        for index, image in enumerate(images):
            chw = backend.asarray(to_chw_float(image, index))
            _, height, width = chw.shape
            originals.append((height, width))
            chw = (chw - backend.asarray(self.image_mean)[:, None, None]) / backend.asarray(
                self.image_std)[:, None, None]
            size = resized_size(height, width, self.min_size, self.max_size)
            chw = _resize_image(chw, size) if size != (height, width) else chw
            resized.append(chw)
            sizes.append(size)
            if targets is not None:
                check_target(targets[index], index, (height, width), self.num_classes,
                             self.num_keypoints)
                new_targets.append(self._resize_target(targets[index], (height, width), size))
        batch = self._pad(resized)
        return ImageBatch(batch, sizes, originals), (new_targets if targets is not None else None)

    def _resize_target(self, target, original_size, size):
        backend = xp()
        boxes = backend.asarray(target["boxes"], dtype=numpy.float32).reshape(-1, 4)
        labels = backend.asarray(target["labels"], dtype=numpy.int64).reshape(-1)
        out = {"boxes": resize_boxes(boxes, original_size, size), "labels": labels}
        if "masks" in target and target["masks"] is not None:
            # shapes were checked: only an empty (M = 0) mask array may need its shape
            masks = backend.asarray(target["masks"]) if numpy.size(target["masks"]) \
                else backend.zeros((0, *original_size), numpy.uint8)
            out["masks"] = _resize_masks(masks, size) if size != original_size else masks
        if self.num_keypoints is not None:
            keypoints = backend.asarray(target["keypoints"], dtype=numpy.float32).reshape(
                -1, self.num_keypoints, 3)
            out["keypoints"] = resize_keypoints(keypoints, original_size, size)
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
            if "keypoints" in detection:
                result["keypoints"] = resize_keypoints(detection["keypoints"], size, original)
                result["keypoints_scores"] = detection["keypoints_scores"]
            results.append(result)
        return results
