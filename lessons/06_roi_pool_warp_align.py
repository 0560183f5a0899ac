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
# # Lesson 6 — RoIPool vs RoIWarp vs RoIAlign (Table 2c, 2d)
#
# **Goal.** The second stage of Mask R-CNN looks at each proposal through a fixed-size
# window of features: 7x7 for the box head, 14x14 for the mask head. How that window is
# read is the paper's central change. RoIPool (Fast R-CNN) *rounds* the box and its bins to
# whole feature cells; RoIAlign reads the features exactly where the box is, by bilinear
# interpolation. At stride 16 the rounding moves a box's corners by up to 8 pixels, and
# its bins further (§3 measures how far): harmless for "is there a cat", ruinous for a
# pixel mask. We build the geometry each op runs, the three course tasks of this lesson,
# see where each op reads, check what the rounding does, and read the paper's ablation
# beside ours.
#
# Code: `tinymask/ops/roi_geometry.py` (where every op reads: the tasks), then
# `roi_align_reference.py` (the readable loop), `roi_align_cpu.py` (Numba),
# `roi_align_cuda.py` (Numba CUDA, the same loop order), `roi_pool*.py`, `roi_warp.py`,
# `poolers.py`.

# %%
import json
import os

import matplotlib.pyplot as plt
import numpy as np

import tinymask as tm
from tinymask.ablations import ABLATIONS, format_per_seed, format_table, plot_result
from tinymask.config import MaskRCNNConfig
from tinymask.course import check_tasks
from tinymask.lesson_utils import recorded_result, show, smoke_mode, stop_at_unsolved_tasks
from tinymask.ops import assign_fpn_levels, roi_align, roi_pool, roi_warp
from tinymask.ops.roi_align_reference import bilinear_read
from tinymask.ops.roi_geometry import (
    bilinear_weights,
    quantize_rois,
    roi_align_geometry,
    roi_pool_bin_range,
    roi_pool_size,
    round_half_away_from_zero,
    sample_coordinate,
)
from tinymask.visualize.roi_grid import plot_roi_ops

stop_at_unsolved_tasks()
SMOKE = smoke_mode()

# %% [markdown]
# ## 1. Build it: where each op reads
#
# A RoI is a row `[image index, x1, y1, x2, y2]` in image pixels; `spatial_scale` is
# 1 / stride and takes pixels to feature cells. In RoIAlign's coordinates the value of
# feature cell `i` sits at the coordinate `i`. Our test map is 5x5 and
# holds 0..24, so the value at cell (row y, column x) is `5 y + x`: every number below can
# be checked by hand. All three ops share the scalar functions of
# `tinymask/ops/roi_geometry.py`, and the Numba kernels (CPU and CUDA) compile that very
# source: what you write there is what the kernels read.
#
# ### Bilinear interpolation of one point (task 6.1)
#
# RoIAlign reads the map at points that fall between cells. `bilinear_weights(y, x,
# height, width)` says which four cells a read at `(y, x)` mixes and with what weights:
# with `y_low = int(y)`, `y_high = y_low + 1` (the same for x) and `ly = y - y_low`,
# `lx = x - x_low`, the weights are `(1-ly)(1-lx)`, `(1-ly)lx`, `ly(1-lx)` and `ly lx` for
# the top-left, top-right, bottom-left and bottom-right cell. At the border: a point more
# than one cell outside the map reads 0 (all indices -1, weights 0); a point within one
# cell of the border reads the border cell, as if the map were extended. The point
# `(y, x) = (1.25, 2.5)` lies a quarter of the way from row 1 to row 2 and half way from
# column 2 to column 3:

# %%
features = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5)  # (N, C, H, W)
feature_map = features[0, 0]
y_low, x_low, y_high, x_high, *weights = bilinear_weights(1.25, 2.5, 5, 5)
print(f"cells: rows {y_low}, {y_high}; columns {x_low}, {x_high}; weights {weights}")
print("read:", bilinear_read(feature_map, 1.25, 2.5), " by hand: 5 * 1.25 + 2.5 =", 5 * 1.25 + 2.5)
for y, x in ((4.6, 2.0), (-0.5, 2.0), (-1.5, 2.0)):
    print(f"at (y, x) = ({y}, {x}): {bilinear_weights(y, x, 5, 5)} -> "
          f"{bilinear_read(feature_map, y, x)}")

# %% [markdown]
# Read the last three lines: below the last row, `y = 4.6` reads row 4 alone (22, the
# value of cell (4, 2)); above the first row, `y = -0.5` reads row 0 alone (2); and
# `y = -1.5`, more than a cell outside, reads 0.
#
# ### One RoIAlign bin (task 6.2)
#
# RoIAlign divides the RoI into PH x PW equal bins, without rounding anything, and
# averages (or, for the max variant, takes the largest of) a few bilinear reads per bin
# (Mask R-CNN §3, Figure 3). `roi_align_geometry` gives the RoI's view in feature
# coordinates:
#
# - start = `x1 * spatial_scale - offset` (the same for y), where `offset` is 0.5 with
#   `aligned=True` (a pixel's value sits at its centre, Detectron2's ROIAlignV2) and 0
#   with `aligned=False` (the paper's implementation, whose RoIs shorter than a cell are
#   stretched to one cell);
# - bin size = RoI size / PH (and / PW);
# - samples per bin along each axis: `sampling_ratio`, or when it is 0 (adaptive)
#   `ceil(RoI size / PH)`, about one sample per cell.
#
# `sample_coordinate(start, bin_size, bin_index, sample_index, grid_size)` puts sample
# `iy` of bin `ph` at the centre of its sub-bin: `start + ph * bin_h + (iy + 0.5) * bin_h
# / grid_h`. Detectron2's test case: the RoI (1, 1, 3, 3) pooled to 4x4 bins with
# adaptive sampling. The bin (0, 0), from the pieces, then the whole op:

