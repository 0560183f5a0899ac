"""Stick figures: a synthetic human-pose dataset with instance masks and COCO keypoints.

Each image is a textured background (as the shapes dataset) with a few stick figures, one
class, "person": a disc for the head, a neck, a torso and eight limbs of some thickness,
posed by random joint angles, scaled, placed anywhere (so figures may be cut by the image
border) and painted one over another (so later figures occlude earlier ones).

The 14 keypoints are COCO's person keypoints without the face: a plain disc has no eyes,
ears or nose to find, so COCO's five face points become one "head" (the disc's centre) and
a "neck" (where the head's stalk meets the shoulders' line) is added:

    head, neck, left/right shoulder, elbow, wrist, hip, knee, ankle

Left and right follow the figure, not the image: a figure faces the viewer, so its left
shoulder is on the image's right (a torso leans at most 20 degrees, so this never flips).
A mirrored image mirrors the figure and swaps the names (``keypoint_flip``), as for people.

Keypoints are ``(x, y, v)`` in continuous pixel coordinates (pixel (row, col) covers
[col, col + 1) x [row, row + 1)), COCO's visibility v: 2 visible, 1 hidden under a figure
drawn later, 0 outside the image (then x = y = 0, as COCO writes unlabelled points).
A figure's box is the tight box of its visible mask, as for the shapes.

Shape letters: H, W image size; M figures; K = 14 keypoints. Item i is drawn from
``numpy.random.default_rng([seed, i])``: random-access and reproducible.
"""

from __future__ import annotations

import numpy

from tinymask.data.coco import write_coco
from tinymask.data.shapes import (
    distinct_colour,
    draw_background,
    masks_to_boxes,
    split_seeds,
    triangle_mask,
    visible_parts,
)
from tinymask.keypoints import keypoint_flip_index

KEYPOINT_NAMES = ("head", "neck", "left_shoulder", "right_shoulder", "left_elbow",
                  "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
                  "left_knee", "right_knee", "left_ankle", "right_ankle")
# bones as pairs of 1-based keypoint numbers, COCO's "skeleton" convention
SKELETON = ((1, 2), (2, 3), (2, 4), (3, 4), (3, 5), (5, 7), (4, 6), (6, 8), (3, 9), (4, 10),
            (9, 10), (9, 11), (11, 13), (10, 12), (12, 14))

# Body proportions as fractions of the figure's height (head top to heels, standing)
HEAD_RADIUS = 0.075
NECK_LENGTH = 0.10  # neck keypoint to the head's centre
TORSO_LENGTH = 0.30  # neck to the middle of the hips
SHOULDER_HALF_WIDTH = 0.10
SHOULDER_DROP = 0.03  # shoulders sit a little below the neck point
HIP_HALF_WIDTH = 0.065
UPPER_ARM, FOREARM, THIGH, SHIN = 0.16, 0.15, 0.22, 0.22
THICKNESS = 0.05  # limbs, neck and the torso's outline; at least MIN_THICKNESS pixels
MIN_THICKNESS = 2.0

# OKS sigmas for COCOeval (iouType="keypoints"). COCO defines a keypoint's sigma as the
# spread of its position divided by the object's scale s = sqrt(area); its 17 sigmas
# (0.025 for eyes to 0.107 for hips) measure how far human annotators disagree. Our
# keypoints are exact, so what is uncertain is where a joint is *in the picture*: a joint
# drawn where two limbs of thickness t meet can be anywhere in a disc of radius t/2 without
# changing the drawing, and a shoulder or hip, whose limb starts inside the torso, only
# along the limb's axis, over about t. A point spread uniformly over a disc of radius r
# lies sqrt(<d^2>) = r / sqrt(2) from its centre, so sigma = r / (sqrt(2) * s). A standing
# figure has s = 0.383 of its height (its mask area is 0.147 height^2, ``figure_scale``)
# and t = 0.05 height, which gives 0.046 for r = t/2 (head, neck, elbows, wrists, knees,
# ankles; the head's centre is exact, but on the same pixel grid) and 0.092 for r = t
# (shoulders, hips): between COCO's eyes (0.025) and wrists (0.062), and nearly as loose
# as COCO's hips (0.107).
JOINT_SIGMA, TORSO_JOINT_SIGMA = 0.046, 0.092
OKS_SIGMAS = tuple(TORSO_JOINT_SIGMA if name.endswith(("shoulder", "hip")) else JOINT_SIGMA
                   for name in KEYPOINT_NAMES)


