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
# # Lesson 7 — The box head: sampling, class-specific boxes and the Fast R-CNN loss
#
# **Goal.** The RPN (lesson 5) proposes a few hundred boxes; RoIAlign (lesson 6) reads a
# 7x7 window of features for each. The *box head* decides, for every proposal, which class
# it is (or background) and how to move its box onto the object, with one set of four
# deltas *per class*. We label and sample the proposals of one image, write down the Fast
# R-CNN loss and check the library against a by-hand computation, see which deltas the
# loss reads, train the head alone on fixed features, and turn its outputs into detections.
#
# Code: `tinymask/model/roi_heads.py` (`select_training_samples`, `box_branch`,
# `postprocess_detections`), `tinymask/model/heads.py` (`TwoMLPHead`, `BoxPredictor`),
# `tinymask/losses.py` (`fast_rcnn_losses`), `tinymask/matching.py`,
# `tinymask/box_coder.py`.

# %%
import numpy as np

import tinymask as tm
from tinymask.box_coder import BoxCoder
from tinymask.boxes import box_iou, clip_boxes_to_image, remove_small_boxes
from tinymask.config import MaskRCNNConfig
from tinymask.course import check_tasks
from tinymask.data import ShapesDataset
from tinymask.lesson_utils import show, smoke_mode, stop_at_unsolved_tasks
from tinymask.losses import fast_rcnn_losses
from tinymask.matching import BalancedPositiveNegativeSampler, Matcher
from tinymask.model.heads import BoxPredictor, TwoMLPHead
from tinymask.model.mask_rcnn import MaskRCNN
from tinymask.optim import SGD
from tinymask.visualize.box_head import (
    plot_candidates_and_detections,
    plot_deltas_read,
    plot_matched_proposals,
    plot_refinement,
)
from tinymask.visualize.training import plot_loss_curves

stop_at_unsolved_tasks()
SMOKE = smoke_mode()

# %% [markdown]
# Where the box head sits, in training (REFERENCE.md §4, §8):
#
# ```
# proposals (RPN) + the ground-truth boxes appended
#   --match at IoU 0.5-->  each one gets a class 1..K, or 0 = background
#   --sample 512 per image, at most 25% foreground (the paper's 1:3)-->  R RoIs
#   --RoIAlign 7x7 (lesson 6)-->  (R, F, 7, 7)
#   --TwoMLPHead: flatten, fc 1024 + ReLU, fc 1024 + ReLU-->  (R, 1024)
#   --BoxPredictor-->  class logits (R, K+1)  and  deltas (R, 4(K+1)), weights (10, 10, 5, 5)
# ```
#
# The lessons' small model scales the counts down for 128-px images; these are the numbers
# it uses (section 5 sets them beside the paper's):

# %%
dataset = ShapesDataset(64, image_size=128, seed=0)
config = MaskRCNNConfig.small(num_classes=dataset.num_classes)
for name in ("box_fg_iou_thresh", "box_batch_size_per_image", "box_positive_fraction",
             "box_pool_size", "box_head_dim", "bbox_reg_weights", "box_smooth_l1_beta",
             "num_classes"):
    print(f"{name:26s} {getattr(config, name)}")
print("classes:", dataset.class_names)

# %% [markdown]
# ## 1. Build it: from proposals to the Fast R-CNN loss
#
# A trained RPN is lesson 9's business; here we make the proposals by hand, so that we
# know what they should become: each ground-truth box with its corners moved by a random
# 15% of its size (proposals that found an object, roughly), plus boxes of random centre
# and size (proposals that found nothing).

# %%
def hand_made_proposals(gt_boxes, rng, jitters_per_box=16, random_boxes=100, image_size=128):
    """Stand-ins for the RPN's proposals (N, 4): jittered ground-truth boxes and random ones."""
    sizes = np.tile(gt_boxes[:, 2:] - gt_boxes[:, :2], 2)  # (M, 4): w, h, w, h
    noise = rng.normal(0.0, 0.15, (len(gt_boxes), jitters_per_box, 4))
    jittered = (gt_boxes[:, None] + noise * sizes[:, None]).reshape(-1, 4)
    centres = rng.uniform(0, image_size, (random_boxes, 2))
    sides = np.exp(rng.uniform(np.log(8), np.log(80), (random_boxes, 2)))
    random = np.concatenate([centres - sides / 2, centres + sides / 2], axis=1)
    boxes = clip_boxes_to_image(np.concatenate([jittered, random]), (image_size, image_size))
    return boxes[remove_small_boxes(boxes, 2.0)].astype(np.float32)


