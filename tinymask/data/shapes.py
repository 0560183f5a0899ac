"""The built-in dataset: seeded synthetic shapes with instance masks, nothing to download.

Each image is a textured background with a few flat-coloured shapes painted over it, one
after another, so later shapes occlude earlier ones. Classes (label 0 is background):

    1 ellipse    2 rectangle (rotated)    3 triangle    4 ring    5 cross

The ring and the cross are thin (a few pixels wide): a mask that is off by half a pixel loses
much of its IoU on them, which is where RoIAlign beats RoIPool (paper Table 2c).

Shape letters and conventions (as everywhere in tinymask):
    H, W   image height and width in pixels
    M      number of instances in an image
    image  (H, W, 3) uint8 RGB
    boxes  (M, 4) float32 (x1, y1, x2, y2) in pixels: the tight box of the visible mask,
           x2 = last column + 1 and y2 = last row + 1, so width = x2 - x1 counts pixels
    labels (M,) int64 in 1..K;  masks (M, H, W) uint8 in {0, 1}

How an image is made, in data-flow order:
1. a background: two random colours blended by a field t(x, y) in [0, 1] that is a
   gradient, stripes or smooth blotches;
2. the shapes: a class, a log-uniform size (a few pixels up to most of the image), a centre
   anywhere in the image (so shapes may be cut by the border), rasterised on pixel centres;
3. occlusion, top (last drawn) first: each shape keeps only the pixels no shape above it
   took. A shape left with too few pixels is dropped and *not painted*, so every painted
   pixel belongs to exactly one labelled instance; the visible masks never overlap;
4. painting in drawing order with colours picked to stand out, plus per-pixel noise.

Item i is drawn from ``numpy.random.default_rng([seed, i])``: it depends only on (seed, i),
so the dataset is random-access and reproducible. Drawing an image takes a few milliseconds,
a few percent of a training step of the small model, and a training run draws each image
many times (1000 steps of 2 over 300 images: about 7 times), so the items drawn are kept,
up to ``cache_megabytes``, and handed out as copies.
"""

from __future__ import annotations

import numpy

from tinymask.data.coco import write_coco

CLASS_NAMES = ("background", "ellipse", "rectangle", "triangle", "ring", "cross")
BACKGROUNDS = ("gradient", "stripes", "blotches")
THIN_CLASSES = ("ring", "cross")  # need a larger minimum size to show their shape at all