# %%
rois = np.array([[0, 1.0, 1.0, 3.0, 3.0]])  # [image index, x1, y1, x2, y2]
for aligned in (False, True):
    start_y, start_x, bin_h, bin_w, grid_h, grid_w = roi_align_geometry(
        1.0, 1.0, 3.0, 3.0, 1.0, aligned, 4, 4, 0)
    samples = [(sample_coordinate(start_y, bin_h, 0, iy, grid_h),
                sample_coordinate(start_x, bin_w, 0, ix, grid_w))
               for iy in range(grid_h) for ix in range(grid_w)]
    reads = [bilinear_read(feature_map, y, x) for y, x in samples]
    print(f"aligned={aligned}: start (y, x) = ({start_y}, {start_x}), bin {bin_h} x {bin_w}, "
          f"{grid_h} x {grid_w} samples at {samples} -> bin (0, 0) = {np.mean(reads)}")
    print(roi_align(features, rois, 4, sampling_ratio=0, aligned=aligned).data[0, 0])

# %% [markdown]
# The first rows, `7.5 8 8.5 9` and `4.5 5 5.5 6`, are Detectron2's own test values. With
# `aligned=False` a RoI from pixel 1 to 3 samples between cells 1..3; with `aligned=True`
# it starts half a cell earlier. A bin with several samples averages them; a bin of the
# same RoI pooled to 2x2 with 2x2 samples per bin:

# %%
start_y, start_x, bin_h, bin_w, grid_h, grid_w = roi_align_geometry(
    1.0, 1.0, 3.0, 3.0, 1.0, True, 2, 2, 2)
samples = [(sample_coordinate(start_y, bin_h, 1, iy, grid_h),
            sample_coordinate(start_x, bin_w, 0, ix, grid_w))
           for iy in range(grid_h) for ix in range(grid_w)]
reads = [bilinear_read(feature_map, y, x) for y, x in samples]
print("bin (1, 0) samples at", samples)
print("reads", reads, "-> mean", np.mean(reads), "max", max(reads))
for aggregation in ("avg", "max"):
    pooled = roi_align(features, rois, 2, sampling_ratio=2, aligned=True, aggregation=aggregation)
    print(f"roi_align(..., aggregation={aggregation!r}) bin (1, 0):", pooled.data[0, 0, 1, 0])

# %% [markdown]
# ### RoIPool's quantisation of a box and its bins (task 6.3)
#
# RoIPool (Fast R-CNN §2.1, with torchvision's semantics) rounds twice:
#
# 1. the corners to whole cells, `round(x1 * spatial_scale)` and so on, with C's `round`,
#    which takes halves away from zero (2.5 -> 3), not NumPy's, which takes them to the
#    even neighbour (2.5 -> 2): `round_half_away_from_zero`, used by `quantize_rois`;
# 2. the bins: the rounded box covers `end - start + 1` cells, both ends included (at
#    least one cell: `roi_pool_size`); bin `k` spans `k * size / P` to `(k + 1) * size / P`
#    cells from the start, its start rounded down and its end up (`roi_pool_bin_range`),
#    so neighbouring bins may share a cell; then clipped to the map.
#
# Each bin outputs the max of its cells. RoIWarp (MNC) rounds the corners the same way,
# then reads the rounded box bilinearly as RoIAlign does.

# %%
halves = np.array([0.5, 1.5, 2.5, -2.5])
print("C round:", round_half_away_from_zero(halves), "  NumPy round:", np.round(halves))
fractional = np.array([[0, 0.5, 1.4, 3.5, 3.6]])
print("quantize_rois", fractional[0].tolist(), "->", quantize_rois(fractional, 1.0)[0].tolist())
_, start_x, start_y, end_x, end_y = quantize_rois(rois, 1.0)[0].astype(int)
size_x = roi_pool_size(start_x, end_x)
print(f"RoI (1, 1, 3, 3): cells {start_x}..{end_x}, {size_x} cells; 4 bins of {size_x / 4} cells:")
ranges = [tuple(int(edge) for edge in roi_pool_bin_range(start_x, size_x, 4, k, 5))
          for k in range(4)]
print("  bins' columns [start, end):", ranges)
first_bin = feature_map[ranges[0][0] : ranges[0][1], ranges[0][0] : ranges[0][1]]
print("max over bin (0, 0):", first_bin.max())
print("roi_pool:")
print(roi_pool(features, rois, 4).data[0, 0])

# %% [markdown]
# RoIPool's bins repeat values: it can only pick whole cells. The three ops side by side on
# the same RoI (RoIWarp with 2x2 samples per bin: the box rounded, then read bilinearly):

# %%
print("RoIPool:\n", roi_pool(features, rois, 4).data[0, 0])
print("RoIWarp:\n", roi_warp(features, rois, 4, sampling_ratio=2).data[0, 0])
print("RoIAlign, aligned=True:\n", roi_align(features, rois, 4, sampling_ratio=0,
                                             aligned=True).data[0, 0])

