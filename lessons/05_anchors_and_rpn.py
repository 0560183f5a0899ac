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
# # Lesson 5 — Anchors and the Region Proposal Network
#
# **Goal.** The first stage of Mask R-CNN proposes where objects might be. At every
# position of every pyramid level it considers a few fixed reference boxes, *anchors*,
# scores each ("object or not?") and predicts how to move it onto the object (Faster R-CNN
# §3.1). Training needs a target for every anchor: which object it should become, or
# "background", or "don't care". We build the four pieces that decide this, each a course
# task in the code the model runs: the anchors (task 5.1), the box coding that turns
# "move this anchor onto that object" into four numbers (task 5.2), the matcher that labels
# anchors by IoU (task 5.3) and the sampler that picks a balanced batch of them (task 5.4).
# Then we run the RPN of an untrained model on one image and measure what its proposals
# cover before any training.
#
# Code: `tinymask/anchors.py`, `tinymask/box_coder.py`, `tinymask/matching.py`,
# `tinymask/model/rpn.py`.

# %%
import copy

import matplotlib.pyplot as plt
import numpy as np

import tinymask as tm
from tinymask.anchors import AnchorGenerator, cell_anchors
from tinymask.box_coder import BoxCoder
from tinymask.boxes import box_iou
from tinymask.config import MaskRCNNConfig
from tinymask.course import check_tasks
from tinymask.data import ShapesDataset
from tinymask.functional.activation import stable_sigmoid
from tinymask.lesson_utils import smoke_mode, stop_at_unsolved_tasks
from tinymask.matching import BalancedPositiveNegativeSampler, Matcher
from tinymask.model.mask_rcnn import MaskRCNN
from tinymask.tensor import Tensor
from tinymask.visualize.boxes import draw_boxes

stop_at_unsolved_tasks()
SMOKE = smoke_mode()
plt.rcParams["figure.dpi"] = 72  # pictures of noisy images: small PNGs keep the notebook light


