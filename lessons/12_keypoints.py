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
# # Lesson 12 — Keypoints: human pose as one-hot masks (Table 4)
#
# **Goal.** The paper's Section 5 turns the same model into a pose estimator with one more
# branch: "we model a keypoint's location as a one-hot mask, and adopt Mask R-CNN to
# predict K masks, one for each of K keypoint types". We build the targets (task 12.1)
# and the loss (task 12.2), look at the head, train a keypoint model for a few minutes on
# stick figures, look at its heatmaps, and read Table 4 (does a mask branch help the
# keypoints?) at our scale.
#
# Code: `tinymask/keypoints.py` (`keypoints_to_heatmap`, `keypoint_loss`,
# `heatmaps_to_keypoints`), `tinymask/model/keypoint_head.py` (`KeypointHead`,
# `KeypointPredictor`), `tinymask/data/figures.py` (the stick figures and their OKS sigmas).

# %%
import tempfile

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

import tinymask as tm
from tinymask import functional as F
from tinymask.boxes import box_iou
from tinymask.course import check_tasks
from tinymask.data import FiguresDataset
from tinymask.evaluate import evaluate_model
from tinymask.gradcheck import gradcheck
from tinymask.keypoints import heatmaps_to_keypoints, keypoint_loss, keypoints_to_heatmap
from tinymask.lesson_utils import show, show_ablation, smoke_mode, stop_at_unsolved_tasks
from tinymask.model.mask_rcnn import MaskRCNN
from tinymask.presets import FIGURES_DATA, built_in_splits, load_preset, model_config_for
from tinymask.train import TrainConfig, Trainer
from tinymask.visualize import read_log
from tinymask.visualize.instances import draw_instances
from tinymask.visualize.keypoints import draw_keypoints

stop_at_unsolved_tasks()
SMOKE = smoke_mode()

# %% [markdown]
# ## 1. Build it: a keypoint as a one-hot mask (task 12.1)
#
# COCO labels 17 points on each person. Our data are stick figures (`FiguresDataset`): a
# disc for the head, a torso and eight limbs of some thickness, posed by random joint
# angles, with 14 keypoints each (COCO's without the face, which a disc does not have,
# plus a neck). A keypoint is `(x, y, v)`: `v = 2` visible, `v = 1` hidden under a figure
# drawn later, `v = 0` outside the image. Left and right are the figure's own (it faces
# us, so its left shoulder is on the image's right): red for left, blue for right,
# hollow for hidden. The figures as this lesson trains on them (`FIGURES_DATA`, printed):

# %%
figures = FiguresDataset(8, image_size=128, seed=12, **FIGURES_DATA)
print("figures options:", FIGURES_DATA)
print(f"{figures.num_keypoints} keypoints: {', '.join(figures.keypoint_names)}")
print(f"skeleton (1-based pairs): {figures.skeleton}")
fig = Figure(figsize=(12, 3.4))
axes = fig.subplots(1, 4)
for index, ax in enumerate(axes):
    image, target = figures[index]
    draw_instances(ax, image, target["boxes"], target["labels"], target["masks"],
                   class_names=figures.class_names)
    draw_keypoints(ax, target["keypoints"], figures.skeleton, list(figures.keypoint_names))
    visible = (target["keypoints"][..., 2] == 2).sum()
    hidden = (target["keypoints"][..., 2] == 1).sum()
    count = len(target["boxes"])
    ax.set_title(f"image {index}: {count} figure{'s' if count != 1 else ''}, {visible} visible "
                 f"/ {hidden} hidden points", fontsize=8)
    ax.axis("off")
fig.tight_layout()
show(fig, colours=64)