# %% [markdown]
# ## 2. See it: where each op reads
#
# A box at fractional coordinates on a stride-16 map (`spatial_scale = 1/16`), pooled to
# 2x2 with 2x2 samples per bin. Dashed: the box as given. Solid: the box the op divides
# into bins. Dots: the bilinear sample points; shaded cells: what RoIPool takes the max of.
# The picture is drawn from the same `roi_geometry` functions the kernels run.

# %%
plot_roi_ops(box=(21.0, 13.0, 93.0, 70.0), feature_shape=(6, 7), spatial_scale=1 / 16,
             output_size=2, sampling_ratio=2)
plt.show()

# %% [markdown]
# ## 3. Check it: what rounding does
#
# ### A box that moves by less than a cell
#
# Slide a RoI right by fractions of a feature cell over a smooth map. A mask head needs its
# input to follow the object. RoIAlign's output moves smoothly with the box; RoIPool's (and
# RoIWarp's) stays frozen and then jumps, because the box is rounded to whole cells first.

# %%
yy, xx = np.mgrid[0:12, 0:12]
smooth = (0.3 * xx + 0.1 * yy)[None, None].astype(np.float64)  # a ramp: (1, 1, 12, 12)
shifts = np.linspace(0, 2, 41)  # in feature cells
readings = {"RoIPool": [], "RoIWarp": [], "RoIAlign": []}
for shift in shifts:
    box = np.array([[0, 2.3 + shift, 3.1, 6.3 + shift, 7.1]])
    readings["RoIPool"].append(roi_pool(smooth, box, 2).data[0, 0, 0, 0])
    readings["RoIWarp"].append(roi_warp(smooth, box, 2, sampling_ratio=2).data[0, 0, 0, 0])
    readings["RoIAlign"].append(roi_align(smooth, box, 2, sampling_ratio=2,
                                          aligned=True).data[0, 0, 0, 0])
fig, ax = plt.subplots(figsize=(7, 3.2))
for name, values in readings.items():
    ax.plot(shifts, values, label=name, drawstyle="steps-post" if name != "RoIAlign" else None)
ax.set_xlabel("shift of the RoI (feature cells)")
ax.set_ylabel("top-left bin of the output")
ax.legend()
ax.set_title("RoIAlign follows the box; rounding freezes RoIPool and RoIWarp")
plt.show()
changes = {name: int(np.count_nonzero(np.diff(values))) for name, values in readings.items()}
print(f"over {len(shifts) - 1} small shifts the output changed: {changes}")
assert changes["RoIAlign"] > 3 * changes["RoIPool"]

# %% [markdown]
# ### The same region at half the size
#
# An op that reads "the features of this region" should read the same thing from the same
# image at half the size, with the box halved. Detectron2 tests its RoIAlign this way: a
# random 30x30 map, the same map at half size (each 2x2 block averaged, which is what a
# linear resize to exactly half does), the box (10, 10, 20, 20) and its half, 5x5 bins,
# adaptive sampling. And a second test of our own on a smooth map (a bilinear function of
# the position, sampled at the pixel centres of each size) with random fractional boxes.

# %%
rng = np.random.default_rng(0)
full = rng.uniform(0, 100, (1, 1, 30, 30))
half = full.reshape(1, 1, 15, 2, 15, 2).mean(axis=(3, 5))  # (1, 1, 15, 15)


def at_pixel_centres(size, pixel):
    """A bilinear function of the position, sampled at the centres of a size x size image
    whose pixels are ``pixel`` wide: (1, 1, size, size)."""
    centres = (np.arange(size) + 0.5) * pixel
    y, x = np.meshgrid(centres, centres, indexing="ij")
    return (3.0 + 0.4 * x - 0.2 * y + 0.01 * x * y)[None, None]


corners = rng.uniform(2, 12, (20, 2))
random_boxes = np.concatenate([np.zeros((20, 1)), corners, corners + rng.uniform(4, 16, (20, 2))],
                              axis=1)
ops = {"RoIAlign, aligned=True": dict(op=roi_align, sampling_ratio=0, aligned=True),
       "RoIAlign, aligned=False": dict(op=roi_align, sampling_ratio=0, aligned=False),
       "RoIWarp (avg)": dict(op=roi_warp, sampling_ratio=0, aggregation="avg"),
       "RoIPool": dict(op=roi_pool)}
tests = {"Detectron2's (random map)": (full, half, np.array([[0, 10.0, 10.0, 20.0, 20.0]])),
         "smooth map, random boxes": (at_pixel_centres(30, 1.0), at_pixel_centres(15, 2.0),
                                      random_boxes)}
print(f"{'largest |full size - half size|':30s}" + "".join(f"{name:>28s}" for name in tests))
for name, settings in ops.items():
    settings = dict(settings)
    op = settings.pop("op")
    gaps = []
    for big, small, boxes in tests.values():
        halved = boxes.copy()
        halved[:, 1:] /= 2
        gaps.append(np.abs(op(big, boxes, 5, **settings).data
                           - op(small, halved, 5, **settings).data).max())
    print(f"{name:30s}" + "".join(f"{gap:28.2g}" for gap in gaps))
for pixel, box in ((1, np.array([[0, 10.0, 10.0, 20.0, 20.0]])),
                   (2, np.array([[0, 5.0, 5.0, 10.0, 10.0]]))):
    _, first, _, last, _ = quantize_rois(box, 1.0)[0]
    print(f"RoIPool, {'full' if pixel == 1 else 'half'} size: the box's x from {box[0, 1]:g} to "
          f"{box[0, 3]:g} becomes cells {first:g}..{last:g}, the full-size pixels "
          f"{(first - 0.5) * pixel:g} to {(last + 0.5) * pixel:g}")

