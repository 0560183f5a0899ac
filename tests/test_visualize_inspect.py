"""The inspect lesson's pictures: they render, they draw what their captions say (the
boxes of each anchor label, one panel per level, the boxes as given and as rounded by
RoIPool, the detected class's mask panel framed), and split_levels undoes the RPN's
flattening order [Hi, Wi, A]."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from tinymask.anchors import AnchorGenerator
from tinymask.visualize.box_head import GROUND_TRUTH_COLOUR, class_colour
from tinymask.visualize.inspect import (
    IGNORED_COLOUR,
    NEGATIVE_COLOUR,
    plot_anchor_labels,
    plot_cases,
    plot_mask_logits,
    plot_objectness_levels,
    plot_pasted_masks,
    plot_proposals_nms,
    plot_roi_features,
    split_levels,
)

matplotlib.use("Agg")

IMAGE = np.zeros((32, 40, 3), dtype=np.uint8)
GT_BOXES = np.array([[4.0, 5.0, 14.0, 20.0], [20.0, 2.0, 36.0, 12.0]])
CLASS_NAMES = ("background", "ellipse", "rectangle", "triangle")


def rectangles(ax, colour=None):
    found = [patch for patch in ax.patches if isinstance(patch, Rectangle)]
    if colour is not None:
        found = [patch for patch in found if np.allclose(patch.get_edgecolor(),
                                                         to_rgba(colour))]
    return found


def corners(patch):
    x, y = patch.get_xy()
    return [x, y, x + patch.get_width(), y + patch.get_height()]


def renders(figure):
    png = io.BytesIO()
    figure.savefig(png, format="png")
    return png.getbuffer().nbytes > 1000


def test_split_levels_puts_anchor_r_at_its_cell_and_shape():
    level_shapes, anchors_per_cell = [(4, 5), (2, 3)], 3
    anchors = AnchorGenerator(((8,), (16,)), (0.5, 1.0, 2.0), (4, 8))(level_shapes)
    split = split_levels(anchors, level_shapes, anchors_per_cell)
    assert [level.shape for level in split] == [(4, 5, 3, 4), (2, 3, 3, 4)]
    # anchors are centred on (x * stride, y * stride): the split puts each at its cell
    for level, stride in zip(split, (4, 8)):
        centres = (level[..., :2] + level[..., 2:]) / 2  # (H, W, A, 2) as (x, y)
        rows, columns = np.mgrid[0 : level.shape[0], 0 : level.shape[1]]
        np.testing.assert_allclose(centres[..., 0], np.repeat(columns[..., None] * stride, 3, 2))
        np.testing.assert_allclose(centres[..., 1], np.repeat(rows[..., None] * stride, 3, 2))
    flat = np.arange(4 * 5 * 3 + 2 * 3 * 3)
    assert split_levels(flat, level_shapes, 3)[1][1, 2, 0] == 4 * 5 * 3 + (1 * 3 + 2) * 3
    with pytest.raises(ValueError, match="anchors"):
        split_levels(flat[:-1], level_shapes, 3)


def test_anchor_labels_draws_each_label_in_its_panel():
    anchors = np.array([[4.0, 5.0, 14.0, 19.0], [3.0, 5.0, 13.0, 20.0], [20.0, 2.0, 35.0, 12.0],
                        [0.0, 0.0, 8.0, 8.0], [30.0, 20.0, 40.0, 30.0], [10.0, 10.0, 20.0, 20.0]])
    labels = np.array([1, 1, 1, -1, 0, 0])
    matched = np.array([0, 0, 1, -2, -1, -1])
    sampled_negative = np.array([False, False, False, False, True, False])
    figure = plot_anchor_labels(IMAGE, anchors, labels, matched, GT_BOXES, sampled_negative)
    positive_ax, ignored_ax, negative_ax = figure.axes
    solid = [p for p in rectangles(positive_ax) if p.get_linestyle() == "-"]
    np.testing.assert_allclose([corners(p) for p in solid], anchors[:3] - 0.5)
    # the two anchors of object 0 share its colour, object 1's anchor has another
    assert np.allclose(solid[0].get_edgecolor(), solid[1].get_edgecolor())
    assert not np.allclose(solid[0].get_edgecolor(), solid[2].get_edgecolor())
    np.testing.assert_allclose([corners(p) for p in rectangles(ignored_ax, IGNORED_COLOUR)],
                               anchors[[3]] - 0.5)
    np.testing.assert_allclose([corners(p) for p in rectangles(negative_ax, NEGATIVE_COLOUR)],
                               anchors[[4]] - 0.5)  # only the sampled negative
    assert len(rectangles(negative_ax, GROUND_TRUTH_COLOUR)) == 2
    assert "3 positive" in positive_ax.get_title() and "2 negative" in negative_ax.get_title()
    assert renders(figure)
    with pytest.raises(ValueError, match="one label"):
        plot_anchor_labels(IMAGE, anchors, labels[:-1], matched, GT_BOXES, sampled_negative)


def test_objectness_levels_has_a_panel_per_level_placed_on_the_anchor_centres():
    maps = [np.linspace(0, 1, 8 * 10).reshape(8, 10), np.full((4, 5), 0.25)]
    figure = plot_objectness_levels(IMAGE, maps, (4, 8), ("P2", "P3"))
    image_ax, p2_ax, p3_ax = figure.axes[:3]
    assert "P2" in p2_ax.get_title() and "max 1.00" in p2_ax.get_title()
    level_image = p3_ax.get_images()[-1]
    # cell (0, 0) is centred on the anchor centre (0, 0), drawn at -0.5: 8-px cells
    left, right, bottom, top = level_image.get_extent()
    assert (left, top) == (-4.5, -4.5) and (right, bottom) == (35.5, 27.5)
    assert level_image.get_clim() == (0.0, 1.0)
    assert renders(figure)
    with pytest.raises(ValueError, match="one stride"):
        plot_objectness_levels(IMAGE, maps, (4,), ("P2", "P3"))


def test_proposals_nms_draws_every_box_before_and_after():
    before = np.array([[4.0, 5.0, 14.0, 20.0], [5.0, 5.0, 14.0, 21.0], [20.0, 2.0, 36.0, 12.0]])
    scores = np.array([0.9, 0.6, 0.8])
    figure = plot_proposals_nms(IMAGE, before, scores, before[[0, 2]], scores[[0, 2]], GT_BOXES)
    left, right = figure.axes[:2]
    solid_left = [p for p in rectangles(left) if p.get_linestyle() == "-"]
    solid_right = [p for p in rectangles(right) if p.get_linestyle() == "-"]
    # drawn lowest score first, so the best box is on top
    np.testing.assert_allclose([corners(p) for p in solid_left], before[[1, 2, 0]] - 0.5)
    np.testing.assert_allclose([corners(p) for p in solid_right], before[[2, 0]] - 0.5)
    assert "3 candidates" in left.get_title() and "2 proposals" in right.get_title()
    assert renders(figure)
    # only the boxes on an object: the second box overlaps the first object at IoU 0.85
    only_gt = GT_BOXES[:1]
    on_objects = plot_proposals_nms(IMAGE, before, scores, before[[0, 2]], scores[[0, 2]],
                                    only_gt, min_iou=0.8)
    left, right = on_objects.axes[:2]
    np.testing.assert_allclose([corners(p) for p in rectangles(left)
                                if p.get_linestyle() == "-"], before[[1, 0]] - 0.5)
    np.testing.assert_allclose([corners(p) for p in rectangles(right)
                                if p.get_linestyle() == "-"], before[[0]] - 0.5)
    assert "3 candidates,\n2 on an object (IoU >= 0.8) drawn" in left.get_title()
    with pytest.raises(ValueError, match="one score"):
        plot_proposals_nms(IMAGE, before, scores[:2], before, scores, GT_BOXES)


def test_roi_features_draws_the_given_and_the_rounded_box_in_cells():
    feature_map = np.arange(8 * 10, dtype=float).reshape(8, 10)
    box = np.array([5.0, 6.0, 22.0, 19.0])  # stride 4: cells 1.25..5.5 by 1.5..4.75
    align, pool = np.zeros((7, 7)), np.ones((7, 7))
    figure = plot_roi_features(feature_map, box, 4, align, pool, aligned=True)
    map_ax = figure.axes[0]
    drawn = {tuple(np.round(corners(p), 3)) for p in rectangles(map_ax)}
    assert (1.25, 1.5, 5.5, 4.75) in drawn  # as given, in cells
    assert (1.25, 1.5, 5.5, 4.75) in {tuple(np.round(corners(p), 3))
                                      for p in rectangles(map_ax, "cyan")}  # aligned: -0.5+0.5
    # RoIPool: round(1.25)=1, round(1.5)=2, round(5.5)=6, round(4.75)=5, both ends included
    assert (1.0, 2.0, 7.0, 6.0) in {tuple(corners(p)) for p in rectangles(map_ax, "red")}
    assert [ax.get_images()[0].get_array().shape for ax in figure.axes[1:3]] == [(7, 7)] * 2
    assert renders(figure)
    with pytest.raises(ValueError, match="one shape"):
        plot_roi_features(feature_map, box, 4, align, np.ones((5, 5)))


def test_mask_logits_frames_the_detected_class():
    logits = np.random.default_rng(0).normal(size=(2, 4, 28, 28))
    figure = plot_mask_logits(logits, np.array([2, 3]), np.array([0.9, 0.7]), CLASS_NAMES,
                              crops=[IMAGE, IMAGE])
    axes = np.array(figure.axes[:8]).reshape(2, 4)  # crop + classes 1..3, per detection
    assert axes[0, 2].get_title() == "RECTANGLE" and axes[1, 3].get_title() == "TRIANGLE"
    assert axes[0, 1].get_title() == "ellipse"
    assert axes[0, 2].spines["left"].get_linewidth() > axes[0, 1].spines["left"].get_linewidth()
    np.testing.assert_allclose(axes[1, 1].get_images()[0].get_array(), logits[1, 1])
    low, high = axes[0, 1].get_images()[0].get_clim()
    assert low == -high == -np.abs(logits[:, 1:]).max()  # one scale, centred on 0
    assert renders(figure)
    with pytest.raises(ValueError, match="class names"):
        plot_mask_logits(logits[:, :3], np.array([1, 2]), np.array([0.9, 0.7]), CLASS_NAMES)


def test_pasted_masks_shows_the_binary_mask_in_the_class_colour():
    probabilities = np.full((1, 28, 28), 0.9)
    pasted = np.zeros((1, 32, 40))
    pasted[0, 5:20, 4:14] = 0.8
    figure = plot_pasted_masks(IMAGE, probabilities, GT_BOXES[:1], pasted, np.array([3]),
                               CLASS_NAMES)
    (image_ax,) = [ax for ax in figure.axes if "binary" in ax.get_title()]
    (overlay_image,) = [image for image in image_ax.get_images() if image.get_gid() == "masks"]
    overlay = overlay_image.get_array()
    assert (overlay[..., 3] > 0).sum() == 15 * 10
    np.testing.assert_allclose(overlay[10, 8, :3], to_rgba(class_colour(3))[:3])
    (pasted_ax,) = [ax for ax in figure.axes if ax.get_title() == "pasted at its box"]
    left, right = pasted_ax.get_xlim()
    assert left < GT_BOXES[0, 0] - 0.5 and right > GT_BOXES[0, 2] - 0.5 and right - left < 40
    assert renders(figure)
    with pytest.raises(ValueError, match="one mask"):
        plot_pasted_masks(IMAGE, probabilities, GT_BOXES, pasted, np.array([3]), CLASS_NAMES)


def test_cases_gallery_draws_ground_truth_and_detections_and_says_none():
    case = {"image": IMAGE, "gt_boxes": GT_BOXES[:1], "gt_labels": np.array([1]),
            "boxes": GT_BOXES[1:], "labels": np.array([2]), "scores": np.array([0.7]),
            "title": "image 3"}
    figure = plot_cases({"missed": [case, case], "merged": []}, CLASS_NAMES, columns=3)
    axes = np.array(figure.axes).reshape(2, 3)
    assert "missed" in axes[0, 0].get_title() and "image 3" in axes[0, 1].get_title()
    np.testing.assert_allclose(corners(rectangles(axes[0, 0], GROUND_TRUTH_COLOUR)[0]),
                               GT_BOXES[0] - 0.5)
    np.testing.assert_allclose(corners(rectangles(axes[0, 0], class_colour(2))[0]),
                               GT_BOXES[1] - 0.5)
    texts = [text.get_text() for text in axes[0, 0].texts]
    assert "ellipse" in texts and "rectangle 0.70" in texts
    assert not axes[0, 2].get_images()  # only two cases: the third panel is empty
    assert "none found" in axes[1, 0].texts[0].get_text()
    assert renders(figure)
    with pytest.raises(ValueError, match="at least one kind"):
        plot_cases({}, CLASS_NAMES)


def test_figures_are_built_without_pyplot():
    figure = plot_cases({"missed": []}, CLASS_NAMES)
    assert isinstance(figure, Figure) and figure.canvas.manager is None