# %% [markdown]
# The head predicts an m x m map per keypoint type over each positive RoI (m = 56), and
# the target of a keypoint is the one cell of that map it falls in: with the RoI `(x1,
# y1, x2, y2)`, column `i = floor((x - x1) * m / (x2 - x1))`, row `j` likewise, flattened
# to `j * m + i`. A keypoint that is not labelled (`v = 0`) or lies outside the RoI has no
# target (`valid` is False): the loss skips it. One keypoint exactly on the RoI's right or
# bottom edge belongs to the last cell, not to one past it.
#
# `keypoints_to_heatmap(keypoints, rois, m)`: `(R, K, 3)` keypoints of each RoI's matched
# figure and `(R, 4)` RoIs -> `(R, K)` int64 flat cells and `(R, K)` bool valid. As for
# masks (lesson 8), a RoI that is off by a few pixels gets targets that are off the same
# way. The largest figure of the images above, its box and a box moved right by a fifth:

# %%
image_index, figure_index = max(((i, k) for i in range(len(figures))
                                 for k in range(len(figures[i][1]["boxes"]))),
                                key=lambda ik: figures[ik[0]][1]["masks"][ik[1]].sum())
image, target = figures[image_index]
gt_box = target["boxes"][figure_index]
x1, y1, x2, y2 = gt_box
shift = 0.2 * (x2 - x1)
rois = np.array([gt_box, [x1 + shift, y1, x2 + shift, y2]], np.float32)
keypoints = np.repeat(target["keypoints"][figure_index][None], 2, axis=0)  # (R=2, K, 3)
m = 56
cells, valid = keypoints_to_heatmap(keypoints, rois, m)
for name, roi, row_cells, row_valid in zip(("its box", "moved right"), rois, cells, valid):
    print(f"RoI {name:11s} {np.round(roi, 1)}: {row_valid.sum()} of {len(row_valid)} "
          f"keypoints have a target; cells (row, column) of the first four: "
          f"{[divmod(int(c), m) for c in row_cells[:4]]}")

# %% [markdown]
# ### See it: 14 one-hot masks
#
# Left of each pair: the figure inside the RoI, resampled to the 56 x 56 grid, with every
# valid keypoint's target cell drawn as a square in its colour. Right: the sum of the 14
# one-hot target maps of that RoI, one white cell per valid keypoint, where the network
# must put each map's peak. The moved RoI sees the figure further left, and the keypoints
# it cuts off (now outside it) have no target.

# %%
def crop_to_grid(image, roi, size):
    """The image inside ``roi`` sampled at the centres of a size x size grid (nearest)."""
    xs = roi[0] + (np.arange(size) + 0.5) * (roi[2] - roi[0]) / size
    ys = roi[1] + (np.arange(size) + 0.5) * (roi[3] - roi[1]) / size
    columns = np.clip(np.floor(xs).astype(int), 0, image.shape[1] - 1)
    rows = np.clip(np.floor(ys).astype(int), 0, image.shape[0] - 1)
    return image[rows][:, columns]


colours = {"left": "#e8453c", "right": "#3c7be8", "middle": "#f2d43d"}
side = [("left" if n.startswith("left") else "right" if n.startswith("right") else "middle")
        for n in figures.keypoint_names]
fig = Figure(figsize=(12, 3.3))
axes = fig.subplots(1, 4)
for column, (name, roi, row_cells, row_valid) in enumerate(
        zip(("its box", "moved right"), rois, cells, valid)):
    one_hot = np.zeros((len(row_cells), m * m))
    one_hot[np.flatnonzero(row_valid), row_cells[row_valid]] = 1
    ax = axes[2 * column]
    ax.imshow(crop_to_grid(image, roi, m))
    for k in np.flatnonzero(row_valid):
        row, col = divmod(int(row_cells[k]), m)
        ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, color=colours[side[k]]))
    ax.set_title(f"RoI {name}: image in the 56x56 grid", fontsize=9)
    axes[2 * column + 1].imshow(one_hot.sum(axis=0).reshape(m, m), cmap="gray")
    axes[2 * column + 1].set_title(f"sum of the {row_valid.sum()} one-hot targets", fontsize=9)
for ax in axes:
    ax.axis("off")
fig.tight_layout()
show(fig, colours=64)

# %% [markdown]
# ### Check it: the targets of a training step
#
# In training the keypoint branch runs on the same positive RoIs as the mask branch
# (lesson 8), each with the keypoints of the figure it was matched to. One step of an
# untrained keypoint model with its internals returned (`inspect=True`); its targets must
# be `keypoints_to_heatmap` of its positive RoIs.

