"""Pictures of one image's way through a trained Mask R-CNN, stage by stage, and of the
cases where the model fails: the anchors the matcher labels, the RPN's objectness on each
pyramid level, proposals before and after NMS, the RoI features of one box read by
RoIAlign and by RoIPool, the per-class mask logits, the pasted masks, and a gallery of
failures.

Conventions as in the rest of ``tinymask.visualize``: boxes are ``(N, 4)`` xyxy in image
pixels, drawn over an image shown with imshow, where pixel c is centred on c (a box edge at
coordinate x is drawn at x - 0.5); labels are ints in 1..K, 0 the background; NumPy or CuPy
arrays are accepted. A feature map is drawn in ``roi_grid``'s frame: cell (i, j) is the unit
square ``[j, j + 1] x [i, i + 1]``.

Everything builds a ``matplotlib.figure.Figure`` directly, never through pyplot, so nothing
opens a window and it works on a headless machine.
"""

from __future__ import annotations

import numpy
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from tinymask.backend import to_numpy
from tinymask.boxes import box_iou
from tinymask.visualize.box_head import GROUND_TRUTH_COLOUR, class_colour, outline_boxes
from tinymask.visualize.instances import instance_colours
from tinymask.visualize.roi_grid import roi_readout

IGNORED_COLOUR = "orange"
NEGATIVE_COLOUR = "0.75"  # light grey


def _image_axes(ax, image, title, fontsize=9):
    image = to_numpy(image)
    ax.imshow(image, interpolation="nearest")  # the pixels the model reads, as blocks
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
    ax.set_title(title, fontsize=fontsize)
    ax.set_axis_off()


def _label_box(ax, box, text, colour, fontsize=6):
    """``text`` inside the box's top-left corner, so a box at the image's edge keeps it."""
    ax.text(float(box[0]) - 0.5, float(box[1]) - 0.5, text, fontsize=fontsize, color="white",
            verticalalignment="top",
            bbox={"facecolor": colour, "alpha": 0.8, "pad": 1, "edgecolor": "none"})


# ------------------------------------------------------------------------------ the RPN
def split_levels(values, level_shapes, anchors_per_location):
    """The RPN's flat per-anchor values ``(R, ...)`` as one ``(Hi, Wi, A, ...)`` array per
    level: anchors are laid out ``[Hi, Wi, A]`` per level, levels concatenated
    (``tinymask.anchors``), so anchor r of level i sits at cell (y, x) and shape a with
    ``r = (y * Wi + x) * A + a``."""
    values = to_numpy(values)
    counts = [height * width * anchors_per_location for height, width in level_shapes]
    if sum(counts) != values.shape[0]:
        raise ValueError(f"{values.shape[0]} values for levels of shapes {list(level_shapes)} "
                         f"with {anchors_per_location} anchors per cell ({sum(counts)} anchors)")
    starts = numpy.cumsum([0] + counts)
    return [values[start:end].reshape(height, width, anchors_per_location, *values.shape[1:])
            for start, end, (height, width) in zip(starts[:-1], starts[1:], level_shapes)]