class ShapesDataset:
    """Synthetic instance segmentation: ``ds[i] -> (image, target)``.

    ``target = {"boxes": (M, 4) float32 xyxy, "labels": (M,) int64 in 1..K,
    "masks": (M, H, W) uint8, "image_id": i + 1}``. Image ids start at 1 as in COCO files.

    Args:
        num_images: length of the dataset.
        image_size: an int for square images or ``(height, width)``.
        seed: with the index, the only source of randomness (item i uses ``[seed, i]``).
        min_objects, max_objects: shapes drawn per image (uniform); shapes hidden by the
            ones above them are dropped, and extra shapes are drawn on top until at least
            ``min_objects`` remain (at most 20 extra).
        min_size: smallest shape extent in pixels (thin classes use at least 10).
        max_size_fraction: largest extent as a fraction of the shorter image side.
        min_visible_fraction: a shape keeping less than this fraction of its in-image
            pixels after occlusion is dropped ("almost fully hidden").
        min_visible_pixels: a shape with fewer visible pixels than this is dropped.
        noise_std: standard deviation of the per-pixel noise added last (grey levels).
        cache_megabytes: keep the items drawn, until they take this much memory (128 MB
            hold about 1000 items of 128 x 128 pixels); 0 draws every item every time.
        backgrounds: the kinds of background drawn from (``BACKGROUNDS``).
        ring_width: the range of a ring's width as a fraction of its outer radius.
        cross_width: the range of a cross's bar width as a fraction of its length.
        classes: the shape classes drawn (names from ``CLASS_NAMES``), labelled 1..K in the
            order given; the default is all five, labelled as above.

    Sizes are absolute pixels while COCO's small/medium/large split is at areas 32^2 and
    96^2: at 128 pixels about 80% of instances are small and none is large (APl is -1);
    at 256 pixels about 5% are large.
    """

    class_names = CLASS_NAMES
    num_classes = len(CLASS_NAMES)  # K + 1, background included
    # identity: shapes files use category id = label, so evaluation code can treat every
    # dataset alike (CocoDataset has real mappings)
    label_to_category_id = {label: label for label in range(1, len(CLASS_NAMES))}
    category_id_to_label = dict(label_to_category_id)

    def __init__(self, num_images: int, image_size: int | tuple[int, int] = 128, seed: int = 0,
                 min_objects: int = 1, max_objects: int = 4, min_size: float = 5.0,
                 max_size_fraction: float = 0.8, min_visible_fraction: float = 0.25,
                 min_visible_pixels: int = 6, noise_std: float = 6.0,
                 cache_megabytes: float = 128,
                 backgrounds: tuple = BACKGROUNDS, ring_width: tuple = (0.15, 0.3),
                 cross_width: tuple = (0.1, 0.2), classes: tuple = CLASS_NAMES[1:]):
        height, width = (image_size, image_size) if numpy.isscalar(image_size) else image_size
        if num_images < 0 or seed < 0:
            raise ValueError(f"num_images and seed must be >= 0, got {num_images} and {seed}")
        if min(height, width) < 16:
            raise ValueError(f"image_size must be at least 16 pixels a side, got {image_size}")
        if not 0 <= min_objects <= max_objects:
            raise ValueError(f"need 0 <= min_objects <= max_objects, got {min_objects} and "
                             f"{max_objects}")
        unknown = sorted(set(backgrounds) - set(BACKGROUNDS))
        if unknown or not backgrounds:
            raise ValueError(f"backgrounds: choose one or more of {BACKGROUNDS}, got "
                             f"{tuple(backgrounds)}")
        if not 0 < max_size_fraction <= 1 or min_size >= max_size_fraction * min(height, width):
            raise ValueError(f"min_size {min_size} must be below max_size_fraction * shorter "
                             f"side = {max_size_fraction * min(height, width)}")
        self.num_images = int(num_images)
        self.image_size = (int(height), int(width))
        self.seed = int(seed)
        self.min_objects, self.max_objects = int(min_objects), int(max_objects)
        self.min_size, self.max_size = float(min_size), max_size_fraction * min(height, width)
        self.min_visible_fraction = float(min_visible_fraction)
        self.min_visible_pixels = int(min_visible_pixels)
        self.noise_std = float(noise_std)
        self.cache_bytes = int(cache_megabytes * 2**20)
        self._cache, self._cached_bytes = {}, 0  # index -> (image, target) as first drawn
        self.backgrounds = tuple(backgrounds)
        for name, (low, high) in (("ring_width", ring_width), ("cross_width", cross_width)):
            if not 0 < low <= high <= 1:
                raise ValueError(f"{name} must be a range (low, high) with 0 < low <= high <= "
                                 f"1, got {(low, high)}")
        self.ring_width, self.cross_width = tuple(ring_width), tuple(cross_width)
        classes = (classes,) if isinstance(classes, str) else tuple(classes)
        unknown = sorted(set(classes) - set(CLASS_NAMES[1:]))
        if unknown or not classes or len(set(classes)) != len(classes):
            raise ValueError(f"classes: choose one or more of {CLASS_NAMES[1:]}, each once, "
                             f"got {classes}")
        if classes != CLASS_NAMES[1:]:  # labels 1..K in the order given
            self.class_names = ("background",) + classes
            self.num_classes = len(self.class_names)
            self.label_to_category_id = {label: label for label in range(1, len(classes) + 1)}
            self.category_id_to_label = dict(self.label_to_category_id)

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, index: int):
        if index < 0:
            index += self.num_images
        if not 0 <= index < self.num_images:
            raise IndexError(f"index {index} out of range for a ShapesDataset of "
                             f"{self.num_images} images")
        item = self._cache.get(index)
        if item is None:
            rng = numpy.random.default_rng([self.seed, index])
            image, masks, labels = self._draw_image(rng)
            item = image, {"boxes": masks_to_boxes(masks), "labels": labels, "masks": masks,
                           "image_id": index + 1}
            size = image.nbytes + masks.nbytes
            if self._cached_bytes + size <= self.cache_bytes:
                self._cache[index] = item
                self._cached_bytes += size
        image, target = item
        # copies: a caller may change what it gets without changing the next draw
        return image.copy(), {key: value.copy() if isinstance(value, numpy.ndarray) else value
                              for key, value in target.items()}

    def _draw_image(self, rng):
        height, width = self.image_size
        # pixel centres: pixel (row, col) covers [col, col + 1) x [row, row + 1)
        x = numpy.arange(width, dtype=numpy.float64)[None, :] + 0.5  # (1, W)
        y = numpy.arange(height, dtype=numpy.float64)[:, None] + 0.5  # (H, 1)
        # 1. background
        background, background_colours = draw_background(rng, x, y, self.backgrounds)

        # 2-3. shapes, then occlusion from the top
        num_shapes = int(rng.integers(self.min_objects, self.max_objects + 1))
        shapes = [self._random_shape(rng, x, y) for _ in range(num_shapes)]  # (label, mask)
        visible = visible_parts([mask for _, mask in shapes], self.min_visible_fraction,
                                self.min_visible_pixels)
        extra_draws = 0
        while sum(part is not None for part in visible) < self.min_objects and extra_draws < 20:
            # the new shape goes on top, so it is (nearly always) fully visible
            shapes.append(self._random_shape(rng, x, y))
            visible = visible_parts([mask for _, mask in shapes], self.min_visible_fraction,
                                    self.min_visible_pixels)
            extra_draws += 1
        kept = [(label, part) for (label, _), part in zip(shapes, visible) if part is not None]

        # 4. paint the visible parts (they do not overlap, so the order does not matter)
        image = background
        used_colours = list(background_colours)
        for _, mask in kept:
            colour = distinct_colour(rng, numpy.array(used_colours))
            used_colours.append(colour)
            image[mask] = colour
        image = image + rng.normal(0.0, self.noise_std, size=image.shape)
        image = numpy.clip(numpy.rint(image), 0, 255).astype(numpy.uint8)

        labels = numpy.array([label for label, _ in kept], dtype=numpy.int64)
        masks = numpy.zeros((len(kept), height, width), dtype=numpy.uint8)
        for index, (_, mask) in enumerate(kept):
            masks[index] = mask
        return image, masks, labels

    def _random_shape(self, rng, x, y):
        """-> (label, (H, W) bool mask of the whole shape inside the image)."""
        label = int(rng.integers(1, self.num_classes))
        name = self.class_names[label]
        min_size = max(self.min_size, 10.0) if name in THIN_CLASSES else self.min_size
        min_size = min(min_size, self.max_size)
        # log-uniform: as many shapes between 5 and 10 px as between 50 and 100 px, so the
        # small objects that detectors find hard are common
        size = float(numpy.exp(rng.uniform(numpy.log(min_size), numpy.log(self.max_size))))
        centre = (rng.uniform(0, x.shape[1]), rng.uniform(0, y.shape[0]))
        widths = {"ring": self.ring_width, "cross": self.cross_width}
        extra = {"width": widths[name]} if name in widths else {}
        return label, SHAPE_SAMPLERS[name](rng, x, y, centre, size, **extra)