image, target = dataset[17]
gt_boxes, gt_labels = target["boxes"], target["labels"]
proposals = hand_made_proposals(gt_boxes, np.random.default_rng(0))
print(f"{len(gt_boxes)} objects: {[dataset.class_names[k] for k in gt_labels]}; "
      f"{len(proposals)} proposals")

# %% [markdown]
# **Match.** During training the ground-truth boxes are appended to the proposals, so
# every object has at least one perfect RoI from the first step on. Each candidate then
# takes the ground truth it overlaps most: at IoU >= 0.5 it is foreground of that box's
# class, below it is background (Mask R-CNN §3.1). The box head's matcher has no "ignore"
# band and no low-quality matches, unlike the RPN's (lesson 5).

# %%
candidates = np.concatenate([proposals, gt_boxes])
matched = Matcher(config.box_fg_iou_thresh, config.box_bg_iou_thresh)(
    box_iou(gt_boxes, candidates))  # (N,): ground-truth index, or -1 for background
labels = np.where(matched >= 0, gt_labels[np.clip(matched, 0, None)], 0)
print(f"{len(candidates)} candidates: {(labels > 0).sum()} foreground, "
      f"{(labels == 0).sum()} background")

# %%
show(plot_matched_proposals(image, candidates, labels, gt_boxes, dataset.class_names))

# %% [markdown]
# **Sample.** Background outnumbers objects many times over in a real image, and a loss
# averaged over all candidates would mostly teach "background". The sampler keeps at most
# `batch size x positive fraction` foreground RoIs, chosen at random, and fills the rest of
# the batch with background (lesson 5's sampler, with the box head's numbers):

# %%
sampler = BalancedPositiveNegativeSampler(config.box_batch_size_per_image,
                                          config.box_positive_fraction)
positive, negative = sampler([labels], np.random.default_rng(0))
cap = int(config.box_batch_size_per_image * config.box_positive_fraction)
print(f"foreground cap: int({config.box_batch_size_per_image} x "
      f"{config.box_positive_fraction}) = {cap}")
print(f"sampled: {positive[0].sum()} foreground (of {(labels > 0).sum()}), "
      f"{negative[0].sum()} background (of {(labels == 0).sum()}), "
      f"{positive[0].sum() + negative[0].sum()} RoIs")

# %% [markdown]
# The model does these steps in `RoIHeads.select_training_samples`, which also encodes the
# regression targets. Given the same random generator it samples exactly the RoIs above:

# %%
tm.manual_seed(0)
model = MaskRCNN(config)  # random weights; only its box head is trained below
heads = model.roi_heads
rois, roi_labels, regression_targets, _ = heads.select_training_samples(
    [proposals], [target], np.random.default_rng(0))
rois, roi_labels, regression_targets = rois[0], roi_labels[0], regression_targets[0]
assert np.array_equal(rois, candidates[positive[0] | negative[0]])
print(f"select_training_samples: {len(rois)} RoIs, {(roi_labels > 0).sum()} foreground")

# %% [markdown]
# **Regression targets.** Each foreground RoI should move onto its matched object. As in
# the RPN, the target is encoded as deltas (lesson 5): centre shifts in units of the RoI's
# size and log size ratios; a RoI that is already its ground-truth box gets zero deltas.

# %%
foreground = np.flatnonzero(roi_labels > 0)
two_per_class = np.concatenate([foreground[roi_labels[foreground] == k][:2]
                                for k in np.unique(roi_labels[foreground])])
print("RoI                           class      IoU    target deltas (dx, dy, dw, dh)")
for row in two_per_class:
    iou = box_iou(gt_boxes, rois[row : row + 1]).max()
    box = np.array2string(rois[row], formatter={"float_kind": "{:5.1f}".format})
    deltas = np.array2string(regression_targets[row], precision=2, floatmode="fixed",
                             sign=" ")
    print(f"{box:30s}{dataset.class_names[roi_labels[row]]:10s}{iou:5.2f}   {deltas}")
print("a ground-truth box against itself:", heads.box_coder.encode(gt_boxes, gt_boxes)[0])

