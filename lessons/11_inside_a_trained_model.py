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
# # Lesson 11 — Inside a trained Mask R-CNN
#
# **Goal.** Lessons 5 to 10 built every stage of Mask R-CNN and trained small models for a
# few minutes. Here we open a *trained* one, the reference model shipped with tinymask, and
# follow one validation image through it with a picture at every stage: the anchors that
# match its objects, the objectness map of each pyramid level, the proposals before and
# after NMS, the RoIs sampled for training, the box refinement, the RoI features of one box
# read by RoIAlign and by RoIPool, the per-class 28x28 mask logits, the pasted masks and
# the final detections. Then we scan the whole validation set for the ways the model fails.
#
# Nothing new is built: every stage is the library's own code, called one piece at a time
# (`model(..., inspect=True)` returns what happened inside). Where we recompute a stage by
# hand we check that it gives exactly what the model gave.
#
# Code: `tinymask/model/mask_rcnn.py`, `tinymask/model/rpn.py`,
# `tinymask/model/roi_heads.py`, `tinymask/weights/shipped.py`,
# `tinymask/visualize/inspect.py` (the pictures).

# %%
import numpy as np
from matplotlib.figure import Figure

import tinymask as tm
from tinymask.boxes import box_iou, clip_boxes_to_image, remove_small_boxes
from tinymask.data import make_shapes_splits
from tinymask.evaluate import check_model_fits_dataset, predict_dataset
from tinymask.functional.activation import stable_log_softmax, stable_sigmoid
from tinymask.lesson_utils import show, smoke_mode, stop_at_unsolved_tasks
from tinymask.model.mask_rcnn import MaskRCNN
from tinymask.model.rpn import flatten_predictions, top_k_indices
from tinymask.ops import assign_fpn_levels, batched_nms, roi_align, roi_pool
from tinymask.postprocess import paste_masks_in_image, resize_boxes
from tinymask.presets import load_preset, model_config_for
from tinymask.tensor import Tensor
from tinymask.visualize import draw_instances
from tinymask.visualize.box_head import plot_matched_proposals, plot_refinement
from tinymask.visualize.inspect import (
    plot_anchor_labels,
    plot_cases,
    plot_mask_logits,
    plot_objectness_levels,
    plot_pasted_masks,
    plot_proposals_nms,
    plot_roi_features,
    split_levels,
)
from tinymask.weights import available, pretrained, pretrained_record

stop_at_unsolved_tasks()
SMOKE = smoke_mode()
PALETTE = 256  # colours per stored figure (a palette PNG): keeps the notebook small

# %% [markdown]
# ## 1. Build it: the trained model, its data, and the image to follow
#
# `tinymask.pretrained("shapes-small")` loads the reference model: the lessons' small model
# (a narrow ResNet with FPN, lesson 2) trained by one recorded command, stored as
# float16 and checked against the SHA-256 in its record. The record also names the preset
# and the seed it was trained with, so we can rebuild exactly the validation images it was
# evaluated on: images it has never seen, drawn by the same generator as its training set.
#
# (In smoke mode, as in CI, a tiny untrained model of the same configuration stands in,
# on a few small images: the code runs, the pictures mean nothing.)

# %%
NAME = "shapes-small"
if NAME in available():
    record = pretrained_record(NAME)
elif SMOKE:
    record = {"preset": "full", "seed": 0}  # what bench/build_reference_model.py trains
else:
    raise RuntimeError(f"this lesson looks inside the shipped model {NAME!r}, which this "
                       "copy of tinymask does not have: reinstall tinymask, or build it "
                       "with  python bench/build_reference_model.py")
preset = load_preset(record["preset"])
data = preset["data"]
shapes_options = {k: v for k, v in data.items() if k not in ("train", "val", "seed")}
if SMOKE:
    data, shapes_options = {"train": 4, "val": 4}, {**shapes_options, "image_size": 64}
train_data, val_data = make_shapes_splits(data["train"], data["val"], seed=record["seed"],
                                          **shapes_options)
class_names = val_data.class_names
if SMOKE:
    tm.manual_seed(0)
    model = MaskRCNN(model_config_for(train_data, preset["model"],
                                      shapes_options["image_size"])).eval()
else:
    model = pretrained(NAME)
check_model_fits_dataset(model.config, val_data)
config = model.config
print(f"{config.backbone} + FPN-{config.fpn_channels}, {config.norm} norm: "
      f"{model.num_parameters():,} parameters")
if SMOKE:
    print("smoke mode: an untrained stand-in")
else:
    print(f"trained by: {record['command']}")
    print(f"in {record['train_seconds'] / 60:.0f} min on {record['machine']}")
    print(f"on the {record['val_images']} validation images: box AP "
          f"{record['metrics']['bbox']['AP']:.1f}, mask AP {record['metrics']['segm']['AP']:.1f}")
print(f"preset {record['preset']!r}, seed {record['seed']}: {len(val_data)} validation images "
      f"of {shapes_options['image_size']} px, classes {class_names[1:]}")