def show_image(ax, image):
    """Draw ``image`` (H, W, 3) uint8 in 8 levels per colour instead of 256: the shapes stay
    clear, and most of the per-pixel noise, which would make the pictures heavy, goes."""
    ax.imshow(image // 32 * 32 + 16, interpolation="nearest")

# %% [markdown]
# ## 1. Build it
#
# ### Anchors (task 5.1)
#
# An anchor is described by a *size* (the square root of its area, in pixels) and an
# *aspect ratio* = height / width, here (0.5, 1, 2): wide, square, tall. For ratio r the
# height is `size * sqrt(r)` and the width `size / sqrt(r)`, so the area stays `size**2`.
# `cell_anchors` makes the A anchors of one level centred on (0, 0), as `(A, 4)` rows
# `(x1, y1, x2, y2)` = `(-w/2, -h/2, w/2, h/2)`, rounded to integers as torchvision does.
# Ratio-major order: all sizes of the first ratio, then the next ratio.
#
# Size 32, ratio 0.5, by hand: width 32 / sqrt(0.5) = 45.25, height 32 * sqrt(0.5) = 22.63,
# so the corners are +-22.63 and +-11.31, rounded:

# %%
ratios = (0.5, 1.0, 2.0)
width, height = 32 / np.sqrt(0.5), 32 * np.sqrt(0.5)
print(f"by hand: width {width:.2f}, height {height:.2f} ->",
      np.round([-width / 2, -height / 2, width / 2, height / 2]))
print("cell_anchors((32,), (0.5, 1, 2)):")
print(cell_anchors((32,), ratios))

# %% [markdown]
# `grid_anchors` places a copy of the cell anchors at every cell `(i, j)` of a level with
# stride s, centred at `(x, y) = (j * s, i * s)`: the cell's top-left corner, with no
# half-stride offset (torchvision's convention). The order is `[H, W, A]`: row by row, cell
# by cell, the A anchors of a cell together; levels one after another. The RPN head's
# outputs are permuted into the same order, so anchor r and prediction r belong together.
#
# With FPN every level P2..P6 gets one size matched to its stride (FPN §4.1). The paper's
# sizes are 32..512 on 800-px images; the lessons' small model scales them down for its
# 128-px images. `AnchorGenerator` holds this configuration:

# %%
config = MaskRCNNConfig.small()
generator = AnchorGenerator(tuple((size,) for size in config.anchor_sizes), config.aspect_ratios,
                            (4, 8, 16, 32, 64))
level_shapes = [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]  # P2..P6 of a 128x128 image
anchors = generator(level_shapes)  # (R, 4)
print("sizes per level:", config.anchor_sizes, " strides:", generator.strides)
print("anchors:", anchors.shape, "=", " + ".join(f"{h}*{w}*3" for h, w in level_shapes))
print("the first two P2 cells, (0, 0) and (0, 1), 4 px apart:")
print(anchors[:6])

# %% [markdown]
# Left: the 15 anchors centred on pixel (64, 64), the same point on every level (it is a
# cell corner on all five): three shapes per level, and sizes doubling from P2 to P6.
# Right: where the centres of the P4 anchors sit, every 16 pixels from (0, 0).

# %%
dataset = ShapesDataset(8 if SMOKE else 60, image_size=128, seed=0)
image, target = dataset[0]
level_colours = ["tab:red", "tab:orange", "gold", "tab:green", "tab:blue"]
starts = np.cumsum([0] + [h * w * 3 for h, w in level_shapes])
fig, axes = plt.subplots(1, 2, figsize=(10, 5.2))
show_image(axes[0], image)
for level, ((_, cells_across), stride) in enumerate(zip(level_shapes, generator.strides)):
    i = j = 64 // stride
    first = starts[level] + (i * cells_across + j) * 3
    draw_boxes(axes[0], anchors[first : first + 3], level_colours[level], linewidth=1.5)
    axes[0].plot([], [], color=level_colours[level],
                 label=f"P{level + 2}: size {config.anchor_sizes[level]}, stride {stride}")
axes[0].legend(loc="lower left", fontsize=7, framealpha=0.9)
axes[0].set_title("the anchors of one position, P2..P6", fontsize=10)
p4 = anchors[starts[2] : starts[3]]
centres = (p4[:, :2] + p4[:, 2:]) / 2
show_image(axes[1], image)
axes[1].scatter(centres[:, 0], centres[:, 1], s=12, color="white", edgecolor="black")
axes[1].set_title("P4 anchor centres: (16 j, 16 i)", fontsize=10)
for ax in axes:
    ax.set_xlim(-10, 138)
    ax.set_ylim(138, -10)
plt.show()

# %% [markdown]
# ### Box coding (task 5.2)
#
# The RPN does not predict corners. For each anchor it predicts four *deltas*: how far to
# move the centre, in units of the anchor's width and height, and the log of how much to
# stretch it (Faster R-CNN Eqn. 2). With the anchor `a` and the box `g` it should become:
#
# $$d_x = \frac{g_{cx} - a_{cx}}{a_w},\quad d_y = \frac{g_{cy} - a_{cy}}{a_h},\quad
#   d_w = \log\frac{g_w}{a_w},\quad d_h = \log\frac{g_h}{a_h}$$
#
# Widths are `x2 - x1` (no +1) and centres `x1 + w / 2`. The deltas are small, of about
# the same scale for a 10-pixel box and a 500-pixel box, which is what a regression loss
# wants. `BoxCoder.encode(boxes, anchors)` computes them (the box head's coder multiplies
# them by weights (10, 10, 5, 5), lesson 7; the RPN's weights are 1); `decode(deltas,
# anchors)` inverts it, clamping `d_w, d_h` at log(1000 / 16) so that an untrained head
# cannot blow a box up. One anchor, one object, by hand:

# %%
coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
anchor = np.array([[36.0, 36.0, 44.0, 44.0]])  # 8 x 8, centred on (40, 40)
box = np.array([[30.0, 38.0, 50.0, 48.0]])  # 20 x 10, centred on (40, 43)
by_hand = [(40 - 40) / 8, (43 - 40) / 8, np.log(20 / 8), np.log(10 / 8)]
print("by hand:        ", np.round(by_hand, 4))
print("coder.encode:   ", np.round(coder.encode(box, anchor)[0], 4))
print("decoded back:   ", coder.decode(coder.encode(box, anchor), anchor)[0])

# %% [markdown]
# ### Labels: the matcher (task 5.3)
#
# Which anchors should say "object"? The matcher compares every anchor with every
# ground-truth box by IoU (the `(M, N)` matrix of lesson 4, objects by anchors) and labels
# each anchor by its best IoU (Faster R-CNN §3.1.2):
#
# - `>= 0.7`: foreground, matched to that object (`matched_idxs[n]` = its index);
# - `< 0.3`: background (`Matcher.BELOW_LOW_THRESHOLD`, -1);
# - in between: ignored by the loss (`Matcher.BETWEEN_THRESHOLDS`, -2): neither clearly
#   an object nor clearly not.
#
# Then the *low-quality matches*: a small or thin object may have no anchor at 0.7. So
# for each object, every anchor whose IoU equals that object's best IoU is made foreground
# too, ties included. Such an anchor is matched to its *own* best object, which is the
# tied one unless the anchor overlaps another object even more. Two objects and five
# anchors:

# %%
iou_example = np.array([[0.85, 0.50, 0.10, 0.00, 0.20],    # object 0
                        [0.00, 0.40, 0.55, 0.55, 0.25]])   # object 1: best 0.55, a tie
print("without low-quality matches:", Matcher(0.7, 0.3, False)(iou_example))
print("with low-quality matches:   ", Matcher(0.7, 0.3, True)(iou_example))

# %% [markdown]
# Anchor 0 passes 0.7; anchor 4 is background; anchors 1-3 land between the thresholds.
# Object 1 has no anchor at 0.7, but anchors 2 and 3 tie for its best IoU, 0.55, and both
# come back as its matches. The RPN uses `Matcher(0.7, 0.3, allow_low_quality_matches=True)`.
#
# ### A balanced batch: the sampler (task 5.4)
#
# An image has thousands of anchors and only a handful of foreground ones (§2 counts them
# for one image). A loss over all of them would learn mostly "background". So each image
# contributes a fixed batch (256 in the paper; §2 uses the small model's number) with at
# most half foreground: all the foreground anchors if there are fewer than half, a random
# choice of them otherwise, and background anchors picked at random to fill the rest.
# Ignored anchors are never picked. The random choices come from a
# `numpy.random.Generator` that the caller passes, so one seed fixes them. Labels `1` /
# `0` / `-1` (foreground, background, ignore):

# %%
sampler = BalancedPositiveNegativeSampler(256, 0.5)
rng = np.random.default_rng(0)
for num_positive in (10, 300):
    labels = np.zeros(4000, dtype=np.int64)
    labels[:num_positive] = 1
    labels[num_positive : num_positive + 500] = -1  # ignored
    (positive,), (negative,) = sampler([labels], rng)
    assert not (positive & negative).any() and (labels[positive | negative] >= 0).all()
    print(f"{num_positive:3d} foreground, 500 ignored, {4000 - num_positive - 500} background "
          f"-> sampled {positive.sum()} foreground + {negative.sum()} background")

# %% [markdown]
# ## 2. Check it: the labels of one image
#
# The same four pieces on a real image: all the anchors of the small model, matched
# against the image's objects, then sampled. Every object's best anchor must be foreground
# (that is what the low-quality matches guarantee), and the deltas of each foreground
# anchor must decode back onto its object.

# %%
iou = box_iou(target["boxes"], anchors)  # (M, R)
matched = Matcher(0.7, 0.3, allow_low_quality_matches=True)(iou)  # (R,)
labels = np.where(matched >= 0, 1, np.where(matched == Matcher.BETWEEN_THRESHOLDS, -1, 0))
best_iou = iou.max(axis=0)  # each anchor's best IoU with any object
low_quality = (labels == 1) & (best_iou < 0.7)
print(f"{len(target['boxes'])} objects, {len(anchors)} anchors: {(labels == 1).sum()} foreground "
      f"({low_quality.sum()} of them low-quality matches, IoU < 0.7), {(labels == -1).sum()} "
      f"ignored, {(labels == 0).sum()} background")
for m, gt_box in enumerate(target["boxes"]):
    print(f"  object {m} {gt_box.astype(int).tolist()}: best anchor IoU {iou[m].max():.2f}, "
          f"foreground anchors matched to it: {(matched == m).sum()}")
assert all(labels[np.flatnonzero(iou[m] == iou[m].max())].min() == 1 for m in range(len(iou)))
best_per_object = np.concatenate([box_iou(dataset[i][1]["boxes"], anchors).max(axis=1)
                                  for i in range(len(dataset))])
covered = (best_per_object >= 0.7).sum()
print(f"over all {len(dataset)} images: {covered} of {len(best_per_object)} objects have an "
      f"anchor at IoU >= 0.7; the other {len(best_per_object) - covered} get foreground "
      "anchors only through the low-quality matches")

foreground = np.flatnonzero(labels == 1)
deltas = coder.encode(target["boxes"][matched[foreground]], anchors[foreground])
back = coder.decode(deltas, anchors[foreground])
print("largest |decode(encode(box)) - box| over the foreground anchors:",
      np.abs(back - target["boxes"][matched[foreground]]).max())

sampler = BalancedPositiveNegativeSampler(config.rpn_batch_size_per_image,
                                          config.rpn_positive_fraction)
(sampled_positive,), (sampled_negative,) = sampler([labels], np.random.default_rng(0))
print(f"sampled for the loss ({config.rpn_batch_size_per_image} per image, at most "
      f"{config.rpn_positive_fraction:.0%} foreground): {sampled_positive.sum()} foreground, "
      f"{sampled_negative.sum()} background")

# %% [markdown]
# Read the line "over all ... images": the anchors come in five sizes and three shapes
# only, and every object that none of them overlaps at 0.7 would, without the low-quality
# matches, have no foreground anchor at all: the RPN would learn to call it background.
#
# The picture of those labels. Left: the foreground anchors (green when IoU >= 0.7,
# yellow for the low-quality matches) on the objects' boxes (red, dashed). Middle: the
# ignored anchors, which overlap an object partly. Right: the batch the loss sees, its
# foreground anchors and the background anchors drawn at random from the whole image.

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 5.6))
panels = [
    (axes[0], [(anchors[(labels == 1) & ~low_quality], "lime", 1.5),
               (anchors[low_quality], "yellow", 1.5)],
     f"foreground: {(labels == 1).sum()} anchors\n(IoU >= 0.7 green, low-quality yellow)"),
    (axes[1], [(anchors[labels == -1], "orange", 0.6)],
     f"ignored: {(labels == -1).sum()} anchors\n(0.3 <= IoU < 0.7)"),
    (axes[2], [(anchors[sampled_negative], "deepskyblue", 0.6),
               (anchors[sampled_positive], "lime", 1.5)],
     f"the sampled batch: {sampled_positive.sum()} foreground,\n"
     f"{sampled_negative.sum()} background (blue)"),
]
for ax, layers, title in panels:
    show_image(ax, image)
    for boxes, colour, line_width in layers:
        draw_boxes(ax, boxes, colour, linewidth=line_width, alpha=0.8)
    draw_boxes(ax, target["boxes"], "red", linewidth=2, linestyle="--")
    ax.set_xlim(-40, 168)
    ax.set_ylim(168, -40)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 3. See it: the RPN of an untrained model
