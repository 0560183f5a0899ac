# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 3 — The data
#
# **Goal.** Before a model can learn anything it needs examples: an image, and for every
# object in it a class, a box and a pixel mask. We look at what tinymask hands the model
# (an *(image, target)* pair) and write the one augmentation the paper trains with, a
# horizontal flip (this lesson's course task); then at how the same pair is stored on disk
# in the COCO format the paper was evaluated on (boxes as `x, y, w, h`, masks as polygons
# or run-length codes read by pycocotools), and at what the model does to an image before
# its first convolution (resize, normalise, pad).
#
# Code: `tinymask/data/shapes.py` (the built-in dataset), `tinymask/data/coco.py` (COCO
# files in and out), `tinymask/data/augment.py` (the flip), `tinymask/model/transform.py`
# (resize, normalise, pad) and `tinymask/postprocess.py` (boxes back to the image).

# %%
import json
import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Polygon, Rectangle
from pycocotools import mask as mask_utils

from tinymask.boxes import box_xyxy_to_xywh
from tinymask.config import MaskRCNNConfig
from tinymask.course import check_tasks
from tinymask.data import (
    CocoDataset,
    ShapesDataset,
    coco_dict_from_dataset,
    decode_segmentation,
    encode_mask,
    generate_shapes,
    horizontal_flip,
    make_shapes_splits,
    masks_to_boxes,
)
from tinymask.lesson_utils import smoke_mode, stop_at_unsolved_tasks
from tinymask.model.transform import ImageTransform, resized_size
from tinymask.postprocess import resize_boxes
from tinymask.train import TrainConfig
from tinymask.visualize import draw_instances

stop_at_unsolved_tasks()
SMOKE = smoke_mode()
# pixels drawn as squares, not smoothed: this lesson is about which pixel is which
plt.rcParams.update({"image.interpolation": "nearest", "figure.dpi": 72})

# %% [markdown]
# ## 1. Build it: an (image, target) pair, and its flip
#
# tinymask's built-in dataset draws synthetic shapes (ellipses, rotated rectangles,
# triangles, rings, crosses) over textured backgrounds, seeded, in memory, nothing to
# download. Item `i` depends only on `(seed, i)`. Every dataset in tinymask returns the same
# pair, so training and evaluation never ask which one they have. Shape letters: `H, W` the
# image, `M` the instances in it, `K` the classes.

# %%
dataset = ShapesDataset(8, image_size=128, seed=0)
image, target = dataset[0]
print("image  ", image.shape, image.dtype)
for key, value in target.items():
    print(f"{key:8s}", *((value.shape, value.dtype) if hasattr(value, "shape") else (value,)))
print("classes:", dataset.class_names)
print("labels: ", target["labels"], "->", [dataset.class_names[i] for i in target["labels"]])
print("boxes (x1, y1, x2, y2):\n", target["boxes"])

# %% [markdown]
# Labels run from 1 to K; 0 is kept for "background", which the box head will predict for
# proposals that hold no object (lesson 7). A box is `(x1, y1, x2, y2)` in pixels with
# `x2` = *last column + 1*: pixel `c` covers `[c, c + 1)`, the box covers `[x1, x2)`, so
# `x2 - x1` counts the pixels. The box is the tight box of the visible mask, and the masks
# never overlap (a shape drawn on top hides what is under it):

# %%
masks = target["masks"]  # (M, H, W) uint8 in {0, 1}
columns_set = [np.flatnonzero(mask.any(axis=0)) for mask in masks]  # columns each mask touches
print("(first column, last column + 1) of each mask:",
      [(int(columns[0]), int(columns[-1]) + 1) for columns in columns_set])
assert np.array_equal(masks_to_boxes(masks), target["boxes"])
print("pixels claimed by more than one mask:", int((masks.sum(axis=0) > 1).sum()))

# %% [markdown]
# **See it.** Four images with their ground truth drawn by `tinymask.visualize.draw_instances`:
# each instance's mask in its own colour, its box, its class.

