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
# # Lesson 4 — Boxes, IoU and non-maximum suppression
#
# **Goal.** A detector does not find an object once: it finds it dozens of times, in
# slightly different boxes with slightly different scores. Non-maximum suppression (NMS)
# keeps the best box of each cluster and drops the rest. Mask R-CNN runs it twice: on the
# RPN's proposals and on the final detections. We build the two pieces it rests on, the
# box convention and the IoU matrix, then NMS itself three ways (a readable loop, a Numba
# CPU kernel, a Numba CUDA kernel), check that all three keep exactly the same boxes, time
# them, and make NMS work per class.
#
# Code: `tinymask/boxes.py` (boxes and IoU), `tinymask/ops/nms_reference.py` (the loop
# that defines NMS), `nms_cpu.py` (Numba), `nms_cuda.py` (Numba CUDA), `nms_iou.py` (the
# one IoU test both kernels compile), `nms.py` (the public `nms` and `batched_nms`).
#
# The first cell looks for a CUDA GPU. Without one it sets `NUMBA_ENABLE_CUDASIM=1`, so
# that the CUDA kernel of §3 runs in Numba's CUDA *simulator*: on the CPU, in Python,
# slowly, but the same kernel code. Numba reads this variable once, when `numba.cuda` is
# first imported, so it is set before anything is imported.

# %%
import importlib.util
import os


