"""The box-head lesson's pictures: they render, the boxes are drawn where they are (pixel c
centred on c, as instances.py draws), in the colours the captions name, and the grid of
deltas shows exactly the cells it is given."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.patches import Rectangle

from tinymask.visualize.box_head import (
    BACKGROUND_COLOUR,
    GROUND_TRUTH_COLOUR,
    PROPOSAL_COLOUR,
    REFINED_COLOUR,
    class_colour,
    outline_boxes,
    plot_candidates_and_detections,
    plot_deltas_read,
    plot_matched_proposals,
    plot_refinement,
)

matplotlib.use("Agg")

IMAGE = np.zeros((40, 50, 3), dtype=np.uint8)
GT_BOXES = np.array([[5.0, 6.0, 20.0, 30.0]])
CANDIDATES = np.array([[4.0, 5.0, 21.0, 29.0], [30.0, 2.0, 45.0, 12.0], [6.0, 6.0, 20.0, 31.0]])
LABELS = np.array([3, 0, 3])
CLASS_NAMES = ("background", "ellipse", "rectangle", "triangle")


def rectangles(ax):
    return [patch for patch in ax.patches if isinstance(patch, Rectangle)]


def corners(patch):
    x, y = patch.get_xy()
    return [x, y, x + patch.get_width(), y + patch.get_height()]


def renders(figure):
    png = io.BytesIO()
    figure.savefig(png, format="png")
    return png.getbuffer().nbytes > 1000


def test_outlines_sit_half_a_pixel_up_left_of_the_box_coordinates():
    figure = matplotlib.figure.Figure()
    ax = figure.subplots()
    outline_boxes(ax, CANDIDATES, "red")
    np.testing.assert_allclose([corners(p) for p in rectangles(ax)], CANDIDATES - 0.5)


def test_matched_proposals_colour_each_candidate_by_its_label():
    figure = plot_matched_proposals(IMAGE, CANDIDATES, LABELS, GT_BOXES, CLASS_NAMES)
    assert renders(figure)
    (ax,) = figure.axes
    drawn = rectangles(ax)
    assert len(drawn) == len(CANDIDATES) + len(GT_BOXES)
    by_corners = {tuple(np.round(corners(p), 3)): p for p in drawn}
    for box, label in zip(CANDIDATES, LABELS):
        patch = by_corners[tuple(np.round(box - 0.5, 3))]
        expected = BACKGROUND_COLOUR if label == 0 else class_colour(label)
        assert patch.get_edgecolor() == to_rgba(expected)
    gt_patch = by_corners[tuple(np.round(GT_BOXES[0] - 0.5, 3))]
    assert gt_patch.get_edgecolor() == to_rgba(GROUND_TRUTH_COLOUR)
    assert "2 foreground" in ax.get_title() and "1 background" in ax.get_title()
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["triangle"]


def test_matched_proposals_refuse_labels_of_another_length():
    with pytest.raises(ValueError, match="one class per candidate"):
        plot_matched_proposals(IMAGE, CANDIDATES, LABELS[:2], GT_BOXES, CLASS_NAMES)


def test_class_colours_differ_and_background_is_grey():
    colours = [to_rgba(class_colour(label)) for label in range(1, 6)]
    assert len(set(colours)) == 5
    assert to_rgba(class_colour(0)) == to_rgba(BACKGROUND_COLOUR)


def test_deltas_read_shows_the_cells_it_is_given():
    touched = np.zeros((3, 16), dtype=bool)
    touched[0, 12:16] = True  # a triangle RoI: class 3's four deltas
    touched[1, 4:8] = True  # an ellipse RoI
    figure = plot_deltas_read(touched, np.array([3, 1, 0]), CLASS_NAMES)
    assert renders(figure)
    (ax,) = figure.axes
    np.testing.assert_array_equal(ax.images[0].get_array(), touched.astype(float))
    assert [tick.get_text() for tick in ax.get_xticklabels()] == list(CLASS_NAMES)
    assert [tick.get_text() for tick in ax.get_yticklabels()] == [
        "triangle", "ellipse", "background"]


def test_deltas_read_refuses_columns_that_are_not_four_per_class():
    with pytest.raises(ValueError, match="4 columns per class"):
        plot_deltas_read(np.zeros((2, 15), bool), np.array([1, 0]), CLASS_NAMES)


def test_refinement_draws_proposals_then_each_refined_set():
    refined = [CANDIDATES + 1.0, CANDIDATES - 1.0]
    figure = plot_refinement(IMAGE, GT_BOXES, CANDIDATES, refined,
                             ["proposals", "untrained", "trained"])
    assert renders(figure)
    assert [ax.get_title() for ax in figure.axes] == ["proposals", "untrained", "trained"]
    for ax, boxes, colour in zip(figure.axes, [CANDIDATES, *refined],
                                 [PROPOSAL_COLOUR, REFINED_COLOUR, REFINED_COLOUR]):
        drawn = [p for p in rectangles(ax) if p.get_edgecolor() == to_rgba(colour)]
        np.testing.assert_allclose([corners(p) for p in drawn], boxes - 0.5)


def test_refinement_needs_a_title_per_panel():
    with pytest.raises(ValueError, match="titles"):
        plot_refinement(IMAGE, GT_BOXES, CANDIDATES, [CANDIDATES], ["only one"])


def test_candidates_and_detections_are_drawn_in_their_class_colours_with_scores():
    figure = plot_candidates_and_detections(
        IMAGE, CANDIDATES, np.array([3, 1, 3]), GT_BOXES, np.array([3]), np.array([0.91]),
        CLASS_NAMES, ["candidates", "detections"])
    assert renders(figure)
    left, right = figure.axes
    assert [left.get_title(), right.get_title()] == ["candidates", "detections"]
    assert [p.get_edgecolor() for p in rectangles(left)] == [
        to_rgba(class_colour(label)) for label in (3, 1, 3)]
    np.testing.assert_allclose([corners(p) for p in rectangles(left)], CANDIDATES - 0.5)
    (detection,) = rectangles(right)
    np.testing.assert_allclose(corners(detection), GT_BOXES[0] - 0.5)
    assert detection.get_edgecolor() == to_rgba(class_colour(3))
    assert [text.get_text() for text in right.texts] == ["triangle 0.91"]


def test_candidates_and_detections_refuse_mismatched_lengths():
    with pytest.raises(ValueError, match="one label per candidate"):
        plot_candidates_and_detections(IMAGE, CANDIDATES, np.array([1]), GT_BOXES,
                                       np.array([3]), np.array([0.9]), CLASS_NAMES, ["a", "b"])