# %% [markdown]
# Read the table by rows. RoIAlign with `aligned=True` gives the same output at both
# sizes, to the rounding error of a float64: its samples sit at the same points of the
# image at both sizes. Without the half-cell offset, the original RoIAlign shifts its
# samples by half a cell of each map, and half a cell of the half-size map is twice as
# far. RoIWarp (here averaging, like RoIAlign) rounds the box to the cells of each map,
# and RoIPool rounds too and then takes the max over whole cells, whose centres are not
# the same points at the two sizes. The last two lines show RoIPool's rounding: cell `c`
# of a map with stride s stands for the pixels nearest to `c * s`, from `(c - 1/2) s` to
# `(c + 1/2) s` (RoIPool rounds pixel x to cell `round(x / s)`), and the same box covers
# a different region of the image at each size.
#
# ### How far RoIPool's bins sit from the box
#
# With that reading of a cell, RoIPool's bin k covers the pixels from `(first cell - 1/2) s`
# to `(last cell + 1/2) s`, where the exact bin (RoIAlign's) runs from `x1 + k w / P` to
# `x1 + (k + 1) w / P`. Rounding the corners moves them by at most half a cell, s / 2
# pixels; the bins move further: the rounded box gains a cell (both ends included) and
# every bin edge is rounded outwards again. Over random boxes 3 to 15 cells wide, for the
# box head's 7 bins and the mask head's 14, along one axis:

# %%
def bin_edge_errors(x1, x2, stride, bins):
    """Per RoIPool bin along one axis: how far (pixels) the edges of the cells it max-pools
    lie from the edges of the exact bin, the larger of the two ends."""
    _, start, _, end, _ = quantize_rois(np.array([[0, x1, 0.0, x2, 0.0]]), 1 / stride)[0]
    start, end = int(start), int(end)
    cells = roi_pool_size(start, end)
    exact = x1 + (x2 - x1) * np.arange(bins + 1) / bins  # the exact bins' edges, pixels
    errors = []
    for k in range(bins):
        first, stop = roi_pool_bin_range(start, cells, bins, k, 10**6)  # cells [first, stop)
        errors.append(max(abs((first - 0.5) * stride - exact[k]),
                          abs((stop - 0.5) * stride - exact[k + 1])))
    return errors


rng = np.random.default_rng(1)
num_boxes = 100 if SMOKE else 1000
starts, widths = rng.uniform(0, 20, num_boxes), rng.uniform(3, 15, num_boxes)  # in cells
print(f"{num_boxes} boxes; how far RoIPool's cells lie from the exact box or bin:")
for stride in (1, 4, 16, 32):
    corner = np.abs(round_half_away_from_zero(starts) - starts).max() * stride
    line = (f"  stride {stride:2d}: corners at most {corner:5.2f}" if stride > 1 else
            f"  in cells:   corners at most {corner:5.2f}")
    for bins in (7, 14):
        errors = np.concatenate([bin_edge_errors(a * stride, (a + w) * stride, stride, bins)
                                 for a, w in zip(starts, widths)])
        line += f"; {bins:2d} bins: mean {errors.mean():5.2f}, at most {errors.max():5.2f}"
    print(line + ("" if stride == 1 else " pixels"))

# %% [markdown]
# The first line is in cells (stride 1), and the others are it times the stride: the
# rounding only sees cells. Read the bins' columns against the corners': RoIPool's bins
# miss the exact ones by more than its corners do, by more than a cell at worst; at the
# stride-4 map our model pools from, that is several pixels, not the 2 pixels the corners
# alone would suggest. RoIAlign's bins are the exact ones by construction.
#
# ### The gradient
#
# RoIAlign is differentiable in the features (not in the box): each sample sends its
# gradient to its four cells with the bilinear weights. Checked against central
# differences in float64 (`tinymask gradcheck` runs the same check for every RoI op):

# %%
random_map = rng.standard_normal((1, 3, 8, 8))
box = np.array([[0, 4.0, 2.0, 20.0, 14.0]])
for aggregation in ("avg", "max"):
    error = tm.gradcheck(lambda f, aggregation=aggregation: roi_align(
        f, box, 3, spatial_scale=0.5, sampling_ratio=2, aligned=True, aggregation=aggregation),
        [random_map])
    print(f"RoIAlign ({aggregation}) gradient check: largest relative error {error:.1e}")
print(f"RoIPool gradient check: largest relative error "
      f"{tm.gradcheck(lambda f: roi_pool(f, box, 3, spatial_scale=0.5), [random_map]):.1e}")

# %% [markdown]
# ## 4. Multi-level pooling: which FPN level reads a RoI
#
# With FPN each RoI is pooled from one pyramid level chosen by its size (FPN paper Eqn. 1):
# $k = \lfloor 4 + \log_2(\sqrt{wh}/224) \rfloor$, clamped to P2..P5. A 224x224 box reads
# P4 (stride 16); half that size, one level finer.

# %%
sides = np.array([16, 56, 112, 224, 448, 896, 1792], dtype=np.float64)
boxes = np.stack([np.zeros_like(sides), np.zeros_like(sides), sides, sides], axis=1)
for side, level in zip(sides, assign_fpn_levels(boxes)):
    print(f"box side {int(side):5d} px -> P{int(level)}")

