"""Pictures of boxes (tinymask/visualize/boxes.py): what is drawn is the boxes given, the IoU
matrix given and the NMS result given. Rendered with the Agg canvas, no window."""

import numpy
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from tinymask.boxes import box_iou
from tinymask.ops import nms
from tinymask.visualize.boxes import draw_boxes, frame_boxes, plot_iou_matrix, plot_nms

BOXES = numpy.array([[0.0, 0.0, 4.0, 4.0], [2.0, 1.0, 6.0, 5.0], [7.0, 2.0, 9.0, 6.0]])


def rectangles(ax):
    return [patch for patch in ax.patches if isinstance(patch, Rectangle)]


def test_draw_boxes_outlines_each_box_where_it_is():
    ax = Figure().subplots()
    patches = draw_boxes(ax, BOXES, "red", ["a", "b", ""])
    assert patches == rectangles(ax)
    for patch, (x1, y1, x2, y2) in zip(patches, BOXES):
        assert patch.get_xy() == (x1, y1)
        assert (patch.get_width(), patch.get_height()) == (x2 - x1, y2 - y1)
        assert not patch.get_fill()
    assert [text.get_text() for text in ax.texts] == ["a", "b"]  # an empty text draws nothing


def test_draw_boxes_takes_one_colour_or_one_per_box():
    ax = Figure().subplots()
    rgb = (0.1, 0.2, 0.3)  # three numbers: one colour, even beside three boxes
    assert all(patch.get_edgecolor()[:3] == rgb for patch in draw_boxes(ax, BOXES, rgb))
    per_box = draw_boxes(ax, BOXES, ["red", "lime", "blue"])
    assert [patch.get_edgecolor()[:3] for patch in per_box] == [(1, 0, 0), (0, 1, 0), (0, 0, 1)]
    with pytest.raises(ValueError, match="one colour or one per box"):
        draw_boxes(ax, BOXES, ["red", "green"])
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        draw_boxes(ax, BOXES[0])


def test_frame_boxes_contains_every_box_with_y_down():
    ax = Figure().subplots()
    frame_boxes(ax, BOXES)
    left, right = ax.get_xlim()
    bottom, top = ax.get_ylim()
    assert left < 0 and right > 9 and top < 0 and bottom > 6  # y grows downwards


def test_iou_matrix_writes_the_matrix_given(tmp_path):
    iou = box_iou(BOXES, BOXES)
    figure = plot_iou_matrix(BOXES, iou, names=["A", "B", "E"])
    boxes_panel, matrix_panel = figure.axes[:2]
    assert len(rectangles(boxes_panel)) == 3
    written = [float(text.get_text()) for text in matrix_panel.texts]
    numpy.testing.assert_allclose(written, iou.reshape(-1), atol=0.005)
    with pytest.raises(ValueError, match=r"\(3, 3\) matrix"):
        plot_iou_matrix(BOXES, iou[:2])
    figure.savefig(tmp_path / "iou.png", dpi=40)
    assert numpy.asarray(Image.open(tmp_path / "iou.png").convert("L")).std() > 10


def test_nms_picture_shows_kept_solid_and_suppressed_dashed(tmp_path):
    rng = numpy.random.default_rng(0)
    boxes = (BOXES[rng.integers(0, 3, 12)] + rng.normal(0, 0.3, (12, 4))).astype(numpy.float32)
    scores = rng.random(12).astype(numpy.float32)
    keep = nms(boxes, scores, 0.5)
    figure = plot_nms(boxes, scores, keep, "title")
    before, after = figure.axes[:2]
    assert len(rectangles(before)) == 12
    drawn = rectangles(after)
    solid = [patch for patch in drawn if patch.get_linestyle() == "-"]
    dashed = [patch for patch in drawn if patch.get_linestyle() == "--"]
    assert len(solid) == len(keep) and len(dashed) == 12 - len(keep)
    assert sorted(patch.get_xy() for patch in solid) == sorted(
        (float(boxes[k, 0]), float(boxes[k, 1])) for k in keep)
    assert sorted(float(text.get_text()) for text in after.texts) == pytest.approx(
        sorted(float(scores[k]) for k in keep), abs=0.005)
    figure.savefig(tmp_path / "nms.png", dpi=40)
    assert numpy.asarray(Image.open(tmp_path / "nms.png").convert("L")).std() > 10
