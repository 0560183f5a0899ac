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
# # Lesson 9 — Training the whole model (Table 3)
#
# **Goal.** Put the pieces together and train: a config, a model whose forward reads like
# the paper's figure, five losses, SGD with momentum, weight decay, warmup and step decay.
# We check that the losses start where theory says they must, write the SGD step (task
# 9.1), train the lessons' small model on the built-in shapes while measuring validation
# AP along the way, set it beside the reference model shipped with tinymask (the same
# model trained longer), and look at what the paper says multi-task training
# does for boxes.
#
# Code: `tinymask/config.py`, `tinymask/model/mask_rcnn.py`, `tinymask/optim/`,
# `tinymask/train.py`.

# %%
import math
import tempfile
import time

import numpy as np

import tinymask as tm
from tinymask.ablations import ABLATIONS, format_per_seed, format_table, plot_result
from tinymask.checkpoint import read_checkpoint
from tinymask.config import MaskRCNNConfig
from tinymask.course import check_tasks
from tinymask.data import make_shapes_splits
from tinymask.evaluate import evaluate_model
from tinymask.lesson_utils import recorded_result, show, smoke_mode, stop_at_unsolved_tasks
from tinymask.model.mask_rcnn import MaskRCNN
from tinymask.optim import SGD, WarmupMultiStepLR
from tinymask.optim.sgd import sgd_update_reference
from tinymask.optim.sgd_cpu import sgd_update_kernel
from tinymask.presets import load_preset
from tinymask.train import TrainConfig, Trainer
from tinymask.visualize import read_log
from tinymask.visualize.training_progress import plot_training_progress
from tinymask.weights import available, pretrained, pretrained_path, pretrained_record

stop_at_unsolved_tasks()
SMOKE = smoke_mode()

# %% [markdown]
# ## 1. Build it: one config, one model
#
# Every choice is a field of `MaskRCNNConfig`, with a comment on its default; the paper's
# ablations are fields too. `MaskRCNNConfig.small()` is the lessons' model: a quarter-width
# ResNet-18 with FPN, group norm (batches of 2 are too small for batch norm), trained from
# scratch on the built-in shapes, with the data and training sizes of the `starter` preset
# (`tinymask train --config starter`).

# %%
preset = load_preset("starter")
data = {"train": 8, "val": 4, "image_size": 64} if SMOKE else preset["data"]
train_data, val_data = make_shapes_splits(data["train"], data["val"], seed=0,
                                          image_size=data["image_size"])
config = MaskRCNNConfig.small(num_classes=train_data.num_classes,
                              min_size=data["image_size"], max_size=data["image_size"])
tm.manual_seed(0)
model = MaskRCNN(config)
print(f"{config.backbone} + FPN({config.fpn_channels}), {model.num_parameters():,} parameters")
print(f"{len(train_data)} training and {len(val_data)} validation images of "
      f"{data['image_size']} px; classes: {train_data.class_names}")

# %% [markdown]
# ## 2. Check it: the losses at initialisation
#
# Before any training the heads output near-zero logits, so each loss starts at a value
# we can compute: objectness is a coin flip (log 2), the classifier spreads over K+1
# classes (about log(K+1)), every mask pixel is 0.5 (log 2), and the box deltas are near 0.

# %%
images, targets = zip(*(train_data[i] for i in range(2)))
losses = model(list(images), list(targets))
for name, loss in losses.items():
    print(f"{name:18s} {loss.item():.3f}")
print(f"log 2 = {math.log(2):.3f}, log(K+1) = {math.log(train_data.num_classes):.3f}")
assert abs(losses["loss_objectness"].item() - math.log(2)) < 0.05
assert abs(losses["loss_mask"].item() - math.log(2)) < 0.05

# %% [markdown]
# ## 3. Build it: one SGD step with momentum and weight decay (task 9.1)
#
# The paper trains with SGD, momentum 0.9 and weight decay 1e-4 (§3.1, "Training"). For each
# parameter w with gradient g, in PyTorch's form (what Detectron2 and torchvision run):
#
# ```
# d = g + λ w                          weight decay λ: an L2 penalty, folded into the gradient
# b = d          on the first step     the momentum buffer starts at the first gradient
# b = μ b + (1 - dampening) d   after  μ = 0.9: b remembers past gradients
# w = w - lr b                         (Nesterov: w - lr (d + μ b))
# ```
#
# Task 9.1 writes it as a Numba loop over the values of one parameter:
# `sgd_update_kernel(param, grad, buf, lr, momentum, undamped, weight_decay, nesterov,
# first_step)` in `tinymask/optim/sgd_cpu.py`. `param` and `buf` are 1-D and changed in
# place, `undamped` is 1 - dampening, and every scalar comes in the parameter's dtype, so the
# loop rounds as NumPy does. One pass reads each value once; its twin `sgd_update_reference`
# (`tinymask/optim/sgd.py`, the NumPy code that also runs on CuPy) makes about ten passes and
# three temporary arrays. `SGD.step` calls the kernel for NumPy parameters when momentum is
# on.
#
# ### Check it: the optimizer against the formulas, and the twins
#
# Three steps of `SGD` on a float64 parameter against the formulas above written out in
# NumPy; then the kernel against its NumPy twin on float32 values, with dampening and
# Nesterov: the same bits.

