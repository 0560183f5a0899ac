"""Pictures of boxes: outlines with labels, an IoU matrix beside its boxes, NMS before and after.

For the lesson on boxes and non-maximum suppression. Boxes are ``(N, 4)`` xyxy rows in
continuous coordinates (REFERENCE.md, opening note), drawn as they are, with y growing
downwards as in an image; NumPy or CuPy arrays are accepted.

Everything builds a ``matplotlib.figure.Figure`` directly, never through pyplot, so nothing
opens a window and it works on a headless machine.
"""

from __future__ import annotations

import numpy
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, is_color_like, to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from tinymask.backend import to_numpy
from tinymask.boxes import check_boxes_shape


def draw_boxes(ax, boxes, colours="tab:blue", texts=None, linewidth: float = 1.5,
               linestyle: str = "-", alpha: float = 1.0, fontsize: float = 8):
    """Outline each box of ``boxes`` (N, 4) on ``ax``, with ``texts[n]`` at its top-left.

    ``colours`` is one matplotlib colour or one per box. Returns the N rectangles drawn."""
    boxes = to_numpy(boxes)
    check_boxes_shape(boxes)
    if is_color_like(colours):
        colours = [colours] * len(boxes)
    if len(colours) != len(boxes):
        raise ValueError(f"colours must be one colour or one per box, got {len(colours)} "
                         f"colours for {len(boxes)} boxes")
    patches = []
    for index, (x1, y1, x2, y2) in enumerate(boxes.astype(float)):
        patch = Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colours[index],
                          linewidth=linewidth, linestyle=linestyle, alpha=alpha)
        ax.add_patch(patch)
        patches.append(patch)
        if texts is not None and texts[index]:
            ax.text(x1, y1, texts[index], color=text_colour_on(colours[index]), fontsize=fontsize,
                    alpha=alpha,
                    verticalalignment="bottom",
                    bbox={"facecolor": colours[index], "alpha": 0.8 * alpha, "pad": 1,
                          "edgecolor": "none"})
    return patches


def text_colour_on(colour) -> str:
    """Black on a light background colour, white on a dark one."""
    red, green, blue, _ = to_rgba(colour)
    return "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.6 else "white"


def frame_boxes(ax, boxes, margin: float = 0.08) -> None:
    """Fit ``ax`` around ``boxes`` (N, 4) with a margin (a fraction of the extent), equal
    scales, y downwards."""
    boxes = to_numpy(boxes).astype(float)
    left, top = boxes[:, 0].min(), boxes[:, 1].min()
    right, bottom = boxes[:, 2].max(), boxes[:, 3].max()
    pad = margin * max(right - left, bottom - top, 1e-9)
    ax.set_xlim(left - pad, right + pad)
    ax.set_ylim(bottom + pad, top - pad)
    ax.set_aspect("equal")


def plot_iou_matrix(boxes, iou, names=None) -> Figure:
    """A Figure: the boxes (N, 4) on the left, their (N, N) IoU matrix on the right, every
    entry written in its cell. ``names`` label the boxes in both panels (default A, B, ...)."""
    boxes, iou = to_numpy(boxes), to_numpy(iou)
    count = len(boxes)
    if iou.shape != (count, count):
        raise ValueError(f"iou must be the ({count}, {count}) matrix of the {count} boxes, "
                         f"got shape {iou.shape}")
    names = list(names) if names is not None else [chr(ord("A") + n) for n in range(count)]
    colours = colormaps["tab10"].colors
    colours = [colours[n % len(colours)] for n in range(count)]
    figure = Figure(figsize=(10, 4.2), layout="constrained")
    left, right = figure.subplots(1, 2)
    draw_boxes(left, boxes, colours, names, linewidth=2, fontsize=10)
    frame_boxes(left, boxes)
    left.set_title("boxes (x1, y1, x2, y2), y down")
    image = right.imshow(iou, cmap="viridis", vmin=0, vmax=1)
    for row in range(count):
        for column in range(count):
            value = iou[row, column]
            right.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=9,
                       color="black" if value > 0.6 else "white")
    right.set_xticks(range(count), names)
    right.set_yticks(range(count), names)
    right.set_title("IoU of each pair")
    figure.colorbar(image, ax=right, shrink=0.8)
    return figure


def plot_nms(boxes, scores, keep, title: str = "") -> Figure:
    """A Figure: all boxes (N, 4) coloured by score on the left; on the right the kept
    boxes (indices ``keep``) with their scores, and the suppressed ones faint and dashed."""
    boxes, scores = to_numpy(boxes), to_numpy(scores).astype(float)
    keep = to_numpy(keep).astype(numpy.int64)
    kept = numpy.zeros(len(boxes), dtype=bool)
    kept[keep] = True
    norm = Normalize(scores.min(), scores.max() if scores.max() > scores.min() else
                     scores.min() + 1)
    colour_of = colormaps["viridis"]
    colours = [colour_of(norm(score)) for score in scores]
    # lowest scores first, so the best boxes are drawn on top
    order = numpy.argsort(scores, kind="stable")

    figure = Figure(figsize=(10, 4.6), layout="constrained")
    before, after = figure.subplots(1, 2)
    draw_boxes(before, boxes[order], [colours[n] for n in order], linewidth=1.2)
    before.set_title(f"before NMS: {len(boxes)} boxes, coloured by score")
    figure.colorbar(ScalarMappable(norm, colour_of), ax=before, location="bottom", shrink=0.6,
                    label="score")
    suppressed = numpy.flatnonzero(~kept)
    draw_boxes(after, boxes[suppressed], "grey", linewidth=0.8, linestyle="--", alpha=0.5)
    draw_boxes(after, boxes[keep], [colours[n] for n in keep],
               [f"{scores[n]:.2f}" for n in keep], linewidth=2.2)
    after.set_title(f"after NMS: {len(keep)} kept (solid), {len(suppressed)} suppressed")
    for ax in (before, after):
        frame_boxes(ax, boxes)
    if title:
        figure.suptitle(title)
    return figure