def plot_anchor_labels(image, anchors, labels, matched, gt_boxes, sampled_negative) -> Figure:
    """Three panels over the image, with the ground truth (white, dashed): the positive
    anchors, each in the colour of the object it is matched to; the ignored ones (orange);
    the negatives sampled for the loss (grey).

    anchors (R, 4); labels (R,) 1 positive, 0 negative, -1 ignored; matched (R,) the index
    of each positive's ground truth (read for positives only); gt_boxes (M, 4);
    sampled_negative (R,) bool."""
    anchors, labels = to_numpy(anchors).reshape(-1, 4), to_numpy(labels).reshape(-1)
    matched, sampled_negative = to_numpy(matched).reshape(-1), to_numpy(sampled_negative)
    gt_boxes = to_numpy(gt_boxes).reshape(-1, 4)
    if not len(labels) == len(matched) == len(sampled_negative) == len(anchors):
        raise ValueError(f"give one label, one match and one sampled flag per anchor: "
                         f"{len(anchors)} anchors, {len(labels)} labels, {len(matched)} "
                         f"matches, {len(sampled_negative)} flags")
    figure = Figure(figsize=(7.5, 2.8), layout="constrained")
    positive_ax, ignored_ax, negative_ax = figure.subplots(1, 3)
    positive = numpy.flatnonzero(labels == 1)
    _image_axes(positive_ax, image, f"{len(positive)} positive anchors\n"
                                    "(their object's colour)")
    colours = instance_colours(len(gt_boxes))
    for index in positive:
        outline_boxes(positive_ax, anchors[index], colours[matched[index]], 0.8)
    for box, colour in zip(gt_boxes, colours):
        outline_boxes(positive_ax, box, colour, 1.6, "--")
    ignored = labels == -1
    _image_axes(ignored_ax, image, f"{ignored.sum()} ignored anchors\n"
                                   "(IoU between the thresholds)")
    outline_boxes(ignored_ax, anchors[ignored], IGNORED_COLOUR, 0.4)
    negatives = sampled_negative.astype(bool)
    _image_axes(negative_ax, image, f"{(labels == 0).sum()} negative anchors\n"
                                    f"({negatives.sum()} sampled, drawn)")
    outline_boxes(negative_ax, anchors[negatives], NEGATIVE_COLOUR, 0.4)
    for ax in (ignored_ax, negative_ax):
        outline_boxes(ax, gt_boxes, GROUND_TRUTH_COLOUR, 1.4, "--")
    return figure


def plot_objectness_levels(image, level_maps, strides, names) -> Figure:
    """The image, then one panel per pyramid level: the RPN's objectness probability at each
    cell (the largest over the cell's anchors), laid over the image so that cell (y, x)
    sits on its anchors' centre ``(x * stride, y * stride)``. ``level_maps`` is one
    ``(Hi, Wi)`` array of probabilities per level, on one colour scale, 0 to 1."""
    if not len(level_maps) == len(strides) == len(names):
        raise ValueError(f"give one stride and one name per level: {len(level_maps)} maps, "
                         f"{len(strides)} strides, {len(names)} names")
    image = to_numpy(image)
    figure = Figure(figsize=(1.5 * (len(level_maps) + 1) + 0.6, 1.9), layout="constrained")
    axes = figure.subplots(1, len(level_maps) + 1)
    _image_axes(axes[0], image, "the image")
    norm = Normalize(0.0, 1.0)
    for ax, level_map, stride, name in zip(axes[1:], level_maps, strides, names):
        level_map = to_numpy(level_map)
        height, width = level_map.shape
        ax.imshow(image, interpolation="nearest", alpha=0.35)
        # anchor centres sit on multiples of the stride; a drawn pixel c spans c +- 0.5
        half = stride / 2
        ax.imshow(level_map, cmap="magma", norm=norm, alpha=0.8, interpolation="nearest",
                  extent=(-half - 0.5, width * stride - half - 0.5,
                          height * stride - half - 0.5, -half - 0.5))
        ax.set_xlim(-0.5, image.shape[1] - 0.5)
        ax.set_ylim(image.shape[0] - 0.5, -0.5)
        ax.set_title(f"{name}: {height}x{width} cells,\nstride {stride}, max {level_map.max():.2f}",
                     fontsize=8)
        ax.set_axis_off()
    figure.colorbar(ScalarMappable(norm, colormaps["magma"]), ax=axes[-1], shrink=0.8,
                    label="objectness")
    return figure


