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
# # Lesson 8 — The mask head and its loss (Table 2b, 2e)
#
# **Goal.** Mask R-CNN's addition to Faster R-CNN is one small branch: for every positive
# RoI, a fully convolutional network predicts an m x m mask *for each class*, and the
# loss looks only at the mask of the RoI's ground-truth class. We build the targets (task
# 8.1) and the loss (task 8.2), look at the head, fit it on a few RoIs with each loss, and
# read what the paper's two mask ablations, per-class sigmoid masks (Table 2b) and a
# convolutional head (Table 2e), give at our scale.
#
# Code: `tinymask/model/roi_heads.py` (`crop_mask_targets`), `tinymask/losses.py`
# (`mask_loss`), `tinymask/model/heads.py` (`MaskFCNHead`, `MaskPredictor`, `MaskMLPHead`).

# %%
import matplotlib.pyplot as plt
import numpy as np

import tinymask as tm
from tinymask.ablations import ABLATIONS, format_per_seed, format_table, plot_result
from tinymask.boxes import box_iou
from tinymask.config import MaskRCNNConfig
from tinymask.course import check_tasks
from tinymask.data import ShapesDataset
from tinymask.lesson_utils import recorded_result, show, smoke_mode, stop_at_unsolved_tasks
from tinymask.losses import mask_loss
from tinymask.model.heads import MaskFCNHead, MaskPredictor
from tinymask.model.mask_rcnn import MaskRCNN, build_roi_heads
from tinymask.model.roi_heads import crop_mask_targets
from tinymask.ops import roi_align
from tinymask.optim import SGD
from tinymask.visualize.mask_targets import plot_mask_targets

stop_at_unsolved_tasks()
SMOKE = smoke_mode()
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Build it: the mask target of a RoI (task 8.1)
#
# "The mask target is the intersection between an RoI and its associated ground-truth
# mask" (§3.1). The head predicts an m x m mask (m = 28) over its RoI, so the target must
# be the ground-truth mask *as seen from that RoI*, resampled to 28x28. That resampling is
# RoIAlign (lesson 6), with the binary mask read as a one-channel image:
#
# - each ground-truth mask `(H, W)` becomes an "image" of one channel, `(M, 1, H, W)`;
# - each positive RoI becomes a row `[matched ground truth, x1, y1, x2, y2]`, so RoIAlign
#   reads the mask of the object it was matched to, in image pixels (`spatial_scale` 1);
# - RoIAlign at 28x28 with the half-pixel shift (`aligned=True`) and adaptive sampling
#   (`sampling_ratio=0`: enough samples per bin to see every mask pixel);
# - thresholded at 0.5, so the target is binary (Detectron2's choice; torchvision keeps the
#   soft values unaligned, a config switch).
#
# `crop_mask_targets(gt_masks, matched_gt, rois, mask_size)`: `(M, H, W)`, `(P,)`, `(P, 4)`
# -> `(P, m, m)` float32. A RoI that is off by a few pixels gets a target that is off the
# same way: the head learns to draw the object where it is *in that RoI*. To see it, one
# object and five positive RoIs (IoU >= 0.5 with it, as the box head's matcher labels
# them): its ground-truth box, and four boxes moved or resized from it.

# %%
dataset = ShapesDataset(8, image_size=128, seed=5)
image_h, image_w = dataset.image_size
candidates = []  # (mask area, image, object) of the objects 8 pixels or more from the edges
for index in range(len(dataset)):
    boxes = dataset[index][1]["boxes"]
    for k, (bx1, by1, bx2, by2) in enumerate(boxes):
        if min(bx1, by1, image_w - bx2, image_h - by2) >= 8:
            candidates.append((dataset[index][1]["masks"][k].sum(), index, k))
_, image_index, object_index = max(candidates)  # the largest of them
image, target = dataset[image_index]
gt_box = target["boxes"][object_index]
x1, y1, x2, y2 = gt_box
width, height = x2 - x1, y2 - y1
rois = np.array([
    gt_box,
    [x1 + 0.25 * width, y1, x2 + 0.25 * width, y2],  # moved right by a quarter
    [x1 - 0.15 * width, y1 - 0.15 * height, x2 - 0.15 * width, y2 - 0.15 * height],
    [x1 - 0.15 * width, y1 - 0.15 * height, x2 + 0.15 * width, y2 + 0.15 * height],  # 1.3x
    [x1 + 0.1 * width, y1 + 0.1 * height, x2 - 0.1 * width, y2 - 0.1 * height],  # 0.8x
], dtype=np.float32)
names = ["the ground-truth box", "moved right", "moved up-left", "30% larger", "20% smaller"]
ious = box_iou(gt_box[None], rois)[0]
print(f"image {image_index}, object {object_index}: "
      f"{dataset.class_names[target['labels'][object_index]]}, box {np.round(gt_box, 1)}")
