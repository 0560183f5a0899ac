"""Pictures of where RoIPool, RoIWarp and RoIAlign read a feature map (Mask R-CNN Figure 3).

For the lessons on Table 2c: draw the feature grid, a RoI as given (dashed), the box the op
really divides into bins (solid), its PH x PW bins, and what each bin reads: the sample
points of RoIWarp and RoIAlign, the whole cells of RoIPool. A student sees the rounding.

Everything drawn comes from ``roi_geometry`` (and ``roi_warp_as_roi_align``), the functions
the kernels themselves run, so the picture shows what the kernel reads; the tests check
that the drawn points reproduce the kernels' outputs.

Drawing frame: feature cell ``(i, j)`` (row i, column j) is the unit square
``[j, j + 1] x [i, i + 1]``, rows growing downwards, and its value sits at its centre
``(j + 0.5, i + 0.5)``. RoIAlign counts coordinates from cell centres (cell i is read at
coordinate i), so a sample at RoIAlign coordinate ``(y, x)`` is drawn at
``(y + 0.5, x + 0.5)``. A RoI ``(x1, y1, x2, y2)`` in image pixels is drawn at
``spatial_scale`` times those numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy

from tinymask.ops.roi_geometry import (
    quantize_rois,
    roi_align_geometry,
    roi_pool_bin_range,
    roi_pool_size,
    sample_coordinate,
)
from tinymask.ops.roi_inputs import check_roi_op
from tinymask.ops.roi_warp import roi_warp_as_roi_align

CELL_CENTRE = 0.5  # from RoIAlign coordinates (cell i at i) to the drawing frame (at i + 0.5)


@dataclass
class RoIReadout:
    """What one op reads for one RoI, in the drawing frame unless said otherwise.

    op:            "pool", "warp" or "align".
    given_box:     the RoI as given, ``(x1, y1, x2, y2) * spatial_scale``.
    used_box:      the box the op divides into bins, ``(x1, y1, x2, y2)``.
    bins:          ``(PH, PW, 4)`` bin rectangles ``(x1, y1, x2, y2)``; for RoIPool the
                   whole cells it max-pools (empty where clipped away by the map's edge).
    sample_points: ``(PH, PW, S, 2)`` points ``(y, x)`` in RoIAlign's coordinates (the
                   kernel's), in the kernel's order (iy, ix); S = 0 for RoIPool.
    """

    op: str
    given_box: tuple
    used_box: tuple
    bins: numpy.ndarray
    sample_points: numpy.ndarray


def roi_readout(op, box, feature_shape, spatial_scale=1.0, output_size=2, sampling_ratio=2,
                aligned=True) -> RoIReadout:
    """The geometry of ``op`` ("pool" | "warp" | "align") for one ``box`` (x1, y1, x2, y2)
    in image pixels, on a feature map of ``feature_shape`` (H, W). ``aligned`` is for
    "align" only; ``sampling_ratio`` for "warp" and "align"."""
    check_roi_op(op, "roi_readout")
    pooled_h, pooled_w = (output_size, output_size) if numpy.isscalar(output_size) \
        else tuple(output_size)
    height, width = feature_shape
    x1, y1, x2, y2 = (float(value) for value in box)
    given_box = (x1 * spatial_scale, y1 * spatial_scale, x2 * spatial_scale, y2 * spatial_scale)
    if op == "pool":
        start_x, start_y, end_x, end_y = quantize_rois(
            numpy.array([[0.0, x1, y1, x2, y2]]), spatial_scale)[0, 1:].astype(int).tolist()
        roi_h, roi_w = roi_pool_size(start_y, end_y), roi_pool_size(start_x, end_x)
        bins = numpy.zeros((pooled_h, pooled_w, 4))
        for ph in range(pooled_h):
            h_start, h_end = roi_pool_bin_range(start_y, roi_h, pooled_h, ph, height)
            for pw in range(pooled_w):
                w_start, w_end = roi_pool_bin_range(start_x, roi_w, pooled_w, pw, width)
                bins[ph, pw] = (w_start, h_start, w_end, h_end)  # cells [start, end)
        used_box = (start_x, start_y, start_x + roi_w, start_y + roi_h)  # both ends included
        return RoIReadout(op, given_box, used_box, bins, numpy.zeros((pooled_h, pooled_w, 0, 2)))

    if op == "warp":
        quantized, align_scale, align_aligned = roi_warp_as_roi_align(
            numpy.array([[0.0, x1, y1, x2, y2]]), spatial_scale)
        x1, y1, x2, y2 = quantized[0, 1:].tolist()
        spatial_scale, aligned = align_scale, align_aligned
    start_y, start_x, bin_h, bin_w, grid_h, grid_w = roi_align_geometry(
        x1, y1, x2, y2, spatial_scale, aligned, pooled_h, pooled_w, sampling_ratio)
    bins = numpy.zeros((pooled_h, pooled_w, 4))
    sample_points = numpy.zeros((pooled_h, pooled_w, grid_h * grid_w, 2))
    for ph in range(pooled_h):
        for pw in range(pooled_w):
            bin_x, bin_y = start_x + pw * bin_w, start_y + ph * bin_h
            bins[ph, pw] = numpy.array((bin_x, bin_y, bin_x + bin_w, bin_y + bin_h)) + CELL_CENTRE
            sample_points[ph, pw] = numpy.array([
                (sample_coordinate(start_y, bin_h, ph, iy, grid_h),
                 sample_coordinate(start_x, bin_w, pw, ix, grid_w))
                for iy in range(grid_h) for ix in range(grid_w)
            ]).reshape(-1, 2)
    used_box = tuple(numpy.array((start_x, start_y, start_x + pooled_w * bin_w,
                                  start_y + pooled_h * bin_h)) + CELL_CENTRE)
    return RoIReadout(op, given_box, used_box, bins, sample_points)


def plot_roi_readout(readout: RoIReadout, feature_shape, ax=None, title=None):
    """Draw one ``RoIReadout`` over an ``(H, W)`` feature grid; returns the matplotlib Axes.
    The sample points are the scatter with ``gid="samples"``."""
    import matplotlib.pyplot as plt  # noqa: PLC0415  (plotting is for lessons only)
    from matplotlib.patches import Rectangle  # noqa: PLC0415

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    height, width = feature_shape
    for row in range(height + 1):
        ax.plot([0, width], [row, row], color="0.8", linewidth=0.8)
    for column in range(width + 1):
        ax.plot([column, column], [0, height], color="0.8", linewidth=0.8)
    centres_y, centres_x = numpy.mgrid[0:height, 0:width] + CELL_CENTRE
    ax.scatter(centres_x.ravel(), centres_y.ravel(), s=4, color="0.6", gid="cell centres")

    def rectangle(box, **style):
        x1, y1, x2, y2 = box
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, **style))

    pooled_h, pooled_w = readout.bins.shape[:2]
    for ph in range(pooled_h):
        for pw in range(pooled_w):
            if readout.op == "pool":  # the cells RoIPool takes the max of, in a checkerboard
                x1, y1, x2, y2 = readout.bins[ph, pw]
                ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, alpha=0.25, linewidth=0,
                                       color="C1" if (ph + pw) % 2 else "C2"))
            rectangle(readout.bins[ph, pw], edgecolor="C3", linewidth=1, linestyle=":")
    rectangle(readout.given_box, edgecolor="C0", linewidth=2, linestyle="--")
    rectangle(readout.used_box, edgecolor="C3", linewidth=2)
    points = readout.sample_points.reshape(-1, 2) + CELL_CENTRE
    ax.scatter(points[:, 1], points[:, 0], s=18, color="C3", zorder=3, gid="samples")

    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)  # rows grow downwards, as in an image
    ax.set_aspect("equal")
    ax.set_xticks(range(width + 1))
    ax.set_yticks(range(height + 1))
    ax.set_title(title or readout.op)
    return ax


def plot_roi_ops(box, feature_shape, spatial_scale=1.0, output_size=2, sampling_ratio=2):
    """Table 2c side by side: RoIPool, RoIWarp, RoIAlign (aligned=False, the paper's
    implementation) and RoIAlign (aligned=True), for one ``box`` in image pixels.
    Returns the matplotlib Figure; the dashed box is the RoI as given."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    panels = [("pool", True, "RoIPool"), ("warp", False, "RoIWarp"),
              ("align", False, "RoIAlign, aligned=False"),
              ("align", True, "RoIAlign, aligned=True")]
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4))
    for ax, (op, aligned, title) in zip(axes, panels):
        readout = roi_readout(op, box, feature_shape, spatial_scale, output_size, sampling_ratio,
                              aligned)
        plot_roi_readout(readout, feature_shape, ax=ax, title=title)
    figure.tight_layout()
    return figure