# %%
rng = np.random.default_rng(0)
start_values = rng.standard_normal(5)
gradients = rng.standard_normal((3, 5))
lr, momentum, weight_decay = 0.1, 0.9, 0.01

parameter = tm.Tensor(start_values.copy(), requires_grad=True)
optimizer = SGD([parameter], lr=lr, momentum=momentum, weight_decay=weight_decay)
w, b = start_values.copy(), None
for g in gradients:
    parameter.grad = g.copy()
    optimizer.step()
    d = g + weight_decay * w
    b = d if b is None else momentum * b + d
    w = w - lr * b
print(f"SGD against the formulas after 3 steps: largest difference "
      f"{np.abs(parameter.data - w).max():.1e}")
assert np.allclose(parameter.data, w, rtol=1e-14, atol=0)

for nesterov, dampening in ((False, 0.1), (True, 0.0)):
    kernel_param = rng.standard_normal(1000).astype(np.float32)
    reference_param, reference_state = kernel_param.copy(), {}
    buf = np.empty_like(kernel_param)
    for step in range(3):
        grad = rng.standard_normal(1000).astype(np.float32)
        f32 = np.float32
        sgd_update_kernel(kernel_param, grad, buf, f32(lr), f32(momentum), f32(1 - dampening),
                          f32(weight_decay), nesterov, step == 0)
        sgd_update_reference(reference_param, grad, reference_state, lr, momentum, dampening,
                             weight_decay, nesterov)
    same = np.array_equal(kernel_param, reference_param)
    print(f"kernel and NumPy twin, nesterov={nesterov}, dampening {dampening}: same bits {same}")
    assert same

# %% [markdown]
# ## 4. Build it: the training loop
#
# `Trainer` runs the paper's recipe: SGD with momentum 0.9 and weight decay 1e-4, linear
# warmup from 1/1000 of the rate, the rate divided by 10 late in the run (the paper: at
# 120k of 160k iterations). One seed fixes the weights, the batches, the flips and every
# anchor and RoI the samplers pick, so the same seed gives the same losses, and a run
# resumed from a checkpoint continues exactly. Two trainers with the same seed, two steps
# each:

# %%
def two_steps(seed):
    trainer = Trainer(config, TrainConfig(steps=2, batch_size=1, warmup_iters=1, seed=seed,
                                          progress=False, checkpoint_every=0),
                      train_data, tempfile.mkdtemp())
    return [sum(v for k, v in trainer.train_step().items() if k.startswith("loss"))
            for _ in range(2)]  # the total loss of each step


first, second, other = two_steps(3), two_steps(3), two_steps(4)
for seed, run in ((3, first), (3, second), (4, other)):
    print(f"seed {seed}: total losses {run[0]!r}, {run[1]!r}")
assert first == second and first != other

# %% [markdown]
# Now the lessons' model, with the `starter` preset's schedule: this lesson's short run. No progress bar: we train in
# four stretches and after each one measure the validation **box** AP (COCO's, lesson 10).
# At test time the mask branch runs after the boxes are final, so a Mask R-CNN's box AP is
# that of the same weights without the mask branch; evaluating those skips pasting masks
# into images, which is task 10.1 of lesson 10 (the mask AP is measured there).

# %%
train_fields = dict(preset["train"], progress=False, checkpoint_every=0)
if SMOKE:
    train_fields.update(steps=2, batch_size=1, warmup_iters=1, log_every=1)
train_config = TrainConfig.from_dict(train_fields)
print(f"{train_config.steps} steps of {train_config.batch_size} images; lr {train_config.lr}, "
      f"warmup {train_config.warmup_iters} steps, divided by 10 at "
      f"{[int(f * train_config.steps) for f in train_config.decay_at]}; a log record every "
      f"{train_config.log_every} steps")


def box_ap(mask_rcnn, dataset):
    """COCO box AP (percent) of a Mask R-CNN's weights, evaluated without its mask branch."""
    detector = MaskRCNN(mask_rcnn.config.replace(mask_branch=False))
    missing, _ = detector.load_state_dict(mask_rcnn.state_dict(), strict=False)
    assert not missing  # every weight of the detector comes from the trained model
    return evaluate_model(detector, dataset, progress=False)["bbox"]