def plot_proposals_nms(image, before, before_scores, after, after_scores, gt_boxes,
                       min_iou: float = 0.0) -> Figure:
    """Two panels over the image: the RPN's candidate boxes before NMS and the proposals it
    keeps, each coloured by its objectness (viridis, the best drawn on top), with the
    ground truth (white, dashed). With ``min_iou`` > 0 only the boxes whose IoU with some
    ground-truth box reaches it are drawn (the titles count all and the drawn ones), so the
    piles on the objects stand out."""
    before, after = to_numpy(before).reshape(-1, 4), to_numpy(after).reshape(-1, 4)
    before_scores, after_scores = to_numpy(before_scores), to_numpy(after_scores)
    gt_boxes = to_numpy(gt_boxes).reshape(-1, 4)
    if len(before) != len(before_scores) or len(after) != len(after_scores):
        raise ValueError("give one score per box, before and after NMS")
    figure = Figure(figsize=(5.6, 3.0), layout="constrained")
    axes = figure.subplots(1, 2)
    norm, colour_of = Normalize(0.0, 1.0), colormaps["viridis"]
    for ax, boxes, scores, title in ((axes[0], before, before_scores,
                                      f"before NMS: {len(before)} candidates"),
                                     (axes[1], after, after_scores,
                                      f"after NMS: {len(after)} proposals")):
        on_object = numpy.ones(len(boxes), dtype=bool)
        if min_iou > 0:
            on_object = (box_iou(boxes, gt_boxes) >= min_iou).any(axis=1) if len(gt_boxes) \
                else numpy.zeros(len(boxes), dtype=bool)
            title += f",\n{on_object.sum()} on an object (IoU >= {min_iou:g}) drawn"
        drawn = [index for index in numpy.argsort(scores, kind="stable")  # best on top
                 if on_object[index]]
        _image_axes(ax, image, title)
        for index in drawn:
            outline_boxes(ax, boxes[index], colour_of(norm(scores[index])), 0.6)
        outline_boxes(ax, gt_boxes, GROUND_TRUTH_COLOUR, 1.4, "--")
    figure.colorbar(ScalarMappable(norm, colour_of), ax=axes, shrink=0.8, label="objectness")
    return figure