# %% [markdown]
# We run the model once over the whole validation set (section 4 needs it anyway) and
# pick the image to follow by a rule, so that the lesson follows whatever model ships: the
# validation image with the most objects among those with at least one *confident*
# detection (score >= 0.5), the first such image on a tie.

# %%
CONFIDENT = 0.5  # the score from which we call a detection confident, here and in section 4
predictions, _ = predict_dataset(model, val_data, progress=False)
items = [val_data[i] for i in range(len(val_data))]
object_counts = [len(target["labels"]) for _, target in items]
confident_counts = [int((p["scores"] >= CONFIDENT).sum()) for p in predictions]
with_confident = [i for i in range(len(items)) if confident_counts[i] > 0]
index = max(with_confident or range(len(items)), key=lambda i: (object_counts[i], -i))
image, target = items[index]
gt_boxes, gt_labels = target["boxes"], target["labels"]
print(f"{len(with_confident)} of {len(items)} images have a confident detection; we follow "
      f"image {index}: {object_counts[index]} objects, {confident_counts[index]} confident "
      f"detections")


def mask_sides(masks):
    """(M, H, W) binary masks -> (M,) the square root of each mask's area, in pixels."""
    return np.sqrt(masks.reshape(len(masks), masks.shape[1] * masks.shape[2]).sum(axis=1))


sizes = mask_sides(target["masks"])
for number, (box, label, size) in enumerate(zip(gt_boxes, gt_labels, sizes)):
    print(f"  object {number}: {class_names[label]:9s} box {np.round(box).astype(int)}, "
          f"sqrt(mask area) {size:.1f} px")

# %% [markdown]
# `inspect=True` returns, beside the output, what happened inside: the transformed batch,
# the feature maps, the RPN's anchors, logits and proposals, and in training mode the
# matcher's labels and the sampled anchors and RoIs. We run the image twice: in eval mode,
# as at test time, and in training mode with its target, to see what training would
# sample. No weights change (`tm.no_grad()`, no optimizer).

# %%
with tm.no_grad():
    (output,), inside = model([image], inspect=True)
    model.train()
    _, inside_train = model([image], [target], inspect=True,
                            generator=np.random.default_rng(0))
    model.eval()
batch, features = inside["batch"], inside["features"]
image_size = batch.image_sizes[0]
print("batch:", batch.images.shape, "image inside the padding:", image_size)
print("features:", {name: tuple(f.shape) for name, f in features.items()})
prediction = output  # the model's output for the image: boxes, labels, scores, masks

# %% [markdown]
# ## 2. The first stage: anchors, objectness, proposals
#
# ### 2.1 See it: the anchors that match the objects
#
# The RPN's matcher (lesson 5) labels every anchor by its best IoU with a ground-truth
# box: >= 0.7 positive, < 0.3 negative, in between ignored; and every anchor that ties an
# object's best IoU is positive too, so that no object is left without one. We call the
# model's own matcher on the model's anchors, and check it against the labels the model
# used in training mode:

# %%
rpn = model.rpn
anchors = inside["rpn"]["anchors"]  # (R, 4) over all levels
anchors_per_level = inside["rpn"]["anchors_per_level"]
train_gt_boxes = inside_train["targets"][0]["boxes"]  # in the resized image's pixels
matched = rpn.matcher(box_iou(train_gt_boxes, anchors))  # (R,): object index, -1 bg, -2 ignore
labels = np.where(matched >= 0, 1, np.where(matched == -2, -1, 0))
print("same labels as the model's:", np.array_equal(labels, inside_train["rpn"]["labels"][0]))
level_of_anchor = np.repeat(np.arange(2, 2 + len(anchors_per_level)), anchors_per_level)
sampled_positive = inside_train["rpn"]["sampled_positive"][0]
sampled_negative = inside_train["rpn"]["sampled_negative"][0]
print(f"{len(anchors)} anchors: {(labels == 1).sum()} positive, {(labels == -1).sum()} "
      f"ignored, {(labels == 0).sum()} negative; sampled for the loss: "
      f"{sampled_positive.sum()} positive + {sampled_negative.sum()} negative "
      f"(at most {rpn.sampler.batch_size_per_image} per image)")
anchor_iou = box_iou(train_gt_boxes, anchors)  # (M, R)
box_sides = np.sqrt(np.prod(train_gt_boxes[:, 2:] - train_gt_boxes[:, :2], axis=1))
print("anchor sizes per level, P2..P6:", tuple(config.anchor_sizes), "px")
for number in range(len(gt_labels)):
    mine = matched == number
    levels = ", ".join(f"P{level}: {(mine & (level_of_anchor == level)).sum()}"
                       for level in np.unique(level_of_anchor[mine]))
    print(f"  object {number} ({class_names[gt_labels[number]]}, box side "
          f"{box_sides[number]:.0f} px): best anchor IoU {anchor_iou[number].max():.2f}, "
          f"positive anchors: {mine.sum()} ({levels})")

# %%
show(plot_anchor_labels(image, anchors, labels, matched, train_gt_boxes, sampled_negative), colours=PALETTE)