# %% [markdown]
# Why the weights (10, 10, 5, 5)? The proposals that reach the box head already sit near
# their objects, so the raw offsets are small. Fast R-CNN normalised its targets to unit
# variance (§2.3); the weights do the same with fixed constants (1/0.1 for the shifts,
# 1/0.2 for the log sizes), so the regression outputs live at about unit scale. Encoded without weights and with them, the
# spread of the targets over these foreground RoIs is:

# %%
matched_boxes = gt_boxes[box_iou(gt_boxes, rois[foreground]).argmax(axis=0)]
for weights in ((1.0, 1.0, 1.0, 1.0), config.bbox_reg_weights):
    spread = BoxCoder(weights).encode(matched_boxes, rois[foreground]).std(axis=0)
    print(f"weights {weights}: std of (dx, dy, dw, dh) = {np.round(spread, 3)}")

# %% [markdown]
# **The head.** RoIAlign reads a 7x7 window of the FPN level each RoI belongs to (lesson
# 6), `TwoMLPHead` flattens it into two fully connected layers, and `BoxPredictor` maps
# the result to K+1 class logits and 4(K+1) deltas. The backbone's weights are random and
# stay fixed in this lesson: we compute the feature maps once.

# %%
image_indices = (17, 41, 34, 10, 27, 60)  # four to train on (17 is the one above), two unseen
items = [dataset[i] for i in image_indices]
targets = [item[1] for item in items]
with tm.no_grad():
    batch, _ = model.transform([item[0] for item in items], None)
    pyramid = model.backbone(tm.Tensor(batch.images))
feature_maps = [pyramid[name].data for name in model.roi_features]  # P2..P5, (6, F, Hl, Wl)
print("image sizes after the transform:", batch.image_sizes[0], "(the 128-px images unchanged)")


def features_of(images):
    """The fixed feature maps of some of these images (positions in ``items``), in order."""
    return [tm.Tensor(level[list(images)]) for level in feature_maps]


pooled = heads.box_pooler(features_of([0]), [rois])
box_features = heads.box_head(pooled)
class_logits, box_deltas = heads.box_predictor(box_features)
print(f"RoIAlign       {pooled.shape}")
print(f"TwoMLPHead     {box_features.shape}   ({heads.box_head.num_parameters():,} parameters, "
      f"{heads.box_head.fc6.num_parameters():,} of them in fc6)")
print(f"BoxPredictor   logits {class_logits.shape}, deltas {box_deltas.shape}   "
      f"({heads.box_predictor.num_parameters():,} parameters)")
full_size = TwoMLPHead(256 * 7 * 7, 1024).num_parameters() + BoxPredictor(1024, 91)\
    .num_parameters()
print(f"the full-size FPN box head (F = 256, 1024 wide, COCO's 91 classes): {full_size:,}")

# %% [markdown]
# `RoIHeads.box_branch` is these three lines. Almost all the head's weights are in its
# first layer, `fc6`, which sees the whole 7x7 window of every channel at once.
#
# **The loss.** Fast R-CNN trains classification and box regression together, one
# multi-task loss per RoI (Fast R-CNN Eqn. 1; Mask R-CNN §3 adds `L_mask` to it):
#
# $$L = L_{cls}(p, u) + \lambda\,[u \ge 1]\, L_{loc}(t^u, v)$$
#
# - $L_{cls}$: softmax cross-entropy of the K+1 logits against the RoI's class u, averaged
#   over the R sampled RoIs;
# - $L_{loc}$: smooth L1 between $t^u$, the four deltas the head predicts *for class u*,
#   and the target deltas v; $[u \ge 1]$ switches it off for background, which has no
#   box. We (as torchvision) sum it over the foreground RoIs and divide by R, with
#   $\lambda = 1$ and the smooth L1's switch point at $\beta = 1/9$.
#
# This is **task 7.1**, `fast_rcnn_losses` in `tinymask/losses.py`. On the sampled RoIs
# of our image, with the untrained head:

# %%
loss_classifier, loss_box_reg = fast_rcnn_losses(
    class_logits, box_deltas, roi_labels, regression_targets, beta=config.box_smooth_l1_beta)
print(f"loss_classifier {loss_classifier.item():.6f}   loss_box_reg {loss_box_reg.item():.6f}")
print(f"log(K+1) = {np.log(config.num_classes):.6f}: the classifier loss of a head that "
      "cannot tell the classes apart yet")