# ------------------------------------------------------------------------------ RoI features
def plot_roi_features(feature_map, box, stride, align_features, pool_features, titles=None,
                      sampling_ratio=0, aligned=True) -> Figure:
    """One channel of a real feature map with a box on it, then that channel's RoIAlign and
    RoIPool outputs, all on one colour scale.

    feature_map (H, W) one channel of the level the box is read from; box (4,) in image
    pixels; align_features, pool_features (PH, PW). On the map the box as given is dashed
    (white), the box RoIAlign divides into bins solid cyan (shifted by half a cell when
    ``aligned``), and the whole cells RoIPool rounds it to solid red."""
    feature_map = to_numpy(feature_map)
    align_features, pool_features = to_numpy(align_features), to_numpy(pool_features)
    if align_features.shape != pool_features.shape:
        raise ValueError(f"the two outputs must have one shape, got {align_features.shape} "
                         f"and {pool_features.shape}")
    titles = titles or ("feature map", "RoIAlign", "RoIPool")
    height, width = feature_map.shape
    scale = 1.0 / stride
    align = roi_readout("align", box, (height, width), scale, align_features.shape,
                        sampling_ratio, aligned)
    pool = roi_readout("pool", box, (height, width), scale, pool_features.shape)
    values = numpy.concatenate([feature_map.ravel(), align_features.ravel(),
                                pool_features.ravel()])
    norm = Normalize(float(values.min()), float(values.max()))
    figure = Figure(figsize=(7.0, 2.5), layout="constrained")
    axes = figure.subplots(1, 3)
    axes[0].imshow(feature_map, cmap="viridis", norm=norm, interpolation="nearest",
                   extent=(0, width, height, 0))
    for used_box, colour, style in ((align.given_box, "white", "--"),
                                    (align.used_box, "cyan", "-"), (pool.used_box, "red", "-")):
        x1, y1, x2, y2 = used_box
        axes[0].add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour,
                                    linestyle=style, linewidth=1.4))
    # show the box's neighbourhood: a few cells around it
    x1, y1, x2, y2 = align.given_box
    margin = max(x2 - x1, y2 - y1, 2.0)
    axes[0].set_xlim(max(x1 - margin, 0), min(x2 + margin, width))
    axes[0].set_ylim(min(y2 + margin, height), max(y1 - margin, 0))
    axes[0].set_title(titles[0], fontsize=9)
    for ax, features, title in ((axes[1], align_features, titles[1]),
                                (axes[2], pool_features, titles[2])):
        ax.imshow(features, cmap="viridis", norm=norm, interpolation="nearest")
        ax.set_title(title, fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    figure.colorbar(ScalarMappable(norm, colormaps["viridis"]), ax=axes, shrink=0.8)
    return figure


# ------------------------------------------------------------------------------ masks
def plot_mask_logits(logits, labels, scores, class_names, crops=None) -> Figure:
    """The mask head's m x m logits of a few detections, one row per detection and one
    column per class 1..K (the background channel is never read), on one diverging colour
    scale (red > 0, i.e. sigmoid > 0.5); the detected class's panel is framed and named in
    capitals. ``crops`` (optional): one image crop per detection, drawn first.

    logits (D, K+1, m, m); labels (D,); scores (D,)."""
    logits = to_numpy(logits)
    labels, scores = to_numpy(labels).astype(int).reshape(-1), to_numpy(scores).reshape(-1)
    if logits.ndim != 4 or not len(logits) == len(labels) == len(scores):
        raise ValueError(f"give logits (D, K+1, m, m) with one label and one score per "
                         f"detection: logits {logits.shape}, {len(labels)} labels, "
                         f"{len(scores)} scores")
    if logits.shape[1] != len(class_names):
        raise ValueError(f"{logits.shape[1]} logit channels for {len(class_names)} class names "
                         "(background included)")
    rows, classes = max(len(logits), 1), logits.shape[1] - 1
    columns = classes + (crops is not None)
    figure = Figure(figsize=(1.15 * columns + 0.8, 1.3 * rows + 0.3), layout="constrained")
    axes = numpy.asarray(figure.subplots(rows, columns, squeeze=False))
    bound = float(numpy.abs(logits[:, 1:]).max()) if logits.size else 1.0
    norm = Normalize(-bound, bound)
    for row in range(len(logits)):
        offset = 0
        if crops is not None:
            axes[row, 0].imshow(to_numpy(crops[row]), interpolation="nearest")
            axes[row, 0].set_title(f"detected: {class_names[labels[row]]}\nscore "
                                   f"{scores[row]:.2f}", fontsize=7)
            offset = 1
        for label in range(1, classes + 1):
            ax = axes[row, offset + label - 1]
            ax.imshow(logits[row, label], cmap="RdBu_r", norm=norm, interpolation="nearest")
            detected = label == labels[row]
            name = class_names[label].upper() if detected else class_names[label]
            ax.set_title(name, fontsize=7, fontweight="bold" if detected else "normal")
            for spine in ax.spines.values():
                spine.set_edgecolor("black" if detected else "0.8")
                spine.set_linewidth(2.5 if detected else 0.5)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    figure.colorbar(ScalarMappable(norm, colormaps["RdBu_r"]), ax=axes, shrink=0.6,
                    label="mask logit")
    return figure


def plot_pasted_masks(image, probabilities, boxes, pasted, labels, class_names) -> Figure:
    """From m x m masks to masks in the image. One column per detection: its m x m mask
    probabilities (top), and below them the probabilities pasted into the image's frame,
    shown around its box (white); on the right, every binary mask (> 0.5) over the image
    in its class's colour.

    probabilities (D, m, m); boxes (D, 4) in the image's pixels; pasted (D, H, W)
    probabilities; labels (D,)."""
    probabilities, boxes = to_numpy(probabilities), to_numpy(boxes).reshape(-1, 4)
    pasted, labels = to_numpy(pasted), to_numpy(labels).astype(int).reshape(-1)
    image = to_numpy(image)
    if not len(probabilities) == len(boxes) == len(pasted) == len(labels):
        raise ValueError(f"give one mask, box, pasted mask and label per detection: "
                         f"{len(probabilities)}, {len(boxes)}, {len(pasted)}, {len(labels)}")
    count = len(boxes)
    layout = [[f"mask {n}" for n in range(count)] + ["image"],
              [f"pasted {n}" for n in range(count)] + ["image"]]
    figure = Figure(figsize=(1.3 * count + 2.6, 2.9), layout="constrained")
    axes = figure.subplot_mosaic(layout, width_ratios=[1.0] * count + [1.9])
    size = probabilities.shape[-1] if probabilities.size else 0
    overlay = numpy.zeros((*image.shape[:2], 4))  # RGBA, transparent where no mask
    for n in range(count):
        name = class_names[labels[n]]
        axes[f"mask {n}"].imshow(probabilities[n], cmap="viridis", vmin=0, vmax=1,
                                 interpolation="nearest")
        axes[f"mask {n}"].set_title(f"{name}: {size}x{size}", fontsize=8)
        ax = axes[f"pasted {n}"]
        ax.imshow(pasted[n], cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        outline_boxes(ax, boxes[n], "white", 1.0)
        x1, y1, x2, y2 = boxes[n].astype(float)
        margin = 0.3 * max(x2 - x1, y2 - y1, 4.0)
        height, width = pasted.shape[1:]
        ax.set_xlim(max(x1 - margin, 0) - 0.5, min(x2 + margin, width) - 0.5)
        ax.set_ylim(min(y2 + margin, height) - 0.5, max(y1 - margin, 0) - 0.5)
        ax.set_title("pasted at its box", fontsize=8)
        overlay[pasted[n] > 0.5] = (*to_rgba(class_colour(labels[n]))[:3], 0.6)
    _image_axes(axes["image"], image, f"the {count} binary masks (> 0.5)")
    axes["image"].imshow(overlay, interpolation="nearest", gid="masks")
    for name, ax in axes.items():
        if name != "image":
            ax.set_xticks([])
            ax.set_yticks([])
    return figure


# ------------------------------------------------------------------------------ failures
def plot_cases(cases_by_kind, class_names, columns: int = 3) -> Figure:
    """A gallery: one row per kind of case, up to ``columns`` examples each.

    ``cases_by_kind`` maps a row title to a list of cases, each a dict with ``image``,
    ``gt_boxes`` (G, 4) and ``gt_labels`` (G,) drawn white and dashed with their class
    names, ``boxes`` (D, 4), ``labels`` (D,) and ``scores`` (D,) drawn in class colours with
    "name score", and a ``title``. A kind with no case gets a row saying so."""
    kinds = list(cases_by_kind)
    if not kinds:
        raise ValueError("give at least one kind of case")
    heights = [1.0 if cases_by_kind[kind] else 0.25 for kind in kinds]  # "none found": a line
    figure = Figure(figsize=(1.8 * columns, 1.95 * sum(heights) + 0.2), layout="constrained")
    axes = numpy.asarray(figure.subplots(len(kinds), columns, squeeze=False,
                                         gridspec_kw={"height_ratios": heights}))
    for row, kind in enumerate(kinds):
        cases = cases_by_kind[kind][:columns]
        for column in range(columns):
            ax = axes[row, column]
            if column >= len(cases):
                ax.set_axis_off()
                if not cases and column == 0:
                    ax.text(0.0, 0.5, f"{kind}:\nnone found", fontsize=9,
                            transform=ax.transAxes, verticalalignment="center")
                continue
            case = cases[column]
            title = f"{kind}\n{case['title']}" if column == 0 else f"\n{case['title']}"
            _image_axes(ax, case["image"], title, fontsize=7)
            for box, label in zip(to_numpy(case["gt_boxes"]).reshape(-1, 4),
                                  to_numpy(case["gt_labels"]).reshape(-1)):
                outline_boxes(ax, box, GROUND_TRUTH_COLOUR, 1.3, "--")
                ax.text(float(box[0]) - 0.5, float(box[3]) - 0.5, class_names[int(label)],
                        fontsize=6, color="black", verticalalignment="top",
                        bbox={"facecolor": "white", "alpha": 0.7, "pad": 1,
                              "edgecolor": "none"})
            for box, label, score in zip(to_numpy(case["boxes"]).reshape(-1, 4),
                                         to_numpy(case["labels"]).reshape(-1),
                                         to_numpy(case["scores"]).reshape(-1)):
                colour = class_colour(label)
                outline_boxes(ax, box, colour, 1.3)
                _label_box(ax, box, f"{class_names[int(label)]} {float(score):.2f}", colour)
    return figure