# %% [markdown]
# ## 5. What the paper found, and what we found
#
# Table 2c (ResNet-50-C4, stride 16, COCO mask AP) and 2d (ResNet-50-C5, stride 32):

# %%
for name in ("roi-align", "large-stride"):
    ablation = ABLATIONS[name]
    print(f"Table {ablation.table}: {ablation.question}")
    for variant in ablation.variants:
        print(f"  {variant.name:28s} {variant.paper}")
    print(f"  paper: {ablation.finding}\n")

# %% [markdown]
# The paper reads Table 2c this way: the gap is in the *alignment*. RoIWarp already samples
# bilinearly but inherits RoIPool's rounding, and lands near RoIPool; RoIAlign with max or
# average aggregation lands together, about 3 AP (5 AP75) above both. At stride 32 (Table
# 2d) one cell is 32 pixels, the rounding is twice as coarse, and the gap grows.
#
# Ours, recorded with `tinymask ablate roi-align --record`: the same ops on the small
# model, trained on the tables' own shapes (printed as `data:` with the record): three
# classes (ellipse, ring, cross), from 16 pixels to 0.4 of the image side, two to five an
# image, on plain gradients. On the lessons' default shapes, most of them tiny and of five
# classes, a short training left every op at a low mask AP, where the gaps drowned in the
# spread between seeds; `bench/RESULTS.md` measures what each choice changed. The
# command, preset, seeds and machine are printed with the record; then each variant minus
# RoIPool, metric by metric, on average and at each seed:

# %%
RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(tm.__file__))),
                       "lessons", "results")


def show_recorded(name):
    """Our recorded result of ablation ``name`` (lessons/results/NAME.json): its table, its
    per-seed numbers and the figure of its gains. Returns the result, or None."""
    result = recorded_result(name, RESULTS)
    if result is None:
        print(f"no {name}.json in {RESULTS}: record it with tinymask ablate {name} --record")
        return None
    print(format_table(result))
    print(format_per_seed(result))
    print(f"recorded by: {result['command']}  ({result['machine']}, {result['seconds']:.0f} s)")
    data = result.get("settings", {}).get("data")
    if data:  # records made since the tables have data of their own
        print("data:", ", ".join(f"{key}={value}" for key, value in data.items()))
    show(plot_result(result))
    return result


def compare(result, variant, baseline):
    """Print ``variant`` minus ``baseline`` for every metric the result holds: the gap of
    the means, and the gap at each seed (the same initial weights and batches for both:
    the paired comparison); then the metrics on which ``variant`` is ahead and behind."""
    means = {row["variant"]: row["measured"] for row in result["rows"]}
    by_seed = {}
    for training in result.get("trainings", []):
        if "diverged" not in training:
            by_seed.setdefault(training["variant"], {})[training["seed"]] = training
    keys = [key for key in ("AP", "AP50", "AP75", "AP_bb", "AP50_bb", "AP75_bb")
            if key in means[baseline]]
    verdicts = {}
    print(f"{variant} minus {baseline}:")
    for key in keys:
        name = key.replace("_bb", " (box)")
        gap = means[variant][key] - means[baseline][key]
        paired = [by_seed[variant][seed][key] - by_seed[baseline][seed][key]
                  for seed in result["seeds"]
                  if seed in by_seed.get(variant, {}) and seed in by_seed.get(baseline, {})]
        print(f"  {name:12s} {gap:+6.2f}   per seed: "
              + "  ".join(f"{difference:+6.2f}" for difference in paired))
        side = "ahead" if gap > 0 else "behind" if gap < 0 else "level"
        if side != "level":
            every_seed = all(np.sign(difference) == np.sign(gap) for difference in paired)
            side += " at every seed" if every_seed else " on the mean only"
        verdicts.setdefault(side, []).append(name)
    print("  " + "; ".join(f"{side}: {', '.join(names)}" for side, names in verdicts.items()))


table_2c = show_recorded("roi-align")
if table_2c is not None:
    for variant in ("RoIWarp (bilinear, max)", "RoIAlign (max)", "RoIAlign (avg)"):
        compare(table_2c, variant, "RoIPool (max)")

# %% [markdown]
# Read the gaps against the paper's. The paper's pattern is two pairs: RoIWarp with
# RoIPool, and the two RoIAlign variants together above them. Each block's last line
# sorts the metrics: "at every seed" means the gap keeps its sign in every paired
# comparison, a finding; "on the mean only" means it flips between seeds, within the
# noise of a few short trainings. So look first at RoIWarp's block (does it stay near
# RoIPool, and on which metrics is it behind?), then at the two RoIAlign blocks (are both
# ahead at every seed, by similar amounts, on AP and AP75?).
#
# Then set the size of our gains beside the paper's 3 AP and 5 AP75. Two things pull in
# opposite directions. Our FPN model pools the shapes of 128-px images from P2 (§4: boxes
# under 112 px go to P2), a stride-4 map, where §3 measured RoIPool's bins to lie a few
# pixels from the box; the paper's C4 model pools from stride 16, where the same errors
# are four times as many pixels. But our objects are small too: a shape of 16 to 51
# pixels, about a third of them rings and as many crosses a few pixels thick, loses far
# more of its mask IoU to an error of two pixels than a COCO object of a hundred pixels
# does. The gaps printed above say which of the two wins at our scale. The absolute
# numbers are those of a short training on a CPU (the recorded seconds above), not of
# days on 8 GPUs.