for name, iou in zip(names, ious):
    print(f"  RoI {name:22s} IoU {iou:.2f}")

# %%
matched = np.full(len(rois), object_index)
targets = crop_mask_targets(target["masks"], matched, rois, 28)  # (P, 28, 28)
rows = np.concatenate([np.zeros((len(rois), 1), np.float32), rois], axis=1)  # image 0
pixels = (image.astype(np.float32) / 255).transpose(2, 0, 1)[None]  # (1, 3, H, W)
crops = roi_align(pixels, rows, 28, sampling_ratio=0, aligned=True).data.transpose(0, 2, 3, 1)
print("targets", targets.shape, targets.dtype, "values", np.unique(targets))
print("target pixels inside each RoI's 28x28:", [int(t.sum()) for t in targets])

# %% [markdown]
# ### See it: the same object, five targets
#
# Top: each RoI (coloured) beside the ground-truth box (white, dashed). Middle: what
# RoIAlign reads of the image inside the RoI, with the target's outline. Bottom: the
# 28x28 target. The RoI moved right sees the object in its left part, and its target says
# so; the larger RoI's target is a smaller object in a wider frame; the smaller RoI's
# target is cut at the RoI's edges. The target is always "the object, as this box sees it".

# %%
titles = [f"{name}\nIoU {iou:.2f}" for name, iou in zip(names, ious)]
show(plot_mask_targets(image, gt_box, rois, crops, targets, titles))

# %% [markdown]
# ### Check it: the targets of a training step
#
# In training, the positive RoIs are the sampled proposals whose best IoU with a
# ground-truth box is at least 0.5, plus the ground-truth boxes themselves, which the box
# head appends to the proposals (lesson 7). One training step of an untrained model, with
# its internals returned (`inspect=True`): its targets are `crop_mask_targets` of its
# positive RoIs, each read from the ground-truth mask it overlaps most.

# %%
config = MaskRCNNConfig.small(num_classes=dataset.num_classes)
tm.manual_seed(0)
model = MaskRCNN(config)
_, inside = model([image], [target], inspect=True)
heads = inside["roi_heads"]
step_rois, step_targets = heads["mask_proposals"][0], heads["mask_targets"]
overlaps = box_iou(target["boxes"], step_rois)  # (M, P)
best_gt = overlaps.argmax(axis=0)
is_gt_box = np.isclose(overlaps.max(axis=0), 1.0)
others = overlaps.max(axis=0)[~is_gt_box].round(2).tolist()
print(f"{len(step_rois)} positive RoIs this step: {is_gt_box.sum()} ground-truth boxes and "
      f"{len(others)} proposals" + (f" at IoU {others}" if others else "") +
      f"; targets {step_targets.shape}")
recomputed = crop_mask_targets(target["masks"], best_gt, step_rois, config.mask_size)
assert np.array_equal(recomputed, step_targets)
assert np.array_equal(heads["mask_labels"], target["labels"][best_gt])
print("the model's targets are crop_mask_targets of its positive RoIs: same values")