# %%
fig, axes = plt.subplots(1, 4, figsize=(9, 2.8))
for index, ax in enumerate(axes.flat):
    image, target = dataset[index]
    draw_instances(ax, image, target["boxes"], target["labels"], target["masks"],
                   class_names=dataset.class_names)
    count = len(target["labels"])
    ax.set_title(f"image {target['image_id']}: {count} instance{'s' * (count != 1)}",
                 fontsize=9, pad=12)
fig.tight_layout()
plt.show()

# %% [markdown]
# ### The horizontal flip: course task 3.1
#
# The paper trains at one image scale (§3.1: the shorter side resized to 800 pixels, §5 of
# this lesson), and its released code (Detectron) mirrors each training image left-right
# with probability 1/2: the only augmentation of its main results (scale augmentation
# appears only in the keypoint experiments and the appendix's enhanced results).
# tinymask's training does the same (`TrainConfig.hflip`):

# %%
print("TrainConfig().hflip =", TrainConfig().hflip)

# %% [markdown]
# A flip must move the image, the masks *and* the boxes. Column `c` of an image `W` wide
# goes to column `W - 1 - c`. A box covers the columns `x1 .. x2 - 1`, which go to
# `W - x2 .. W - 1 - x1`; in our convention (`x2` = last column + 1) that is the box
# `[W - x2, W - x1)`. No `-1`: the one of `W - 1 - c` is cancelled by the `+1` of `x2`. A
# convention with inclusive `x2` would need `W - 1 - x2`; mixing the two moves every
# flipped box by one pixel.
#
# **Task 3.1**: write `horizontal_flip(image, target)` in `tinymask/data/augment.py`,
# between the task markers: return a new image and a new target (the inputs untouched)
# with the image and masks mirrored and the boxes moved as above. The solution is what
# `tinymask train` runs. Check it with `tinymask course check 3.1` or the last cell.

# %%
image, target = dataset[3]
flipped_image, flipped_target = horizontal_flip(image, target)
width = image.shape[1]
print("boxes before:", target["boxes"].tolist())
print("boxes after: ", flipped_target["boxes"].tolist())
print(f"first box: x1, x2 = {target['boxes'][0, 0]:.0f}, {target['boxes'][0, 2]:.0f} -> "
      f"W - x2, W - x1 = {width - target['boxes'][0, 2]:.0f}, {width - target['boxes'][0, 0]:.0f}")

# %% [markdown]
# **See it.** The same image before and after, with its flipped masks and boxes.

# %%
fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.4))
for ax, (shown_image, shown_target, title) in zip(axes, [(image, target, "before"),
                                                        (flipped_image, flipped_target,
                                                         "after horizontal_flip")]):
    draw_instances(ax, shown_image, shown_target["boxes"], shown_target["labels"],
                   shown_target["masks"], class_names=dataset.class_names)
    ax.set_title(title)
fig.tight_layout()
plt.show()

# %% [markdown]
# **Check it.** For every image of a dataset the flipped box must be the tight box of the
# flipped mask, exactly; the same flip with a `-1` misses it; two flips give back the
# original.

# %%
check_set = ShapesDataset(10 if SMOKE else 100, image_size=(96, 128), seed=5)
exact, with_minus_one, total = 0, 0, 0
for index in range(len(check_set)):
    image, target = check_set[index]
    flipped_image, flipped_target = horizontal_flip(image, target)
    tight = masks_to_boxes(flipped_target["masks"])
    boxes, width = target["boxes"], image.shape[1]
    minus_one = np.stack([width - 1 - boxes[:, 2], boxes[:, 1], width - 1 - boxes[:, 0],
                          boxes[:, 3]], axis=1)
    exact += int((tight == flipped_target["boxes"]).all(axis=1).sum())
    with_minus_one += int((tight == minus_one).all(axis=1).sum())
    total += len(boxes)
    twice_image, twice_target = horizontal_flip(flipped_image, flipped_target)
    assert np.array_equal(twice_image, image)
    assert np.array_equal(twice_target["boxes"], target["boxes"])
    assert np.array_equal(twice_target["masks"], target["masks"])
print(f"{total} instances: flipped box == box of the flipped mask for {exact}; "
      f"with a -1 (W - 1 - x2, W - 1 - x1) for {with_minus_one}")
