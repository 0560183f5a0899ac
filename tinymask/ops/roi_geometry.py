"""Where a RoI op reads the feature map: the geometry shared by RoIAlign, RoIWarp and RoIPool.

Mask R-CNN §3 (Figure 3, Table 2c) and REFERENCE.md §1. Shape letters:
    N, C, H, W   images, channels, height and width of the feature map
    K            RoIs, rows ``[batch_index, x1, y1, x2, y2]`` in image pixels
    PH, PW       output bins per RoI (7 x 7 for the box head, 14 x 14 for the mask head)

``spatial_scale`` (1 / stride) takes image pixels to feature-map units. In the coordinates
below (RoIAlign's and torchvision's), the value of feature cell ``i`` sits at the integer
coordinate ``i``.

The scalar functions here are plain Python: the reference loops and the lesson plots call
them as they are, and the Numba kernels compile this very source, with ``njit`` for the CPU
and ``cuda.jit(device=True)`` for the GPU. So there is one definition of where a sample sits,
and the picture a student draws is what the kernel reads.

Note for editors: Numba's on-disk cache (``cache=True``) watches only the file of a kernel,
not the files it calls. After editing this file, delete ``tinymask/ops/__pycache__`` so that
the kernels are compiled again.
"""

from __future__ import annotations

import functools
import math

import numpy

from tinymask.backend import array_module


# ----------------------------------------------------------------------------- RoIAlign
def roi_align_geometry(x1, y1, x2, y2, spatial_scale, aligned, pooled_h, pooled_w,
                       sampling_ratio):
    """RoIAlign's view of one RoI (REFERENCE §1 steps 1-4), with no rounding anywhere.

    Returns ``(start_y, start_x, bin_h, bin_w, grid_h, grid_w)``: the RoI's top-left corner
    in feature coordinates, the size of one of its PH x PW bins, and how many samples each
    bin takes along y and x.
    """
    # aligned=True moves the box half a cell up-left: a cell's value sits at its centre,
    # i + 0.5 in continuous coordinates, which is coordinate i here (Detectron2's ROIAlignV2).
    # --- task 6.2: one RoIAlign bin ---
    offset = 0.5 if aligned else 0.0
    start_x = x1 * spatial_scale - offset
    start_y = y1 * spatial_scale - offset
    end_x = x2 * spatial_scale - offset
    end_y = y2 * spatial_scale - offset
    roi_w = end_x - start_x
    roi_h = end_y - start_y
    if not aligned:
        # the original RoIAlign (torchvision's default) treats a RoI under one cell as 1 x 1
        roi_w = max(roi_w, 1.0)
        roi_h = max(roi_h, 1.0)
    bin_h = roi_h / pooled_h
    bin_w = roi_w / pooled_w
    # sampling_ratio <= 0: adaptive, about one sample per feature cell in each direction;
    # a RoI whose end lies before its start (possible with aligned=True) gets no samples
    grid_h = sampling_ratio if sampling_ratio > 0 else max(int(math.ceil(roi_h / pooled_h)), 0)
    grid_w = sampling_ratio if sampling_ratio > 0 else max(int(math.ceil(roi_w / pooled_w)), 0)
    return start_y, start_x, bin_h, bin_w, grid_h, grid_w
    # --- end task ---


def sample_coordinate(roi_start, bin_size, bin_index, sample_index, grid_size):
    """Sample ``sample_index`` of bin ``bin_index`` sits at the centre of its sub-bin
    (REFERENCE §1 step 5); the same formula for y (with ph, iy) and x (with pw, ix)."""
    # --- task 6.2: one RoIAlign bin ---
    return roi_start + bin_index * bin_size + (sample_index + 0.5) * bin_size / grid_size
    # --- end task ---


def bilinear_weights(y, x, height, width):
    """The four cells a bilinear read at ``(y, x)`` mixes, and their weights (REFERENCE §1 step 6).

    Returns ``(y_low, x_low, y_high, x_high, w_top_left, w_top_right, w_bottom_left,
    w_bottom_right)``; rows grow downwards, so ``y_low`` is the top row. The value read is
    ``w_top_left * f[y_low, x_low] + w_top_right * f[y_low, x_high]
    + w_bottom_left * f[y_high, x_low] + w_bottom_right * f[y_high, x_high]``.
    A sample more than one cell outside the map reads 0: all indices are -1, weights 0.
    """
    # written as "not inside" so that a NaN coordinate also lands here
    # --- task 6.1: bilinear interpolation of one point ---
    if not (-1.0 <= y <= height and -1.0 <= x <= width):
        return -1, -1, -1, -1, 0.0, 0.0, 0.0, 0.0
    # within one cell of the border: read the border cell, as if the map were extended
    y = max(y, 0.0)
    x = max(x, 0.0)
    y_low = int(y)
    x_low = int(x)
    if y_low >= height - 1:
        y_low = height - 1
        y_high = y_low
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = width - 1
        x_high = x_low
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly = y - y_low  # how far the sample lies from the top row towards the bottom row
    lx = x - x_low  # ... and from the left column towards the right one
    return (y_low, x_low, y_high, x_high,
            (1.0 - ly) * (1.0 - lx), (1.0 - ly) * lx, ly * (1.0 - lx), ly * lx)
    # --- end task ---