# %% [markdown]
# ## 2. Check it: the loss by hand, and which deltas it reads
#
# The same two numbers from their definitions, in NumPy:

# %%
logits = class_logits.data.astype(np.float64)
log_p = logits - logits.max(axis=1, keepdims=True)
log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))  # log softmax, (R, K+1)
by_hand_classifier = -log_p[np.arange(len(roi_labels)), roi_labels].mean()

per_class = box_deltas.data.reshape(len(roi_labels), -1, 4)  # (R, K+1, 4)
error = np.abs(per_class[foreground, roi_labels[foreground]] - regression_targets[foreground])
beta = config.box_smooth_l1_beta
smooth_l1 = np.where(error < beta, 0.5 * error**2 / beta, error - 0.5 * beta)
by_hand_box_reg = smooth_l1.sum() / len(roi_labels)

print(f"loss_classifier: library {loss_classifier.item():.6f}, by hand {by_hand_classifier:.6f}")
print(f"loss_box_reg:    library {loss_box_reg.item():.6f}, by hand {by_hand_box_reg:.6f}")
assert np.isclose(loss_classifier.item(), by_hand_classifier, rtol=1e-5)
assert np.isclose(loss_box_reg.item(), by_hand_box_reg, rtol=1e-5)

# %% [markdown]
# **Class-specific boxes.** Why 4(K+1) deltas and not 4? A RoI that half covers a ring and
# half covers background could be a small ring or a larger cross; where the box should go
# depends on *what* the object is. So the head predicts, for every class, where the box
# would be if the object were of that class (R-CNN's per-class box regressors, folded into
# one layer). The RPN, which knows no classes, predicts one set per anchor.
#
# The loss reads only the four deltas of each foreground RoI's *ground-truth* class: the
# other classes' deltas, and all of a background RoI's, get no gradient from it. Where
# the gradient of `loss_box_reg` is not zero, for three RoIs of each class in our batch
# and three of background:

# %%
deltas_tensor = tm.Tensor(box_deltas.data, requires_grad=True)
_, box_loss = fast_rcnn_losses(class_logits, deltas_tensor, roi_labels, regression_targets,
                               beta=config.box_smooth_l1_beta)
box_loss.backward()
rows_shown = np.concatenate([np.flatnonzero(roi_labels == k)[:3] for k in np.unique(roi_labels)
                             if k > 0] + [np.flatnonzero(roi_labels == 0)[:3]])
touched = deltas_tensor.grad[rows_shown] != 0  # (rows, 4(K+1))
show(plot_deltas_read(touched, roi_labels[rows_shown], dataset.class_names))
for row, label in ((0, roi_labels[rows_shown[0]]), (-1, roi_labels[rows_shown[-1]])):
    print(f"a RoI of class {label} ({dataset.class_names[label]}): gradient in columns "
          f"{np.flatnonzero(touched[row]).tolist()}")

# %% [markdown]
# At inference there is no ground truth: every (RoI, class) pair becomes a candidate
# detection, with that class's score and *that class's box*, decoded from the class's four
# deltas (section 4). A RoI's "ring" detection and its "cross" detection can have
# different boxes.
#
# ## 3. See it: training the box head alone
#
# The box head of the model above (untrained so far) on its own, on the fixed features of
# four images, with fresh hand-made proposals at every step: the model's own
# `select_training_samples`, `box_branch` and `fast_rcnn_losses`, and SGD on the head's
# weights only, two images a step.

# %%
head_parameters = [*heads.box_head.parameters(), *heads.box_predictor.parameters()]
optimizer = SGD(head_parameters, lr=0.005, momentum=0.9, weight_decay=1e-4)


def refine(heads, images, proposals_per_image):
    """The head's boxes (N, K+1, 4) and class probabilities (N, K+1) for each image."""
    with tm.no_grad():
        logits, deltas, _ = heads.box_branch(features_of(images), proposals_per_image)
    boxes = heads.box_coder.decode(deltas.data, np.concatenate(proposals_per_image))
    probabilities = tm.functional.softmax(logits, dim=1).data
    return boxes.reshape(len(probabilities), -1, 4), probabilities