# %% [markdown]
# Each object gets its positives on the level whose anchor size fits its *box* (the box
# side printed is the square root of the box's area; the anchor sizes are printed above),
# because only anchors of about its size can reach a high IoU with it. A thin shape, a
# ring or a cross, has a box much larger than its pixels. An object whose best anchor IoU printed
# above is below 0.7 gets its positives only from the low-quality matches: the anchors that
# tie its best IoU. The ignored anchors ring the objects: close, but not close enough to
# call either way.
#
# ### 2.2 See it: objectness, level by level
#
# The RPN head scores every anchor. Its logits come back flat, in the anchors' order
# `[Hi, Wi, A]` per level; `split_levels` puts them back on each level's grid, and we take
# the best of the A anchors of every cell:

# %%
logits = inside["rpn"]["objectness_logits"][0]  # (R,)
level_shapes = [tuple(features[name].shape[-2:]) for name in model.rpn_features]
per_level = split_levels(stable_sigmoid(logits), level_shapes, len(config.aspect_ratios))
level_maps = [probabilities.max(axis=2) for probabilities in per_level]  # (Hi, Wi) each
strides = rpn.anchor_generator.level_strides(level_shapes, batch.images.shape[-2:])
strides = [int(np.atleast_1d(stride)[0]) for stride in strides]
for name, level_map, size in zip(model.rpn_features, level_maps, config.anchor_sizes):
    print(f"{name}: anchors of {size:3d} px, {level_map.shape[0]:2d}x{level_map.shape[1]:<2d} "
          f"cells, highest objectness {level_map.max():.2f}, cells above 0.5: "
          f"{(level_map > 0.5).sum()}")
show(plot_objectness_levels(image, level_maps, strides, [n.upper() for n in model.rpn_features]), colours=PALETTE)

# %% [markdown]
# Read the maps against the anchor sizes printed above. Each map is drawn where its
# anchors are centred: on the *corners* of the cells, `(x * stride, y * stride)`
# (torchvision's convention, lesson 5), so a coarse level's map sits half a cell up and to
# the left. Which level scores each object highest? For every object we take the anchors
# centred inside its box and find the level of the best score, beside the level where the
# matcher put its positive anchors:

# %%
objectness = stable_sigmoid(logits)  # (R,)
centres = (anchors[:, :2] + anchors[:, 2:]) / 2
agree = 0
for number, (x1, y1, x2, y2) in enumerate(train_gt_boxes):
    inside_box = ((centres[:, 0] >= x1) & (centres[:, 0] < x2) & (centres[:, 1] >= y1)
                  & (centres[:, 1] < y2))
    positive_levels = ", ".join(f"P{level}" for level in
                                np.unique(level_of_anchor[matched == number])) or "none"
    if not inside_box.any():  # a sliver narrower than the finest stride
        print(f"  object {number}: no anchor centred inside its box; positives on "
              f"{positive_levels}")
        continue
    best_anchor = np.flatnonzero(inside_box)[np.argmax(objectness[inside_box])]
    agree += level_of_anchor[best_anchor] in level_of_anchor[matched == number]
    print(f"  object {number} ({class_names[gt_labels[number]]}, box side "
          f"{box_sides[number]:.0f} px): best objectness inside its box {objectness[best_anchor]:.2f} on P"
          f"{level_of_anchor[best_anchor]}; positive anchors on {positive_levels}")
print(f"the best objectness is on a level of the object's positive anchors for {agree} of "
      f"{len(train_gt_boxes)} objects")

# %% [markdown]
# Where the two levels agree (the count printed last), the RPN has learned FPN's division
# of labour (FPN §4.1): each level scores the objects of its anchors' size, and no level
# has to find every size. Where they do not, a neighbouring level's anchors, trained on
# objects of about that size, score the object too; NMS later keeps one of them.
#
# ### 2.3 Check it: proposals before and after NMS
#
# At test time the RPN keeps the `rpn_pre_nms_top_n_test` best anchors of every level,
# moves them by their predicted deltas, clips them to the image, drops the tiny ones, then
# runs NMS at IoU 0.7 *per level* and keeps the best `rpn_post_nms_top_n_test` (REFERENCE
# §5). We replay `RPN.propose` step by step with the library's functions, to see the boxes
# just before NMS, and check that the end is exactly the model's proposals:

# %%
rpn_features = [features[name] for name in model.rpn_features]
with tm.no_grad():
    objectness, deltas = rpn.head(rpn_features)
flat_logits, flat_deltas = flatten_predictions(objectness, deltas)  # (1, R), (1, R, 4)
print("the head's logits are the ones inspected:",
      np.array_equal(flat_logits.data[0], logits))
starts = np.cumsum([0] + list(anchors_per_level))
best_per_level = np.concatenate([start + top_k_indices(logits[start:end], rpn.pre_nms_top_n[1])
                      for start, end in zip(starts[:-1], starts[1:])])
boxes = clip_boxes_to_image(rpn.box_coder.decode(flat_deltas.data[0][best_per_level],
                                                  anchors[best_per_level]),
                            image_size)
scores = stable_sigmoid(logits[best_per_level])
box_levels = level_of_anchor[best_per_level]
big_enough = remove_small_boxes(boxes, rpn.min_size)
before_nms, before_scores = boxes[big_enough], scores[big_enough]
kept = batched_nms(before_nms, before_scores, box_levels[big_enough],
                   rpn.nms_thresh)[: rpn.post_nms_top_n[1]]