# ------------------------------------------------------------------------------ RoIPool
def round_half_away_from_zero(values):
    """C's ``round()``, elementwise: 2.5 -> 3 and -2.5 -> -3, where NumPy's ``round`` (and
    Python's) give 2 and -2. RoIPool quantizes with it (torchvision calls C++ ``round``).

    Works on NumPy and CuPy arrays and on scalars; exact, since ``values - trunc(values)``
    (the fractional part) is computed without rounding error.
    """
    xpm = array_module(values)
    # --- task 6.3: RoIPool's quantisation of a box and its bins ---
    whole = xpm.trunc(values)
    return whole + xpm.sign(values) * (abs(values - whole) >= 0.5)
    # --- end task ---


def quantize_rois(rois, spatial_scale):
    """RoIPool's first step (and RoIWarp's): snap the corners to feature cells.

    rois: ``(K, 5)`` rows ``[batch_index, x1, y1, x2, y2]`` in image pixels (NumPy or CuPy).
    Returns ``(K, 5)`` rows ``[batch_index, start_x, start_y, end_x, end_y]`` of whole cell
    indices (stored as floats, like the input): ``round(x1 * spatial_scale)`` and so on.
    """
    xpm = array_module(rois)
    quantized = xpm.array(rois, copy=True)
    # --- task 6.3: RoIPool's quantisation of a box and its bins ---
    quantized[:, 1:] = round_half_away_from_zero(rois[:, 1:] * spatial_scale)
    # --- end task ---
    return quantized


def roi_pool_size(start, end):
    """Cells covered by quantized corners ``start..end``: both ends are included, and a
    malformed RoI (end before start) still covers one cell."""
    # --- task 6.3: RoIPool's quantisation of a box and its bins ---
    return max(end - start + 1, 1)
    # --- end task ---


def roi_pool_bin_range(roi_start, roi_size, pooled_size, bin_index, map_size,
                       in_float32=False):
    """The cells ``[bin_start, bin_end)`` of RoIPool's bin ``bin_index`` along one axis.

    Bins of ``roi_size / pooled_size`` cells, their edges rounded outwards (floor the start,
    ceil the end), so neighbouring bins may share a cell; then clipped to the map, where a
    bin can become empty (``bin_end <= bin_start``).

    ``in_float32``: compute the edges in float32, as torchvision does for a float32 map;
    False computes them in float64 whatever the map's dtype. Both round, differently: for
    the last of 7 bins over a 57-cell RoI, 7 * (57 / 7) is 57.000004 in float32 and the ceil
    takes one cell beyond the RoI, while float64 gives exactly 57; over 29 cells float64
    gives 29.000000000000004 and float32 exactly 29.
    """
    if in_float32:
        bin_size32 = numpy.float32(roi_size) / numpy.float32(pooled_size)
        bin_start = int(math.floor(numpy.float32(bin_index) * bin_size32)) + roi_start
        bin_end = int(math.ceil(numpy.float32(bin_index + 1) * bin_size32)) + roi_start
    else:
        # --- task 6.3: RoIPool's quantisation of a box and its bins ---
        bin_size = roi_size / pooled_size
        bin_start = int(math.floor(bin_index * bin_size)) + roi_start
        bin_end = int(math.ceil((bin_index + 1) * bin_size)) + roi_start
        # --- end task ---
    return min(max(bin_start, 0), map_size), min(max(bin_end, 0), map_size)


# ------------------------------------------------------------------- before compiling
@functools.cache
def run_once_in_python(op: str) -> None:
    """Call the scalar functions of ``op`` ("align": RoIAlign and RoIWarp; "pool": RoIPool)
    once as plain Python, before a kernel compiles them.

    A mistake in them, or a course task still left as its stub, then stops with a Python
    error naming its line (``NotImplementedError: Task 6.1, ...``) instead of a Numba typing
    error about the kernel that calls them. Done once per process and op: a success is
    cached, an error is raised again at the next call.
    """
    if op == "align":
        roi_align_geometry(0.0, 0.0, 4.0, 4.0, 1.0, True, 2, 2, 0)
        sample_coordinate(0.0, 2.0, 1, 0, 2)
        bilinear_weights(1.5, 0.5, 4, 4)
    else:
        roi_pool_size(0, 3)
        roi_pool_bin_range(0, 4, 2, 1, 4)