# %%
config = model_config_for(figures, {}, image_size=128)
print(f"keypoint_branch={config.keypoint_branch}, num_keypoints={config.num_keypoints}, "
      f"mask_branch={config.mask_branch}; heatmaps of {4 * config.keypoint_pool_size} px")
tm.manual_seed(0)
model = MaskRCNN(config)
losses, inside = model([image], [target], inspect=True)
heads = inside["roi_heads"]
step_rois = heads["keypoint_proposals"][0]
best_gt = box_iou(target["boxes"], step_rois).argmax(axis=0)
recomputed, recomputed_valid = keypoints_to_heatmap(target["keypoints"][best_gt], step_rois,
                                                    4 * config.keypoint_pool_size)
assert np.array_equal(recomputed, heads["keypoint_targets"])
assert np.array_equal(recomputed_valid, heads["keypoint_valid"])
print(f"{len(step_rois)} positive RoIs, {int(recomputed_valid.sum())} valid (RoI, keypoint) "
      "pairs: the model's targets are keypoints_to_heatmap of its positive RoIs")

# %% [markdown]
# ## 2. Build it: the loss, a softmax over the m² cells (task 12.2)
#
# "For each visible ground-truth keypoint, we minimize the cross-entropy loss over an
# m²-way softmax output (which encourages a single point to be detected)" (§5). Each of
# the K maps of a RoI is one classification problem with m² = 3136 classes, the cells, and
# one right answer. The loss is the mean over the valid (RoI, keypoint) pairs; the
# invalid ones contribute nothing and get no gradient.
#
# `keypoint_loss(logits, targets, valid)`: `(R, K, m, m)` logits and the `(R, K)` targets
# and valid of task 12.1 -> a scalar Tensor. With no valid pair it is a zero that keeps
# the logits on the tape, not a NaN (a batch may have no visible keypoint at all).
#
# Why a softmax, when the mask head uses a per-pixel sigmoid? A mask has many foreground
# pixels, and each is a yes/no question. A keypoint has one. Below, a heatmap with a bump
# of logits whose peak moves away from the target cell, scored both ways: the softmax loss
# grows with the distance, while the per-pixel sigmoid (mean binary cross-entropy against
# the one-hot map) hardly moves, since one pixel of 3136 is all that changes.

# %%
def bump_logits(centre, target_size=m, height=12.0, width=2.0):
    rows, columns = np.mgrid[0:target_size, 0:target_size]
    distance2 = (rows - centre[0]) ** 2 + (columns - centre[1]) ** 2
    return height * np.exp(-distance2 / (2 * width**2)) - 4.0  # (m, m)


target_cell = (28, 28)
one_hot_target = np.zeros((m, m))
one_hot_target[target_cell] = 1
offsets = np.arange(0, 13)
softmax_losses, sigmoid_losses = [], []
for offset in offsets:
    logits = tm.Tensor(bump_logits((28, 28 + offset))[None, None])  # (R=1, K=1, m, m)
    softmax_losses.append(float(keypoint_loss(
        logits, np.array([[28 * m + 28]]), np.array([[True]])).data))
    sigmoid_losses.append(float(F.binary_cross_entropy_with_logits(
        logits.reshape(m, m), tm.Tensor(one_hot_target)).data))
for offset in (0, 3, 12):
    print(f"peak {offset:2d} cells from the target: softmax loss {softmax_losses[offset]:.3f}, "
          f"per-pixel sigmoid loss {sigmoid_losses[offset]:.4f}")
fig = Figure(figsize=(5.5, 3.2))
ax = fig.subplots()
ax.plot(offsets, softmax_losses, "o-", label="softmax over the m² cells (the paper)")
ax.plot(offsets, sigmoid_losses, "s-", label="per-pixel sigmoid BCE (as masks)")
ax.set_xlabel("distance of the heatmap's peak from the target cell (cells)")
ax.set_ylabel("loss")
ax.legend(fontsize=8)
fig.tight_layout()
show(fig)