#
# The RPN's head is small: a 3x3 convolution on each FPN level, then two 1x1 convolutions,
# one giving A objectness logits per cell and one 4A deltas, the same weights on every
# level, all initialised with a standard deviation of 0.01 (Faster R-CNN §3.1.3). The RPN
# then (`RPN.propose` in `tinymask/model/rpn.py`):
#
# 1. keeps the best-scored anchors of each level (`rpn_pre_nms_top_n_test` at test time),
# 2. decodes their deltas into boxes and clips them to the image,
# 3. runs NMS at IoU 0.7 within each level (`batched_nms`, lesson 4),
# 4. keeps the best boxes over all levels (`rpn_post_nms_top_n_test`, 1000 in the paper):
#    the *proposals*. (§4 prints these settings, the defaults beside the small model's.)
#
# Training the RPN needs the rest of the model (its losses are trained together with the
# box and mask heads, lessons 7-9), so here the model is *untrained*: random weights. We
# run only its first stage: the image transform, the backbone with FPN (lessons 1-2) and
# the RPN. In training mode the RPN labels and samples its anchors exactly as §2 did:

# %%
tm.manual_seed(0)
model = MaskRCNN(MaskRCNNConfig.small(num_classes=dataset.num_classes))


def first_stage(rpn, image, target=None):
    """Run the model up to its proposals: transform, backbone + FPN, then ``rpn`` (in
    training mode with ``target``, else in inference mode). Returns the RPN's
    (proposals, losses, details) for the one image."""
    model.train(target is not None)
    rpn.train(target is not None)
    with tm.no_grad():
        batch, targets = model.transform([image], None if target is None else [target])
        features = model.backbone(Tensor(batch.images))  # {"p2": (1, F, 32, 32), ...}
        return rpn([features[name] for name in model.rpn_features], batch.image_sizes,
                   None if target is None else [t["boxes"] for t in targets],
                   np.random.default_rng(0), padded_size=batch.images.shape[-2:])