proposals = inside["rpn"]["proposals"][0]
print(f"{len(before_nms)} boxes before NMS -> {len(kept)} proposals; the same as the "
      f"model's: {np.array_equal(before_nms[kept], proposals)}")
proposal_recall = box_iou(train_gt_boxes, proposals).max(axis=1) if len(proposals) else \
    np.zeros(len(gt_labels))
print("each object's best proposal IoU:", np.round(proposal_recall, 2))
show(plot_proposals_nms(image, before_nms, before_scores, proposals, before_scores[kept],
                        train_gt_boxes, min_iou=0.5), colours=PALETTE)

# %% [markdown]
# Only the boxes on an object (IoU >= 0.5 with its box) are drawn; the panel titles count
# them. Before NMS, each object sits under a pile of near-identical boxes from
# neighbouring anchors (and from several levels); NMS keeps the best of each pile per
# level, and drops a box only for a better one that overlaps it by more than 0.7. The
# objects' best proposal IoUs printed above are what the second stage starts from: an
# object without a proposal near it cannot be detected, whatever the box head does.
#
# ## 3. The second stage: RoIs, boxes, features, masks
#
# ### 3.1 See it: the RoIs sampled for training (1:3)
#
# In training, the second stage does not see all proposals: the ground-truth boxes are
# appended, each candidate is matched at IoU 0.5 (foreground of its object's class, else
# background), and `box_batch_size_per_image` are sampled with at most a quarter
# foreground, the paper's 1:3 (Fast R-CNN §2.3; lesson 7). These are the RoIs the training
# step sampled for our image:

# %%
sampled_proposals = inside_train["roi_heads"]["sampled_proposals"][0]
sampled_labels = inside_train["roi_heads"]["sampled_labels"][0]
heads = model.roi_heads
cap = int(heads.sampler.batch_size_per_image * heads.sampler.positive_fraction)
foreground = int((sampled_labels > 0).sum())
print(f"{len(sampled_proposals)} RoIs sampled: {foreground} foreground (cap {cap}), "
      f"{len(sampled_proposals) - foreground} background; foreground fraction "
      f"{foreground / max(len(sampled_proposals), 1):.2f}")
show(plot_matched_proposals(image, sampled_proposals, sampled_labels, train_gt_boxes, class_names), colours=PALETTE)

# %% [markdown]
# When the image's objects offer fewer foreground candidates than the cap, all of them are
# taken and background fills the rest, so the foreground fraction printed above can be
# below a quarter; it never exceeds it.
#
# ### 3.2 See it: box refinement, proposal -> final box
#
# At test time the box head scores every proposal for every class and predicts four
# deltas per class. A detection is one (proposal, class) pair: that class's deltas applied
# to that proposal, kept if its score passes 0.05 and it survives per-class NMS at 0.5
# (lesson 10). We run the head on the proposals, rebuild the detections with the library's
# `postprocess_detections`, and find, for each detection, the proposal it came from:

# %%
roi_features = [features[name] for name in model.roi_features]
with tm.no_grad():
    class_logits, box_deltas, _ = heads.box_branch(roi_features, [proposals])
class_logits, box_deltas = class_logits.data, box_deltas.data
(detections,) = heads.postprocess_detections(class_logits, box_deltas, [proposals],
                                             [image_size])
back = resize_boxes(detections["boxes"], image_size, batch.original_sizes[0])
print("the same detections as the model's:", np.allclose(back, prediction["boxes"]))
class_scores = np.exp(stable_log_softmax(class_logits, axis=1))  # (P, K+1)
decoded = clip_boxes_to_image(
    heads.box_coder.decode(box_deltas, proposals).reshape(len(proposals), -1, 4), image_size)
source = np.array([np.argmin(np.abs(decoded[:, label] - box).sum(axis=1)
                             + np.abs(class_scores[:, label] - score))
                   for box, label, score in zip(detections["boxes"], detections["labels"],
                                                detections["scores"])], dtype=int)
rebuilt = decoded[source, detections["labels"]] if len(source) else detections["boxes"]
print("every detection is its proposal moved by its class's deltas:",
      np.allclose(rebuilt, detections["boxes"], atol=1e-4))

# %%
def top_detections(scores, count=3):
    """The confident detections (at most ``count``), or, if there is none, the best ones."""
    confident = np.flatnonzero(scores >= CONFIDENT)
    return confident[:count] if len(confident) else np.arange(min(count, len(scores)))


shown = top_detections(detections["scores"], count=8)
if len(shown) and len(gt_labels):
    before_iou = box_iou(train_gt_boxes, proposals[source[shown]]).max(axis=0)
    after_iou = box_iou(train_gt_boxes, detections["boxes"][shown]).max(axis=0)
    for n, b, a in zip(shown, before_iou, after_iou):
        print(f"  {class_names[detections['labels'][n]]:9s} {detections['scores'][n]:.2f}: "
              f"IoU with its object {b:.2f} (proposal) -> {a:.2f} (final box)")
    print(f"  mean over these {len(shown)}: {before_iou.mean():.2f} -> {after_iou.mean():.2f}")