def _rotate(vector, angle):
    cos, sin = numpy.cos(angle), numpy.sin(angle)
    return numpy.array([cos * vector[0] - sin * vector[1], sin * vector[0] + cos * vector[1]])


def pose_keypoints(rng, height, centre, standing=False):
    """The 14 joints of one figure: (K, 2) float64 xy in pixels.

    Angles are drawn joint by joint down the body (image y points down): the torso leans
    up to 20 degrees; each upper arm swings out from hanging (0) to raised (150 degrees),
    each upper leg from 10 degrees in to 40 out; elbows bend up to 130 degrees and knees up
    to 90, either way. ``standing``: arms and legs hang straight (used to measure the
    figure's area). ``centre`` is the middle of the hips."""
    def angle(low, high):
        return 0.0 if standing else rng.uniform(low, high)

    def either_way():
        return 1.0 if standing else rng.choice((-1.0, 1.0))

    lean = angle(-0.35, 0.35)
    down = numpy.array([numpy.sin(lean), numpy.cos(lean)])  # neck -> hips
    outward_left = numpy.array([down[1], -down[0]])  # the figure's left: image +x
    hips = numpy.asarray(centre, dtype=numpy.float64)
    neck = hips - TORSO_LENGTH * height * down
    head = neck + NECK_LENGTH * height * _rotate(-down, angle(-0.3, 0.3))
    joints = {"head": head, "neck": neck}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        outward = sign * outward_left
        shoulder = neck + SHOULDER_DROP * height * down + SHOULDER_HALF_WIDTH * height * outward
        hip = hips + HIP_HALF_WIDTH * height * outward
        # a swing of a limb away from "down" towards "outward" is a rotation by sign * angle
        # in image coordinates (y down): -1 for the figure's left, +1 for its right
        arm = _rotate(down, -sign * angle(-0.2, 2.6))
        forearm = _rotate(arm, either_way() * angle(0.0, 2.3))
        leg = _rotate(down, -sign * angle(-0.17, 0.7))
        shin = _rotate(leg, either_way() * angle(0.0, 1.6))
        elbow = shoulder + UPPER_ARM * height * arm
        knee = hip + THIGH * height * leg
        joints.update({f"{side}_shoulder": shoulder, f"{side}_elbow": elbow,
                       f"{side}_wrist": elbow + FOREARM * height * forearm,
                       f"{side}_hip": hip, f"{side}_knee": knee,
                       f"{side}_ankle": knee + SHIN * height * shin})
    return numpy.stack([joints[name] for name in KEYPOINT_NAMES])


def capsule_mask(x, y, start, end, radius):
    """Pixel centres within ``radius`` of the segment start-end: a limb with round ends."""
    direction = end - start
    length_squared = max(float(direction @ direction), 1e-12)
    along = numpy.clip(((x - start[0]) * direction[0] + (y - start[1]) * direction[1])
                       / length_squared, 0.0, 1.0)
    return (x - start[0] - along * direction[0]) ** 2 + \
        (y - start[1] - along * direction[1]) ** 2 <= radius**2


def figure_mask(x, y, joints, height):
    """(H, W) bool: the head disc, and capsules for the neck, limbs and the torso's outline,
    with the torso filled."""
    index = {name: i for i, name in enumerate(KEYPOINT_NAMES)}
    radius = max(THICKNESS * height, MIN_THICKNESS) / 2
    head = joints[index["head"]]
    mask = (x - head[0]) ** 2 + (y - head[1]) ** 2 <= (HEAD_RADIUS * height) ** 2
    for first, second in SKELETON:
        mask |= capsule_mask(x, y, joints[first - 1], joints[second - 1], radius)
    corners = joints[[index["left_shoulder"], index["right_shoulder"], index["right_hip"],
                      index["left_hip"]]]
    mask |= triangle_mask(x, y, corners[:3]) | triangle_mask(x, y, corners[[0, 2, 3]])
    return mask