_, losses, details = first_stage(model.rpn, image, target)
assert np.array_equal(details["labels"][0], labels)
print("the RPN's labels are the ones computed in §2:",
      np.array_equal(details["labels"][0], labels))
print(f"untrained losses: objectness {losses['loss_objectness'].item():.3f} (a coin flip is "
      f"log 2 = {np.log(2):.3f}), box regression {losses['loss_rpn_box_reg'].item():.3f}")

# %% [markdown]
# Now inference. To see what NMS does, run the same RPN twice more: a copy of it (sharing
# its weights and settings) that keeps every box after NMS, and one that also switches NMS
# off by setting its threshold to 1.0 (an IoU is never greater than 1, so nothing is
# suppressed).

# %%
proposals, _, details = first_stage(model.rpn, image)
keep_all = copy.copy(model.rpn)  # the same head and settings, but no cut after NMS
keep_all.post_nms_top_n = (10**9, 10**9)
without_nms = copy.copy(keep_all)  # ... and no NMS either
without_nms.nms_thresh = 1.0
proposals = proposals[0]
after_nms = first_stage(keep_all, image)[0][0]
candidates = first_stage(without_nms, image)[0][0]
assert np.array_equal(after_nms[: len(proposals)], proposals)  # the cut keeps the best
probabilities = stable_sigmoid(details["objectness_logits"][0])
print(f"objectness of the {probabilities.size} anchors, untrained: between "
      f"{probabilities.min():.3f} and {probabilities.max():.3f}")