show(plot_refinement(image, train_gt_boxes, proposals[source[shown]],
                     [detections["boxes"][shown]],
                     ["the proposals behind the detections", "their final boxes"]), colours=PALETTE)

# %% [markdown]
# Each line reads left to right as the refinement: the IoU of the proposal a detection came
# from with the object it overlaps most, then the IoU of the box after its class's deltas.
# A head that has learned its job raises the second number above the first, most where
# the proposal was loose; the means printed last sum it up.
#
# ### 3.3 Check it: RoIAlign and RoIPool on the real feature map
#
# The box head read each proposal through RoIAlign (lesson 6) from the pyramid level that
# FPN's Eqn. 1 assigns it. We take the best detection's box, find its level, and read it
# from the real feature map twice: with RoIAlign, as the model does, and with RoIPool,
# which rounds the box and its bins to whole cells. First, the library's pooler and a
# direct `roi_align` call agree:

# %%
best = int(shown[0]) if len(shown) else 0
box = detections["boxes"][best]
level = int(assign_fpn_levels(box[None])[0])
stride = heads.box_pooler.strides[level - 2]
feature_map = features[f"p{level}"].data  # (1, F, H, W)
size = heads.box_pooler.output_size
with tm.no_grad():
    pooled = heads.box_pooler(roi_features, [box[None]]).data[0]  # (F, 7, 7)
aligned = roi_align(feature_map, [box[None]], size, 1.0 / stride, config.sampling_ratio,
                    config.aligned).data[0]
pooled_max = roi_pool(feature_map, [box[None]], size, 1.0 / stride).data[0]
print(f"box {np.round(box, 1)} ({class_names[detections['labels'][best]]}), "
      f"sqrt(area) {np.sqrt(np.prod(box[2:] - box[:2])):.1f} px -> P{level}, stride {stride}")
print("the pooler is roi_align:", np.allclose(pooled, aligned))
detection_levels = assign_fpn_levels(detections["boxes"])
print(f"the levels Eqn. 1 gives this image's {len(detection_levels)} detections: "
      + ", ".join(f"P{level}: {(detection_levels == level).sum()}"
                  for level in np.unique(detection_levels)))
all_boxes = np.concatenate([t["boxes"] for _, t in items])
large = (np.sqrt(np.prod(all_boxes[:, 2:] - all_boxes[:, :2], axis=1)) >= 112).sum()
print(f"validation objects whose box side is 112 px or more: {large} of {len(all_boxes)}")
print(f"RoIAlign vs RoIPool, mean |difference| over the {aligned.shape[0]} channels: "
      f"{np.abs(aligned - pooled_max).mean():.3f} (mean |feature| {np.abs(aligned).mean():.3f})")

# %%
channel = int(np.argmax(aligned.reshape(len(aligned), -1).var(axis=1)))  # the most varied
show(plot_roi_features(feature_map[0, channel], box, stride, aligned[channel],
                       pooled_max[channel],
                       (f"P{level}, channel {channel}", "RoIAlign 7x7 (the model's)",
                        "RoIPool 7x7"), config.sampling_ratio, config.aligned), colours=PALETTE)

# %% [markdown]
# FPN's Eqn. 1, k = floor(4 + log2(sqrt(wh) / 224)), was set for COCO's 800-px images: a
# box of side 224 px (ImageNet's crop) reads P4, one of 112 px P3, and every smaller box
# P2, the lowest level the heads read. In 128-px images a box rarely reaches 112 px (the
# validation boxes that do are counted above), so the RoI heads read P2 for nearly every
# box, as for this image's detections; only the RPN uses every level (section 2.2).
#
# On the feature map (left), the box as given is dashed white (under the cyan where they
# meet). RoIPool snaps it to whole cells (the red box) and takes each bin's maximum, so
# its 7x7 grid is blockier and shifted against the box as given; RoIAlign samples the
# exact box (cyan: the same box, half a cell back with `aligned=True`). What does that
# cost the model? We feed both to the box head, which was trained on RoIAlign's features
# only:

# %%
with tm.no_grad():
    head_scores = {name: np.exp(stable_log_softmax(
        heads.box_predictor(heads.box_head(Tensor(readout[None])))[0].data, axis=1))[0]
        for name, readout in (("RoIAlign", aligned), ("RoIPool", pooled_max))}
label = int(detections["labels"][best])
for name, probabilities in head_scores.items():
    print(f"{name:8s} features: score of {class_names[label]!r} {probabilities[label]:.3f}, "
          f"most likely class {class_names[int(np.argmax(probabilities))]!r}")

# %% [markdown]
# (A head trained on RoIPool would have learned to read RoIPool's features; the paper's
# Table 2c trains one model per operation. The printed scores only say how much the two
# readouts of one box differ for this head.)
#
# ### 3.4 See it: the 28x28 mask logits, per class
#
# At test time the mask head runs on the final detections only (§3.1, "Inference"). It
# predicts one m x m map *per class* (the paper's decoupling of masks from classes); the
# box head's class picks which one is used, through a sigmoid. Here are all the class
# maps of the top detections:

# %%
with tm.no_grad():
    mask_logits = heads.mask_branch(roi_features, [detections["boxes"]]).data  # (D, K+1, m, m)
top = top_detections(detections["scores"])
print("mask logits:", mask_logits.shape)
for n in top:
    positive_cells = ", ".join(f"{class_names[k]} {(mask_logits[n, k] > 0).mean():.2f}"
                               for k in range(1, len(class_names)))
    print(f"  {class_names[detections['labels'][n]]:9s} detection: fraction of cells with "
          f"logit > 0 per class map: {positive_cells}")
crops = [image[max(int(y1), 0): int(np.ceil(y2)), max(int(x1), 0): int(np.ceil(x2))]
         for x1, y1, x2, y2 in back[top]]
show(plot_mask_logits(mask_logits[top], detections["labels"][top], detections["scores"][top],
                      class_names, crops), colours=PALETTE)

# %% [markdown]
# The framed map, the detected class's, is the one the model uses. The other maps were
# trained only on RoIs of *their* class (the loss reads one channel per RoI, lesson 8), so
# on this object they are a guess at what it would look like if it were that class; the
# fractions printed above say how much of each map is above 0 (a probability above 0.5).
# Because the maps never compete (a sigmoid per class, not a softmax over classes), a
# clear shape in one map takes nothing from another (lesson 8, Table 2b).
#
# ### 3.5 Check it: the pasted masks and the final detections
#
# The detected class's map goes through a sigmoid, is resized onto its box in the
# original image (padded to 30x30 first, lesson 10) and thresholded at 0.5. Pasting the
# maps ourselves must give exactly the model's masks:

# %%
rows = np.arange(len(mask_logits))
probabilities = stable_sigmoid(mask_logits[rows, detections["labels"]])  # (D, m, m)
pasted = paste_masks_in_image(probabilities, back, batch.original_sizes[0])  # (D, H, W)
print("the same masks as the model's:", np.array_equal(pasted > 0.5, prediction["masks"]))
show(plot_pasted_masks(image, probabilities[top], back[top], pasted[top],
                       detections["labels"][top], class_names), colours=PALETTE)

# %%
print(f"{len(prediction['scores'])} detections above the model's score threshold "
      f"{config.box_score_thresh}, {(prediction['scores'] >= CONFIDENT).sum()} of them confident")
figure = Figure(figsize=(6.0, 3.1), layout="constrained")
left, right = figure.subplots(1, 2)
draw_instances(left, image, prediction["boxes"], prediction["labels"], prediction["masks"],
               prediction["scores"], class_names, score_threshold=CONFIDENT)
left.set_title(f"the confident detections (score >= {CONFIDENT})", fontsize=9)
draw_instances(right, image, gt_boxes, gt_labels, target["masks"], class_names=class_names)
right.set_title("the ground truth", fontsize=9)
show(figure, colours=PALETTE)

# %% [markdown]
# ## 4. Where it fails: a scan of the validation set
#
# One image shows how the model works; the whole validation set shows where it does not.
# We look at the confident detections (score >= 0.5) of every validation image and count
# four kinds of failure, each defined by a rule written in the code below:
#
# - **missed**: a ground-truth object with no confident detection at box IoU >= 0.5, of any
#   class;
# - **wrong class**: an object found (not missed) whose best-overlapping confident
#   detection (highest box IoU, at least 0.5) is of another class;
# - **merged**: a confident detection whose *mask* overlaps two or more ground-truth masks
#   with IoU >= 0.3 each: one detection standing for two objects. We use masks, not boxes:
#   an object's box often overlaps a neighbour it occludes, while the visible masks of two
#   objects never overlap, so only a detection that covers both has IoU >= 0.3 with each;
# - **duplicate**: an object with two or more confident detections at box IoU >= 0.5.
#   Per-class NMS removes a same-class box that overlaps a better one by more than 0.5, so
#   a duplicate is the object detected as two classes, or two boxes of its class that
#   overlap each other at most 0.5 (the scan counts both).
#
# A failure of one kind can also be one of another (an object detected as two classes is
# a duplicate, and may be a wrong class too).

# %%
MATCH_IOU, MERGE_IOU = 0.5, 0.3


def mask_iou(masks_a, masks_b):
    """(A, H, W) and (B, H, W) binary masks -> (A, B) IoU."""
    pixels = masks_a.shape[1] * masks_a.shape[2]
    a = masks_a.reshape(len(masks_a), pixels).astype(np.float64)
    b = masks_b.reshape(len(masks_b), pixels).astype(np.float64)
    intersection = a @ b.T
    union = a.sum(axis=1)[:, None] + b.sum(axis=1)[None, :] - intersection
    return intersection / np.maximum(union, 1.0)


