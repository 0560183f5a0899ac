"""Pictures of the mask branch's training targets: several RoIs of one object, what each
RoI reads of the image, and the m x m target cropped from the ground-truth mask.

Boxes are xyxy in pixels and drawn as ``instances.py`` draws them (imshow centres pixel c
on c, so an edge at x is drawn at x - 0.5). NumPy or CuPy arrays are accepted.

Everything builds a ``matplotlib.figure.Figure`` directly, never through pyplot, so nothing
opens a window and it works on a headless machine.
"""

from __future__ import annotations

import numpy
from matplotlib import colormaps
from matplotlib.figure import Figure

from tinymask.backend import to_numpy
from tinymask.visualize.box_head import GROUND_TRUTH_COLOUR, outline_boxes


def roi_colour(index: int):
    """The colour of RoI ``index`` in these pictures (tab10's, in order)."""
    palette = colormaps["tab10"].colors
    return palette[index % len(palette)]


def plot_mask_targets(image, gt_box, rois, crops, targets, titles, margin: int = 12) -> Figure:
    """One column per RoI, three rows: the RoI (coloured) and the ground-truth box (white,
    dashed) over the image near the object; what the RoI reads of the image (``crops``,
    (P, m, m, 3) in [0, 1]) with the target's outline; the m x m target (``targets``,
    (P, m, m), white = object). ``titles``: one per RoI."""
    image, gt_box = to_numpy(image), to_numpy(gt_box).reshape(4)
    rois, crops, targets = to_numpy(rois), to_numpy(crops), to_numpy(targets)
    if not len(rois) == len(crops) == len(targets) == len(titles):
        raise ValueError(f"one crop, target and title per RoI: {len(rois)} RoIs, "
                         f"{len(crops)} crops, {len(targets)} targets, {len(titles)} titles")
    corners = numpy.concatenate([rois, gt_box[None]])
    # the object's neighbourhood, within the image
    left, top = numpy.maximum(numpy.floor(corners[:, :2].min(axis=0)) - margin, 0)
    right = min(numpy.ceil(corners[:, 2].max()) + margin, image.shape[1])
    bottom = min(numpy.ceil(corners[:, 3].max()) + margin, image.shape[0])
    figure = Figure(figsize=(2.1 * len(rois), 6.8), layout="constrained")
    axes = figure.subplots(3, len(rois), squeeze=False)
    for index, (roi, crop, target, title) in enumerate(zip(rois, crops, targets, titles)):
        top_ax, crop_ax, target_ax = axes[:, index]
        top_ax.imshow(image, interpolation="nearest")
        outline_boxes(top_ax, gt_box[None], GROUND_TRUTH_COLOUR, 1.2, "--")
        outline_boxes(top_ax, roi[None], roi_colour(index), 1.8)
        top_ax.set_xlim(left - 0.5, right - 0.5)
        top_ax.set_ylim(bottom - 0.5, top - 0.5)
        top_ax.set_title(title, fontsize=9, color=roi_colour(index))
        crop_ax.imshow(numpy.clip(crop, 0.0, 1.0), interpolation="nearest")
        if target.min() < 0.5 <= target.max():
            crop_ax.contour(target, levels=[0.5], colors=[roi_colour(index)], linewidths=1.2)
        target_ax.imshow(target, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        for ax in axes[:, index]:
            ax.set_xticks([])
            ax.set_yticks([])
    size = targets.shape[-1]
    axes[0, 0].set_ylabel("the RoI (ground truth: white, dashed)", fontsize=9)
    axes[1, 0].set_ylabel(f"the image inside the RoI, {size}x{size}\n(the target's outline)",
                          fontsize=9)
    axes[2, 0].set_ylabel(f"the {size}x{size} target", fontsize=9)
    return figure