assert exact == total and with_minus_one == 0

# %% [markdown]
# ## 2. The COCO format: one JSON file and a folder of images
#
# COCO, the dataset of the paper, stores annotations as one JSON file with three lists:
# `images`, `annotations` (one per object instance) and `categories`. tinymask writes any
# dataset in that format (`write_coco`; `generate_shapes` writes a train and a val split of
# the shapes) and reads any such file back (`CocoDataset`), so a model trained here can
# train on COCO itself, or on your own data. We write a few shapes to a temporary folder.

# %%
scratch = tempfile.TemporaryDirectory(prefix="tinymask-lesson3-")  # removed when we exit
folder = scratch.name
num_train = 6 if SMOKE else 40
files = generate_shapes(folder, train=num_train, val=2, seed=0)
print("written:", {split: os.path.relpath(path, folder) for split, path in files.items()})
print("the folder:", sorted(os.listdir(folder)), "  train/:",
      sorted(os.listdir(os.path.join(folder, "train")))[:3], "...")
with open(files["train"]) as stream:
    coco = json.load(stream)
print({section: len(entries) for section, entries in coco.items()})

# %% [markdown]
# One entry of each list. An image entry names its file and size; an annotation points at
# its image and category and carries a box, an area, a crowd flag and the mask
# (`segmentation`, here a compressed run-length code, §3):

# %%
print(coco["images"][0])
for key, value in coco["annotations"][0].items():
    if key == "segmentation":
        value = {"size": value["size"], "counts": value["counts"][:32] + "..."}
    print(f"  {key}: {value}")
print(coco["categories"])

# %% [markdown]
# Two conventions differ from tinymask's:
#
# - **Boxes are `[x, y, w, h]`** (top-left corner, width, height) in the file, `(x1, y1, x2,
#   y2)` in tinymask. `generate_shapes` draws the same images as `make_shapes_splits` keeps
#   in memory, so we can hold the file against them:

# %%
train_in_memory, _ = make_shapes_splits(num_train, 2, seed=0)
image, target = train_in_memory[0]
file_boxes = [entry["bbox"] for entry in coco["annotations"] if entry["image_id"] == 1]
print("in the file (x, y, w, h):     ", file_boxes)
print("in tinymask (x1, y1, x2, y2): ", target["boxes"].tolist())
assert np.array_equal(box_xyxy_to_xywh(target["boxes"]), np.array(file_boxes))

# %% [markdown]
# - **Category ids are names, not indices.** COCO's 80 categories have ids between 1 and
#   90 with gaps; the model needs labels 1..K to index its K + 1 class scores. The shapes
#   files use id = label, so to see the mapping we renumber their categories the way COCO
#   might (ids 3, 8, 17, 42, 90), write that file, and read it back:

# %%
gappy_ids = {1: 3, 2: 8, 3: 17, 4: 42, 5: 90}  # label -> category id in the file
gappy = coco_dict_from_dataset(train_in_memory)
for entry in gappy["categories"] + gappy["annotations"]:
    key = "id" if "name" in entry else "category_id"
    entry[key] = gappy_ids[entry[key]]
gappy_file = os.path.join(folder, "gappy.json")
with open(gappy_file, "w") as stream:
    json.dump(gappy, stream)
renumbered = CocoDataset(gappy_file, os.path.join(folder, "train"))
print("category id -> label:", renumbered.category_id_to_label)
print("label -> category id:", renumbered.label_to_category_id)
print("image 1 in the file: category ids", [entry["category_id"] for entry in gappy["annotations"]
                                             if entry["image_id"] == 1])
print("read back: labels", renumbered[0][1]["labels"], "  written: labels", target["labels"])

# %% [markdown]
# `CocoDataset` sorts the categories by id and numbers them 1..K; predictions are written
# back with `label_to_category_id`, so COCO's evaluation (lesson 10) sees its own ids.
#
# ## 3. Masks on disk: run-length codes and polygons (pycocotools)
#
# A mask as an array is one byte per pixel, mostly zeros. COCO stores it as a **run-length code
# (RLE)**: read the pixels *down the columns* (Fortran order), and write the lengths of the
# runs, alternately zeros and ones, starting with zeros (a first run of length 0 if the
# top-left pixel is set). Written as a slow loop, the definition we check pycocotools
# against:

# %%
def column_major_runs(mask):
    """The uncompressed RLE counts of an (H, W) binary mask: run lengths down the columns,
    zeros first."""
    counts, current, run = [], 0, 0
    for value in np.asarray(mask).flatten(order="F"):
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    counts.append(run)
    return counts


small_mask = np.zeros((4, 5), dtype=np.uint8)
small_mask[1:3, 1:4] = 1
print(small_mask)
print("runs down the columns:", column_major_runs(small_mask))

# %% [markdown]
# 5 zeros (column 0 and the top of column 1), 2 ones, 2 zeros, and so on. pycocotools
# stores the same runs compressed into a short string (each run in 5-bit pieces written as
# printable characters, later runs as differences to the run two before).
# `tinymask.data.encode_mask` calls `pycocotools.mask.encode` (which needs a Fortran-ordered
# uint8 array) and turns the bytes into a str for JSON; `decode_segmentation` reads any
# segmentation of an annotation back into an (H, W) mask.

# %%
uncompressed = {"size": list(small_mask.shape), "counts": column_major_runs(small_mask)}
compressed = encode_mask(small_mask)
print("uncompressed:", uncompressed)
print("compressed:  ", compressed)
assert mask_utils.frPyObjects(uncompressed, 4, 5)["counts"].decode() == compressed["counts"]
assert np.array_equal(decode_segmentation({"id": 1, "segmentation": compressed}, 4, 5),
                      small_mask)

# %% [markdown]
# **Check it.** On a real mask: encode, look at the size of the code, decode, compare every
# pixel; then the same round trip for every mask of the training split, and pycocotools'
# area and box of each RLE against the mask itself.

# %%
image, target = train_in_memory[0]
mask = target["masks"][0]
rle = encode_mask(mask)
print(f"a {mask.shape[0]}x{mask.shape[1]} mask ({mask.nbytes} bytes) with {int(mask.sum())} "
      f"pixels set: {len(column_major_runs(mask))} runs, {len(rle['counts'])} characters:\n"
      f"{rle['counts']}")
checked = 0
for index in range(len(train_in_memory)):
    image, target = train_in_memory[index]
    for mask, box in zip(target["masks"], target["boxes"]):
        rle = encode_mask(mask)
        decoded = decode_segmentation({"id": 1, "segmentation": rle}, *mask.shape)
        assert np.array_equal(decoded, mask)
        assert mask_utils.area(rle) == mask.sum()
        assert np.array_equal(mask_utils.toBbox(rle), box_xyxy_to_xywh(box[None])[0])
        checked += 1
print(f"{checked} masks: decode(encode(mask)) == mask, area and box agree exactly")

# %% [markdown]
# The other way COCO stores a mask is a **polygon**: a flat list `[x1, y1, x2, y2, ...]`
# of vertices in pixel coordinates (most of COCO's own annotations are polygons, drawn by
# hand). pycocotools rasterises it into a mask. A polygon that runs along pixel edges, such
# as the outline of a box `[x1, x2) x [y1, y2)`, comes back as exactly that box's pixels;
# a slanted edge has to decide pixel by pixel, so mask -> polygon -> mask is in general
# not exact, while RLE always is.

# %%
polygons = {"rectangle": [2, 1, 7, 1, 7, 5, 2, 5], "triangle": [1.0, 1.5, 9.5, 3.0, 3.5, 7.5]}
height, width = 9, 11
rasterised = {name: decode_segmentation({"id": 1, "segmentation": [polygon]}, height, width)
              for name, polygon in polygons.items()}
box_pixels = np.zeros((height, width), dtype=np.uint8)
box_pixels[1:5, 2:7] = 1  # rows [1, 5), columns [2, 7)
assert np.array_equal(rasterised["rectangle"], box_pixels)
for name, polygon in polygons.items():
    x, y = np.array(polygon[0::2]), np.array(polygon[1::2])
    shoelace = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    print(f"{name:9s} geometric area {shoelace:5.2f}, pixels set {int(rasterised[name].sum())}")