def find_failures(prediction, target, min_score=CONFIDENT):
    """The failures of one image: kind -> list of (object indices, detection indices)."""
    keep = np.flatnonzero(prediction["scores"] >= min_score)  # the confident detections
    boxes, labels = prediction["boxes"][keep], prediction["labels"][keep]
    overlap = box_iou(target["boxes"], boxes)  # (M, D)
    failures = {"missed": [], "wrong class": [], "merged": [], "duplicate": []}
    for obj in range(len(target["labels"])):
        found = np.flatnonzero(overlap[obj] >= MATCH_IOU)
        if len(found) == 0:
            failures["missed"].append(([obj], []))
            continue
        best = found[np.argmax(overlap[obj, found])]
        if labels[best] != target["labels"][obj]:
            failures["wrong class"].append(([obj], [int(keep[best])]))
        if len(found) >= 2:
            failures["duplicate"].append(([obj], keep[found].tolist()))
    mask_overlap = mask_iou(target["masks"], prediction["masks"][keep])  # (M, D)
    for det in range(len(keep)):
        covered = np.flatnonzero(mask_overlap[:, det] >= MERGE_IOU)
        if len(covered) >= 2:
            failures["merged"].append((covered.tolist(), [int(keep[det])]))
    return failures


failures = [find_failures(p, t) for p, (_, t) in zip(predictions, items)]
total_objects = sum(object_counts)
for kind in failures[0]:
    count = sum(len(f[kind]) for f in failures)
    unit = "detection(s)" if kind == "merged" else "objects"
    print(f"{kind:12s} {count:4d} {unit}" + (f" ({count / total_objects:.0%} of the "
                                             f"{total_objects} objects)" if unit == "objects"
                                             else ""))
two_classes = sum(len(set(p["labels"][dets].tolist())) > 1
                  for p, f in zip(predictions, failures) for _, dets in f["duplicate"])
print(f"of the duplicates, {two_classes} are the object detected as two or more classes")

# %% [markdown]
# **Missed objects, by size.** COCO calls objects under 32² pixels of area "small"; at
# 128 pixels nearly all shapes are. A finer split by the side of the mask (the square
# root of its area) shows where the misses are:

# %%
all_sizes = np.concatenate([mask_sides(t["masks"]) for _, t in items])
missed_flags = np.concatenate([np.isin(np.arange(len(t["labels"])),
                                       [objs[0] for objs, _ in f["missed"]])
                               for (_, t), f in zip(items, failures)])
edges = [0, 8, 16, 32, np.inf]
for low, high in zip(edges[:-1], edges[1:]):
    in_bin = (all_sizes >= low) & (all_sizes < high)
    print(f"sqrt(area) {low:>3.0f}..{high:<4.0f} px: {in_bin.sum():4d} objects, "
          f"{missed_flags[in_bin].sum():4d} missed ({missed_flags[in_bin].mean() if in_bin.any() else 0:.0%})")

# %% [markdown]
# **Wrong classes.** Which class is taken for which:

# %%
def with_article(noun):
    return ("an " if noun[0] in "aeiou" else "a ") + noun


confusions = {}
for prediction_i, (_, t), f in zip(predictions, items, failures):
    for (obj,), (det,) in f["wrong class"]:
        pair = (class_names[t["labels"][obj]], class_names[prediction_i["labels"][det]])
        confusions[pair] = confusions.get(pair, 0) + 1
for (truth, taken), count in sorted(confusions.items(), key=lambda item: -item[1]):
    print(f"  {with_article(truth)} detected as {with_article(taken)}: {count}")
if not confusions:
    print("  none")

# %% [markdown]
# A few of each kind, one per image: for the missed objects, the largest one of each of
# the first three size ranges of the table. Ground truth is white and dashed, with its
# class under the box; detections are in class colours with their scores. For a
# missed object we also draw the detection (of any score) that overlaps it most, if any:
# often it is there, with a score below 0.5 or a box that is off.

# %%
def case(i, objects, detection_indices, title):
    p, (img, t) = predictions[i], items[i]
    return {"image": img, "gt_boxes": t["boxes"][objects], "gt_labels": t["labels"][objects],
            "boxes": p["boxes"][detection_indices], "labels": p["labels"][detection_indices],
            "scores": p["scores"][detection_indices], "title": title}


gallery = {}
missed = sorted(((all_sizes[sum(object_counts[:i]) + objs[0]], i, objs[0])
                 for i, f in enumerate(failures) for objs, _ in f["missed"]))
# the largest missed object of each of the first three size ranges of the table above
one_per_range = [max(m for m in missed if low <= m[0] < high)
                 for low, high in zip(edges[:3], edges[1:4])
                 if any(low <= m[0] < high for m in missed)]
gallery["missed"] = []
for size_px, i, obj in one_per_range:
    overlap = box_iou(items[i][1]["boxes"][[obj]], predictions[i]["boxes"])[0]
    nearest = [int(np.argmax(overlap))] if overlap.size and overlap.max() > 0 else []
    gallery["missed"].append(case(i, [obj], nearest, f"image {i}: {size_px:.0f} px object"))
for kind in ("wrong class", "merged", "duplicate"):  # the first case of the first images
    gallery[kind] = [case(i, *f[kind][0], f"image {i}")
                     for i, f in enumerate(failures) if f[kind]][:3]
show(plot_cases(gallery, class_names), colours=PALETTE)