# %% [markdown]
# ### Check it: the gradient
#
# The gradient of a softmax cross-entropy with respect to its logits is `p - one_hot`,
# divided by the number of valid pairs: it sums to zero over each map's cells. A float64
# central-difference check of the loss on small random maps (R = 2, K = 3, m = 6), with one
# pair not valid:

# %%
rng = np.random.default_rng(0)
small_logits = rng.standard_normal((2, 3, 6, 6))
small_targets = rng.integers(0, 36, size=(2, 3))
small_valid = np.array([[True, True, False], [True, True, True]])
error = gradcheck(lambda x: keypoint_loss(x, small_targets, small_valid), [small_logits])
logits_tensor = tm.Tensor(small_logits, requires_grad=True)
keypoint_loss(logits_tensor, small_targets, small_valid).backward()
print(f"largest relative error of the analytic gradient: {error:.1e}")
print("gradient summed over each map's cells (rows: RoIs):\n",
      np.round(logits_tensor.grad.sum(axis=(2, 3)), 12) + 0.0)
print("the invalid pair's gradient is zero:", not logits_tensor.grad[0, 2].any())

# %% [markdown]
# ## 3. The head: eight convs, a deconv and an upsample
#
# The paper's keypoint head is "a stack of eight 3x3 512-d conv layers, followed by a
# deconv layer and 2x bilinear upscaling, producing an output resolution of 56x56", on
# 14x14 RoIAlign features, because "a relatively high resolution output (compared to
# masks) is required for keypoint-level localization accuracy". The small model keeps the
# depth and scales the width down to its FPN's (`keypoint_conv_channels`). The shapes
# through it, for the positive RoIs of the step above:

# %%
roi_heads = model.roi_heads
pooled = roi_heads.keypoint_pooler([inside["features"][name] for name in model.roi_features],
                                   [step_rois])
hidden = roi_heads.keypoint_head(pooled)
low = roi_heads.keypoint_predictor.kps_score_lowres(hidden)
heatmaps = roi_heads.keypoint_predictor(hidden)
print(f"RoIAlign features {pooled.shape} -> 8 x (3x3 conv + ReLU) {hidden.shape} -> 4x4 "
      f"stride-2 deconv {low.shape} -> bilinear x2 {heatmaps.shape}")


keypoint_weights = (roi_heads.keypoint_head.num_parameters()
                    + roi_heads.keypoint_predictor.num_parameters())
mask_weights = roi_heads.mask_head.num_parameters() + roi_heads.mask_predictor.num_parameters()
print(f"keypoint branch {keypoint_weights:,} weights, mask branch {mask_weights:,}, "
      f"whole model {model.num_parameters():,}")

# %% [markdown]
# At test time the branch runs on the final detections, and `heatmaps_to_keypoints`
# reads each map's arg-max cell `(i, j)` back into the image at the cell's centre,
# `x = x1 + (i + 0.5) * w / m`, with the map's logit there as the keypoint's score.
# torchvision first resizes each map to the box's size in pixels (bicubic) and takes the
# arg-max there: `keypoint_resize_to_box=True`. Our figures are mostly smaller than 56
# pixels, where that resize *down*-samples without a low-pass first; its docstring says
# what goes wrong, so the small model reads the 56x56 map itself by default.
#
# ## 4. Train it: a run on stick figures
#
# `tinymask train --config figures` trains the small model on stick figures with the
# keypoint branch on (and the mask branch, as the paper's "keypoint & mask" row), 128 RoIs
# an image, on the figures of section 1: with the generator's own (from 32 px tall, up to
# three an image) a short run taught the small model almost no keypoints
# (`bench/RESULTS.md`). The eight plain convs and a softmax over 3136 cells took the small
# model to NaN within 60 steps at the shapes' learning rate, so the preset halves it and
# clips the gradient's norm at 10, and it trains longer than the shapes' `starter` (its
# schedule is printed below). The same run here, then COCO's keypoint AP on the
# validation figures: a detection's keypoints match a figure by OKS (object keypoint
# similarity), the keypoints' answer to a mask's IoU, with tolerances (sigmas) for our
# figures derived in `tinymask/data/figures.py`.