# %% [markdown]
# **See it.** Each polygon (red) over the pixels pycocotools sets. Pixel `c` is drawn
# centred on `c`, so a pixel edge at coordinate `x` sits at `x - 0.5` on screen.

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
for ax, (name, polygon) in zip(axes, polygons.items()):
    ax.imshow(rasterised[name], cmap="Greys", vmin=0, vmax=1.6)
    vertices = np.array(polygon, dtype=float).reshape(-1, 2) - 0.5
    ax.add_patch(Polygon(vertices, closed=True, fill=False, edgecolor="red", linewidth=2))
    ax.set_xticks(range(width))
    ax.set_yticks(range(height))
    ax.set_title(f"{name}: {int(rasterised[name].sum())} pixels set")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Reading a COCO file back
#
# `CocoDataset(ann_file, image_dir)` checks the file when it is built (ids unique, every
# annotation pointing at an image and a category, boxes with a positive size, every image
# file there) and decodes an item's image and masks when it is read. PNG is lossless and
# RLE is exact, so what we wrote must come back bit for bit:

# %%
from_file = CocoDataset(files["train"], os.path.join(folder, "train"))
print(from_file.class_names, from_file.category_id_to_label)
instances = 0
for index in range(len(from_file)):
    image, target = from_file[index]
    image_in_memory, target_in_memory = train_in_memory[index]
    assert np.array_equal(image, image_in_memory)
    for key in ("boxes", "labels", "masks", "image_id"):
        assert np.array_equal(target[key], target_in_memory[key]), key
    instances += len(target["labels"])
print(f"{len(from_file)} images and {instances} instances read back: identical to the "
      "shapes they were written from")

# %% [markdown]
# ## 5. What the model sees: resize, normalise, pad
#
# The model does not take the images as they are. Its first step,
# `tinymask.model.transform.ImageTransform` (torchvision's `GeneralizedRCNNTransform`),
# turns a list of images of any sizes into one array `(N, 3, H_pad, W_pad)`:
#
# 1. to float `(3, H, W)` in [0, 1], then **normalised** per channel with the ImageNet mean
#    and std (what ImageNet-pretrained backbones expect);
# 2. **resized** (bilinear) so the shorter side is `min_size`, unless the longer side
#    would then pass `max_size`; the targets follow: boxes scaled, masks resized by
#    nearest neighbour so they stay binary;
# 3. **padded** with zeros at the bottom and right into one batch whose sides are
#    multiples of 32, so that each of the backbone's five stride-2 steps divides evenly
#    (the FPN adds its upsampled maps to maps of exactly twice their size, lesson 2).
#
# The paper's setting (its §3.1: shorter side 800 pixels) is the transform's default:

# %%
paper = ImageTransform()
print("default min_size, max_size:", paper.min_size, paper.max_size)
print("mean:", paper.image_mean, "std:", paper.image_std)
for size in ((480, 640), (427, 640), (500, 1500)):
    print(f"an image of {size} (h, w) is resized to {resized_size(*size, 800, 1333)}")
small_config = MaskRCNNConfig.small()
print("the lessons' small model:", small_config.min_size, small_config.max_size)

# %% [markdown]
# For the 500x1500 image `max_size` wins: its longer side stops at 1333 and its shorter
# side ends at 444, not 800. The lessons' small model keeps the 128-pixel shapes at 128.
# To see all three steps at work, two images of different shapes go through a transform
# with `min_size=128, max_size=200`:

# %%
transform = ImageTransform(min_size=128, max_size=200)
# without the per-pixel noise (noise_std=0), so that the edges of the padding stand out
wide_image, wide_target = ShapesDataset(1, image_size=(96, 128), seed=1, noise_std=0)[0]
tall_image, tall_target = ShapesDataset(1, image_size=(128, 96), seed=2, noise_std=0)[0]
batch, resized_targets = transform([wide_image, tall_image], [wide_target, tall_target])
print("original sizes:", batch.original_sizes)
print("resized sizes: ", batch.image_sizes)
print("batch:         ", batch.images.shape, batch.images.dtype)
print("wide image boxes before:", wide_target["boxes"].tolist())
print("             and after: ", resized_targets[0]["boxes"].astype(float).round(2).tolist())

