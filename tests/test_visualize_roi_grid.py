"""The lesson pictures of RoIPool / RoIWarp / RoIAlign: they render, and what they draw is
where the kernels read (checked through the kernels' outputs, not by recomputing points)."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
from roi_cases import random_features

from tinymask.ops import roi_align, roi_pool, roi_warp
from tinymask.ops.roi_align_reference import bilinear_read
from tinymask.visualize.roi_grid import plot_roi_ops, plot_roi_readout, roi_readout

matplotlib.use("Agg")

FEATURE_SHAPE = (8, 10)  # H, W
BOX = (3.3, 2.6, 13.1, 12.7)  # image pixels, read at stride 2
SPATIAL_SCALE = 0.5


def test_the_four_panels_render():
    figure = plot_roi_ops(BOX, FEATURE_SHAPE, SPATIAL_SCALE, output_size=2, sampling_ratio=2)
    png = io.BytesIO()
    figure.savefig(png, format="png")
    assert len(figure.axes) == 4 and png.getbuffer().nbytes > 10_000
    assert [ax.get_title() for ax in figure.axes] == [
        "RoIPool", "RoIWarp", "RoIAlign, aligned=False", "RoIAlign, aligned=True"]


@pytest.mark.parametrize("op, aligned", [("align", True), ("align", False), ("warp", False)])
def test_drawn_samples_are_the_readout_points_at_cell_centres(op, aligned):
    readout = roi_readout(op, BOX, FEATURE_SHAPE, SPATIAL_SCALE, (3, 2), 2, aligned)
    ax = plot_roi_readout(readout, FEATURE_SHAPE)
    (samples,) = [c for c in ax.collections if c.get_gid() == "samples"]
    drawn_xy = samples.get_offsets()
    expected_yx = readout.sample_points.reshape(-1, 2) + 0.5
    np.testing.assert_allclose(drawn_xy, expected_yx[:, ::-1])
    assert len(drawn_xy) == 3 * 2 * 4


@pytest.mark.parametrize("op, aligned", [("align", True), ("align", False), ("warp", False)])
@pytest.mark.parametrize("sampling_ratio", [2, 0])
def test_the_samples_drawn_are_where_the_kernel_reads(op, aligned, sampling_ratio):
    """The mean of bilinear reads at the drawn points equals the kernel's output, bin by
    bin, on random features: a point drawn in the wrong place would read another value."""
    features = random_features(1, 1, *FEATURE_SHAPE)
    readout = roi_readout(op, BOX, FEATURE_SHAPE, SPATIAL_SCALE, (3, 2), sampling_ratio, aligned)
    rois = np.array([[0, *BOX]])
    if op == "align":
        output = roi_align(features, rois, (3, 2), SPATIAL_SCALE, sampling_ratio, aligned)
    else:
        output = roi_warp(features, rois, (3, 2), SPATIAL_SCALE, sampling_ratio, "avg")
    from_drawing = [[np.mean([bilinear_read(features[0, 0], y, x) for y, x in points])
                     for points in row] for row in readout.sample_points]
    np.testing.assert_allclose(from_drawing, output.data[0, 0], atol=1e-12)


def test_the_cells_drawn_for_roipool_are_the_cells_it_pools():
    features = random_features(1, 1, *FEATURE_SHAPE)
    readout = roi_readout("pool", BOX, FEATURE_SHAPE, SPATIAL_SCALE, (3, 2))
    output = roi_pool(features, np.array([[0, *BOX]]), (3, 2), SPATIAL_SCALE)
    from_drawing = [[features[0, 0, int(y1):int(y2), int(x1):int(x2)].max()
                     for x1, y1, x2, y2 in row] for row in readout.bins]
    np.testing.assert_array_equal(from_drawing, output.data[0, 0])
    plot_roi_readout(readout, FEATURE_SHAPE)  # and it draws
