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
# scores each ("object or not?") and predicts how to move it onto the object. We build
# the anchors, label them against the ground truth, and watch a small RPN learn.
#
# Code: `tinymask/anchors.py`, `tinymask/matching.py`, `tinymask/box_coder.py`,
# `tinymask/model/rpn.py`.

# %%
import matplotlib.pyplot as plt
import numpy as np

import tinymask as tm
from tinymask.anchors import AnchorGenerator, cell_anchors
from tinymask.box_coder import BoxCoder
from tinymask.boxes import box_iou
from tinymask.config import MaskRCNNConfig
from tinymask.data import ShapesDataset
from tinymask.lesson_utils import smoke_mode
from tinymask.matching import BalancedPositiveNegativeSampler, Matcher
from tinymask.model.mask_rcnn import MaskRCNN
from tinymask.optim import SGD

SMOKE = smoke_mode()

# %% [markdown]
# ## 1. Build it: anchors
#
# One size per FPN level (32 on P2 ... 512 on P6 at full scale) and three shapes, aspect
# ratio = height / width in (0.5, 1, 2). Each is centred on (0, 0) and rounded to
# integers, as torchvision does: size 32, ratio 0.5 gives a wide box `[-23, -11, 23, 11]`.

# %%
print(cell_anchors((32,), (0.5, 1.0, 2.0)))

# %% [markdown]
# The grid puts a copy at every feature cell `(i, j)`, centred at `(j * stride, i * stride)`,
# in the order `[H, W, A]`, levels one after another. The lessons' 128-px images use sizes
# 8..128:

# %%
config = MaskRCNNConfig.small()
generator = AnchorGenerator(tuple((s,) for s in config.anchor_sizes), config.aspect_ratios,
                            (4, 8, 16, 32, 64))
level_shapes = [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]  # P2..P6 of a 128x128 image
anchors = generator(level_shapes)
print("anchors:", anchors.shape, "=", " + ".join(f"{h}*{w}*3" for h, w in level_shapes))

# %% [markdown]
# ## 2. Check it: which anchors are objects?
#
# The matcher labels each anchor by its best IoU with a ground-truth box: >= 0.7
# foreground, < 0.3 background, in between ignored; and every anchor that ties a ground
# truth's best IoU is foreground too (a thin object may have no anchor at 0.7).

# %%
dataset = ShapesDataset(8 if SMOKE else 60, image_size=128, seed=0)
image, target = dataset[0]
iou = box_iou(target["boxes"], anchors)  # (M, R)
matched = Matcher(0.7, 0.3, allow_low_quality_matches=True)(iou)
labels = np.where(matched >= 0, 1, np.where(matched == Matcher.BETWEEN_THRESHOLDS, -1, 0))
print(f"{(labels == 1).sum()} foreground, {(labels == -1).sum()} ignored, "
      f"{(labels == 0).sum()} background anchors")
positive, negative = BalancedPositiveNegativeSampler(256, 0.5)([labels],
                                                               np.random.default_rng(0))
print(f"sampled for the loss: {positive[0].sum()} positive, {negative[0].sum()} negative")

# %%
def draw_boxes(ax, boxes, color, width=1.0, style="-"):
    for x1, y1, x2, y2 in np.asarray(boxes):
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color=color,
                                   lw=width, ls=style))


fig, axes = plt.subplots(1, 2, figsize=(10, 5))
axes[0].imshow(image)
draw_boxes(axes[0], anchors[(16 * 32 + 16) * 3 : (16 * 32 + 16) * 3 + 3], "yellow", 2)
draw_boxes(axes[0], anchors[32 * 32 * 3 + (8 * 16 + 8) * 3 : 32 * 32 * 3 + (8 * 16 + 8) * 3 + 3],
           "cyan", 2)
axes[0].set_title("the 3 anchors of one P2 cell (yellow) and one P3 cell (cyan)")
axes[1].imshow(image)
draw_boxes(axes[1], anchors[labels == 1], "lime")
draw_boxes(axes[1], target["boxes"], "red", 2, "--")
axes[1].set_title("foreground anchors (green) for the ground truth (red)")
for ax in axes:
    ax.set_axis_off()
plt.show()