# %%
preset = load_preset("figures")
data = {**preset["data"], "train": 8, "val": 4, "image_size": 64} if SMOKE else preset["data"]
train_data, val_data = built_in_splits(data)
print(f"{len(train_data)} training and {len(val_data)} validation images of "
      f"{data['image_size']} px; model changes {preset['model']}")
train_fields = dict(preset["train"], progress=False, checkpoint_every=0)
if SMOKE:
    train_fields.update(steps=2, batch_size=1, warmup_iters=1, log_every=1)
train_config = TrainConfig.from_dict(train_fields)
print(f"{train_config.steps} steps of {train_config.batch_size} images, lr {train_config.lr}, "
      f"gradient norm clipped at {train_config.grad_clip}")
run_config = model_config_for(train_data, preset["model"], image_size=data["image_size"])
trainer = Trainer(run_config, train_config, train_data, tempfile.mkdtemp())
trainer.run()
log = [record for record in read_log(trainer.log_path) if "loss" in record]
for record in (log[0], log[-1]):
    print(f"step {record['step']:4d}: loss_keypoint {record['loss_keypoint']:.3f}, "
          f"loss_mask {record['loss_mask']:.3f}, total {record['loss']:.3f}")
metrics = evaluate_model(trainer.model, val_data, progress=False)
print(f"{train_config.steps} steps of {train_config.batch_size} images; on {len(val_data)} "
      f"validation images: keypoint AP {metrics['keypoints']['AP']:.1f} (AP50 "
      f"{metrics['keypoints']['AP50']:.1f}, AP75 {metrics['keypoints']['AP75']:.1f}), mask AP "
      f"{metrics['segm']['AP']:.1f}, box AP "
      f"{metrics['bbox']['AP']:.1f}")

# %% [markdown]
# ### Check it: how far off are the keypoints?
#
# COCO's keypoint AP matches a detection to a figure by OKS, the mean over the figure's
# labelled keypoints of `exp(-d² / (2 s² κ²))`: `d` the distance to the true point in
# pixels, `s²` the figure's area, `κ = 2σ` the keypoint type's tolerance (`σ` derived for
# the figures in `tinymask/data/figures.py`). A keypoint scores 0.5 at
# `d = sqrt(2 ln 2) s κ`. For each validation figure, the detection that overlaps it most
# (box IoU 0.5 or more), the distance of each of its visible keypoints from the truth,
# beside the distance at which that keypoint would score 0.5:

# %%
trained = trainer.model
trained.eval()
kappas = 2 * np.asarray(val_data.keypoint_oks_sigmas)
distances, half_marks, found, total = [], [], 0, 0
for index in range(len(val_data)):
    val_image, val_target = val_data[index]
    (prediction,) = trained([val_image])
    total += len(val_target["boxes"])
    if len(prediction["boxes"]) == 0:
        continue
    overlaps = box_iou(val_target["boxes"], prediction["boxes"])  # (M, D)
    for figure in range(len(val_target["boxes"])):
        best = int(overlaps[figure].argmax())
        if overlaps[figure, best] < 0.5:
            continue
        found += 1
        truth = val_target["keypoints"][figure]
        visible = truth[:, 2] == 2
        scale = np.sqrt(val_target["masks"][figure].sum())
        offsets = prediction["keypoints"][best][:, :2] - truth[:, :2]
        distances.extend(np.hypot(offsets[:, 0], offsets[:, 1])[visible])
        half_marks.extend((np.sqrt(2 * np.log(2)) * scale * kappas)[visible])
distances, half_marks = np.asarray(distances), np.asarray(half_marks)
print(f"{found} of {total} validation figures have a detection at IoU >= 0.5")
if len(distances):
    print(f"{len(distances)} visible keypoints: median distance {np.median(distances):.1f} px; "
          f"median distance at which a keypoint scores OKS 0.5: {np.median(half_marks):.1f} px")
    print(f"keypoints within their 0.5 mark: {np.mean(distances <= half_marks):.0%}; within "
          f"their 0.75 mark (sqrt(2 ln(4/3)) s κ): "
          f"{np.mean(distances <= np.sqrt(np.log(4 / 3) / np.log(2)) * half_marks):.0%}")

