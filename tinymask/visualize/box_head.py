"""Pictures of the box head: proposals labelled by the matcher, which deltas the Fast R-CNN
loss reads, and proposals refined into boxes.

Boxes are ``(N, 4)`` xyxy in pixels; class labels are ints in 0..K with 0 = background.
Boxes are drawn over the image as ``instances.py`` draws them: imshow centres pixel c on c,
so a box edge at pixel coordinate x is drawn at x - 0.5. NumPy or CuPy arrays are accepted.

Everything builds a ``matplotlib.figure.Figure`` directly, never through pyplot, so nothing
opens a window and it works on a headless machine.
"""

from __future__ import annotations

import numpy
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from tinymask.backend import to_numpy

GROUND_TRUTH_COLOUR = "white"
PROPOSAL_COLOUR = "yellow"
REFINED_COLOUR = "lime"
BACKGROUND_COLOUR = "0.6"  # grey


def class_colour(label: int):
    """The colour of class ``label`` (1..K) in these pictures: tab10's, background grey."""
    if int(label) == 0:
        return BACKGROUND_COLOUR
    palette = colormaps["tab10"].colors
    return palette[(int(label) - 1) % len(palette)]


def outline_boxes(ax, boxes, colour, linewidth: float = 1.0, linestyle: str = "-"):
    """Outline each box (N, 4) over an image shown with imshow; returns the rectangles."""
    patches = []
    for x1, y1, x2, y2 in to_numpy(boxes).reshape(-1, 4).astype(float):
        patch = Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False,
                          edgecolor=colour, linewidth=linewidth, linestyle=linestyle,
                          antialiased=False)
        ax.add_patch(patch)
        patches.append(patch)
    return patches


def _image_axes(ax, image, title):
    image = to_numpy(image)
    ax.imshow(image, interpolation="nearest")  # the pixels the model reads, as blocks
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def plot_matched_proposals(image, candidates, labels, gt_boxes, class_names) -> Figure:
    """The candidate boxes as the matcher labelled them: foreground in its class's colour
    (named in a legend), background in grey, over the image with the ground truth (white,
    dashed). ``labels`` (N,) holds each candidate's class, 0 for background."""
    candidates, labels = to_numpy(candidates), to_numpy(labels).astype(int)
    if len(labels) != len(candidates):
        raise ValueError(f"labels must give one class per candidate: {len(labels)} labels "
                         f"for {len(candidates)} candidates")
    figure = Figure(figsize=(4.0, 4.2), layout="constrained")
    ax = figure.subplots()
    foreground = labels > 0
    _image_axes(ax, image, f"{len(candidates)} candidates: {foreground.sum()} foreground "
                           f"(class colours),\n{(~foreground).sum()} background (grey); "
                           "ground truth (white)")
    outline_boxes(ax, candidates[~foreground], BACKGROUND_COLOUR, 0.5)
    for index in numpy.flatnonzero(foreground):
        outline_boxes(ax, candidates[index : index + 1], class_colour(labels[index]), 0.7)
    outline_boxes(ax, gt_boxes, GROUND_TRUTH_COLOUR, 1.4, "--")
    present = numpy.unique(labels[foreground])
    handles = [Patch(facecolor="none", edgecolor=class_colour(label), label=class_names[label])
               for label in present]
    if handles:
        ax.legend(handles=handles, loc="upper left", fontsize=7, framealpha=0.8)
    return figure