print(f"{len(candidates)} boxes before NMS (the best {config.rpn_pre_nms_top_n_test} per level, "
      f"decoded and clipped); NMS at {config.rpn_nms_thresh} removes "
      f"{len(candidates) - len(after_nms)}; the cut to the best {config.rpn_post_nms_top_n_test} "
      f"leaves {len(proposals)} proposals")
top_iou = box_iou(candidates[:100], candidates[:100])
np.fill_diagonal(top_iou, 0)
print(f"largest IoU between two of the 100 best boxes before NMS: {top_iou.max():.2f}; between "
      f"two square P2 anchors one cell apart: {box_iou(anchors[1:2], anchors[4:5])[0, 0]:.2f}")


def nearest_anchor_size(boxes):
    """The anchor size (8, 16, ... on P2, P3, ...) nearest to each box's side, sqrt(area)."""
    sides = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    sizes = np.array(config.anchor_sizes)
    return sizes[np.abs(np.log2(sides[:, None] / sizes[None, :])).argmin(axis=1)]


for name, boxes in (("before NMS", candidates), ("proposals ", proposals)):
    counts = {size: int((nearest_anchor_size(boxes) == size).sum()) for size in config.anchor_sizes}
    print(f"{name}: boxes by the anchor size nearest to their side:", counts)
gt_widths, gt_heights = (target["boxes"][:, 2:] - target["boxes"][:, :2]).T
print("the objects' sides:", np.round(np.sqrt(gt_widths * gt_heights)))

# %%
removed = np.array([not (row == after_nms).all(axis=1).any() for row in candidates])
fig, axes = plt.subplots(1, 2, figsize=(10, 5.6))
for ax in axes:
    show_image(ax, image)
    draw_boxes(ax, target["boxes"], "white", linewidth=2, linestyle="--")
    ax.set_xticks([])
    ax.set_yticks([])
for boxes, ax, sizes in ((candidates, axes[0], nearest_anchor_size(candidates)),
                         (proposals, axes[1], nearest_anchor_size(proposals))):
    for level, size in enumerate(config.anchor_sizes):
        chosen = boxes[sizes == size]
        if ax is axes[0]:  # hundreds of boxes: their centres
            ax.scatter((chosen[:, 0] + chosen[:, 2]) / 2, (chosen[:, 1] + chosen[:, 3]) / 2,
                       s=7, color=level_colours[level], label=f"side near {size} (P{level + 2})")
        else:
            draw_boxes(ax, chosen, level_colours[level], linewidth=1)
