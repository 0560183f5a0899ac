"""RoIWarp (tinymask's definition, ``roi_warp`` docstring): hand-computed tables, what it
shares with RoIPool (the rounding) and with RoIAlign (the sampling), and its gradient."""

from __future__ import annotations

import numpy as np
import pytest
from op_check import distinct
from roi_cases import awkward_rois, random_features

from tinymask import Tensor
from tinymask.gradcheck import gradcheck
from tinymask.ops import roi_align, roi_warp
from tinymask.ops.roi_align_reference import roi_align_forward_reference
from tinymask.ops.roi_geometry import quantize_rois

LINEAR_MAP = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5)  # f(y, x) = 5y + x


@pytest.mark.parametrize("box, expected", [
    # corners round to cells 1 and 2: one cell, bins of 0.5, one sample at each bin's centre,
    # y, x in {1.25, 1.75}; bilinear reads of 5y + x are exact
    ((0.6, 0.6, 2.4, 2.4), [[7.5, 8.0], [10.0, 10.5]]),
    # .5 rounds away from zero, to 1 and 3 (NumPy's round: 0 and 2, giving [[3, 4], [8, 9]]):
    # two cells, samples at 1.5 and 2.5
    ((0.5, 0.5, 2.5, 2.5), [[9.0, 10.0], [14.0, 15.0]]),
])
def test_hand_computed_tables(box, expected):
    output = roi_warp(LINEAR_MAP, np.array([[0, *box]]), 2, sampling_ratio=1, aggregation="avg")
    np.testing.assert_allclose(output.data[0, 0], expected, atol=1e-12)


def test_rounding_is_the_only_difference_from_roialign_without_alignment():
    """Boxes whose corners land on whole cells are not moved by the rounding: there RoIWarp
    and RoIAlign(aligned=False) agree exactly; elsewhere they differ."""
    features = random_features(2, 3, 9, 9)
    on_cells = np.array([[0, 4.0, 2.0, 14.0, 16.0], [1, -4.0, 6.0, 8.0, 10.0]])  # stride 2
    for aggregation in ("avg", "max"):
        warped = roi_warp(features, on_cells, 3, 0.5, 0, aggregation)
        aligned = roi_align(features, on_cells, 3, 0.5, 0, False, aggregation)
        np.testing.assert_array_equal(warped.data, aligned.data)
    off_cells = on_cells + np.array([0, 1.3, 0.6, -0.9, 0.7])
    assert not np.allclose(roi_warp(features, off_cells, 3, 0.5, 0).data,
                           roi_align(features, off_cells, 3, 0.5, 0, False, "max").data)


def test_matches_the_reference_loop_on_quantized_boxes():
    """RoIWarp's definition spelled out with the reference loop: round like RoIPool, then
    RoIAlign at spatial_scale 1 without the half-cell shift."""
    features = random_features(2, 3, 7, 9, dtype=np.float32)
    rois = awkward_rois(7, 9, spatial_scale=0.5)
    for aggregation in ("avg", "max"):
        expected, _ = roi_align_forward_reference(features, quantize_rois(rois, 0.5), 3, 2,
                                                  spatial_scale=1.0, sampling_ratio=2,
                                                  aligned=False, aggregation=aggregation)
        output = roi_warp(features, rois, (3, 2), 0.5, 2, aggregation)
        assert output.dtype == np.float32
        np.testing.assert_allclose(output.data, expected, rtol=1e-5, atol=1e-5)


def test_the_aligned_control_samples_the_rounded_box_without_the_half_cell_offset():
    """aligned=True (not the paper's RoIWarp): the rounded box 1..2 (as in the first table
    above) read at continuous 1.25 and 1.75, i.e. cell indices 0.75 and 1.25, of 5y + x;
    the paper's op reads half a cell further (7.5, ... above). Same as RoIAlign(aligned=True)
    on the quantized box."""
    box = np.array([[0, 0.6, 0.6, 2.4, 2.4]])
    output = roi_warp(LINEAR_MAP, box, 2, sampling_ratio=1, aggregation="avg", aligned=True)
    np.testing.assert_allclose(output.data[0, 0], [[4.5, 5.0], [7.0, 7.5]], atol=1e-12)
    features = random_features(2, 3, 7, 9)
    rois = awkward_rois(7, 9, spatial_scale=0.5)
    np.testing.assert_array_equal(
        roi_warp(features, rois, 3, 0.5, 2, "max", aligned=True).data,
        roi_align(features, quantize_rois(rois, 0.5), 3, 1.0, 2, True, "max").data)


def test_default_aggregation_is_max_as_in_table_2c():
    features = random_features(1, 2, 8, 8)
    rois = np.array([[0, 0.4, 1.2, 6.6, 7.3]])
    np.testing.assert_array_equal(roi_warp(features, rois, 2).data,
                                  roi_warp(features, rois, 2, aggregation="max").data)
    assert not np.allclose(roi_warp(features, rois, 2).data,
                           roi_warp(features, rois, 2, aggregation="avg").data)


@pytest.mark.parametrize("aggregation", ["avg", "max"])
def test_gradient_by_finite_differences(aggregation):
    features = distinct(2, 2, 6, 6)
    rois = np.array([[0, 0.7, 0.4, 4.3, 3.6], [1, -0.6, 1.2, 2.2, 5.5], [1, 2.5, 0.5, 5.5, 2.5]])
    error = gradcheck(lambda f: roi_warp(f, rois, 2, 1.0, 2, aggregation), [features])
    assert error < 1e-6


def test_no_rois_give_an_empty_output_and_a_zero_gradient():
    features = Tensor(random_features(2, 3, 5, 5), requires_grad=True)
    output = roi_warp(features, np.zeros((0, 5)), (2, 3))
    assert output.shape == (0, 3, 2, 3)
    output.backward(np.zeros(output.shape))
    assert features.grad.shape == (2, 3, 5, 5) and not features.grad.any()


def test_bad_settings_say_what_is_wrong():
    with pytest.raises(ValueError, match="aggregation"):
        roi_warp(np.zeros((1, 1, 5, 5)), np.zeros((1, 5)), 2, aggregation="sum")