def figure_scale() -> float:
    """s / height of a standing figure: sqrt(mask area) / height, measured on a 400-pixel
    figure (the OKS sigmas above are derived from it)."""
    size = 480
    x = numpy.arange(size, dtype=numpy.float64)[None, :] + 0.5
    y = numpy.arange(size, dtype=numpy.float64)[:, None] + 0.5
    height = 400.0
    joints = pose_keypoints(None, height, (size / 2, size / 2), standing=True)
    return float(numpy.sqrt(figure_mask(x, y, joints, height).sum())) / height


class FiguresDataset:
    """Stick figures with masks and keypoints: ``ds[i] -> (image, target)``.

    ``target = {"boxes": (M, 4) float32 xyxy, "labels": (M,) int64 (all 1, "person"),
    "masks": (M, H, W) uint8, "keypoints": (M, 14, 3) float32 (x, y, v), "image_id": i + 1}``.

    Args:
        num_images: length of the dataset.
        image_size: an int for square images or ``(height, width)``.
        seed: with the index, the only source of randomness.
        min_objects, max_objects: figures drawn per image (uniform); figures hidden by the
            ones above them are dropped, and more are drawn on top until ``min_objects``
            remain (at most 20 extra).
        min_height: smallest figure height in pixels; max_height_fraction: largest, as a
            fraction of the shorter image side (log-uniform in between).
        min_visible_fraction, min_visible_pixels: a figure keeping less of itself after
            occlusion is dropped.
        noise_std: per-pixel noise added last (grey levels).
    """

    class_names = ("background", "person")
    num_classes = 2
    label_to_category_id = {1: 1}
    category_id_to_label = {1: 1}
    keypoint_names = KEYPOINT_NAMES
    num_keypoints = len(KEYPOINT_NAMES)
    skeleton = SKELETON
    keypoint_flip = keypoint_flip_index(KEYPOINT_NAMES)
    keypoint_oks_sigmas = OKS_SIGMAS

    def __init__(self, num_images: int, image_size: int | tuple[int, int] = 128, seed: int = 0,
                 min_objects: int = 1, max_objects: int = 3, min_height: float = 32.0,
                 max_height_fraction: float = 0.9, min_visible_fraction: float = 0.4,
                 min_visible_pixels: int = 30, noise_std: float = 6.0):
        height, width = (image_size, image_size) if numpy.isscalar(image_size) else image_size
        if num_images < 0 or seed < 0:
            raise ValueError(f"num_images and seed must be >= 0, got {num_images} and {seed}")
        if min(height, width) < 32:
            raise ValueError(f"image_size must be at least 32 pixels a side, got {image_size}")
        if not 0 <= min_objects <= max_objects:
            raise ValueError(f"need 0 <= min_objects <= max_objects, got {min_objects} and "
                             f"{max_objects}")
        if not 0 < max_height_fraction <= 1 or min_height > max_height_fraction * min(
                height, width):
            raise ValueError(f"min_height {min_height} must be at most max_height_fraction * "
                             f"shorter side = {max_height_fraction * min(height, width)}")
        self.num_images, self.seed = int(num_images), int(seed)
        self.image_size = (int(height), int(width))
        self.min_objects, self.max_objects = int(min_objects), int(max_objects)
        self.min_height = float(min_height)
        self.max_height = max_height_fraction * min(height, width)
        self.min_visible_fraction = float(min_visible_fraction)
        self.min_visible_pixels = int(min_visible_pixels)
        self.noise_std = float(noise_std)

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, index: int):
        if index < 0:
            index += self.num_images
        if not 0 <= index < self.num_images:
            raise IndexError(f"index {index} out of range for a FiguresDataset of "
                             f"{self.num_images} images")
        rng = numpy.random.default_rng([self.seed, index])
        image, masks, keypoints = self._draw_image(rng)
        target = {"boxes": masks_to_boxes(masks), "labels": numpy.ones(len(masks), numpy.int64),
                  "masks": masks, "keypoints": keypoints, "image_id": index + 1}
        return image, target

    def _random_figure(self, rng, x, y):
        """-> ((K, 2) joints, (H, W) bool mask of the whole figure inside the image)."""
        height = float(numpy.exp(rng.uniform(numpy.log(self.min_height),
                                             numpy.log(self.max_height))))
        centre = (rng.uniform(0, x.shape[1]), rng.uniform(0, y.shape[0]))
        joints = pose_keypoints(rng, height, centre)
        return joints, figure_mask(x, y, joints, height)

    def _draw_image(self, rng):
        image_height, image_width = self.image_size
        x = numpy.arange(image_width, dtype=numpy.float64)[None, :] + 0.5
        y = numpy.arange(image_height, dtype=numpy.float64)[:, None] + 0.5
        background, background_colours = draw_background(rng, x, y)
        count = int(rng.integers(self.min_objects, self.max_objects + 1))
        figures = [self._random_figure(rng, x, y) for _ in range(count)]
        visible = visible_parts([mask for _, mask in figures], self.min_visible_fraction,
                                self.min_visible_pixels)
        extra_draws = 0
        while sum(part is not None for part in visible) < self.min_objects and extra_draws < 20:
            figures.append(self._random_figure(rng, x, y))
            visible = visible_parts([mask for _, mask in figures], self.min_visible_fraction,
                                    self.min_visible_pixels)
            extra_draws += 1
        kept = [(joints, part) for (joints, _), part in zip(figures, visible)
                if part is not None]

        image, used_colours = background, list(background_colours)
        for _, part in kept:
            colour = distinct_colour(rng, numpy.array(used_colours))
            used_colours.append(colour)
            image[part] = colour
        image = image + rng.normal(0.0, self.noise_std, size=image.shape)
        image = numpy.clip(numpy.rint(image), 0, 255).astype(numpy.uint8)

        masks = numpy.zeros((len(kept), image_height, image_width), dtype=numpy.uint8)
        keypoints = numpy.zeros((len(kept), len(KEYPOINT_NAMES), 3), dtype=numpy.float32)
        for row, (joints, part) in enumerate(kept):
            masks[row] = part
            keypoints[row] = keypoint_visibility(joints, part)
        return image, masks, keypoints


