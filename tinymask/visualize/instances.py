"""Instances drawn over an image: the pictures of ``tinymask predict`` and the lessons.

Inputs are what the rest of tinymask produces: an image (H, W, 3) uint8, boxes (N, 4) xyxy
in pixels, labels (N,) in 1..K (0 is background), masks (N, H, W) binary or probabilities,
scores (N,). NumPy or CuPy arrays are accepted.

Everything builds a ``matplotlib.figure.Figure`` directly, never through pyplot, so nothing
opens a window and it works on a headless machine: save with ``figure.savefig("out.png")``
(in a notebook the Figure displays itself).
"""

from __future__ import annotations

import numpy
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from tinymask.backend import to_numpy


def instance_colours(count: int) -> numpy.ndarray:
    """(count, 3) RGB in [0, 1]: tab10's colours, repeated when there are more instances."""
    palette = numpy.array(colormaps["tab10"].colors)
    return palette[numpy.arange(count) % len(palette)]


def draw_instances(ax, image, boxes, labels, masks=None, scores=None, class_names=None,
                   score_threshold: float = 0.5, mask_threshold: float = 0.5,
                   mask_alpha: float = 0.45):
    """Draw an image with each instance's translucent mask, box and "label score" text.

    Detections scoring below ``score_threshold`` are left out (pass 0 to draw all, and no
    ``scores`` for ground truth). Each instance gets its own colour so that touching
    instances of one class stay apart. Returns ``ax``."""
    image = to_numpy(image)
    boxes = to_numpy(boxes).reshape(-1, 4)
    labels = to_numpy(labels).reshape(-1)
    keep = numpy.ones(len(boxes), dtype=bool)
    if scores is not None:
        scores = to_numpy(scores).reshape(-1)
        keep = scores >= score_threshold
    ax.imshow(image)
    colours = instance_colours(int(keep.sum()))
    if masks is not None:
        masks = to_numpy(masks)[keep]
        binary = masks > mask_threshold if masks.dtype.kind == "f" else masks.astype(bool)
        overlay = numpy.zeros((*image.shape[:2], 4))  # RGBA, transparent where no mask
        for mask, colour in zip(binary, colours):
            overlay[mask] = (*colour, mask_alpha)
        ax.imshow(overlay)
    kept_scores = scores[keep] if scores is not None else [None] * int(keep.sum())
    for box, label, score, colour in zip(boxes[keep], labels[keep], kept_scores, colours):
        x1, y1, x2, y2 = (float(value) for value in box)
        # imshow centres pixel c on c, so the pixel edge our boxes use is at c - 0.5
        ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False,
                               edgecolor=colour, linewidth=1.5))
        name = class_names[int(label)] if class_names is not None else str(int(label))
        text = name if score is None else f"{name} {float(score):.2f}"
        ax.text(x1 - 0.5, y1 - 1.5, text, color="white", fontsize=7, verticalalignment="bottom",
                bbox={"facecolor": colour, "alpha": 0.8, "pad": 1, "edgecolor": "none"})
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
    ax.set_axis_off()
    return ax


def show_prediction_and_ground_truth(image, prediction, target, class_names=None,
                                     score_threshold: float = 0.5) -> Figure:
    """A Figure with the model's prediction (left) and the ground truth (right)."""
    figure = Figure(figsize=(10, 5), layout="constrained")
    left, right = figure.subplots(1, 2)
    draw_instances(left, image, prediction["boxes"], prediction["labels"],
                   prediction.get("masks"), prediction["scores"], class_names, score_threshold)
    kept = int((to_numpy(prediction["scores"]) >= score_threshold).sum())
    left.set_title(f"prediction ({kept} with score >= {score_threshold})")
    draw_instances(right, image, target["boxes"], target["labels"], target.get("masks"),
                   class_names=class_names)
    count = len(to_numpy(target["labels"]))
    right.set_title(f"ground truth ({count} instance{'' if count == 1 else 's'})")
    return figure