draw_boxes(axes[0], candidates[removed], "black", linewidth=2.5)
axes[0].plot([], [], color="black", lw=2.5, label=f"removed by NMS ({removed.sum()})")
axes[0].legend(loc="lower left", fontsize=7, framealpha=0.9)
axes[0].set_title(f"untrained RPN, before NMS: the centres of all {len(candidates)} boxes",
                  fontsize=10)
axes[1].set_title(f"after NMS and the cut: the {len(proposals)} proposals", fontsize=10)
for ax in axes:
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
fig.tight_layout()
plt.show()

# %% [markdown]
# Read the printed lines with the picture. The head's small initial weights give every
# anchor a logit near 0, an objectness near 1/2, so which anchors come first is an
# accident of the random weights. The level with by far the most anchors, P2, holds most
# of the highest of these nearly equal scores: the proposals are boxes of about the P2
# anchors' size (the counts printed above), wherever the objects (white) are and whatever
# their size. The deltas barely move anything either: the centres on the left still sit
# on the anchors' grid.
#
# NMS removes a box only when a better-scored box of its level overlaps it by more than
# 0.7: a near-duplicate. Boxes that stay where their anchors are overlap their neighbours
# less than that (the IoUs printed above), so on the untrained RPN NMS removes almost
# nothing and the cut to the best boxes does the work. NMS has work to do once the deltas
# move several anchors onto the same object and make their boxes near-duplicates: that
# takes a trained RPN. Lesson 11 shows a trained RPN's proposals before and after NMS.
#
# What matters downstream is *recall*: the fraction of objects that some proposal covers
# at IoU >= 0.5; an object missed here is missed for good, since the second stage only
# looks inside the proposals. Over held-out images, for the top k proposals, and for the
# anchors themselves (where a perfect objectness ranking, without moving any anchor,
# could reach):

# %%
def recall(boxes_per_image, targets, threshold=0.5):
    """The fraction of all objects that some box of their image overlaps at IoU >= threshold."""
    found = total = 0
    for boxes, target in zip(boxes_per_image, targets):
        if len(target["boxes"]) and len(boxes):
            found += int((box_iou(target["boxes"], boxes).max(axis=1) >= threshold).sum())
        total += len(target["boxes"])
    return found / max(total, 1)


held_out = ShapesDataset(4 if SMOKE else 30, image_size=128, seed=99)
items = [held_out[i] for i in range(len(held_out))]
held_out_targets = [item_target for _, item_target in items]
held_out_proposals = [first_stage(model.rpn, item_image)[0][0] for item_image, _ in items]
num_objects = sum(len(target["boxes"]) for target in held_out_targets)
print(f"recall at IoU 0.5 of {num_objects} objects in {len(items)} held-out images:")
for k in (10, 50, config.rpn_post_nms_top_n_test):
    untrained = recall([boxes[:k] for boxes in held_out_proposals], held_out_targets)
    print(f"  untrained RPN, top {k:3d} proposals: {untrained:.2f}")
anchor_recall = recall([anchors] * len(items), held_out_targets)
print(f"  all {len(anchors)} anchors, unmoved:    {anchor_recall:.2f}")

# %% [markdown]
# The last line is the ceiling of the anchors as they are: an RPN whose objectness put
# the right anchors first, without moving any, would reach it. Compare the untrained
# lines with it, k by k: the untrained proposals are the small boxes seen above, in an
# order that owes nothing to the objects. Training has to teach the RPN both halves: an
# objectness that ranks the anchors on objects first, and deltas that move them onto the
# objects. It trains together with the rest of the model (lessons 7-9); lesson 11 opens a
# trained model and measures its proposals the same way.
#
# ## 4. What the paper uses
#
# Mask R-CNN keeps Faster R-CNN's RPN (Mask R-CNN §3.1): with FPN, anchors of 5 sizes (one
# per level) and 3 ratios; at test time 1000 proposals per image with FPN (300 with C4).
# From Faster R-CNN: 256 anchors sampled per image with at most half foreground (§3.1.3),
# NMS at IoU 0.7 on the proposals (§3.3), and the loss, binary cross-entropy on the
# sampled anchors' objectness plus smooth L1 on the foreground anchors' deltas (Eqn. 1).
# tinymask's defaults, which follow the paper, beside the small model's:

# %%
default, small = MaskRCNNConfig(), MaskRCNNConfig.small()
for field in ("anchor_sizes", "aspect_ratios", "rpn_fg_iou_thresh", "rpn_bg_iou_thresh",
              "rpn_batch_size_per_image", "rpn_positive_fraction", "rpn_pre_nms_top_n_test",
              "rpn_nms_thresh", "rpn_post_nms_top_n_test"):
    print(f"{field:26s} default {str(getattr(default, field)):26s} small {getattr(small, field)}")
print("anchors per cell: FPN", AnchorGenerator.fpn().num_anchors_per_location(),
      " C4", AnchorGenerator.c4().num_anchors_per_location())

# %% [markdown]
# ## Summary
#
# - Anchors: one size per FPN level, ratios h/w in (0.5, 1, 2), corners rounded to
#   integers, centred on the cells' top-left corners, in `[H, W, A]` order.
# - Box coding: centre shifts in units of the anchor's size and log size ratios; decoding
#   inverts it, with `d_w, d_h` clamped.
# - Labels by IoU: >= 0.7 foreground, < 0.3 background, in between ignored; every object's
#   best anchors (ties included) are foreground too.
# - A balanced batch per image (256, at most half foreground) keeps background from
#   swamping the loss.
# - The RPN keeps the best anchors per level, decodes, clips, runs NMS at 0.7 per level and
#   keeps the best over all levels. Untrained, its proposals are barely-moved anchors in an
#   arbitrary order.
#
# ## Exercises
#
# 1. **Task 5.1**, the anchors of one level: write `cell_anchors` and the placing loop of
#    `grid_anchors` in `tinymask/anchors.py` between the task markers (§1, "Anchors"). The
#    solution is what the model runs: the RPN lays its anchors with it. Check it with
#    `tinymask course check 5.1` or the last cell.
# 2. **Task 5.2**, box encode and decode: `BoxCoder.encode` and `BoxCoder.decode` in
#    `tinymask/box_coder.py` (§1, "Box coding"); decode takes K groups of four deltas per
#    row (K = 1 for the RPN, one per class for the box head). Check: `tinymask course check 5.2`.
# 3. **Task 5.3**, the matcher with low-quality matches: `Matcher.__call__` and
#    `Matcher.set_low_quality_matches_` in `tinymask/matching.py` (§1, "Labels").
#    Check: `tinymask course check 5.3`.
# 4. **Task 5.4**, the balanced sampler: `BalancedPositiveNegativeSampler.__call__` in
#    `tinymask/matching.py` (§1, "A balanced batch"). Check: `tinymask course check 5.4`.
# 5. Two objects and six anchors, with the IoUs below. What `matched_idxs` does
#    `Matcher(0.7, 0.3, allow_low_quality_matches=True)` return? Work it out by hand
#    (careful with anchor 1, and with the IoUs that sit exactly on a threshold), write
#    it below, and the check compares.
#
#    | | anchor 0 | 1 | 2 | 3 | 4 | 5 |
#    |---|---|---|---|---|---|---|
#    | object 0 | 0.20 | 0.62 | 0.10 | 0.00 | 0.62 | 0.05 |
#    | object 1 | 0.00 | 0.65 | 0.72 | 0.30 | 0.10 | 0.29 |
#
# 6. The anchor `(8, 8, 24, 40)` should become the box `(12, 4, 44, 36)`. What are the
#    RPN's regression targets `(dx, dy, dw, dh)`? Work them out with the formulas of §1.

# %%
exercise_iou = np.array([[0.20, 0.62, 0.10, 0.00, 0.62, 0.05],
                         [0.00, 0.65, 0.72, 0.30, 0.10, 0.29]])
matched_by_hand = [-1, 1, 1, -2, 0, -1]  # your answer
assert Matcher(0.7, 0.3, True)(exercise_iou).tolist() == matched_by_hand, \
    "not what the matcher returns"
print("exercise 5: correct")

# %%
deltas_by_hand = [0.75, -0.125, np.log(2), 0.0]  # your answer
assert np.allclose(coder.encode(np.array([[12.0, 4.0, 44.0, 36.0]]),
                                np.array([[8.0, 8.0, 24.0, 40.0]]))[0], deltas_by_hand), \
    "not the deltas that move this anchor onto this box"
print("exercise 6: correct")

# %%
check_tasks("5.1", "5.2", "5.3", "5.4")
print("exercise checks passed")
