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
# # Lesson 10 — Inference, mask pasting and COCO AP
#
# **Goal.** At test time Mask R-CNN runs in a different order than in training: first the
# box branch on the proposals, then per-class NMS, then the mask branch on the final
# detections only (§3.1, "Inference"). Each detection's 28x28 mask is then pasted into the
# image (task 10.1). We write the paste, follow one image through inference, measure the
# model the way the paper does, with COCO's AP, and then do the same with the reference
# model shipped with tinymask, to see what a trained model's detections and AP look like.
#
# Code: `tinymask/postprocess.py` (`paste_mask`, `paste_masks_in_image`),
# `tinymask/model/roi_heads.py` (`postprocess_detections`, `add_mask_probabilities`),
# `tinymask/evaluate.py`.

# %%
import math
import tempfile
import time

import matplotlib.pyplot as plt
import numpy as np

import tinymask as tm
from tinymask.config import MaskRCNNConfig
from tinymask.course import check_tasks
from tinymask.data import make_shapes_splits
from tinymask.data.coco import coco_from_dict
from tinymask.evaluate import (
    coco_evaluate,
    coco_from_dataset,
    detections_to_coco_results,
    evaluate_model,
)
from tinymask.lesson_utils import show, smoke_mode, stop_at_unsolved_tasks
from tinymask.postprocess import paste_mask, paste_masks_in_image
from tinymask.presets import load_preset
from tinymask.train import TrainConfig, Trainer
from tinymask.visualize import show_prediction_and_ground_truth
from tinymask.weights import available, pretrained, pretrained_record

stop_at_unsolved_tasks()
SMOKE = smoke_mode()

# %% [markdown]
# ## 1. Build it: pasting a 28x28 mask into the image (task 10.1)
#
# A detection's mask is a 28x28 grid of probabilities laid over its box. To score it
# against the ground truth, or to draw it, it must become an image-sized mask. One mask,
# `paste_mask(mask, box, image_size)` in `tinymask/postprocess.py` (torchvision's
# `paste_mask_in_image`):
#
# - the box is in whole pixels, `(x1, y1, x2, y2)` with **both ends included**: it covers
#   `w = x2 - x1 + 1` columns and `h = y2 - y1 + 1` rows (at least 1 each);
# - the m x m mask is resized to `(h, w)` bilinearly, with `align_corners=False` (output
#   pixel i reads input position `(i + 0.5) m / w - 0.5`, clamped at 0: `resize_bilinear`);
# - the part of the resized mask that falls inside the `(H, W)` image is copied there; the
#   rest of the image is 0.
#
# Around it, `paste_masks_in_image` (given) prepares each detection: it pads the mask with
# one row and column of zeros on every side (30x30) and grows the box about its centre by
# 30/28, so the bilinear resize fades out at the border instead of stopping hard; it then
# truncates the grown box to whole pixels (toward zero, as torchvision's `.to(int64)`). The
# model thresholds the pasted probabilities at 0.5 (`mask_threshold`).
#
# ### Check it: against the definition, one pixel at a time
#
# The definition above as a slow loop, and `paste_mask` against it, for boxes inside the
# image, partly outside it, one pixel wide, and wholly outside.

# %%
def paste_by_definition(mask, box, image_size):
    """paste_mask, pixel by pixel: each image pixel inside the box reads the mask bilinearly."""
    m_h, m_w = mask.shape
    x1, y1, x2, y2 = (int(v) for v in box)
    w, h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
    out = np.zeros(image_size)
    for y in range(max(y1, 0), min(y1 + h, image_size[0])):
        for x in range(max(x1, 0), min(x1 + w, image_size[1])):
            source_y = max((y - y1 + 0.5) * m_h / h - 0.5, 0.0)
            source_x = max((x - x1 + 0.5) * m_w / w - 0.5, 0.0)
            top, left = min(int(source_y), m_h - 1), min(int(source_x), m_w - 1)
            bottom, right = min(top + 1, m_h - 1), min(left + 1, m_w - 1)
            fy, fx = source_y - top, source_x - left
            out[y, x] = ((1 - fy) * ((1 - fx) * mask[top, left] + fx * mask[top, right])
                         + fy * ((1 - fx) * mask[bottom, left] + fx * mask[bottom, right]))
    return out


rng = np.random.default_rng(0)
probabilities = rng.random((28, 28))
for box in [(5, 7, 40, 30), (-6, 20, 12, 60), (30, 3, 30, 17), (60, 60, 70, 70)]:
    difference = np.abs(paste_mask(probabilities, box, (48, 50))
                        - paste_by_definition(probabilities, box, (48, 50))).max()
    print(f"box {box}: largest difference {difference:.1e}")
    assert difference < 1e-12

# %% [markdown]
# ### See it: a soft mask, pasted
#
# A soft ellipse of probabilities (28x28), pasted by `paste_masks_in_image` into a 110x120
# image at a box with fractional corners, then thresholded at 0.5.