# %% [markdown]
# **See it.** The padded batch, un-normalised for display (`x * std + mean`). Padding is 0
# in normalised units, so it shows as the mean colour; the dashed line is the resized
# image inside it, which the RPN will clip its proposals to (lesson 5).

# %%
fig, axes = plt.subplots(1, 2, figsize=(7, 3.7))
for ax, padded, size, resized_target in zip(axes, batch.images, batch.image_sizes,
                                             resized_targets):
    shown = padded.transpose(1, 2, 0) * transform.image_std + transform.image_mean
    masks = np.zeros((len(resized_target["masks"]), *padded.shape[1:]), dtype=np.uint8)
    masks[:, : size[0], : size[1]] = resized_target["masks"]
    draw_instances(ax, np.clip(shown, 0, 1), resized_target["boxes"], resized_target["labels"],
                   masks, class_names=dataset.class_names)
    ax.add_patch(Rectangle((-0.5, -0.5), size[1], size[0], fill=False, edgecolor="black",
                           linestyle="--", linewidth=1.5))
    ax.set_axis_on()
    ax.set_title(f"resized {size[0]}x{size[1]}, padded to "
                 f"{padded.shape[1]}x{padded.shape[2]}", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# **Check it.** Where nothing is resized the batch must hold exactly `(x / 255 - mean) /
# std` and zeros around it; and a box scaled to the resized image and back
# (`postprocess.resize_boxes`, what inference does to every detection) must land where it
# started, up to float32 rounding.

# %%
odd_image, _ = ShapesDataset(1, image_size=(90, 120), seed=3)[0]
no_resize = ImageTransform(min_size=90, max_size=120)
batch_as_is, _ = no_resize([odd_image])
expected = (odd_image.transpose(2, 0, 1) / 255.0 - no_resize.image_mean[:, None, None]) \
    / no_resize.image_std[:, None, None]
inside, padding = batch_as_is.images[0, :, :90, :120], batch_as_is.images[0].copy()
padding[:, :90, :120] = 0
print("image size kept:", batch_as_is.image_sizes[0], "padded to", batch_as_is.images.shape[2:])
print("largest difference from (x / 255 - mean) / std:", float(np.abs(inside - expected).max()))
print("largest value in the padding:", float(np.abs(padding).max()))
assert np.allclose(inside, expected, atol=1e-5) and not padding.any()

there = resize_boxes(wide_target["boxes"], batch.original_sizes[0], batch.image_sizes[0])
back = resize_boxes(there, batch.image_sizes[0], batch.original_sizes[0])
print("largest change of a box corner after resize and back:",
      float(np.abs(back - wide_target["boxes"]).max()), "pixels")
assert np.allclose(back, wide_target["boxes"], atol=1e-4)

# %% [markdown]
# ## 6. What the paper does, and what we do
#
# The paper trains and tests on COCO: photographs resized to 800 pixels on the shorter
# side, 80 categories, AP reported over all objects and by size, *small* (area below
# 32² pixels), *medium* (up to 96²) and *large*. Our shapes are 128-pixel synthetic images
# with 5 classes, small enough to train on a CPU in minutes. How do their objects fall
# into COCO's size ranges? The area COCO uses is the mask's pixel count (the `area` field
# we wrote above). We count it over the training images of `make_shapes_splits`, at our
# size and at twice it:

# %%
def size_fractions(dataset):
    """Fractions of a dataset's instances that COCO counts small, medium, large (and the
    square roots of their areas, for the histogram)."""
    areas = np.concatenate([dataset[i][1]["masks"].sum(axis=(1, 2)) for i in range(len(dataset))])
    small = areas < 32**2
    large = areas >= 96**2
    return np.mean(small), np.mean(~small & ~large), np.mean(large), np.sqrt(areas)


num_images = 20 if SMOKE else 300
side_lengths = {}
for image_size in (128, 256):
    train_split, _ = make_shapes_splits(num_images, 0, seed=0, image_size=image_size)
    small, medium, large, side_lengths[image_size] = size_fractions(train_split)
    print(f"{image_size}-px shapes, {len(side_lengths[image_size])} instances in {num_images} "
          f"images: small {small:.1%}, medium {medium:.1%}, large {large:.1%}")

# %% [markdown]
# **See it.** The square root of each instance's area, with COCO's two thresholds.

# %%
fig, ax = plt.subplots(figsize=(7, 3.2))
bins = np.linspace(0, 150, 31)
for image_size, sides in side_lengths.items():
    ax.hist(sides, bins=bins, alpha=0.6, label=f"{image_size}-px shapes")
for threshold, name in ((32, "small | medium"), (96, "medium | large")):
    ax.axvline(threshold, color="black", linestyle="--")
    ax.text(threshold + 2, ax.get_ylim()[1] * 0.9, name, fontsize=8)
ax.set_xlabel("sqrt(mask area) in pixels")
ax.set_ylabel("instances")
ax.legend()
plt.show()

# %% [markdown]
# At 128 pixels most of our instances are *small* by COCO's ranges and none is *large*:
# COCO's AP for large objects will read -1 ("no ground truth in that range") in lesson 10,
# not a failure of the model. At 256 pixels a few large ones appear. The shapes' sizes are
# log-uniform on purpose (as many between 5 and 10 pixels as between 50 and 100), so the
# small objects that detectors find hard are common.
#
# ## Summary
#
# - A dataset item is `(image, target)`: image `(H, W, 3)` uint8, boxes `(M, 4)` float32
#   `(x1, y1, x2, y2)` with `x2` = last column + 1, labels `(M,)` in 1..K, masks
#   `(M, H, W)` uint8.
# - COCO files hold `images`, `annotations`, `categories`; boxes are `[x, y, w, h]`;
#   category ids are mapped to labels 1..K and back; masks are RLE (exact, down the
#   columns, zeros first) or polygons (rasterised by pycocotools).
# - The model resizes (shorter side `min_size`, longer at most `max_size`), normalises with
#   the ImageNet mean and std and pads the batch to multiples of 32; boxes are scaled back
#   to the original image.
# - A horizontal flip maps the box `[x1, x2)` to `[W - x2, W - x1)`.
#
# ## Exercises
#
# 1. **Task 3.1**, `horizontal_flip` in `tinymask/data/augment.py` (§1). Check it with
#    `tinymask course check 3.1` or the last cell.
# 2. The area of a mask from its uncompressed RLE counts alone, without decoding: write
#    `rle_area(counts)`. The check compares it with pycocotools' `area` on every mask of
#    the training split.
# 3. Convert a list of COCO boxes `[x, y, w, h]` to tinymask's `(x1, y1, x2, y2)` (an
#    `(N, 4)` array) without `tinymask.boxes`. The check compares your boxes for the JSON
#    file of §2 with the tight boxes of the masks decoded from the same file.

# %%
def rle_area(counts):
    """Pixels set in a mask, from its uncompressed RLE counts (zeros first)."""
    return sum(counts[1::2])  # your answer


def xywh_to_xyxy(coco_boxes):
    """[[x, y, w, h], ...] -> (N, 4) array of (x1, y1, x2, y2)."""
    boxes = np.array(coco_boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)  # your answer


# %%
check_tasks("3.1")

# exercise 2: every mask of the training split, against pycocotools' own area
for index in range(len(train_in_memory)):
    for mask in train_in_memory[index][1]["masks"]:
        counts = column_major_runs(mask)
        expected_area = mask_utils.area(mask_utils.frPyObjects(
            {"size": list(mask.shape), "counts": counts}, *mask.shape))
        assert rle_area(counts) == expected_area, (rle_area(counts), expected_area)

# exercise 3: the file's boxes, converted, against the masks decoded from the same file
for entry in coco["images"]:
    annotations = [a for a in coco["annotations"] if a["image_id"] == entry["id"]]
    decoded = np.stack([decode_segmentation(a, entry["height"], entry["width"])
                        for a in annotations])
    assert np.array_equal(xywh_to_xyxy([a["bbox"] for a in annotations]),
                          masks_to_boxes(decoded)), entry["id"]
print("exercise checks passed")