def foreground_quality(heads, images, proposals_per_image):
    """Over the foreground proposals of some images: their mean IoU with their object, the
    mean IoU of the head's box for the object's class, and how often the head's most
    probable class is the object's."""
    proposed, refined, correct = [], [], []
    for index, proposals_here in zip(images, proposals_per_image):
        target = targets[index]
        iou = box_iou(target["boxes"], proposals_here)  # (M, N)
        fg = np.flatnonzero(iou.max(axis=0) >= 0.5)
        objects = iou[:, fg].argmax(axis=0)
        classes = target["labels"][objects]
        boxes, probabilities = refine(heads, [index], [proposals_here[fg]])
        proposed += list(iou[objects, fg])
        refined += [box_iou(target["boxes"][m : m + 1], boxes[n, k][None])[0, 0]
                    for n, (m, k) in enumerate(zip(objects, classes))]
        correct += list(probabilities.argmax(axis=1) == classes)
    return np.mean(proposed), np.mean(refined), np.mean(correct)


training_images, unseen_images = [0, 1, 2, 3], [4, 5]
new_proposals = [hand_made_proposals(t["boxes"], np.random.default_rng(100 + i))
                 for i, t in enumerate(targets)]  # proposals the training never sees
untrained = foreground_quality(heads, training_images, new_proposals[:4])
untrained_unseen = foreground_quality(heads, unseen_images, new_proposals[4:])

# %%
rng, generator = np.random.default_rng(1), np.random.default_rng(2)
steps = 3 if SMOKE else 300
records, window = [], []
for step in range(steps):
    images = [training_images[(2 * step + k) % 4] for k in range(2)]
    step_proposals = [hand_made_proposals(targets[i]["boxes"], rng) for i in images]
    step_rois, step_labels, step_targets, _ = heads.select_training_samples(
        step_proposals, [targets[i] for i in images], generator)
    logits, deltas, _ = heads.box_branch(features_of(images), step_rois)
    loss_classifier, loss_box_reg = fast_rcnn_losses(
        logits, deltas, np.concatenate(step_labels), np.concatenate(step_targets),
        beta=config.box_smooth_l1_beta)
    optimizer.zero_grad()
    (loss_classifier + loss_box_reg).backward()
    optimizer.step()
    window.append((loss_classifier.item(), loss_box_reg.item()))
    if len(window) == 10 or step == steps - 1:  # one record per 10 steps: their mean
        classifier, box_reg = np.mean(window, axis=0)
        records.append({"step": step + 1, "loss": classifier + box_reg,
                        "loss_classifier": classifier, "loss_box_reg": box_reg})
        window = []
print(f"first 10 steps: loss_classifier {records[0]['loss_classifier']:.3f}, "
      f"loss_box_reg {records[0]['loss_box_reg']:.3f}")
print(f"last 10 steps:  loss_classifier {records[-1]['loss_classifier']:.3f}, "
      f"loss_box_reg {records[-1]['loss_box_reg']:.3f}")
figure = plot_loss_curves(records)
figure.axes[0].set_title(f"the box head alone, {steps} steps (mean of each 10)")
show(figure)

# %% [markdown]
# Both losses fall. Do the boxes tighten? On proposals the training never saw (new random
# jitters around the same objects), the foreground proposals' mean IoU with their object,
# and the same for the head's box of the object's class, before and after training:

# %%
trained = foreground_quality(heads, training_images, new_proposals[:4])
for name, (proposed, refined, accuracy) in (("untrained head", untrained),
                                            (f"after {steps} steps", trained)):
    print(f"{name:16s} proposals {proposed:.3f} -> head's boxes {refined:.3f} mean IoU; "
          f"class right for {accuracy:.0%} of the foreground proposals")

# %%
trained_boxes, _ = refine(heads, [0], [new_proposals[0]])
iou = box_iou(gt_boxes, new_proposals[0])
shown = np.flatnonzero(iou.max(axis=0) >= 0.5)[::3]  # every third foreground proposal
classes = gt_labels[iou[:, shown].argmax(axis=0)]
show(plot_refinement(
    image, gt_boxes, new_proposals[0][shown],
    [trained_boxes[shown, classes]],
    [f"{len(shown)} foreground proposals (yellow)",
     f"the head's boxes after {steps} steps (green)"]))

# %% [markdown]
# The boxes tighten onto the objects. Mind what this head has learned, though: these four
# images, through the features of a random backbone. The same measure on the two images it
# has never seen:

# %%
trained_unseen = foreground_quality(heads, unseen_images, new_proposals[4:])
for name, (proposed, refined, accuracy) in (("untrained head", untrained_unseen),
                                            (f"after {steps} steps", trained_unseen)):
    print(f"{name:16s} proposals {proposed:.3f} -> head's boxes {refined:.3f} mean IoU; "
          f"class right for {accuracy:.0%} of the foreground proposals")

# %% [markdown]
# There it does harm: its boxes are worse than the proposals it was given, and its class
# is rarely right. Four images are too few to generalise from, and a random backbone gives
# the head no features worth generalising; lesson 9 trains the backbone and the heads
# together, on many images.
#
# ## 4. From scores and deltas to detections
#
# At inference (REFERENCE.md §9, `RoIHeads.postprocess_detections`), per image: a softmax
# over the K+1 logits; every RoI's boxes decoded, one per class, and clipped to the image;
# the background column dropped, so each (RoI, class) pair is a candidate with that
# class's probability and box; candidates scoring 0.05 or less dropped, and boxes with a
# side under 0.01 pixels; NMS at IoU 0.5 *per class*; the 100 best kept (the small model
# keeps 30).

# %%
heads.eval()
test_proposals = new_proposals[0]
with tm.no_grad():
    logits, deltas, _ = heads.box_branch(features_of([0]), [test_proposals])
detections = heads.postprocess_detections(logits.data, deltas.data, [test_proposals],
                                          batch.image_sizes[0:1])[0]
probabilities = tm.functional.softmax(logits, dim=1).data[:, 1:]  # (N, K), background dropped
above = probabilities > config.box_score_thresh
print(f"{len(test_proposals)} RoIs x {config.num_classes - 1} classes = "
      f"{probabilities.size} candidates; {above.sum()} score above "
      f"{config.box_score_thresh}; {len(detections['boxes'])} left after NMS and the "
      f"top {config.detections_per_img}")
for box, label, score in list(zip(detections["boxes"], detections["labels"],
                                   detections["scores"]))[:5]:
    print(f"  {dataset.class_names[label]:10s} {score:.2f}  "
          f"{np.array2string(box, formatter={'float_kind': '{:5.1f}'.format})}")

# %% [markdown]
# Which box does a detection take? Its own class's. The top detection's box is one RoI's
# box decoded from that class's four deltas:

# %%
decoded = heads.box_coder.decode(deltas.data, test_proposals).reshape(len(test_proposals), -1, 4)
all_boxes = clip_boxes_to_image(decoded, batch.image_sizes[0])  # (N, K+1, 4)
top_box, top_label = detections["boxes"][0], detections["labels"][0]
distance = np.abs(all_boxes - top_box).max(axis=2)  # (N, K+1): to every RoI's every class
roi, best_class = np.unravel_index(distance.argmin(), distance.shape)
print(f"top detection: {dataset.class_names[top_label]}; closest decoded box: RoI {roi}, "
      f"class {dataset.class_names[best_class]}, max coordinate difference "
      f"{distance[roi, best_class]:.1e}")
assert best_class == top_label and distance[roi, best_class] < 1e-4

# %%
candidate_rois, candidate_classes = np.nonzero(above)  # column k is class k + 1
show(plot_candidates_and_detections(
    image, all_boxes[candidate_rois, candidate_classes + 1], candidate_classes + 1,
    detections["boxes"], detections["labels"], detections["scores"], dataset.class_names,
    [f"{above.sum()} candidates above {config.box_score_thresh}",
     f"{len(detections['boxes'])} detections after per-class NMS"]))

# %% [markdown]
# ## 5. What the paper does, and what we do
#
# Fast R-CNN (§2.3) samples 64 RoIs from each of 2 images, a quarter of them foreground
# (IoU >= 0.5), background from IoU in [0.1, 0.5), with $\lambda = 1$ and a smooth L1 that
# switches at 1. Mask R-CNN (§3.1) calls a RoI positive at IoU >= 0.5 and negative
# otherwise, keeps the 1:3 ratio with N = 64 RoIs per image for the C4 backbone and
# N = 512 for FPN, and adds `L_mask` to the same per-RoI loss. torchvision and we use
# smooth L1 with beta = 1/9. The full-size defaults (torchvision's `maskrcnn_resnet50_fpn`)
# beside the lessons' small model:

# %%
full, small = MaskRCNNConfig(), MaskRCNNConfig.small()
print(f"{'':26s}{'full size':>24s}{'small (lessons)':>24s}")
for name in ("rpn_post_nms_top_n_train", "box_fg_iou_thresh", "box_batch_size_per_image",
             "box_positive_fraction", "bbox_reg_weights", "box_smooth_l1_beta",
             "box_pool_size", "box_head_dim", "num_classes", "box_score_thresh",
             "box_nms_thresh", "detections_per_img"):
    values = [getattr(c, name) for c in (full, small)]
    print(f"{name:26s}" + "".join(f"{round(v, 4) if isinstance(v, float) else v!s:>24}"
                                  for v in values))

# %% [markdown]
# The small model samples 128 RoIs per image, not 512. Its RPN passes at most 300
# proposals per image at training time (lesson 9); a batch of 512 would take every one of
# them, and the cap on foreground would rarely bite. Our image of section 1 with the
# paper's numbers:

# %%
paper_positive, paper_negative = BalancedPositiveNegativeSampler(512, 0.25)(
    [labels], np.random.default_rng(0))
print(f"512 per image, 25% foreground: {paper_positive[0].sum()} foreground and "
      f"{paper_negative[0].sum()} background of its {len(labels)} candidates")

# %% [markdown]
# Every candidate is taken: the sampler has nothing left to choose. The small model keeps
# the paper's 25%; its head is 256 wide for 64-channel features, and `num_classes` is set
# from the dataset (6 for the shapes: 5 classes and background).
#
# ## Summary
#
# - Training: proposals + ground-truth boxes, matched at IoU 0.5 (foreground of the matched
#   class, else background), sampled per image with at most 25% foreground; regression
#   targets are deltas with weights (10, 10, 5, 5).
# - The head: RoIAlign 7x7, two fc layers, then K+1 logits and 4(K+1) class-specific deltas.
# - The loss (task 7.1): cross-entropy over the sampled RoIs plus smooth L1 on the
#   ground-truth class's four deltas of the foreground RoIs, divided by the number sampled.
# - Inference: softmax, decode per class, score > 0.05, NMS 0.5 per class, top 100; a
#   detection's box is its own class's.
#
# ## Exercises
#
# 1. **Task 7.1**, the Fast R-CNN loss: write `fast_rcnn_losses` in `tinymask/losses.py`
#    between the task markers. The solution is what the model runs: the box head of every
#    training step in lesson 9 is trained by it. Check it with `tinymask course check 7.1`
#    or the last cell.
# 2. With the paper's sampler (512 RoIs per image, at most 25% foreground), how many
#    foreground and background RoIs are sampled from an image with 20 foreground and 1000
#    background candidates? From one with 300 foreground and 100 background?
# 3. A model with K+1 = 6 classes predicts `box_deltas` of shape (R, 24). For a RoI of
#    class 2, which columns of its row does the box loss read? And a background RoI?

# %%
few_objects = (20, 492)  # your answer: (foreground, background) for 20 and 1000
many_objects = (128, 100)  # your answer: for 300 and 100
for (num_fg, num_bg), answer in (((20, 1000), few_objects), ((300, 100), many_objects)):
    candidate_labels = np.array([1] * num_fg + [0] * num_bg)
    pos, neg = BalancedPositiveNegativeSampler(512, 0.25)([candidate_labels],
                                                          np.random.default_rng(0))
    assert (pos[0].sum(), neg[0].sum()) == answer, f"not what the sampler takes ({answer})"

columns_for_class_2 = [8, 9, 10, 11]  # your answer
columns_for_background = []  # your answer
for label, answer in ((2, columns_for_class_2), (0, columns_for_background)):
    row = tm.Tensor(np.random.default_rng(0).standard_normal((1, 24)), requires_grad=True)
    _, loss = fast_rcnn_losses(tm.Tensor(np.zeros((1, 6))), row, np.array([label]),
                               np.ones((1, 4)))
    loss.backward()
    read = np.flatnonzero(row.grad[0]).tolist() if row.grad is not None else []
    assert read == answer, f"the loss reads columns {answer}? not for class {label}"

# %%
check_tasks("7.1")
print("exercise checks passed")