# %% [markdown]
# Read the counts and the pictures together. The size table says whether the model's
# misses are concentrated on the smallest objects, those covered by a handful of P2 cells
# and the fewest positive anchors (section 2.1); the confusion list says which shapes it
# mixes up; the merged and duplicate counts say how often one detection does the work of
# two or two detections the work of one.

# %% [markdown]
# ## 5. What the paper shows, and what we see
#
# The paper shows the final stage only (its Figures 2 and 5, masks on COCO test images);
# matterport's Mask R-CNN notebooks `inspect_data` and `inspect_model` made looking at
# every stage, as above, a habit. Our model is the paper's at a small scale: the same
# stages in the same order, with every count shrunk for 128-pixel images. The paper's
# numbers are those of its FPN model on COCO (§3.1, "Implementation details"); ours are
# read from the model's config. The two APs measure different data, 80 COCO classes
# against five flat shapes, and are side by side for scale only:

# %%
paper_vs_ours = [
    ("shorter image side (px)", 800, config.min_size),
    ("anchor sizes (px), P2..P6", (32, 64, 128, 256, 512), tuple(config.anchor_sizes)),
    ("anchors sampled per image (RPN)", 256, config.rpn_batch_size_per_image),
    ("proposals per image at test", 1000, config.rpn_post_nms_top_n_test),
    ("RoIs sampled per image (training)", 512, config.box_batch_size_per_image),
    ("foreground fraction of the RoIs", 0.25, config.box_positive_fraction),
    ("detections per image", 100, config.detections_per_img),
    ("mask size m", 28, config.mask_size),
]
print(f"{'':36s}{'paper (COCO)':>28s}{'ours':>24s}")
for name, paper, ours in paper_vs_ours:
    print(f"{name:36s}{str(paper):>28s}{str(ours):>24s}")
if not SMOKE:
    print(f"{'mask AP':36s}{'35.7 (R-101-FPN, test-dev)':>28s}"
          f"{record['metrics']['segm']['AP']:>17.1f} (shapes)")

# %% [markdown]
# ## Summary
#
# - A trained Mask R-CNN, stage by stage: the matcher gives each object a few positive
#   anchors on the level of its box size; the RPN's objectness lights up on or near that
#   level; NMS thins piles of boxes into proposals; training samples RoIs at most 1:3
#   foreground; the box head moves each proposal with its class's deltas; RoIAlign reads
#   the exact box while RoIPool reads whole cells; the mask head draws one 28x28 map per
#   class and the box head's class picks one; the map is pasted into the image and
#   thresholded.
# - Each stage was recomputed from the library's pieces and checked equal to the model's
#   own output: labels, proposals, detections, pooled features and masks.
# - The validation scan counts missed objects (by size), wrong classes, merged instances and
#   duplicates, each defined by an explicit rule on IoU and score.
#
# ## Exercises
#
# 1. How many anchors are positive for the smallest object of the image we followed, and
#    why that many? Write the count from `matched` (section 2.1). The check recomputes it
#    from the IoU matrix with the matcher's rule spelled out: an anchor is positive for an
#    object if that object is its best match and its IoU is >= 0.7, or it ties the best
#    IoU of some object (a low-quality match).
# 2. Lower the confidence to 0.3: how many objects of the validation set are missed then?
#    Use `find_failures` with `min_score=0.3`. The check counts them with a plain loop over
#    every (object, detection) pair, and the count can only fall as the threshold falls.

# %%
smallest = int(np.argmin(sizes))
positives_of_smallest = int((matched == smallest).sum())  # your answer
print(f"the smallest object ({class_names[gt_labels[smallest]]}, {sizes[smallest]:.0f} px) "
      f"has {positives_of_smallest} positive anchor(s); its best anchor IoU is "
      f"{anchor_iou[smallest].max():.2f}, "
      + ("below 0.7, so they are all low-quality matches: the anchors tying that best IoU"
         if anchor_iou[smallest].max() < 0.7 else "at least 0.7, so they pass the threshold"))
missed_at_03 = sum(len(find_failures(p, t, min_score=0.3)["missed"])  # your answer
                   for p, (_, t) in zip(predictions, items))

# %%
best_gt_of_anchor, best_iou_of_anchor = anchor_iou.argmax(axis=0), anchor_iou.max(axis=0)
ties = (anchor_iou == anchor_iou.max(axis=1, keepdims=True)).any(axis=0)
expected = int(((best_gt_of_anchor == smallest) & ((best_iou_of_anchor >= 0.7) | ties)).sum())
assert positives_of_smallest == expected, (positives_of_smallest, expected)  # exercise 1


def iou_of(a, b):
    width = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    height = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height
    return width * height / union


missed_by_loop = sum(
    not any(score >= 0.3 and iou_of(obj_box, det_box) >= MATCH_IOU
            for det_box, score in zip(p["boxes"], p["scores"]))
    for p, (_, t) in zip(predictions, items) for obj_box in t["boxes"])
missed_at_05 = sum(len(f["missed"]) for f in failures)
assert missed_at_03 == missed_by_loop <= missed_at_05, (missed_at_03, missed_by_loop)  # ex. 2
print(f"missed at confidence 0.3: {missed_at_03}, at 0.5: {missed_at_05}")
print("exercise checks passed")