run_dir = tempfile.mkdtemp()
trainer = Trainer(config, train_config, train_data, run_dir)
checkpoints = [1, 2] if SMOKE else [train_config.steps * k // 4 for k in (1, 2, 3, 4)]
evaluations, start = [], time.perf_counter()
training_seconds = 0.0
for checkpoint in checkpoints:
    stretch = time.perf_counter()
    trainer.run(steps=checkpoint)
    training_seconds += time.perf_counter() - stretch
    recent = [record["loss"] for record in read_log(trainer.log_path) if "loss" in record][-5:]
    ap = box_ap(trainer.model, val_data)
    evaluations.append({"step": checkpoint, **ap})
    print(f"step {checkpoint:4d}: loss {np.mean(recent):.3f} (mean of the last {len(recent)} "
          f"records), lr {trainer.scheduler.get_last_lr()[0]:.4f}; validation box AP "
          f"{ap['AP']:.1f}, AP50 {ap['AP50']:.1f}, AP75 {ap['AP75']:.1f}  "
          f"({time.perf_counter() - start:.0f} s)")

# %% [markdown]
# ## 5. See it: the losses falling, the AP rising
#
# Left, every loss of the log: a step's loss depends on the two images it draws (a single
# large object, or several small ones), so the raw values (faint) jump; the moving average
# shows the trend. Right, the validation box AP at the four checkpoints printed
# above.

# %%
show(plot_training_progress(trainer.log_path, evaluations, title="validation box AP"))

# %% [markdown]
# Not every loss falls. The box head's `loss_box_reg` is summed over the *foreground*
# RoIs and divided by all sampled ones (lesson 7); an untrained RPN proposes few boxes on
# the objects, so at first almost only the appended ground-truth boxes are foreground,
# and the term grows as the RPN learns. The share of foreground among the sampled RoIs of
# two training images, before and after training:

# %%
for name, network in (("untrained", model), ("trained", trainer.model)):
    network.train()
    _, inside = network(list(images), list(targets), inspect=True)
    sampled = np.concatenate(inside["roi_heads"]["sampled_labels"])
    print(f"{name:9s}: {np.mean(sampled > 0):.0%} of the {len(sampled)} sampled RoIs are "
          "foreground")

# %% [markdown]
# And the validation AP keeps rising while the total loss barely moves: the loss averages
# over the sampled anchors and RoIs, the AP ranks the final detections.
#
# ### See it: what a longer run reaches
#
# Our short run stops after minutes. tinymask ships a reference model:
# the same small model trained by one recorded command with the `full` preset (more
# images, more steps, larger batches), loaded by `tinymask.pretrained("shapes-small")`,
# which checks the file against the SHA-256 in its record. Our validation images come
# from the same generator with the same seed as the reference model's validation split,
# so they are its first images (the first line below checks it, image by image), which
# it has never trained on. The same box AP, measured the same way, on the same images:

# %%
if "shapes-small" in available():
    record = pretrained_record("shapes-small")
    reference = pretrained("shapes-small")
    # the training settings it was trained with, stored in the shipped file
    reference_schedule = read_checkpoint(pretrained_path("shapes-small"))["config"]["train"]
    reference_data = load_preset(record["preset"])["data"]
    _, reference_val = make_shapes_splits(
        1, len(val_data), seed=record["seed"],
        **{k: v for k, v in reference_data.items() if k not in ("train", "val", "seed")})
    same = all(np.array_equal(val_data[i][0], reference_val[i][0]) for i in range(len(val_data)))
    print(f"our {len(val_data)} validation images are the first of the reference model's: {same}")
    reference_ap = box_ap(reference, val_data)
    runs = (("this lesson's short run", train_config.steps, train_config.batch_size,
             training_seconds, evaluations[-1]),
            ("the reference model", reference_schedule["steps"],
             reference_schedule["batch_size"], record["train_seconds"], reference_ap))
    print(f"validation box AP on the {len(val_data)} images above:")
    for name, steps, batch_size, seconds, ap in runs:
        print(f"  {name:24s} {steps:5d} steps of {batch_size} images, {seconds / 60:5.1f} "
              f"min: AP {ap['AP']:5.1f}, AP50 {ap['AP50']:5.1f}, AP75 {ap['AP75']:5.1f}")
    print(f"the reference model was trained by: {record['command']} ({record['machine']})")
else:
    print("the reference model is not in this copy of tinymask (tinymask/weights/"
          "shapes-small.npz): build it with  python bench/build_reference_model.py")

# %% [markdown]
# The two lines above differ in training only: the same model, data of the same
# generator, the same recipe; the reference model saw more images for more steps. Lesson 11
# opens it up and follows one image through every stage.
#
# ## 6. What the paper found, and what we found
#
# The paper trains for 160k iterations at 16 images per batch; we train for minutes. What
# Table 3 asks still applies at our scale: does training the mask branch *too* help the box
# detector? The paper: +0.9 box AP from multi-task training (Faster R-CNN with RoIAlign
# 37.3, Mask R-CNN 38.2, ResNet-101-FPN). Ours, recorded by `tinymask ablate multitask`:

# %%
result = recorded_result("multitask")
if result is None:
    print("not recorded here: run this lesson from the repository's root, or record it with "
          " tinymask ablate multitask --seeds 3 --record")
else:
    print(format_table(result))
    print(format_per_seed(result))
    print(f"recorded by: {result['command']}  (preset {result['preset']}, {result['machine']})")
    show(plot_result(result))

# %%
if result is not None:
    branch = {v.name: v.changes["mask_branch"] for v in ABLATIONS["multitask"].variants}
    runs = {True: {}, False: {}}
    for training in result["trainings"]:
        runs[branch[training["variant"]]][training["seed"]] = training
    for seed in sorted(runs[True]):
        with_masks, boxes_only = runs[True][seed], runs[False][seed]
        print(f"seed {seed}: box AP Mask R-CNN {with_masks['AP_bb']:.1f}, Faster R-CNN "
              f"{boxes_only['AP_bb']:.1f}; AP75 {with_masks['AP75_bb']:.1f} against "
              f"{boxes_only['AP75_bb']:.1f}")
    gain = np.mean([runs[True][s]["AP_bb"] - runs[False][s]["AP_bb"] for s in runs[True]])
    ahead = sum(runs[True][s]["AP_bb"] > runs[False][s]["AP_bb"] for s in runs[True])
    print(f"Mask R-CNN is ahead at {ahead} of {len(runs[True])} seeds, by {gain:.1f} box AP "
          f"on average: {gain / 0.9:.1f}x the paper's 0.9")

# %% [markdown]
# The direction and the size of our gain are the last lines above. A reading, not a
# measurement: trained from scratch for minutes, the backbone has little to go on besides
# the box losses, and the per-pixel mask loss is a dense extra signal about where each
# object's edges are; a pretrained backbone trained for days (the paper's) already has most
# of what that signal teaches.
#
# ## Summary
#
# - The model's forward is the paper's figure: transform, backbone + FPN, RPN, RoI heads,
#   postprocess; in training it returns five named losses.
# - At initialisation the losses sit at log 2, about log(K+1), log 2 and ~0: check this
#   first whenever a model does not train.
# - SGD (task 9.1): weight decay joins the gradient, the momentum buffer starts at the
#   first gradient, the step is lr times the buffer.
# - One seed fixes everything; checkpoints resume exactly. Smooth the losses to read them,
#   and measure validation AP along the way.
#
# ## Exercises
#
# 1. **Task 9.1**, one SGD step: write `sgd_update_kernel` in `tinymask/optim/sgd_cpu.py`
#    between the task markers (section 3). The solution is what the model runs: every
#    training step of this lesson updates every weight with it. Check it with
#    `tinymask course check 9.1` or the last cell.
# 2. A run of 600 steps with lr 0.02, `warmup_iters` 50, `warmup_factor` 0.001 and
#    `decay_at` (0.8,): what learning rate does step 25 use (steps counted from 0)? And
#    step 500?
# 3. A parameter whose gradient is the same g at every step, momentum 0.9, no weight
#    decay: step n moves it by lr·g·(1 + 0.9 + ... + 0.9^(n-1)), approaching lr·g / (1 - 0.9).
#    At which step (counted from 1) does the move first reach 90% of that limit?

# %%
lr_at_step_25 = 0.02 * (0.001 * (1 - 25 / 50) + 25 / 50)  # your answer
lr_at_step_500 = 0.02 * 0.1  # your answer
first_step_at_90_percent = 22  # your answer

schedule_optimizer = SGD([tm.Tensor(np.zeros(1), requires_grad=True)], lr=0.02)
schedule = WarmupMultiStepLR(schedule_optimizer, [int(0.8 * 600)], 0.1, 50, 0.001)
lrs = []
for _ in range(501):
    lrs.append(schedule.get_last_lr()[0])
    schedule.step()
assert math.isclose(lr_at_step_25, lrs[25], rel_tol=1e-9), "not the lr of step 25"
assert math.isclose(lr_at_step_500, lrs[500], rel_tol=1e-9), "not the lr of step 500"

value, state, moves = np.zeros(1), {}, []
for _ in range(60):
    before = value.copy()
    sgd_update_reference(value, np.ones(1), state, lr=1.0, momentum=0.9, dampening=0.0,
                         weight_decay=0.0, nesterov=False)
    moves.append(float(before[0] - value[0]))
limit = 1.0 / (1 - 0.9)
assert first_step_at_90_percent == 1 + next(
    n for n, move in enumerate(moves) if move >= 0.9 * limit), "count the steps again"

# %%
check_tasks("9.1")
print("exercise checks passed")