# %% [markdown]
# ### RoIWarp against RoIPool: which misalignment costs what
#
# The paper has RoIWarp level with RoIPool; our record has it behind. RoIWarp as MNC
# defines it carries two misalignments, and we can measure them apart. One is the
# rounding of the corners to whole cells, different for every box (up to half a cell,
# 2 px on P2). The other is the half-cell offset of `aligned=False`: RoIWarp samples the
# rounded box as the original RoIAlign did, with the cell centres at integer coordinates,
# so every sample sits half a cell to the right and below where it belongs. RoIPool has
# both too. To see where each op reads, pool a map whose every cell holds the x of its
# own centre in image pixels (stride 4, P2): with max aggregation the output of a bin is
# the x of its rightmost read, and the negated map gives its leftmost. Over random boxes
# the size of our shapes, each bin's reads against the exact bin's:

# %%
def where_ops_read(ops, stride=4, bins=7, num_boxes=1000, seed=2):
    """Per op: the mean signed distance (pixels) from the middle of a bin's reads to the
    middle of the exact bin, the mean of its absolute value, and the mean distances of the first and the
    last read from the exact bin's edges, along x, over random boxes 16 to 51 px wide."""
    rng = np.random.default_rng(seed)
    width = rng.uniform(16, 51, num_boxes)
    x1 = rng.uniform(4, 250 - 8 - width)
    centres = (np.arange(64) + 0.5) * stride  # cell c's centre, in image pixels
    x_map = np.broadcast_to(centres, (1, 1, 8, 64)).copy()
    boxes = np.stack([np.zeros(num_boxes), x1, np.full(num_boxes, 2.0), x1 + width,
                      np.full(num_boxes, 20.0)], axis=1)
    exact_start = x1[:, None] + width[:, None] * np.arange(bins) / bins
    exact_end = exact_start + width[:, None] / bins
    rows = {}
    for name, op in ops.items():
        last = op(x_map, boxes, bins, stride).data[:, 0, 0]  # (boxes, bins)
        first = -op(-x_map, boxes, bins, stride).data[:, 0, 0]
        offset = (first + last) / 2 - (exact_start + exact_end) / 2
        rows[name] = tuple(round(value, 2) + 0.0 for value in (  # + 0.0: no "-0.00"
            offset.mean(), np.abs(offset).mean(), (first - exact_start).mean(),
            (last - exact_end).mean()))
    return rows


READERS = {  # every op with max aggregation, as the rows of Table 2c with max
    "RoIPool": lambda f, b, p, s: roi_pool(f, b, p, 1 / s),
    "RoIWarp (MNC, the paper's)": lambda f, b, p, s: roi_warp(f, b, p, 1 / s, 0, "max"),
    "RoIWarp, no half-cell offset": lambda f, b, p, s: roi_warp(f, b, p, 1 / s, 0, "max",
                                                                 aligned=True),
    "RoIAlign, aligned=False": lambda f, b, p, s: roi_align(f, b, p, 1 / s, 0, False, "max"),
    "RoIAlign, aligned=True": lambda f, b, p, s: roi_align(f, b, p, 1 / s, 0, True, "max"),
}
print(f"{'pixels, 7 bins on P2':30s}{'offset':>8s}{'|offset|':>10s}{'first read':>12s}"
      f"{'last read':>11s}")
print(f"{'':30s}{'':18s}{'- bin start':>12s}{'- bin end':>11s}")
for name, (offset, magnitude, first, last) in where_ops_read(READERS).items():
    print(f"{name:30s}{offset:+8.2f}{magnitude:10.2f}{first:+12.2f}{last:+11.2f}")


# %% [markdown]
# Read the columns. The two ops without the half-cell offset read the exact bin on
# average (offset 0.00); the three with it, RoIPool among them, all read 2 px (half a
# P2 cell) to the right of it. So on the offset RoIPool and the paper's RoIWarp are
# alike, and what tells them apart is the size of what they read. RoIPool's first and
# last reads are cell centres, and a cell stands for 2 px on either side of its centre:
# its first cell starts a quarter of a pixel inside the exact bin (2.25 - 2) and its last
# ends almost 4 px past it (1.75 + 2), so each bin's max still sees nearly all of its
# exact bin. RoIWarp's samples are points at the centres of sub-bins, and shifted by the
# offset its first sample of a bin lies 3.5 px inside it.
# The `|offset|` of RoIWarp without the offset, under a pixel, is the rounding alone.
#
# Which of the two misalignments costs AP? Two control trainings answer, each at the 2c
# record's seeds, so each is paired with the record's rows at the same initial weights
# and batches: RoIWarp without the half-cell offset (`warp_aligned=True`, the rounding
# alone; not an op of the paper) and RoIAlign (max) with `aligned=False` (the offset
# alone, which is the paper's own RoIAlign). With the record's RoIWarp (both) and RoIAlign
# (max) (neither) that makes the four corners of a two-by-two; RoIPool beside them. The
# commands and numbers are in `lessons/results/roi-op-controls.jsonl`.

# %%
CONTROLS = os.path.join(RESULTS, "roi-op-controls.jsonl")
CONTROL_NAMES = {"warp-aligned": "RoIWarp, no half-cell offset",
                 "align-unaligned": "RoIAlign (max), aligned=False"}