def cuda_gpu_present():
    """True when CuPy sees a CUDA device and the simulator was not asked for."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" or importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no driver, no device
        return False


GPU = cuda_gpu_present()
if not GPU:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"  # before numba.cuda is first imported

import inspect
import statistics
import time

import matplotlib.pyplot as plt
import numpy as np

from tinymask.backend import array_module, to_backend, to_numpy
from tinymask.boxes import box_area, box_iou
from tinymask.config import MaskRCNNConfig
from tinymask.course import check_tasks
from tinymask.lesson_utils import show, smoke_mode, stop_at_unsolved_tasks
from tinymask.ops import batched_nms, nms, nms_cpu, nms_cuda, nms_iou, nms_reference
from tinymask.visualize.boxes import draw_boxes, frame_boxes, plot_iou_matrix, plot_nms

stop_at_unsolved_tasks()
SMOKE = smoke_mode()
print("the CUDA kernel runs", "on the GPU" if GPU else "in Numba's CUDA simulator (no GPU here)")

# %% [markdown]
# ## 1. Build it: boxes, IoU and greedy NMS
#
# ### Boxes
#
# A box is a row `(x1, y1, x2, y2)` in image pixels, "xyxy", and a set of N boxes is an
# `(N, 4)` array. Width is `x2 - x1` with **no +1**: a box is a continuous region, not a
# set of pixel indices, so the box from 0 to 2 is 2 wide. (The original Fast R-CNN code
# and the first Detectron counted pixels and added 1; torchvision and Detectron2 do not,
# and neither does tinymask.) COCO files store `(x, y, w, h)`; tinymask converts at the edge.

# %%
squares = np.array([[0.0, 0.0, 2.0, 2.0],     # 2 x 2
                    [10.0, 5.0, 14.0, 6.0]])  # 4 wide, 1 high
print("areas:", box_area(squares), " (with the old +1 they would be 9 and 10)")

# %% [markdown]
# ### IoU (task 4.1)
#
# How much do two boxes overlap? Intersection over union: the area they share divided by
# the area they cover together. The intersection of two boxes is the box from the larger
# top-left corner to the smaller bottom-right corner, or nothing if those cross (clamp its
# width and height at 0 *before* multiplying: two negative sides make a positive area).
# `box_iou` compares every box of one set with every box of another: `(N, 4), (M, 4) ->
# (N, M)`. That matrix is the workhorse of detection: the matcher labels anchors (lesson 5)
# and proposals (lesson 7) with it, NMS decides with the same IoU, and so does the COCO
# evaluation (lesson 10) when it matches detections to objects.
#
# One pair by hand: A = (0, 0, 4, 4) and B = (2, 1, 6, 5) share the box (2, 1, 4, 4).

# %%
box_a = np.array([0.0, 0.0, 4.0, 4.0])
box_b = np.array([2.0, 1.0, 6.0, 5.0])
intersection = (4 - 2) * (4 - 1)  # the shared box (2, 1, 4, 4)
union = 4 * 4 + 4 * 4 - intersection  # counted once, not twice
print(f"by hand: {intersection} / ({4 * 4} + {4 * 4} - {intersection}) = {intersection / union:.4f}")
print(f"box_iou: {box_iou(box_a[None], box_b[None])[0, 0]:.4f}")
assert box_iou(box_a[None], box_b[None])[0, 0] == intersection / union

# %% [markdown]
# Five boxes and all their IoUs. The matrix is symmetric, 1 on the diagonal, and 0 for boxes
# that do not touch (A and E) or only share an edge (C and D: a line has no area).

# %%
five = np.array([[0.0, 0.0, 4.0, 4.0],   # A
                 [2.0, 1.0, 6.0, 5.0],   # B: the pair above
                 [1.0, 1.0, 3.0, 3.0],   # C: inside A
                 [3.0, 0.0, 6.0, 2.0],   # D: shares C's right edge x = 3
                 [7.0, 2.0, 9.0, 6.0]])  # E: apart from A
iou_five = box_iou(five, five)  # (5, 5)
print("shape:", iou_five.shape, " IoU(A, C) =", iou_five[0, 2], "= 4 / 16")
show(plot_iou_matrix(five, iou_five))

# %% [markdown]
# ### Why a detector needs NMS
#
# The RPN scores every anchor and the box head every proposal, and around a real object
# many of them fire: shifted a little, scaled a little, all with high scores. We make
# such a cluster by jittering three object boxes, with a score that is higher the closer
# the jittered box is to its object (as a trained detector's would be).

# %%
rng = np.random.default_rng(3)
objects = np.array([[20.0, 30.0, 90.0, 110.0],    # a tall object
                    [55.0, 35.0, 125.0, 115.0],   # a neighbour that overlaps it
                    [160.0, 10.0, 230.0, 60.0]])  # one on its own


def detections_around(objects, per_object, rng, jitter=0.08):
    """(len(objects) * per_object, 4) float32 boxes jittered around each object, and scores
    that grow with the IoU of a box with its object."""
    sizes = np.concatenate([objects[:, 2:] - objects[:, :2]] * 2, axis=1)  # (O, 4): w h w h
    noise = rng.normal(0.0, jitter, (len(objects), per_object, 4)) * sizes[:, None, :]
    boxes = (objects[:, None, :] + noise).reshape(-1, 4)
    owner = np.repeat(np.arange(len(objects)), per_object)
    closeness = box_iou(boxes, objects)[np.arange(len(boxes)), owner]
    scores = np.clip(closeness + rng.normal(0.0, 0.05, len(boxes)), 0.01, 0.99)
    return boxes.astype(np.float32), scores.astype(np.float32)


cluster_boxes, cluster_scores = detections_around(objects, 8, rng)
print(f"{len(cluster_boxes)} detections of {len(objects)} objects")
print("IoU of the two neighbouring objects:", round(float(box_iou(objects[:1], objects[1:2])[0, 0]), 3))

# %% [markdown]
# ### Greedy NMS: the loop that defines it
#
# Take the highest-scoring box and keep it; drop every remaining box whose IoU with it is
# **greater than** the threshold (another detection of the same object); repeat with what
# is left (R-CNN §2.2, "greedy non-maximum suppression"). Boxes that overlap the kept one
# less may be other objects, so they stay in the running. The result is the indices of the
# kept boxes, best first. This is tinymask's reference, the version to read:

# %%
print(inspect.getsource(nms_reference.nms))

# %% [markdown]
# Each pass keeps one box and compares it with all remaining boxes, so the work is about
# N x (number kept) IoUs; but every pass is a Python iteration with a NumPy call, which
# costs microseconds whatever N is. The fast version (**task 4.2**) is the same greedy
# pass, written as plain loops over the score-sorted boxes and compiled by Numba:
# `nms_cpu.nms` sorts (stably) and gathers the boxes into score order, and
# `nms_cpu.nms_kernel` walks them: a box that nothing kept has suppressed is kept, and
# marks every later box it overlaps too much as suppressed. The pair test is
# `iou_exceeds` from `nms_iou.py`, one function compiled for both the CPU and the GPU:

# %%
print(inspect.getsource(nms_iou.iou_exceeds))
print("nms_kernel", inspect.signature(nms_cpu.nms_kernel.py_func), "-", nms_cpu.nms_kernel.__doc__.strip().splitlines()[0])

# %% [markdown]
# ## 2. See it: a cluster of detections, before and after NMS
#
# `tinymask.ops.nms` checks its inputs and runs the Numba kernel on NumPy arrays (the CUDA
# kernel on CuPy arrays). At the detector's threshold of 0.5:

# %%
cluster_keep = nms(cluster_boxes, cluster_scores, 0.5)
print(f"kept {len(cluster_keep)} of {len(cluster_boxes)}: indices {cluster_keep.tolist()}")
show(plot_nms(cluster_boxes, cluster_scores, cluster_keep, "NMS at IoU 0.5"))

# %% [markdown]
# The threshold decides how much overlap counts as "the same object". Too low and a
# neighbour is lost with the duplicates; too high and duplicates survive. Count the
# survivors of the same cluster at every threshold:

# %%
thresholds = np.linspace(0.05, 0.95, 19)
survivors = [len(nms(cluster_boxes, cluster_scores, threshold)) for threshold in thresholds]
for threshold in (0.15, 0.5, 0.7):
    print(f"IoU threshold {threshold}: {len(nms(cluster_boxes, cluster_scores, threshold))} boxes kept")
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(thresholds, survivors, marker="o")
ax.axhline(len(objects), color="grey", ls="--", label=f"{len(objects)} objects")
ax.set_xlabel("IoU threshold")
ax.set_ylabel("boxes kept")
ax.set_title(f"NMS on {len(cluster_boxes)} detections of {len(objects)} objects")
ax.legend()
plt.show()

# %% [markdown]
# Read the printed counts against the three objects. At 0.15 the two overlapping objects
# become one: they overlap each other by 0.31, so the best box of one suppresses every
# detection of the other. At 0.5 NMS returns one box per object. At 0.7 near-duplicates
# survive beside the best boxes.
#
# ## 3. Check it: three implementations, one contract
#
# The same algorithm three times, held to the same result. The CPU kernel and the CUDA
# kernels are twins: the same names and the same visiting order, so they can be read side
# by side.
#
# | step | `nms_reference` | `nms_cpu` (task 4.2) | `nms_cuda` |
# |---|---|---|---|
# | order | `argsort(-scores, kind="stable")` | the same | the same, on the device |
# | pair test | `box_iou`, one row per kept box | `iou_exceeds` (`nms_iou.py`) | `iou_exceeds` (`nms_iou.py`) |
# | which pairs | kept box vs all remaining | box `i` vs each later box `j` still alive | every `i < j`, in parallel: `suppression_mask_kernel` |
# | greedy pass | `while remaining` | `for i`: skip if `suppressed[i]` | `gather_keep_kernel`: skip if bit `i` is set |
#
# The GPU cannot run the greedy loop in parallel: whether box j survives depends on which
# earlier boxes survived. So it splits the work. First every pair test, in parallel: boxes
# go in blocks of 64, a CUDA block of 64 threads compares 64 row boxes with 64 column
# boxes, and thread t packs its 64 answers into the bits of one 64-bit word (REFERENCE §6):

# %%
def source_between(module, first, last):
    """The lines of ``module``'s source from the first line containing ``first`` to the
    next line that is ``last`` (give or take indentation), as one string."""
    lines = inspect.getsource(module).splitlines()
    start = next(n for n, line in enumerate(lines) if first in line)
    end = next(n for n in range(start, len(lines)) if lines[n].strip() == last)
    return "\n".join(lines[start : end + 1])


print(source_between(nms_cuda, "iou_exceeds = cuda.jit",
                     "iou_exceeds = cuda.jit(device=True)(nms_iou.iou_exceeds)"))
print("...")
print(source_between(nms_cuda, "if thread < row_size:", "mask[i, col_block] = bits"))

# %% [markdown]
# Then the greedy pass, the CPU kernel's loop with the IoUs already decided: walk the
# boxes in score order, skip box i if its bit is set in `suppressed_bits`, otherwise keep
# it and OR its mask row into `suppressed_bits` (in place of the CPU's inner loop that
# sets `suppressed[j] = True`):

# %%
print(source_between(nms_cuda, "for block in range(col_blocks):",
                     "block_bits = suppressed_bits[block]"))

# %% [markdown]
# Now the check. Random boxes with integer pixel corners, crowded into a small image so
# that many IoUs land *exactly* on a threshold (the strict ">" is tested, not just
# trusted); a tenth of the boxes repeated; scores in steps of 1/4, so that most boxes tie
# with others. Reference, CPU kernel and public `nms` on 1000 boxes:

# %%
def random_boxes(count, rng, image_size, min_size, max_size):
    """(count, 4) float32 boxes with integer corners and sides in [min_size, max_size), a
    tenth of them repeats of others, and (count,) scores in steps of 1/4: many ties."""
    corners = rng.integers(0, image_size, (count, 2))
    sizes = rng.integers(min_size, max_size, (count, 2))
    boxes = np.concatenate([corners, corners + sizes], axis=1).astype(np.float32)
    repeats = rng.choice(count, count // 10, replace=False)
    boxes[repeats] = boxes[rng.choice(count, count // 10)]
    scores = (rng.integers(0, 5, count) / 4).astype(np.float32)
    return boxes, scores


def pairs_exactly_at(boxes, threshold):
    """How many pairs of different boxes have an IoU equal to ``threshold`` (in float32)."""
    return int((np.triu(box_iou(boxes, boxes), 1) == np.float32(threshold)).sum())


trials = 0
for seed in range(2 if SMOKE else 5):
    boxes, scores = random_boxes(1000, np.random.default_rng(seed), 40, 10, 30)
    for threshold in (0.3, 0.5, 0.7):
        expected = nms_reference.nms(boxes, scores, threshold)
        assert np.array_equal(nms_cpu.nms(boxes, scores, threshold), expected)
        assert np.array_equal(nms(boxes, scores, threshold), expected)
        trials += 1
print(f"reference loop, Numba CPU kernel and public nms agree in {trials} of {trials} "
      "trials (1000 boxes, IoU 0.3, 0.5, 0.7)")
print(f"the last boxes: {len(np.unique(scores))} distinct scores; kept at 0.3 / 0.5 / 0.7:",
      [len(nms(boxes, scores, t)) for t in (0.3, 0.5, 0.7)], "; pairs exactly at the threshold:",
      [pairs_exactly_at(boxes, t) for t in (0.3, 0.5, 0.7)])

# %% [markdown]
# The CUDA kernels on the same kind of input: 50 boxes in the simulator (where every CUDA
# thread is a Python thread), 1000 on a GPU.

# %%
count = 1000 if GPU else 50
small_boxes, small_scores = (random_boxes(1000, np.random.default_rng(2), 40, 10, 30) if GPU
                             else random_boxes(50, np.random.default_rng(2), 12, 4, 10))
on_device = (lambda array: to_backend(array, "cupy")) if GPU else (lambda array: array)
nms_cpu.nms(small_boxes, small_scores, 0.5)  # compiled before it is timed below
for threshold in (0.3, 0.5, 0.7):
    start = time.perf_counter()
    cuda_keep = to_numpy(nms_cuda.nms(on_device(small_boxes), on_device(small_scores), threshold))
    cuda_seconds = time.perf_counter() - start
    start = time.perf_counter()
    cpu_keep = nms_cpu.nms(small_boxes, small_scores, threshold)
    cpu_seconds = time.perf_counter() - start
    expected = nms_reference.nms(small_boxes, small_scores, threshold)
    assert np.array_equal(cuda_keep, expected) and np.array_equal(cpu_keep, expected)
    print(f"IoU {threshold} (pairs exactly at it: {pairs_exactly_at(small_boxes, threshold)}): "
          f"CUDA kept {len(cuda_keep)} of {count}, as the reference did, in "
          f"{cuda_seconds * 1000:.1f} ms {'on the GPU' if GPU else 'in the simulator'}; "
          f"CPU kernel {cpu_seconds * 1000:.2f} ms")

# %% [markdown]
# Read the times: in the simulator the CUDA kernel takes hundreds of times longer than the
# CPU kernel on the same 50 boxes. The simulator checks the kernel's logic (the same code,
# the same bits), not its speed; on a real GPU this cell runs it on CuPy arrays. The tests
# run it the same way (`tests/test_nms.py`).
#
# ### The exact contract
#
# Three details decide which boxes survive when things are close, and every implementation
# (and torchvision's `nms`) must get them the same way.
#
# **Ties keep input order.** The sort is stable: of two boxes with equal scores, the earlier
# one is visited first, and so wins.

# %%
twins = np.array([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0]], dtype=np.float32)
equal = np.array([0.8, 0.8], dtype=np.float32)
for order in (twins, twins[::-1].copy()):
    kept = nms(order, equal, 0.5)
    print(f"input {order.tolist()}: keeps {order[kept].tolist()}")

# %% [markdown]
# **Strictly greater.** A box is dropped when IoU > threshold; an overlap of *exactly* the
# threshold survives. These two 1-high strips share 2 of their 3 units: IoU = 2 / 4 = 0.5.

# %%
strips = np.array([[0.0, 0.0, 3.0, 1.0], [1.0, 0.0, 4.0, 1.0]], dtype=np.float32)
strip_scores = np.array([0.9, 0.8], dtype=np.float32)
print("IoU:", box_iou(strips[:1], strips[1:])[0, 0])
for threshold in (0.5, 0.49):
    print(f"threshold {threshold}: kept {nms(strips, strip_scores, threshold).tolist()}")

# %% [markdown]
# **In the boxes' dtype.** The IoU of float32 boxes is computed in float32, and the
# threshold is rounded to float32 before the comparison. These two strips have IoU 2 / 20
# = 0.1 exactly, which float32 stores as the float32 nearest 0.1: the same number the
# threshold 0.1 becomes, so the box survives, as ">" promises. Compare the float32 IoU with
# the float64 0.1 instead and it is "greater" (torchvision's CPU kernel does that and drops
# the box; its CUDA kernel compares in float32, as we do):

# %%
tenth = np.array([[0.0, 0.0, 11.0, 1.0], [9.0, 0.0, 20.0, 1.0]], dtype=np.float32)
iou_tenth = box_iou(tenth[:1], tenth[1:])[0, 0]
print(f"IoU in float32: {iou_tenth!r} = {float(iou_tenth):.10f}")
print("float32 IoU > float32(0.1):", iou_tenth > np.float32(0.1),
      "  float32 IoU > float64 0.1:", float(iou_tenth) > 0.1)
print("nms(float32 boxes, 0.1) keeps:", nms(tenth, strip_scores, 0.1).tolist(),
      "  float64 boxes:", nms(tenth.astype(np.float64), strip_scores.astype(np.float64), 0.1).tolist())

# %% [markdown]
# ## 4. How fast
#
# The same boxes an RPN hands to NMS: clustered around objects in an 800 x 800 image.
# Each time is the median of a few runs after one warm-up (which also compiles the Numba
# kernel), measured with `time.perf_counter`; the public `nms` includes the stable sort.

# %%
def median_ms(function, args, repeats, synchronize=None):
    """Median wall time of ``function(*args)`` in ms over ``repeats`` runs, after one
    warm-up run (which also compiles a Numba kernel on first use). ``synchronize`` waits
    for the GPU before the clock stops."""
    function(*args)
    if synchronize is not None:
        synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*args)
        if synchronize is not None:
            synchronize()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def rpn_like_boxes(count, rng, image_size=800.0):
    """(count, 4) float32 boxes around count // 20 objects of 16..400 px, and scores."""
    num_objects = max(count // 20, 1)
    centres = rng.uniform(0, image_size, (num_objects, 2))
    sizes = np.exp(rng.uniform(np.log(16), np.log(400), (num_objects, 2)))
    objects = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
    boxes, _ = detections_around(objects, 20, rng, jitter=0.1)
    return np.clip(boxes, 0, image_size), rng.random(len(boxes)).astype(np.float32)


sizes = (200, 500) if SMOKE else (1000, 5000)
repeats = 2 if SMOKE else 7
numba_ms = {}
for count in sizes:
    boxes, scores = rpn_like_boxes(count, np.random.default_rng(count))
    kept = len(nms(boxes, scores, 0.7))
    numba_ms[count] = median_ms(nms, (boxes, scores, 0.7), repeats)
    line = f"{count:5d} boxes, IoU 0.7, {kept:4d} kept: Numba CPU {numba_ms[count]:6.2f} ms"
    if count == sizes[0]:  # the loop only at the small size: it is slow on purpose
        reference_ms = median_ms(nms_reference.nms, (boxes, scores, 0.7), repeats)
        line += (f", reference loop {reference_ms:6.2f} ms "
                 f"({reference_ms / numba_ms[count]:.0f}x the Numba time)")
    if GPU:
        device_boxes, device_scores = to_backend(boxes, "cupy"), to_backend(scores, "cupy")
        synchronize = array_module(device_boxes).cuda.get_current_stream().synchronize
        gpu_ms = median_ms(nms, (device_boxes, device_scores, 0.7), repeats, synchronize)
        line += f", CUDA {gpu_ms:.2f} ms"
    print(line)
small, large = sizes
print(f"{large // small}x the boxes: {numba_ms[large] / numba_ms[small]:.1f}x the Numba time")

# %% [markdown]
# Read the first line: the compiled kernel runs the same greedy pass one to two orders of
# magnitude faster than the loop, which pays a Python iteration and a NumPy call per kept
# box. The last line shows the time growing much faster than the number of boxes: each
# kept box is tested against every later box still alive, so the work grows roughly as
# N x (number kept), and both grow with N. (On a busy machine single runs vary by tens of
# percent; the median of several is what to read.) The full benchmark, `python bench/bench_nms.py`, adds
# 20k boxes, IoU 0.5, torchvision's CPU NMS and, on a GPU, both CUDA kernels; its recorded
# results and machine are in `bench/RESULTS.md`.
#
# ## 5. Per-class NMS: `batched_nms`
#
# At inference every (RoI, class) pair is a candidate detection, and NMS must run per
# class: a person and the bicycle they ride overlap a lot, yet both are answers. In the
# RPN the groups are the FPN levels instead. Below, a person and a bicycle, each detected
# twice. One `nms` over all of them loses the bicycle:

# %%
class_names = {1: "person", 2: "bicycle"}
scene = np.array([[40.0, 20.0, 100.0, 140.0],   # person
                  [44.0, 24.0, 102.0, 138.0],   # person, again
                  [35.0, 50.0, 105.0, 150.0],   # bicycle
                  [30.0, 55.0, 100.0, 148.0]],  # bicycle, again
                 dtype=np.float32)
scene_scores = np.array([0.9, 0.7, 0.8, 0.6], dtype=np.float32)
scene_labels = np.array([1, 1, 2, 2])
print(f"IoU(person, bicycle) = {box_iou(scene[:1], scene[2:3])[0, 0]:.2f}")
agnostic = nms(scene, scene_scores, 0.5)
per_class = batched_nms(scene, scene_scores, scene_labels, 0.5)
print("one nms for all:", [class_names[scene_labels[k]] for k in agnostic])
print("batched_nms:    ", [class_names[scene_labels[k]] for k in per_class])

# %% [markdown]
# `batched_nms` does not loop over classes. It uses torchvision's trick: shift the boxes of
# group g by `g * (max coordinate + 1)` along both axes. Each group then lives in its own
# square, boxes of different groups cannot overlap, and one `nms` call on the shifted boxes
# is per-group NMS. (This assumes coordinates >= 0, as clipped boxes are.)

# %%
offset = float(scene.max()) + 1
shifted = scene + (scene_labels * offset)[:, None].astype(np.float32)
print("offset per class:", offset, " shifted boxes:\n", shifted)
print("nms of the shifted boxes == batched_nms:",
      np.array_equal(nms(shifted, scene_scores, 0.5), per_class))

# %%
colours = ["tab:blue" if label == 1 else "tab:orange" for label in scene_labels]
# one label per class (the best box); the weaker duplicate sits right beside it
texts = [f"{class_names[scene_labels[k]]} {scene_scores[k]:.1f}" if k in (0, 2) else ""
         for k in range(len(scene))]
fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
draw_boxes(axes[0], scene, colours, texts)
frame_boxes(axes[0], scene, margin=0.15)
axes[0].set_title(f"two classes, each detected twice\nIoU(person, bicycle) = "
                  f"{box_iou(scene[:1], scene[2:3])[0, 0]:.2f}")
axes[1].add_patch(plt.Rectangle((0, 0), offset - 1, offset - 1, fill=False, ls=":", color="k"))
axes[1].text(offset / 2, offset / 2, f"the boxes' range\n0..{offset - 1:.0f}", fontsize=8,
             ha="center", va="center")
for label in (1, 2):
    low = label * offset
    axes[1].add_patch(plt.Rectangle((low, low), offset - 1, offset - 1, color="0.92"))
    axes[1].text(low - 5, low + offset / 2, f"class {label}:\n+ {label} x {offset:.0f}", fontsize=8,
                 ha="right", va="center")
draw_boxes(axes[1], shifted, colours, texts)
axes[1].set_xlim(-10, 3 * offset + 10)
axes[1].set_ylim(3 * offset + 10, -10)
axes[1].set_aspect("equal")
axes[1].set_title("each class shifted by label x (max + 1):\nboxes of different classes cannot overlap")
plt.show()

# %% [markdown]
# The check that matters: on random boxes of three classes, `batched_nms` keeps exactly
# what NMS run class by class keeps, merged in score order (ties in input order).

# %%
rng = np.random.default_rng(11)
boxes, scores = random_boxes(300, rng, 40, 10, 30)
labels = rng.integers(1, 4, len(boxes))
by_class = np.concatenate([np.flatnonzero(labels == label)[nms(boxes[labels == label],
                                                               scores[labels == label], 0.5)]
                           for label in (1, 2, 3)])
by_class = by_class[np.lexsort((by_class, -scores[by_class]))]  # score order, ties by index
assert np.array_equal(batched_nms(boxes, scores, labels, 0.5), by_class)
print(f"batched_nms == per-class NMS on 300 boxes of 3 classes: {len(by_class)} kept, "
      f"{len(nms(boxes, scores, 0.5))} with one class-agnostic nms")

# %% [markdown]
# ## 6. What the paper does
#
# Mask R-CNN keeps Faster R-CNN's two NMS steps (REFERENCE §5 and §9):
#
# - **Proposals.** Faster R-CNN §3.3 runs NMS at IoU **0.7** on the RPN's boxes, which it
#   reports leaves about 2000 proposals per image; Mask R-CNN then keeps 1000 per image at
#   test time with FPN (300 with C4). With FPN the NMS runs per level:
#   `tinymask/model/rpn.py` calls `batched_nms` with the level as the group. A high
#   threshold keeps near neighbours: the second stage re-scores every proposal, and a
#   missed object here is missed for good.
# - **Detections.** Per image: scores above 0.05, NMS at IoU **0.5 per class** (`batched_nms`
#   with the class as the group, in `tinymask/model/roi_heads.py`), then the best **100**;
#   the mask branch runs on those 100 only (Mask R-CNN §3.1, "Inference").
#
# tinymask's defaults say the same:

# %%
config = MaskRCNNConfig()
print(f"RPN: NMS at {config.rpn_nms_thresh} per level, keep {config.rpn_post_nms_top_n_test} "
      f"per image at test time")
print(f"detections: score > {config.box_score_thresh}, NMS at {config.box_nms_thresh} per class, "
      f"keep {config.detections_per_img}")

# %% [markdown]
# ## Summary
#
# - Boxes are xyxy in pixels, widths without +1. IoU = intersection / union, as an `(N, M)`
#   matrix between two sets of boxes.
# - Greedy NMS: visit by decreasing score, keep a box unless a kept box overlaps it by
#   IoU > threshold. Ties keep input order, the comparison is strict, and it is made in the
#   boxes' dtype.
# - One algorithm, three implementations: the loop that defines it, a Numba CPU kernel and a
#   Numba CUDA kernel (all pair tests in parallel as 64-bit masks, then the greedy pass),
#   sharing one IoU test and held to the loop's exact output.
# - Per-class NMS is one NMS call on boxes shifted apart by class. Proposals: 0.7 per level;
#   detections: 0.5 per class, top 100.
#
# ## Exercises
#
# 1. **Task 4.1**, the IoU matrix: write `box_iou` in `tinymask/boxes.py` between the task
#    markers. The solution is what the model runs: the RPN and the box head label their
#    anchors and proposals with it, and the reference NMS calls it. Check it with `tinymask course check 4.1` or the last cell.
# 2. **Task 4.2**, greedy NMS: write `nms` (sort stably, gather the boxes into score order,
#    call the kernel, map back to input indices) and `nms_kernel` (the greedy loop, with
#    `iou_exceeds`) in `tinymask/ops/nms_cpu.py`. Numba compiles it; hold it to the
#    reference loop above. Check it with `tinymask course check 4.2` or the last cell.
# 3. Two boxes, A = (10, 10, 50, 40) scored 0.9 and B = (25, 20, 60, 50) scored 0.8. What is
#    the smallest IoU threshold at which NMS keeps both? Work it out by hand (an exact
#    fraction), write it below, and the check tries it.
# 4. Six 10 x 10 boxes in a row, box k from x = 3k to 3k + 10, scored
#    (0.5, 0.9, 0.6, 0.7, 0.3, 0.8). Which boxes does NMS keep at IoU 0.5, in the order it
#    returns them? And at 0.2? (The IoU of two of these boxes 3, 6 and 9 apart is 70/130,
#    40/160 and 10/190.)

# %%
pair = np.array([[10.0, 10.0, 50.0, 40.0], [25.0, 20.0, 60.0, 50.0]])
pair_scores = np.array([0.9, 0.8])
both_survive_from = 2 / 7  # your answer: the overlap 500 / (1200 + 1050 - 500)
assert len(nms(pair, pair_scores, both_survive_from)) == 2, "at this threshold NMS drops B"
assert len(nms(pair, pair_scores, np.nextafter(both_survive_from, 0))) == 1, \
    "NMS keeps both even below this threshold: a smaller one works too"
print("exercise 3: correct")

# %%
row = np.array([[3.0 * k, 0.0, 3.0 * k + 10, 10.0] for k in range(6)])
row_scores = np.array([0.5, 0.9, 0.6, 0.7, 0.3, 0.8])
kept_at_0_5 = [1, 5, 3]  # your answer
kept_at_0_2 = [1, 5]  # your answer
assert nms(row, row_scores, 0.5).tolist() == kept_at_0_5, "not what NMS keeps at 0.5"
assert nms(row, row_scores, 0.2).tolist() == kept_at_0_2, "not what NMS keeps at 0.2"
print("exercise 4: correct")

# %%
check_tasks("4.1", "4.2")
print("exercise checks passed")