# ---- 1. background ---------------------------------------------------------------------------

def draw_background(rng, x, y, kinds=BACKGROUNDS):
    """-> ((H, W, 3) float64 image in [0, 255], (2, 3) its two colours).

    The two colours are blended by a field t in [0, 1], one of ``kinds`` drawn uniformly: a
    linear gradient, stripes, or smooth blotches (a sum of three random plane waves)."""
    colours = rng.uniform(0, 255, size=(2, 3))
    angle = rng.uniform(0, 2 * numpy.pi)
    along = x * numpy.cos(angle) + y * numpy.sin(angle)  # (H, W) distance along a direction
    kind = kinds[rng.integers(len(kinds))]
    if kind == "gradient":
        t = (along - along.min()) / max(along.max() - along.min(), 1e-9)
    elif kind == "stripes":  # 4 to 16 pixels per period
        period = rng.uniform(4, 16)
        t = 0.5 + 0.5 * numpy.sin(2 * numpy.pi * along / period + rng.uniform(0, 2 * numpy.pi))
    else:  # blotches
        size = max(x.shape[1], y.shape[0])
        field = numpy.zeros(numpy.broadcast_shapes(x.shape, y.shape))
        for _ in range(3):
            direction = rng.uniform(0, 2 * numpy.pi)
            wavelength = rng.uniform(0.2, 0.8) * size
            field = field + numpy.sin(2 * numpy.pi * (x * numpy.cos(direction) + y *
                                      numpy.sin(direction)) / wavelength
                                      + rng.uniform(0, 2 * numpy.pi))
        t = (field - field.min()) / max(field.max() - field.min(), 1e-9)
    image = colours[0] + t[:, :, None] * (colours[1] - colours[0])
    return image, colours