# %%
blob = np.zeros((1, 28, 28))
yy, xx = np.mgrid[0:28, 0:28]
blob[0] = 1 / (1 + np.exp(((xx - 13.5) ** 2 / 60 + (yy - 13.5) ** 2 / 30) - 3))  # an ellipse
box = np.array([[20.3, 30.8, 90.6, 70.2]])
pasted = paste_masks_in_image(blob, box, (110, 120))[0]
fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
axes[0].imshow(blob[0], cmap="viridis")
axes[0].set_title("28x28 mask probabilities")
axes[1].imshow(pasted, cmap="viridis")
axes[1].add_patch(plt.Rectangle(box[0, :2] - 0.5, *(box[0, 2:] - box[0, :2]), fill=False,
                                color="red"))
axes[1].set_title("pasted into a 110x120 image (box in red)")
axes[2].imshow(pasted > 0.5, cmap="gray")
axes[2].set_title("binary mask (> 0.5)")
plt.show()

# %% [markdown]
# ## 2. Build it: a model to look at
#
# We train the lessons' small model in a short run: the `starter` preset's data, fewer
# steps than its schedule, no progress bar (a line every quarter of the run).

# %%
preset = load_preset("starter")
data = {"train": 8, "val": 3, "image_size": 64} if SMOKE else preset["data"]
train_data, val_data = make_shapes_splits(data["train"], data["val"], seed=0,
                                          image_size=data["image_size"])
config = MaskRCNNConfig.small(num_classes=train_data.num_classes,
                              min_size=data["image_size"], max_size=data["image_size"])