# %% [markdown]
# An untrained RPN proposes boxes nearly at random, so few of its proposals reach IoU 0.5:
# early in training the mask head learns mostly from the ground-truth boxes; as the RPN
# learns, more and more shifted RoIs like the ones above join them.
#
# ## 2. Build it: the mask loss (task 8.2)
#
# The head outputs `mask_logits` `(P, K+1, m, m)`: one m x m map per class, background
# included, for each of the P positive RoIs. Two ways to turn them into a loss (Table 2b):
#
# - **Per-class sigmoid** (the paper's): take the map of each RoI's ground-truth class
#   k_p, `(P, m, m)`, and apply a per-pixel binary cross-entropy against the target,
#   averaged over the P·m·m pixels: L = mean of -[t log σ(z) + (1-t) log(1-σ(z))]. The other
#   K maps are not in the loss at all.
# - **Softmax over classes** (the "multinomial" row): at each pixel a softmax over the K+1
#   maps, with the label k_p inside the target mask and 0 (background) outside; the
#   cross-entropy averaged over the P·m·m pixels.
#
# `mask_loss(mask_logits, mask_targets, gt_labels, kind)` in `tinymask/losses.py`; use
# `F.binary_cross_entropy_with_logits` and `F.cross_entropy` (`tinymask.functional`), which
# take logits (a log-sigmoid or log-softmax computed stably) and average for you.
#
# ### Check it: the loss against the formulas, its gradient, and which maps it trains
#
# Two RoIs, K+1 = 4 classes, 6x6 masks: the library's loss against the two formulas
# written out in NumPy, a float64 gradient check, and the class maps that receive a
# gradient.

# %%
logits = tm.Tensor(rng.standard_normal((2, 4, 6, 6)), requires_grad=True)  # P=2, K+1=4
masks = (rng.random((2, 6, 6)) > 0.5).astype(np.float64)
labels = np.array([1, 3])
z = logits.data[np.arange(2), labels]  # each RoI's ground-truth map, (2, 6, 6)
by_hand = {
    # -[t log s(z) + (1-t) log(1-s(z))], written so exp never overflows
    "sigmoid": np.mean(np.maximum(z, 0) - z * masks + np.log1p(np.exp(-np.abs(z)))),
    "softmax": -np.mean(np.take_along_axis(
        logits.data - np.log(np.exp(logits.data).sum(axis=1, keepdims=True)),
        np.where(masks > 0.5, labels[:, None, None], 0)[:, None], axis=1)),
}
for kind in ("sigmoid", "softmax"):
    logits.grad = None
    loss = mask_loss(logits, masks, labels, kind)
    loss.backward()
    trained = [k for k in range(4) if np.abs(logits.grad[0, k]).sum() > 0]
    error = tm.gradcheck(lambda x, kind=kind: mask_loss(x, masks, labels, kind),
                         [logits.data.copy()])
    print(f"{kind:7s}: loss {loss.item():.6f}, by hand {by_hand[kind]:.6f}; gradient check "
          f"error {error:.1e}; class maps of RoI 0 (class {labels[0]}) with a gradient: "
          f"{trained}")
    assert np.isclose(loss.item(), by_hand[kind], rtol=1e-10)

# %% [markdown]
# With sigmoid masks only the ground-truth class's map of each RoI is trained: classes
# never compete for a pixel, and which class the object is stays the box head's job. With
# a softmax every map of every RoI gets a gradient.
#
# ## 3. See it: what the loss asks of one pixel
#
# One pixel inside a mask of class 1, with logits 0.5, 0.2, 1.0, -0.3 for background and
# classes 1 to 3: the gradient each class's logit receives.

# %%
pixel = tm.Tensor(np.array([[[[0.5]], [[0.2]], [[1.0]], [[-0.3]]]]), requires_grad=True)
fig, axes = plt.subplots(1, 2, figsize=(9, 2.8), sharey=True)
for ax, kind in zip(axes, ("sigmoid", "softmax")):
    pixel.grad = None
    mask_loss(pixel, np.ones((1, 1, 1)), np.array([1]), kind).backward()
    ax.bar(range(4), pixel.grad[0, :, 0, 0], color=["gray", "tab:green", "gray", "gray"])
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xticks(range(4), ["bg", "class 1 (true)", "class 2", "class 3"])
    ax.set_title(f"{kind}: d loss / d logit")
fig.tight_layout()
plt.show()

# %% [markdown]
# Sigmoid: only class 1's logit moves (up). Softmax: class 1's goes up and every other
# class's goes down, most for class 2, the strongest competitor.
#
# ## 4. Build it: the head, convolutional or fully connected (Table 2e)
#
# The FCN head: four 3x3 convs on the 14x14 RoI features, a 2x2 stride-2 deconvolution to
# 28x28, and a 1x1 conv to one logit map per class: `(R, F, 14, 14) -> (R, K+1, 28, 28)`.
# Table 2e's alternative flattens the RoI features into fully connected layers and predicts
# all `(K+1)·28·28` logits with a last fc layer. The paper's heads (COCO, F = 256, K+1 = 81)
# and the lessons' small model's (F = 64, K+1 = 6), each built from its config:

# %%
coco = MaskRCNNConfig(num_classes=81)  # COCO's 80 classes and background
small = MaskRCNNConfig.small(num_classes=dataset.num_classes)


def mask_head_parameters(config):
    """Weights of the mask branch's head and predictor, built as the model builds them."""
    heads = build_roi_heads(config, config.fpn_channels, (4, 8, 16, 32))
    return sum(part.num_parameters() for part in (heads.mask_head, heads.mask_predictor)
               if part is not None)


def widths(config):
    if config.mask_head == "fcn":
        return f"4 convs {config.mask_conv_channels} wide + deconv"
    return f"fc {'-'.join([str(config.mask_mlp_dim)] * config.mask_mlp_layers)}"


parameters = {}
for label, base in (("COCO", coco), ("small", small)):
    for head, layers in (("fcn", 2), ("mlp", 2), ("mlp", 3)):
        config_k = base.replace(mask_head=head, mask_mlp_layers=layers)
        parameters[label, head, layers] = mask_head_parameters(config_k)
        name = "FCN" if head == "fcn" else f"MLP, {layers} fc"
        print(f"{label:5s} F={base.fpn_channels:3d} K+1={base.num_classes:2d}  {name:9s} "
              f"({widths(config_k):28s}) {parameters[label, head, layers]:>12,} weights")
for label in ("COCO", "small"):
    print(f"{label}: the two-layer MLP head has "
          f"{parameters[label, 'mlp', 2] / parameters[label, 'fcn', 2]:.0f}x the FCN head's "
          f"weights")

# %% [markdown]
# The first ratio printed is the paper's heads'; the small model's heads, narrower and
# with fewer classes, have the second. A fully connected layer must learn every
# output position separately, while a convolution shares its weights across positions and
# keeps the mask's spatial layout ("pixel-to-pixel correspondence", §3). Both heads make the
# same output from the small model's 14x14 RoI features:

# %%
pooled = tm.Tensor(rng.standard_normal((3, small.fpn_channels, 14, 14)).astype(np.float32))
for head in ("fcn", "mlp"):
    roi_heads = build_roi_heads(small.replace(mask_head=head), small.fpn_channels,
                                (4, 8, 16, 32))
    with tm.no_grad():
        out = roi_heads.mask_head(pooled)
        if roi_heads.mask_predictor is not None:
            out = roi_heads.mask_predictor(out)
    print(f"{head}: {tuple(pooled.shape)} -> {tuple(out.shape)}")

# %% [markdown]
# ## 5. Check it: can each loss fit masks?
#
# Before reading the trained ablations, a small test that both losses can be learned at
# all: the small model's FCN head fits the targets of a few RoIs. Its input stands in for
# the backbone's features: the RoI's own pixels, read by RoIAlign at 14x14 (three
# channels), so only the head learns. Plain gradient descent (SGD with momentum 0;
# momentum and weight decay are task 9.1, lesson 9). We measure the mask IoU of the
# *pasted* rule: a pixel is in the mask when its class's probability is above 0.5.

# %%
fit_data = ShapesDataset(2 if SMOKE else 3, image_size=128, seed=1)
fit_rng = np.random.default_rng(1)
fit_inputs, fit_targets, fit_labels = [], [], []
for index in range(len(fit_data)):
    fit_image, fit_target = fit_data[index]
    boxes = fit_target["boxes"]
    sizes = np.tile(boxes[:, 2:] - boxes[:, :2], 2)
    moved = boxes[:, None] + fit_rng.normal(0, 0.1, (len(boxes), 3, 4)) * sizes[:, None]
    fit_rois = np.concatenate([boxes[:, None], moved], axis=1).reshape(-1, 4).astype(np.float32)
    fit_matched = np.repeat(np.arange(len(boxes)), 4)
    normalised = ((fit_image.astype(np.float32) / 255 - 0.5) * 4).transpose(2, 0, 1)[None]
    fit_inputs.append(roi_align(normalised, [fit_rois], 14, sampling_ratio=0,
                                aligned=True).data)
    fit_targets.append(crop_mask_targets(fit_target["masks"], fit_matched, fit_rois, 28))
    fit_labels.append(fit_target["labels"][fit_matched])