def distinct_colour(rng, used_colours):
    """An RGB colour far from ``used_colours`` (C, 3): the best of 32 random candidates.

    Distance to the background is measured to the *segment* between its two colours (the
    first two rows), since the background blends them; a shape the colour of its
    background would have a mask nobody could see."""
    candidates = rng.uniform(0, 255, size=(32, 3))
    start, end = used_colours[0], used_colours[1]
    direction = end - start
    along = numpy.clip((candidates - start) @ direction / max(direction @ direction, 1e-9), 0, 1)
    nearest_on_segment = start + along[:, None] * direction
    distances = [numpy.linalg.norm(candidates - nearest_on_segment, axis=1)]
    for colour in used_colours[2:]:
        distances.append(numpy.linalg.norm(candidates - colour, axis=1))
    return candidates[numpy.argmax(numpy.min(distances, axis=0))]


# ---- 2. shapes: each a test on pixel centres, vectorised over the whole image -----------------

def _rotated(x, y, centre, angle):
    """Pixel-centre coordinates in the shape's own frame (u along ``angle``, v across)."""
    dx, dy = x - centre[0], y - centre[1]
    cos, sin = numpy.cos(angle), numpy.sin(angle)
    return dx * cos + dy * sin, -dx * sin + dy * cos


def ellipse_mask(x, y, centre, semi_axes, angle):
    u, v = _rotated(x, y, centre, angle)
    return (u / semi_axes[0]) ** 2 + (v / semi_axes[1]) ** 2 <= 1.0


def rectangle_mask(x, y, centre, sides, angle):
    u, v = _rotated(x, y, centre, angle)
    return (numpy.abs(u) <= sides[0] / 2) & (numpy.abs(v) <= sides[1] / 2)


def triangle_mask(x, y, vertices):
    """Inside when the pixel centre is on the same side of all three edges (either winding)."""
    sides = []
    for (x0, y0), (x1, y1) in zip(vertices, numpy.roll(vertices, -1, axis=0)):
        sides.append((x1 - x0) * (y - y0) - (y1 - y0) * (x - x0))  # 2-d cross product
    sides = numpy.broadcast_arrays(*sides)
    all_positive = (sides[0] >= 0) & (sides[1] >= 0) & (sides[2] >= 0)
    all_negative = (sides[0] <= 0) & (sides[1] <= 0) & (sides[2] <= 0)
    return all_positive | all_negative


def ring_mask(x, y, centre, outer_radius, thickness):
    distance = numpy.hypot(x - centre[0], y - centre[1])
    return (distance <= outer_radius) & (distance >= outer_radius - thickness)


def cross_mask(x, y, centre, length, thickness, angle):
    along_bar = rectangle_mask(x, y, centre, (length, thickness), angle)
    across_bar = rectangle_mask(x, y, centre, (thickness, length), angle)
    return along_bar | across_bar


def _sample_ellipse(rng, x, y, centre, size):
    semi_major = size / 2
    return ellipse_mask(x, y, centre, (semi_major, semi_major * rng.uniform(0.45, 1.0)),
                        rng.uniform(0, numpy.pi))


def _sample_rectangle(rng, x, y, centre, size):
    return rectangle_mask(x, y, centre, (size, size * rng.uniform(0.35, 1.0)),
                          rng.uniform(0, numpy.pi))


def _sample_triangle(rng, x, y, centre, size):
    # corners roughly 120 degrees apart, jittered, so the triangle is never a sliver
    angles = rng.uniform(0, 2 * numpy.pi) + numpy.array([0, 2, 4]) * numpy.pi / 3 \
        + rng.uniform(-0.35, 0.35, size=3)
    radii = size / 2 * rng.uniform(0.75, 1.0, size=3)
    vertices = numpy.stack([centre[0] + radii * numpy.cos(angles),
                            centre[1] + radii * numpy.sin(angles)], axis=1)
    return triangle_mask(x, y, vertices)