def keypoint_visibility(joints, visible_mask):
    """(K, 2) joints and a figure's visible mask -> (K, 3) ``(x, y, v)``: v = 2 where the
    joint's pixel shows this figure, 1 where a figure drawn later covers it, 0 (at (0, 0))
    outside the image."""
    image_height, image_width = visible_mask.shape
    keypoints = numpy.zeros((len(joints), 3), dtype=numpy.float32)
    for index, (x, y) in enumerate(joints):
        if 0 <= x < image_width and 0 <= y < image_height:
            keypoints[index] = (x, y, 2 if visible_mask[int(y), int(x)] else 1)
    return keypoints


def make_figures_splits(num_train: int, num_val: int, seed: int = 0, **dataset_kwargs):
    """-> (train, val) FiguresDatasets with seeds from ``split_seeds(seed)``: the same
    images ``generate_figures`` writes, kept in memory."""
    train_seed, val_seed = split_seeds(seed)
    return (FiguresDataset(num_train, seed=train_seed, **dataset_kwargs),
            FiguresDataset(num_val, seed=val_seed, **dataset_kwargs))


def generate_figures(out_dir, train: int = 500, val: int = 100, seed: int = 0,
                     image_size: int | tuple[int, int] = 128, **dataset_kwargs) -> dict:
    """Write the figures as COCO keypoint files (``out_dir/train.json`` + ``out_dir/train/``,
    the same for val, the layout of ``generate_shapes``); returns the JSON paths. The
    category "person" lists the keypoint names and the skeleton, each annotation its
    ``keypoints`` and ``num_keypoints``."""
    train_set, val_set = make_figures_splits(train, val, seed=seed, image_size=image_size,
                                             **dataset_kwargs)
    return {"train": write_coco(train_set, out_dir, "train"),
            "val": write_coco(val_set, out_dir, "val")}
