"""The mask-target picture: one column per RoI, each RoI drawn where it is over the image
(pixel c centred on c) in its own colour, the view kept inside the image, and the crop and
target panels showing exactly the arrays given."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.patches import Rectangle

from tinymask.visualize.box_head import GROUND_TRUTH_COLOUR
from tinymask.visualize.mask_targets import plot_mask_targets, roi_colour

matplotlib.use("Agg")

IMAGE = np.zeros((40, 50, 3), dtype=np.uint8)
GT_BOX = np.array([10.0, 12.0, 30.0, 28.0])
ROIS = np.array([[10.0, 12.0, 30.0, 28.0], [15.0, 12.0, 35.0, 28.0]])
CROPS = np.random.default_rng(0).random((2, 8, 8, 3))
TARGETS = np.zeros((2, 8, 8))
TARGETS[0, 2:6, 2:6] = 1.0
TARGETS[1, 2:6, 0:3] = 1.0


def figure():
    return plot_mask_targets(IMAGE, GT_BOX, ROIS, CROPS, TARGETS, ["first", "second"])


def corners(patch):
    x, y = patch.get_xy()
    return [x, y, x + patch.get_width(), y + patch.get_height()]


def test_one_column_per_roi_in_three_rows():
    axes = figure().axes
    assert len(axes) == 3 * len(ROIS)
    assert [axes[i].get_title() for i in (0, 1)] == ["first", "second"]


def test_each_roi_is_drawn_where_it_is_in_its_colour_beside_the_ground_truth():
    axes = figure().axes
    for index, roi in enumerate(ROIS):
        rectangles = [p for p in axes[index].patches if isinstance(p, Rectangle)]
        colours = [to_rgba(p.get_edgecolor()) for p in rectangles]
        assert to_rgba(roi_colour(index)) in colours and to_rgba(GROUND_TRUTH_COLOUR) in colours
        drawn = rectangles[colours.index(to_rgba(roi_colour(index)))]
        assert corners(drawn) == pytest.approx(list(roi - 0.5))


def test_the_view_stays_inside_the_image():
    ax = figure().axes[0]
    left, right = ax.get_xlim()
    bottom, top = ax.get_ylim()
    assert left >= -0.5 and top >= -0.5
    assert right <= IMAGE.shape[1] - 0.5 and bottom <= IMAGE.shape[0] - 0.5


def test_the_crop_and_target_panels_show_the_arrays_given():
    axes = figure().axes
    for index in range(len(ROIS)):
        crop_panel, target_panel = axes[len(ROIS) + index], axes[2 * len(ROIS) + index]
        np.testing.assert_array_equal(crop_panel.images[0].get_array(), CROPS[index])
        np.testing.assert_array_equal(target_panel.images[0].get_array(), TARGETS[index])


def test_it_renders_and_refuses_mismatched_inputs():
    png = io.BytesIO()
    figure().savefig(png, format="png")
    assert png.getbuffer().nbytes > 1000
    with pytest.raises(ValueError, match="one crop, target and title per RoI"):
        plot_mask_targets(IMAGE, GT_BOX, ROIS, CROPS[:1], TARGETS, ["a", "b"])