# %% [markdown]
# A figure's OKS is the *mean* over its keypoints: AP50 counts the figures whose mean
# reaches 0.5, AP75 those that reach 0.75, so the share of keypoints within their 0.75
# mark, printed above, is what holds AP75 below AP50. The marks are a few pixels on our
# figures; the paper's models train for days, ours for minutes on a CPU.
#
# ### See it: the predicted keypoints
#
# The run's detections above 0.5, with their keypoints and skeletons, on validation
# images it never trained on; the ground truth beside them, drawn the same way.

# %%
fig = Figure(figsize=(12, 6.4))
axes = fig.subplots(2, 4)
for column in range(4):
    val_image, val_target = val_data[column % len(val_data)]
    (prediction,) = trained([val_image])
    keep = prediction["scores"] >= 0.5
    draw_instances(axes[0, column], val_image, prediction["boxes"][keep],
                   prediction["labels"][keep], class_names=val_data.class_names)
    draw_keypoints(axes[0, column], prediction["keypoints"][keep], val_data.skeleton,
                   list(val_data.keypoint_names))
    axes[0, column].set_title(f"predicted: {int(keep.sum())} figure(s)", fontsize=9)
    draw_instances(axes[1, column], val_image, val_target["boxes"], val_target["labels"],
                   class_names=val_data.class_names)
    draw_keypoints(axes[1, column], val_target["keypoints"], val_data.skeleton,
                   list(val_data.keypoint_names))
    axes[1, column].set_title(f"ground truth: {len(val_target['boxes'])} figure(s)",
                              fontsize=9)
for ax in axes.ravel():
    ax.axis("off")
fig.tight_layout()
show(fig, colours=64)

# %% [markdown]
# ### See it: the heatmaps of one detection
#
# The highest-scoring detection of the first validation image, its 14 maps as
# probabilities (the softmax over each map's cells), each over the image inside the box,
# with the decoded keypoint (the arg-max) as a cross. A sharp single peak is a confident
# keypoint; a spread or double peak is the network unsure, often between a left joint and
# its right twin.