fit_inputs = tm.Tensor(np.concatenate(fit_inputs))  # (P, 3, 14, 14)
fit_targets, fit_labels = np.concatenate(fit_targets), np.concatenate(fit_labels)
print(f"{len(fit_labels)} RoIs of {len(fit_data)} images: inputs {tuple(fit_inputs.shape)}, "
      f"targets {fit_targets.shape}")


def class_probabilities(mask_logits, labels, kind):
    """(P, m, m): the probability of each RoI's class at each pixel, as inference reads it."""
    rows = np.arange(len(labels))
    if kind == "sigmoid":
        return 1 / (1 + np.exp(-mask_logits[rows, labels]))
    shifted = np.exp(mask_logits - mask_logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True))[rows, labels]


def mask_iou(probabilities, targets):
    pasted, truth = probabilities > 0.5, targets > 0.5
    union = np.logical_or(pasted, truth).sum(axis=(1, 2))
    return float(np.mean(np.logical_and(pasted, truth).sum(axis=(1, 2)) / np.maximum(union, 1)))


steps, every = (4, 2) if SMOKE else (200, 25)
curves = {}
for kind in ("sigmoid", "softmax"):
    tm.manual_seed(0)
    head = MaskFCNHead(3, small.mask_conv_channels)
    predictor = MaskPredictor(small.mask_conv_channels, small.mask_conv_channels,
                              fit_data.num_classes)
    optimizer = SGD(list(head.parameters()) + list(predictor.parameters()), lr=0.5,
                    momentum=0.0)
    curves[kind] = []
    for step in range(steps + 1):
        mask_logits = predictor(head(fit_inputs))
        loss = mask_loss(mask_logits, fit_targets, fit_labels, kind)
        if step % every == 0:
            probabilities = class_probabilities(mask_logits.data, fit_labels, kind)
            inside = fit_targets > 0.5
            winning = mask_logits.data.argmax(axis=1) == fit_labels[:, None, None]
            # inside the object, the RoI's class has the most probability, but not over 0.5
            unpasted = float(np.mean((winning & (probabilities <= 0.5))[inside]))
            curves[kind].append((step, loss.item(), mask_iou(probabilities, fit_targets),
                                 unpasted))
        if step < steps:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    print(kind, "  ".join(f"step {s}: loss {v:.2f} IoU {iou:.2f}" for s, v, iou, _ in
                          curves[kind][:: max(1, len(curves[kind]) // 5)]))

# %% [markdown]
# ### See it: the mask IoU while fitting

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.3))
for kind, colour in (("sigmoid", "tab:blue"), ("softmax", "tab:orange")):
    points = np.array(curves[kind])
    axes[0].plot(points[:, 0], points[:, 2], "o-", color=colour, label=kind)
softmax_points = np.array(curves["softmax"])
axes[1].plot(softmax_points[:, 0], softmax_points[:, 3], "o-", color="tab:orange",
             label="softmax")
axes[0].set_title("mask IoU (pixels with probability > 0.5)", fontsize=10)
axes[1].set_title("softmax: share of the object's pixels where the class\nhas the most "
                  "probability, but not more than 0.5", fontsize=10)
for ax in axes:
    ax.set_xlabel("gradient step")
    ax.grid(alpha=0.3)
    ax.legend()
fig.tight_layout()
plt.show()

# %%
(_, _, sigmoid_iou, _), (_, _, softmax_iou, _) = curves["sigmoid"][-1], curves["softmax"][-1]
first_pasted = next((s for s, _, iou, _ in curves["softmax"] if iou > 0), None)
most_unpasted = max(curves["softmax"][1:], key=lambda point: point[3])  # after step 0
print(f"after {steps} steps: mask IoU {sigmoid_iou:.2f} with the sigmoid loss, "
      f"{softmax_iou:.2f} with the softmax loss")
print(f"softmax: the first checkpoint with a pasted pixel is step {first_pasted}; at step "
      f"{most_unpasted[0]}, at {most_unpasted[3]:.0%} of the object's pixels the right class "
      "had the most probability and was still not pasted")

# %% [markdown]
# Both losses can fit masks: the IoUs printed above are far above zero (the sigmoid head
# starts at probability 0.5 everywhere, so its first IoU is a coin toss over the RoI). The
# two start differently, and that is the point: an untrained softmax gives every class
# probability 1/(K+1) at every pixel, under 0.5, so nothing is pasted until the right class
# out-votes background *and* the other shapes together; the right panel counts the pixels
# where it already wins the vote and still is not pasted (at step 0 that share is chance:
# every class is near 1/(K+1)). A sigmoid map only has to cross 0.5 on its own.
#
# ## 6. What the paper found, and what we found
#
# Table 2b (ResNet-50-C4): softmax 24.8 mask AP, sigmoid 30.3, "a large gain" from
# decoupling. Table 2e (ResNet-50-FPN): MLP heads 31.5, FCN 33.6. Ours, recorded by
# `tinymask ablate` (the command, preset and machine are printed with each table):

# %%
records = {name: recorded_result(name) for name in ("mask-loss", "mask-head")}
for name, result in records.items():
    print(f"Table {ABLATIONS[name].table}: {ABLATIONS[name].question}")
    if result is None:
        print(f"  not recorded here: run this lesson from the repository's root, or record it "
              f"with  tinymask ablate {name} --seeds 3 --record")
        continue
    print(format_table(result))
    print(format_per_seed(result))
    print(f"recorded by: {result['command']}  (preset {result['preset']}, {result['machine']})")
    show(plot_result(result))

# %% [markdown]
# The tables give mask AP. The records also hold each training's box AP, which says
# whether a variant's *detector* was as good; per seed, from the same files:

# %%
def trainings_by_change(result, field):
    """{config value of ``field``: {seed: training}} from a recorded ablation."""
    variant_value = {variant.name: variant.changes.get(field)
                     for variant in ABLATIONS[result["name"]].variants}
    by_value = {}
    for training in result["trainings"]:
        by_value.setdefault(variant_value[training["variant"]], {})[training["seed"]] = training
    return by_value


if records["mask-loss"] is not None:
    runs = trainings_by_change(records["mask-loss"], "mask_loss")
    seeds = sorted(runs["sigmoid"])
    for seed in seeds:
        soft, sig = runs["softmax"][seed], runs["sigmoid"][seed]
        print(f"seed {seed}: box AP softmax {soft['AP_bb']:.1f} vs sigmoid {sig['AP_bb']:.1f}; "
              f"mask AP softmax {soft['AP']:.1f} vs sigmoid {sig['AP']:.1f}")
    for metric, what in (("AP_bb", "box AP"), ("AP", "mask AP")):
        lower = sum(runs["softmax"][s][metric] < runs["sigmoid"][s][metric] for s in seeds)
        print(f"softmax's {what} is lower than sigmoid's at {lower} of {len(seeds)} seeds")

# %% [markdown]
# How to read the `mask-loss` rows: the softmax models' masks fall below the sigmoid
# models' at every seed, by more mask AP than the paper's gap, and the counts above say at
# how many seeds their boxes are lower too (by less, in the lines above). Then compare the
# table's columns: the gap is widest at AP50, and at AP75 it is smaller than the
# paper's. Our reading of those columns: the softmax models lose masks *at all* (a mask that misses half the object fails
# even IoU 0.5) more than they lose precision where they do paste one. The small test of
# section 5 says what a short run adds to the paper's explanation. Every softmax pixel starts unpasted, and a pixel is pasted only
# once its class holds more than half the probability against background and the other
# shapes; a model still unsure between, say, ellipse and ring can split the
# probability between them and keep both under 0.5, a mask of nothing. The per-class
# sigmoid only asks "is this pixel the object?" and leaves "which class?" to the box head:
# the decoupling the paper credits, here magnified by a run of minutes. (That split is our
# reading, measured on the small fit above, not in the recorded models, whose weights the
# record does not keep.)
#
# And `mask-head`. The variant names are the paper's rows (fc 1024); the small model's
# layers are the widths its config gives, printed here for each variant:

# %%
for variant in ABLATIONS["mask-head"].variants:
    print(f"{variant.name:26s} -> in the small model: "
          f"{widths(small.replace(**variant.changes))}")
if records["mask-head"] is not None:
    runs = trainings_by_change(records["mask-head"], "mask_head")
    for seed in sorted(runs["fcn"]):
        mlp_box = [t["AP_bb"] for t in records["mask-head"]["trainings"]
                   if t["seed"] == seed and t["variant"] != runs["fcn"][seed]["variant"]]
        print(f"seed {seed}: box AP FCN {runs['fcn'][seed]['AP_bb']:.1f}, MLP heads "
              f"{' and '.join(f'{v:.1f}' for v in mlp_box)}")
    above = sum(all(runs["fcn"][seed]["AP_bb"] > t["AP_bb"]
                    for t in records["mask-head"]["trainings"]
                    if t["seed"] == seed and t["variant"] != runs["fcn"][seed]["variant"])
                for seed in runs["fcn"])
    print(f"the FCN model's box AP is above both MLP models' at {above} of "
          f"{len(runs['fcn'])} seeds")

# %% [markdown]
# The paper's direction again, with a far larger gap (the table above): the MLP must learn
# every one of the 28x28 output pixels as a separate weight column (exercise 3 counts
# them), while the FCN shares one small filter over all positions, so what it learns at
# one pixel holds at every pixel: that is the spatial layout the paper's table is about,
# and with few steps it decides everything. The paper's two MLP rows are level; read ours
# in the per-seed lines of the table. The *boxes* (the lines above) do not follow the
# masks seed by seed: the count says at how many seeds the FCN model also has the better
# detector: the table's gap lies in the masks themselves far more than in the detector
# underneath them.
#
# ## Summary
#
# - Targets (task 8.1): the ground-truth mask cropped to each positive RoI by RoIAlign at
#   28x28, thresholded at 0.5 (Detectron2); a shifted RoI gets a shifted target.
# - Loss (task 8.2): per-pixel sigmoid BCE on the ground-truth class's map only, so mask
#   and class are decoupled; the softmax alternative makes the classes compete at every
#   pixel and pastes nothing until one class holds more than half the probability.
# - Head: 4 convs, a 2x deconv, a 1x1 conv to K+1 maps; fully connected heads need far
#   more weights and lose the spatial layout.
# - Both ablations are config fields: `mask_loss` ("sigmoid" | "softmax") and `mask_head`
#   ("fcn" | "mlp", `mask_mlp_layers` 2 or 3).
#
# ## Exercises
#
# 1. **Task 8.1**, mask targets: write `crop_mask_targets` in
#    `tinymask/model/roi_heads.py` between the task markers (section 1 says how). The
#    solution is what the model runs: every mask target of lesson 9's training comes from
#    it. It reads the masks with RoIAlign, so it needs tasks 6.1 and 6.2. Check it with
#    `tinymask course check 8.1` or the last cell.
# 2. **Task 8.2**, the mask loss: write `mask_loss` in `tinymask/losses.py` between the
#    task markers, both kinds (section 2). Check it with `tinymask course check 8.2` or the
#    last cell.
# 3. The small model's two-layer MLP mask head (F = 64 features at 14x14, fc layers 256
#    wide, K+1 = 6 classes, 28x28 masks): how many weights does its *last* fc layer hold,
#    biases included? Write the arithmetic.
# 4. One pixel of a detection of class 1 (ellipse), with logits 0.0 for background, 2.0 for
#    classes 1 and 2, and 0.0 for classes 3 to 5. What probability does the softmax give
#    class 1 (two decimals)? Is the pixel in the ellipse's pasted mask with softmax masks,
#    and with sigmoid masks?

# %%
last_layer_weights = 256 * 6 * 28 * 28 + 6 * 28 * 28  # your answer
softmax_probability = 0.39  # your answer
pasted_with_softmax, pasted_with_sigmoid = False, True  # your answer

mlp_heads = build_roi_heads(small.replace(mask_head="mlp", mask_mlp_layers=2),
                            small.fpn_channels, (4, 8, 16, 32))
assert last_layer_weights == mlp_heads.mask_head.mask_fc_logits.num_parameters(), \
    "not the number of weights of the last fc layer"
pixel_logits = np.array([0.0, 2.0, 2.0, 0.0, 0.0, 0.0])
probability = np.exp(pixel_logits[1]) / np.exp(pixel_logits).sum()
assert abs(softmax_probability - probability) < 0.006, "not the softmax probability of class 1"
assert (pasted_with_softmax, pasted_with_sigmoid) == (
    probability > 0.5, 1 / (1 + np.exp(-pixel_logits[1])) > 0.5), "look at 0.5 again"

# %%
check_tasks("8.1", "8.2")
print("exercise checks passed")