steps = 2 if SMOKE else 400
train_config = TrainConfig(steps=steps, batch_size=1 if SMOKE else 2,
                           warmup_iters=1 if SMOKE else 50, progress=False,
                           log_every=max(1, steps // 4), checkpoint_every=0)
trainer = Trainer(config, train_config, train_data, tempfile.mkdtemp())
start = time.perf_counter()
trainer.run(log=lambda record: print(
    f"step {record['step']:4d}: loss {record['loss']:.3f}, lr {record['lr']:.4g} "
    f"({time.perf_counter() - start:.0f} s)"))
model = trainer.model.eval()

# %% [markdown]
# ## 3. See it: one image through inference
#
# The box head scores every proposal for every class; each (proposal, class) pair with a
# score above 0.05 becomes a candidate box, decoded with that class's deltas; NMS at IoU 0.5
# runs per class; the best detections survive (100 in the paper, 30 in the small model).
# Only then does the mask branch run, on those boxes, and each detection keeps the sigmoid
# of *its class's* 28x28 map, pasted into the image and thresholded.

# %%
image, target = val_data[0]
with tm.no_grad():
    (prediction,) = model([image])
print({k: v.shape for k, v in prediction.items()})
print("the five best scores:", np.round(prediction["scores"][:5], 2))
print(f"detections scoring above 0.5: {(prediction['scores'] > 0.5).sum()}, above 0.1: "
      f"{(prediction['scores'] > 0.1).sum()}, of {len(prediction['scores'])}")

# %% [markdown]
# A model trained for minutes is unsure of itself: few of its scores pass 0.5 (the counts
# above), so we draw every detection above 0.1 (the COCO evaluation below uses all of
# them, ranked by score).

# %%
show(show_prediction_and_ground_truth(image, prediction, target, train_data.class_names,
                                     score_threshold=0.1))

# %% [markdown]
# ## 4. Check it: COCO AP
#
# COCO's AP averages precision over recall, then over IoU thresholds 0.50, 0.55, ..., 0.95
# (AP50 and AP75 are single thresholds), for boxes ("bbox") and for masks ("segm"), where
# IoU is computed between masks. APs/APm/APl split by object area (< 32², < 96², larger);
# -1 means "no ground truth of that size", not a bad model. First a sanity check: the
# ground truth itself, submitted as detections, must score 100.

# %%
perfect = [{"boxes": t["boxes"], "labels": t["labels"], "scores": np.ones(len(t["labels"])),
            "masks": t["masks"]} for _, t in (val_data[i] for i in range(len(val_data)))]
ids = [val_data[i][1]["image_id"] for i in range(len(val_data))]
results = detections_to_coco_results(perfect, ids, val_data.label_to_category_id)
print(coco_evaluate(coco_from_dataset(val_data), results, verbose=False))

# %% [markdown]
# And the model, on the validation images:

# %%
start = time.perf_counter()
metrics = evaluate_model(model, val_data, progress=False)
seconds = (time.perf_counter() - start) / len(val_data)
for iou_type, values in metrics.items():
    print(f"{iou_type}: " + "  ".join(f"{k} {v:.1f}" for k, v in values.items()))
print(f"{seconds * 1e3:.0f} ms per image (inference + COCO bookkeeping), on this CPU")

# %% [markdown]
# ## 5. See it: a trained model
#
# A model trained for minutes shows the steps of inference, not what they achieve. tinymask
# ships a reference model: the same small model trained longer by one recorded command
# (`tinymask.pretrained("shapes-small")`, checked against the SHA-256 in its record).
# The same image, its detections drawn from score 0.5:

# %%
if "shapes-small" in available():
    record = pretrained_record("shapes-small")
    reference = pretrained("shapes-small")
    print(f"trained by: {record['command']} ({record['train_seconds'] / 60:.0f} min on "
          f"{record['machine']})")
    with tm.no_grad():
        (reference_prediction,) = reference([image])
    print("its five best scores:", np.round(reference_prediction["scores"][:5], 2))
    print(f"detections scoring above 0.5: {(reference_prediction['scores'] > 0.5).sum()}, "
          f"of {len(reference_prediction['scores'])}; objects in the image: "
          f"{len(target['labels'])}")
    show(show_prediction_and_ground_truth(image, reference_prediction, target,
                                         train_data.class_names, score_threshold=0.5))
else:
    reference = None
    print("the reference model is not in this copy of tinymask (tinymask/weights/"
          "shapes-small.npz): build it with  python bench/build_reference_model.py")

# %% [markdown]
# And its COCO AP on the same validation images, beside the short run's (the first rows
# printed in section 4):

# %%
if reference is not None:
    reference_metrics = evaluate_model(reference, val_data, progress=False)
    print(f"{'':10s}{'':22s}" + "".join(f"{name:>7s}" for name in metrics["segm"]))
    for iou_type in ("bbox", "segm"):
        for name, values in (("short run", metrics[iou_type]),
                             ("reference model", reference_metrics[iou_type])):
            print(f"{iou_type:10s}{name:22s}" + "".join(f"{v:7.1f}" for v in values.values()))

# %% [markdown]
# The same code, the same images: only the training differs. Compare the two models'
# counts of detections above 0.5 on the image and their rows of AP: what the longer
# training bought is in those numbers. Lesson 11 follows one image through every stage of
# the reference model and scans the validation set for its failures.
#
# ## 6. What the paper found, and what we found
#
# The paper's ResNet-101-FPN reaches 35.7 mask AP on COCO test-dev at about 195 ms per
# image on an Nvidia M40 GPU (5 fps), the mask branch adding little to Faster R-CNN's time
# because it runs on 100 boxes only. Our small model on 128-px shapes after a few minutes
# on a CPU scores far lower (above), at the time per image printed above; the number that
# compares is the *shape* of inference, which is the same: box branch, NMS, mask branch on
# the survivors, paste, threshold.
#
# ## Summary
#
# - Inference order: box head on proposals -> per-class boxes -> score > 0.05 -> NMS 0.5
#   per class -> top 100 -> mask head on those -> the detected class's sigmoid map.
# - Pasting (task 10.1): the integer box with both ends included, a bilinear resize of the
#   mask to it (`align_corners=False`), the part inside the image; around it, a 1-pixel
#   zero pad and the box grown by (m+2)/m, then a threshold at 0.5.
# - COCO AP averages over IoU 0.50:0.95; results need RLE masks with string counts; an
#   empty result list must be guarded (pycocotools' `loadRes` fails on it).
#
# ## Exercises
#
# 1. **Task 10.1**, pasting a mask: write `paste_mask` in `tinymask/postprocess.py`
#    between the task markers (section 1). The solution is what the model runs: every mask
#    of every detection, in this lesson and in `tinymask predict`, is pasted by it. Check it
#    with `tinymask course check 10.1` or the last cell.
# 2. A detection with the box (10.0, 20.0, 38.0, 48.0) and a 28x28 mask: which whole-pixel
#    box does `paste_masks_in_image` hand to `paste_mask`, and how many rows and columns is
#    the 30x30 padded mask resized to?
# 3. One image with one object, its box 100 x 100 pixels; one detection (score 1, the right
#    class) whose box overlaps it at IoU 0.72. What is the COCO box AP (in percent)?

# %%
pasted_box = (9, 19, 39, 49)  # your answer
resized_rows_and_columns = (31, 31)  # your answer
ap_of_one_detection = 50.0  # your answer

detected = np.array([10.0, 20.0, 38.0, 48.0])
centre = (detected[:2] + detected[2:]) / 2
half = (detected[2:] - detected[:2]) / 2 * 30 / 28  # half the side, grown by 30/28
expected_box = tuple(int(v) for v in np.concatenate([centre - half, centre + half]))
assert pasted_box == expected_box, "grow the box by 30/28 about its centre, then truncate"
assert resized_rows_and_columns == (expected_box[3] - expected_box[1] + 1,
                                    expected_box[2] - expected_box[0] + 1), \
    "both ends of the box are included"

one_object = coco_from_dict({
    "images": [{"id": 1, "width": 200, "height": 200}],
    "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [50, 50, 100, 100],
                     "area": 100 * 100, "iscrowd": 0}],
    "categories": [{"id": 1, "name": "shape"}]})
detection = [{"image_id": 1, "category_id": 1, "bbox": [50, 50, 72, 100], "score": 1.0}]
measured = coco_evaluate(one_object, detection, iou_types=("bbox",), verbose=False)
assert math.isclose(ap_of_one_detection, measured["bbox"]["AP"], abs_tol=0.05), \
    "count the IoU thresholds the detection passes"

# %%
check_tasks("10.1")
print("exercise checks passed")