def control_table(result, path=CONTROLS):
    """Print mask AP per seed, mean mask AP, AP75 and box AP of the record's rows with max
    aggregation and of the control trainings in ``path``, at the seeds they share. Returns
    ({name: {key: [value per seed]}}, seeds, {name: (rounds, offset)}), or None."""
    if result is None or not os.path.exists(path):
        print(f"needs the roi-align record and {path}")
        return None
    with open(path) as stream:
        controls = [json.loads(line) for line in stream if line.strip()]
    for command in dict.fromkeys(control["command"] for control in controls):
        print("control:", command)
    table = {}
    for training in result["trainings"]:
        if training["variant"] != "RoIAlign (avg)":
            table.setdefault(training["variant"], {})[training["seed"]] = {
                key: training[key] for key in ("AP", "AP75", "AP_bb")}
    for control in controls:
        segm, bbox = control["metrics"]["segm"], control["metrics"]["bbox"]
        table.setdefault(CONTROL_NAMES[control["tag"]], {})[control["seed"]] = {
            "AP": segm["AP"], "AP75": segm["AP75"], "AP_bb": bbox["AP"]}
    seeds = sorted(set.intersection(*(set(by_seed) for by_seed in table.values())))
    order = ["RoIPool (max)", "RoIWarp (bilinear, max)", CONTROL_NAMES["warp-aligned"],
             CONTROL_NAMES["align-unaligned"], "RoIAlign (max)"]
    print(f"{'':32s}{'rounding':>9s}{'offset':>8s}" + "".join(
        f"{'mask AP s' + str(seed):>12s}" for seed in seeds) + f"{'mean':>7s}{'AP75':>7s}"
        f"{'box AP':>8s}")
    flags = {"RoIPool (max)": ("yes", "yes"), "RoIWarp (bilinear, max)": ("yes", "yes"),
             CONTROL_NAMES["warp-aligned"]: ("yes", "no"),
             CONTROL_NAMES["align-unaligned"]: ("no", "yes"), "RoIAlign (max)": ("no", "no")}
    values = {}
    for name in order:
        values[name] = {key: [table[name][seed][key] for seed in seeds]
                        for key in ("AP", "AP75", "AP_bb")}
        print(f"{name:32s}{flags[name][0]:>9s}{flags[name][1]:>8s}" + "".join(
            f"{ap:12.1f}" for ap in values[name]["AP"])
            + "".join(f"{np.mean(values[name][key]):7.1f}" for key in ("AP", "AP75"))
            + f"{np.mean(values[name]['AP_bb']):8.1f}")
    return values, seeds, flags


def paired(values, first, second, key="AP"):
    """first minus second at each seed, and their mean."""
    differences = np.subtract(values[first][key], values[second][key])
    print(f"{first} minus {second}, {key}: {differences.mean():+.1f} (seeds: "
          + ", ".join(f"{d:+.1f}" for d in differences) + ")")


controls = control_table(table_2c)
if controls is not None:
    values, control_seeds, flags = controls
    paired(values, CONTROL_NAMES["warp-aligned"], "RoIWarp (bilinear, max)")
    paired(values, CONTROL_NAMES["align-unaligned"], "RoIAlign (max)")
    paired(values, "RoIAlign (max)", CONTROL_NAMES["warp-aligned"])
    paired(values, "RoIWarp (bilinear, max)", "RoIPool (max)")
    paired(values, CONTROL_NAMES["warp-aligned"], "RoIPool (max)")
    figure, axes = plt.subplots(figsize=(8.5, 3.6))
    for column, by_key in enumerate(values.values()):
        axes.scatter([column] * len(control_seeds), by_key["AP"], color="tab:blue", zorder=3,
                     label="one seed" if column == 0 else None)
        axes.hlines(np.mean(by_key["AP"]), column - 0.3, column + 0.3, color="black",
                    label="mean" if column == 0 else None)
    axes.set_xticks(range(len(values)), [
        name.replace(", ", ",\n").replace(" (", "\n(")
        + f"\nrounds: {flags[name][0]}, offset: {flags[name][1]}" for name in values],
        fontsize=8)
    axes.set_ylabel("mask AP")
    axes.set_ylim(0, None)
    axes.set_title("Table 2c's rows with max and the two controls: the rounding costs the AP")
    axes.legend(loc="upper left", fontsize=8)
    plt.show()

# %% [markdown]
# Read the two-by-two along its sides. Taking the half-cell offset away moves neither op
# much: RoIWarp gains 0.9 AP (+0.3, +2.2, +0.2: ahead at every seed, by less than half a
# point at two of them), and RoIAlign with the offset, `aligned=False` as in the original
# implementation, lands level with ours (+0.2 on the mean, the sign flipping between
# seeds). Taking the rounding away moves everything: RoIAlign (max) is 14.3 AP above
# RoIWarp without the offset, at every seed. Our reading of why: an offset that is the
# same for every box is one the heads can learn to undo (their convolutions can shift
# their filters by half a cell), where the rounding differs from box to box, makes the
# features a step function of the box (§2) and cannot be undone. Either way, measured:
# the rounding is the cost, and bilinear sampling does not help without alignment, which
# is the paper's reading of Table 2c.
#
# What is left is the 1.3 AP by which the paper's RoIWarp trails RoIPool here (in the
# paper it is 0.3 ahead). Without the offset RoIWarp is 0.4 behind RoIPool (-0.1, -0.2,
# -1.0), so most of that gap is the offset, and the table of reads above shows why it
# costs RoIWarp and not RoIPool: RoIPool's whole cells still cover nearly all of each
# exact bin with the offset, where RoIWarp's shifted point samples leave the first 3.5 px
# of each bin out. So our RoIWarp row differs from the paper's by a detail of how the op reads, not by
# what the table is about.