# %% [markdown]
# The RPN does not predict boxes directly but *deltas* from its anchor: centre shifts in
# units of the anchor's size and log size ratios (Faster R-CNN's parameterisation).
# Decoding inverts encoding exactly:

# %%
coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
foreground = np.flatnonzero(labels == 1)
deltas = coder.encode(target["boxes"][matched[foreground]], anchors[foreground])
back = coder.decode(deltas, anchors[foreground])
print("largest round-trip error:", np.abs(back - target["boxes"][matched[foreground]]).max())

# %% [markdown]
# ## 3. See it: an RPN learning
#
# A few steps of training on the lessons' small model; `inspect=True` shows what the RPN
# proposes. Before training the proposals are the anchors, barely moved; after, they
# gather on the objects.

# %%
tm.manual_seed(0)
model = MaskRCNN(MaskRCNNConfig.small(num_classes=dataset.num_classes))
optimizer = SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=1e-4)


def proposals_for(model, image, target):
    model.train()
    with tm.no_grad():
        _, inside = model([image], [target], inspect=True)
    return inside["rpn"]["proposals"][0]


before = proposals_for(model, image, target)
steps = 2 if SMOKE else 60
for step in range(steps):
    batch = [dataset[(2 * step + k) % len(dataset)] for k in range(2)]
    losses = model([b[0] for b in batch], [b[1] for b in batch])
    optimizer.zero_grad()
    sum(losses.values()).backward()
    optimizer.step()
print(f"after {steps} steps: objectness loss {losses['loss_objectness'].item():.3f}")
after = proposals_for(model, image, target)

fig, axes = plt.subplots(1, 2, figsize=(10, 5))
for ax, proposals, title in ((axes[0], before, "top 20 proposals, untrained"),
                             (axes[1], after, f"top 20 proposals after {steps} steps")):
    ax.imshow(image)
    draw_boxes(ax, proposals[:20], "yellow")
    draw_boxes(ax, target["boxes"], "red", 2, "--")
    ax.set_title(title)
    ax.set_axis_off()
plt.show()

# %% [markdown]
# ## 4. What the paper uses, and what we measured
#
# Mask R-CNN keeps Faster R-CNN's RPN unchanged (the paper, §3): anchors of 5 scales and 3
# ratios, 256 sampled anchors per image, proposals filtered by NMS at 0.7; at test time
# 1000 proposals per image with FPN (300 with C4). What matters downstream is *recall*:
# the fraction of objects that some proposal covers at IoU >= 0.5.

# %%
def proposal_recall(model, items, top):
    hits = total = 0
    for image, target in items:
        proposals = proposals_for(model, image, target)[:top]
        if len(target["boxes"]) and len(proposals):
            hits += int((box_iou(target["boxes"], proposals).max(axis=1) >= 0.5).sum())
        total += len(target["boxes"])
    return hits / max(total, 1)


held_out = ShapesDataset(4 if SMOKE else 30, image_size=128, seed=99)
items = [held_out[i] for i in range(len(held_out))]
for top in (10, 50, 100):
    recall = proposal_recall(model, items, top)
    print(f"recall at IoU 0.5 with the top {top:3d} proposals: {recall:.2f}")

# %% [markdown]
# ## Summary
#
# - Anchors: sizes per level, ratios h/w, integer-rounded, centred on cell corners, order
#   `[H, W, A]`; the RPN head's outputs are permuted to the same order.
# - Labels by IoU (0.7 / 0.3, plus low-quality matches); 256 sampled per image, up to half
#   positive; the loss is BCE on objectness plus smooth L1 on deltas of the positives.
# - Proposals: decode, clip, NMS per level, keep the best; they are *detached*: the second
#   stage does not train the first through them.
#
# ## Exercises
#
# 1. The C4 model puts all 5 sizes on one stride-16 map: how many anchors per cell? Check.
# 2. Encode a box against itself: what are the deltas? Check.
# 3. Raise the foreground threshold to 0.8 and count the foreground anchors again.

# %%
assert AnchorGenerator.c4().num_anchors_per_location() == [15]  # exercise 1
assert np.allclose(coder.encode(target["boxes"], target["boxes"]), 0.0)  # exercise 2
strict = Matcher(0.8, 0.3, allow_low_quality_matches=True)(iou)
assert (strict >= 0).sum() <= (matched >= 0).sum()  # exercise 3
print("exercise checks passed")