def _sample_ring(rng, x, y, centre, size, width=(0.15, 0.3)):
    outer_radius = size / 2
    thickness = max(1.5, outer_radius * rng.uniform(*width))  # thin, and never filled
    return ring_mask(x, y, centre, outer_radius, thickness)


def _sample_cross(rng, x, y, centre, size, width=(0.1, 0.2)):
    thickness = max(2.0, size * rng.uniform(*width))
    return cross_mask(x, y, centre, size, thickness, rng.uniform(0, numpy.pi / 2))


SHAPE_SAMPLERS = {"ellipse": _sample_ellipse, "rectangle": _sample_rectangle,
                  "triangle": _sample_triangle, "ring": _sample_ring, "cross": _sample_cross}


# ---- 3. occlusion -----------------------------------------------------------------------------

def visible_parts(masks, min_visible_fraction, min_visible_pixels):
    """The visible part of each shape, or None for a dropped shape; later masks are on top.

    Walks from the top: a shape keeps the pixels that no *kept* shape above it covers. A
    dropped shape is not painted, so it hides nothing; walking top-down settles each shape
    before anything below it looks at what is covered, so one pass is exact."""
    covered = numpy.zeros(masks[0].shape, dtype=bool) if masks else None
    visible = [None] * len(masks)
    for index in reversed(range(len(masks))):
        whole = masks[index]
        part = whole & ~covered
        count = int(part.sum())
        if count >= min_visible_pixels and count >= min_visible_fraction * whole.sum():
            visible[index] = part
            covered |= part
    return visible


def masks_to_boxes(masks):
    """The tight box of each mask, ``(M, H, W) -> (M, 4)`` float32 xyxy.

    x2 is the last column holding the mask plus one (and y2 likewise), so the box is the
    region the mask's pixels cover, ``width = x2 - x1`` pixels. An empty mask gives a zero
    box."""
    masks = numpy.asarray(masks).astype(bool)
    count, height, width = masks.shape
    columns = masks.any(axis=1)  # (M, W)
    rows = masks.any(axis=2)  # (M, H)
    boxes = numpy.zeros((count, 4), dtype=numpy.float32)
    non_empty = columns.any(axis=1)
    boxes[:, 0] = numpy.argmax(columns, axis=1)
    boxes[:, 1] = numpy.argmax(rows, axis=1)
    boxes[:, 2] = width - numpy.argmax(columns[:, ::-1], axis=1)
    boxes[:, 3] = height - numpy.argmax(rows[:, ::-1], axis=1)
    boxes[~non_empty] = 0
    return boxes


# ---- on disk ----------------------------------------------------------------------------------

def split_seeds(seed: int) -> tuple[int, int]:
    """(train seed, val seed): two unrelated seeds derived from ``seed``.

    Not ``seed`` and ``seed + 1``, which would make the val images of seed 0 the train
    images of seed 1."""
    train_seed, val_seed = numpy.random.SeedSequence(seed).generate_state(2)
    return int(train_seed), int(val_seed)


def make_shapes_splits(num_train: int, num_val: int, seed: int = 0, **dataset_kwargs):
    """-> (train, val) ShapesDatasets with seeds from ``split_seeds(seed)``: the same
    images ``generate_shapes`` writes, kept in memory."""
    train_seed, val_seed = split_seeds(seed)
    return (ShapesDataset(num_train, seed=train_seed, **dataset_kwargs),
            ShapesDataset(num_val, seed=val_seed, **dataset_kwargs))


def generate_shapes(out_dir, train: int = 500, val: int = 100, seed: int = 0,
                    image_size: int | tuple[int, int] = 128, **dataset_kwargs) -> dict:
    """Write the shapes dataset as COCO files; returns ``{"train": json path, "val": ...}``.

    Layout (the one ``CocoDataset(ann_file, image_dir)`` reads)::

        out_dir/train/000001.png ...   images, named by image id
        out_dir/train.json             COCO annotations for train (RLE masks)
        out_dir/val/000001.png ...
        out_dir/val.json

    Train and val use the two seeds of ``split_seeds(seed)``, so they share no image.
    """
    train_set, val_set = make_shapes_splits(train, val, seed=seed, image_size=image_size,
                                            **dataset_kwargs)
    return {"train": write_coco(train_set, out_dir, "train"),
            "val": write_coco(val_set, out_dir, "val")}