# %% [markdown]
# Table 2d puts every RoI on one stride-32 map (C5, no FPN), recorded with
# `tinymask ablate large-stride --seeds 3 --record`. It trains on images twice the other
# tables' size with the objects scaled alike (the data line under the table): on 128-px
# images the stride-32 map has only 4x4 cells, and in the first record both rows stayed
# near 0 mask AP there.

# %%
table_2d = show_recorded("large-stride")
if table_2d is not None:
    compare(table_2d, "RoIAlign", "RoIPool")
    data_2d = table_2d.get("settings", {}).get("data", {})
    image_size = data_2d.get("image_size", MaskRCNNConfig.small().min_size)
    print(f"a {image_size}-px image gives a stride-32 map of {image_size // 32}x"
          f"{image_size // 32} cells of 32x32 pixels; the smallest shape, "
          f"{data_2d.get('min_size', '?')} px, is {data_2d.get('min_size', 0) / 32:.1f} of a cell "
          f"across")

# %% [markdown]
# Read the block's last line against the paper, where RoIAlign is ahead on every metric:
# each metric listed as "behind" is one our record does not reproduce, and one "on the
# mean only" is not settled by three seeds. Then set the sizes of the gaps beside the
# paper's and beside Table 2c's. The paper's point is that at stride 32 RoIAlign's gain
# *grows* (+7.3 mask AP, against about +3 at stride 16 in its Table 2c) and reaches the
# boxes too (+5.8 box AP). In mask AP ours does not grow: the gap above is smaller than
# our Table 2c's, printed earlier, whose FPN models pool small shapes from stride-4 maps
# where the thin rings and crosses already lose much to rounding. Where the stride shows
# is the box AP: RoIPool's rounding is now to cells of 32 pixels, about as large as the
# smallest shapes (the last line printed), so a box may be pooled from a region half an
# object away, and the box head reads those same features. RoIPool's box AP falls to a
# third of RoIAlign's, and its masks, cut from those boxes, to a quarter: the table's
# means say how far. Both rows stay below our Table 2c's models: one stride-32 map is a
# poor place to find objects of one or two cells, whatever the RoI op.
#
# ## Summary
#
# - RoIPool rounds the box and its bins to feature cells; RoIWarp rounds the box, then
#   samples bilinearly; RoIAlign never rounds.
# - Rounding makes the pooled features a step function of the box position, makes them
#   depend on the map's resolution, and moves RoIPool's bins by more than its corners.
# - RoIAlign with `aligned=True` reads the same points of the image at every resolution.
# - Of RoIWarp's two misalignments, the rounding costs the AP and the half-cell offset,
#   the same for every box, at most about a point: measured by two control trainings (§5).
# - FPN assigns each RoI one level by its size; the RoI op is one config field
#   (`roi_op`, `roi_aggregation`, `aligned`), so an ablation changes nothing else.
#
# ## Exercises
#
# 1. **Task 6.1**, bilinear interpolation of one point: write `bilinear_weights` in
#    `tinymask/ops/roi_geometry.py` between the task markers (§1). The solution is what
#    the model runs: the RoIAlign and RoIWarp kernels, on the CPU and the GPU, compile it.
#    Check it with `tinymask course check 6.1` or the last cell.
# 2. **Task 6.2**, one RoIAlign bin: `roi_align_geometry` and `sample_coordinate` in the
#    same file (§1). Check: `tinymask course check 6.2`.
# 3. **Task 6.3**, RoIPool's quantisation of a box and its bins:
#    `round_half_away_from_zero`, `quantize_rois`, `roi_pool_size` and `roi_pool_bin_range`
#    in the same file (§1). Check: `tinymask course check 6.3`.
#
#    The kernels are compiled from these functions, once per Python process: after editing
#    them, restart the notebook's kernel; the lesson's first cell then has the kernels
#    compiled anew from your code (`tinymask course check` does this by itself).
# 4. A box (x1, y1, x2, y2) = (20, 30, 120, 67) on a stride-8 map, pooled to 7x7 by RoIAlign
#    with `aligned=True` and adaptive sampling (`sampling_ratio=0`). How many samples does
#    each bin take along y and along x? Work it out by hand with §1's rules.
# 5. RoIPool on a stride-16 map, a box that runs from x = 40 to x = 200 pixels, 7 bins
#    along x. Which feature columns does bin 3 (the fourth) take the max over? Give them
#    as `[first, stop)`. Careful with the rounding of the corners.

# %%
samples_per_bin = (1, 2)  # your answer: (along y, along x)
assert roi_align_geometry(20.0, 30.0, 120.0, 67.0, 1 / 8, True, 7, 7, 0)[4:] == samples_per_bin, \
    "not the number of samples RoIAlign takes"
print("exercise 4: correct")

# %%
first, stop = 7, 10  # your answer: bin 3 takes the max over columns first .. stop - 1
# one channel per column c, 1 at column c and 0 elsewhere: bin 3 of channel c is 1 exactly
# when RoIPool's bin 3 takes column c
columns = np.eye(20)[:, None, :][None]  # (1, 20, 1, 20)
taken = roi_pool(columns, np.array([[0, 40.0, 0.0, 200.0, 0.0]]), (1, 7), spatial_scale=1 / 16)
assert np.flatnonzero(taken.data[0, :, 0, 3]).tolist() == list(range(first, stop)), \
    "not the columns bin 3 takes"
print("exercise 5: correct")

# %%
check_tasks("6.1", "6.2", "6.3")
print("exercise checks passed")