# %%
val_image, val_target = val_data[0]
(prediction,), seen = trained([val_image], inspect=True)
if len(prediction["boxes"]):
    best_box = prediction["boxes"][:1]
    logits = trained.roi_heads.keypoint_branch(
        [seen["features"][name] for name in trained.roi_features], [best_box]).data[0]
    probabilities = np.exp(logits - logits.max(axis=(1, 2), keepdims=True))
    probabilities /= probabilities.sum(axis=(1, 2), keepdims=True)
    decoded, _ = heatmaps_to_keypoints(logits[None], best_box,
                                       trained.config.keypoint_resize_to_box)
    assert np.allclose(decoded, prediction["keypoints"][:1], atol=1e-4)
    crop = crop_to_grid(val_image, best_box[0], m)
    fig = Figure(figsize=(14, 4.4))
    axes = fig.subplots(2, 7)
    for k, ax in enumerate(axes.ravel()):
        ax.imshow(crop, alpha=0.55)
        ax.imshow(probabilities[k], cmap="magma", alpha=0.6)
        row, col = np.unravel_index(probabilities[k].argmax(), (m, m))
        ax.plot(col, row, "x", color=colours[side[k]], markersize=8, mew=2)
        ax.set_title(f"{val_data.keypoint_names[k]}\npeak p = {probabilities[k].max():.2f}",
                     fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    show(fig, colours=64)
    print(f"detection score {float(prediction['scores'][0]):.2f}; peak probabilities from "
          f"{probabilities.max(axis=(1, 2)).min():.2f} to {probabilities.max(axis=(1, 2)).max():.2f}")
else:
    print("no detection on this image (a smoke-mode model detects nothing)")

# %% [markdown]
# ## 5. Table 4: does a mask branch help the keypoints?
#
# The paper trains ResNet-50-FPN on COCO's person keypoints twice, once with the keypoint
# branch alone and once with the mask branch beside it, and finds keypoint AP 62.7 and
# 63.1: training masks too helps the keypoints a little, and one model does both.
# `tinymask ablate keypoints` trains the same two rows of the small model on the stick
# figures, each at three seeds. Our keypoint AP, with the paper's beside it, as recorded
# by the command under the table (in smoke mode: a toy run whose numbers mean nothing),
# then the per-seed difference between the rows:

# %%
figure = show_ablation("keypoints")

# %% [markdown]
# How to read it. The per-seed lines say at how many seeds the mask branch helped and by
# how much, against the spread between seeds; a gap of a few tenths of a point, the
# paper's, is below what three runs of minutes can resolve, so read the direction and
# whether it holds seed by seed. A mask branch gives the shared features a dense signal,
# every pixel of the figure, where the keypoint loss gives fourteen points; whether that
# is what helps here, this table does not measure. What it does show is the paper's point:
# adding a whole second task costs the keypoints nothing, and "the same model" predicts
# boxes, masks and poses. The absolute numbers sit far below the paper's; section 4 showed
# how far the keypoints of such a run land from their marks.
#
# ## Summary
#
# - Targets (task 12.1): each labelled keypoint inside a positive RoI becomes the one cell
#   of the RoI's m x m grid (m = 56) it falls in, `j * m + i`; unlabelled or outside
#   keypoints have no target.
# - Loss (task 12.2): a softmax cross-entropy over the m² cells of each valid (RoI,
#   keypoint) pair, mean over the pairs: one location wins, unlike a mask's independent
#   pixels.
# - Head: 8 conv 3x3 on 14x14 RoIAlign features, a 2x deconv and a 2x bilinear upsample to
#   56x56; decoding takes each map's arg-max back into the box.
# - Config switches: `keypoint_branch`, `num_keypoints`, `mask_branch` (Table 4's rows),
#   `keypoint_resize_to_box` (torchvision's decoding).
#
# ## Exercises
#
# 1. **Task 12.1**, keypoint targets: write `keypoints_to_heatmap` in
#    `tinymask/keypoints.py` between the task markers (section 1 says how). The solution is
#    what the model runs: every keypoint target of section 4's training comes from it.
#    Check it with `tinymask course check 12.1` or the last cell.
# 2. **Task 12.2**, the keypoint loss: write `keypoint_loss` in `tinymask/keypoints.py`
#    between the task markers (section 2). Check it with `tinymask course check 12.2` or
#    the last cell.
# 3. An untrained head whose logits are all zero: what is its keypoint loss, for any
#    number of valid pairs, with m = 56? Write it as an expression.
# 4. A detection with box `(30, 10, 58, 66)` and one heatmap whose arg-max is the cell
#    at row 10, column 20 of the 56x56 map. Where is the keypoint, `(x, y)` in image
#    pixels, when the map is read directly (`keypoint_resize_to_box=False`)?

# %%
zero_logits_loss = np.log(56 * 56)  # your answer
keypoint_x, keypoint_y = 30 + 20.5 * 28 / 56, 10 + 10.5 * 56 / 56  # your answer

measured = keypoint_loss(tm.Tensor(np.zeros((3, 2, m, m))), np.array([[5, 9], [0, 77],
                         [3135, 1]]), np.array([[True, False], [True, True], [True, True]]))
assert abs(zero_logits_loss - float(measured.data)) < 1e-9, \
    "not the loss of all-zero logits: every cell has the same probability"
one_map = np.zeros((1, 1, m, m), np.float32)
one_map[0, 0, 10, 20] = 5.0
(decoded_point,), _ = heatmaps_to_keypoints(one_map, np.array([[30.0, 10.0, 58.0, 66.0]]),
                                            resize_to_box=False)
assert np.allclose((keypoint_x, keypoint_y), decoded_point[0, :2], atol=1e-4), \
    "not where the cell's centre lands in the image: map the cell's centre, i + 0.5"

# %%
check_tasks("12.1", "12.2")
print("exercise checks passed")