def plot_deltas_read(touched, labels, class_names) -> Figure:
    """Which of the box head's deltas the box loss reads: ``touched`` is (R, 4(K+1)) or
    (R, K+1, 4), True where the loss has a gradient; one row per RoI, labelled with its
    class, the columns grouped by class (dx, dy, dw, dh for each)."""
    labels = to_numpy(labels).astype(int)
    touched = to_numpy(touched).reshape(len(labels), -1).astype(float)
    num_classes = touched.shape[1] // 4
    if touched.shape[1] != 4 * num_classes or len(class_names) != num_classes:
        raise ValueError(f"touched must have 4 columns per class ({len(class_names)} class "
                         f"names), got {touched.shape[1]} columns")
    figure = Figure(figsize=(7.5, 0.25 * len(labels) + 1.4), layout="constrained")
    ax = figure.subplots()
    ax.imshow(touched, cmap="Greens", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    for boundary in range(1, num_classes):
        ax.axvline(4 * boundary - 0.5, color="black", linewidth=1.0)
    ax.set_xticks([4 * k + 1.5 for k in range(num_classes)], class_names)
    ax.set_yticks(range(len(labels)), [class_names[label] for label in labels])
    ax.set_ylabel("RoIs, by their class")
    ax.set_xlabel("columns of box_deltas, four (dx, dy, dw, dh) per class")
    ax.set_title("deltas the box loss reads (green): the ground-truth class's four, "
                 "foreground RoIs only", fontsize=10)
    return figure


def plot_refinement(image, gt_boxes, proposals, refined_per_panel, titles) -> Figure:
    """One panel for the proposals (yellow), then one per set of refined boxes (green), each
    over the image with the ground truth (white, dashed). ``refined_per_panel`` is a list of
    (N, 4) arrays, row n being proposal n after the head's deltas."""
    if len(refined_per_panel) != len(titles) - 1:
        raise ValueError(f"titles must name the proposals' panel and each refined panel: "
                         f"{len(titles)} titles for {len(refined_per_panel)} refined sets")
    panels = 1 + len(refined_per_panel)
    figure = Figure(figsize=(2.8 * panels, 3.0), layout="constrained")
    axes = figure.subplots(1, panels)
    _image_axes(axes[0], image, titles[0])
    outline_boxes(axes[0], gt_boxes, GROUND_TRUTH_COLOUR, 1.4, "--")
    outline_boxes(axes[0], proposals, PROPOSAL_COLOUR, 0.7)
    for ax, refined, title in zip(axes[1:], refined_per_panel, titles[1:]):
        _image_axes(ax, image, title)
        outline_boxes(ax, gt_boxes, GROUND_TRUTH_COLOUR, 1.4, "--")
        outline_boxes(ax, refined, REFINED_COLOUR, 0.7)
    return figure


def plot_candidates_and_detections(image, candidate_boxes, candidate_labels, boxes, labels,
                                   scores, class_names, titles) -> Figure:
    """Two panels in class colours: the candidate (box, class) pairs that pass the score
    threshold, then the detections left after NMS, each with its class name and score.
    ``titles`` names the two panels."""
    candidate_boxes = to_numpy(candidate_boxes).reshape(-1, 4)
    candidate_labels = to_numpy(candidate_labels).astype(int)
    boxes, labels = to_numpy(boxes).reshape(-1, 4), to_numpy(labels).astype(int)
    scores = to_numpy(scores)
    if len(candidate_labels) != len(candidate_boxes) or not len(boxes) == len(labels) == len(
            scores):
        raise ValueError("give one label per candidate box, and one label and one score per "
                         "detected box")
    figure = Figure(figsize=(5.8, 3.3), layout="constrained")
    left, right = figure.subplots(1, 2)
    _image_axes(left, image, titles[0])
    for box, label in zip(candidate_boxes, candidate_labels):
        outline_boxes(left, box, class_colour(label), 0.7)
    _image_axes(right, image, titles[1])
    for box, label, score in zip(boxes, labels, scores):
        colour = class_colour(label)
        outline_boxes(right, box, colour, 1.4)
        # inside the box's top-left corner, so a box at the image's edge keeps its text
        right.text(box[0] - 0.5, box[1] - 0.5, f"{class_names[label]} {score:.2f}", fontsize=6,
                   color="white", verticalalignment="top",
                   bbox={"facecolor": colour, "alpha": 0.8, "pad": 1, "edgecolor": "none"})
    return figure
