"""RoIAlign (REFERENCE.md §1): hand-computed tables, an invariance, every kernel against the
reference loop, gradients by finite differences, and torchvision where it is installed."""

from __future__ import annotations

import numpy as np
import pytest
from op_check import check_against_torch, distinct
from roi_cases import awkward_rois, random_features

from tinymask import Tensor
from tinymask.gradcheck import gradcheck
from tinymask.ops import roi_align
from tinymask.ops.roi_align_cpu import roi_align_backward_cpu, roi_align_forward_cpu
from tinymask.ops.roi_align_cuda import roi_align_backward_cuda, roi_align_forward_cuda
from tinymask.ops.roi_align_reference import (
    roi_align_backward_reference,
    roi_align_forward_reference,
)

# every implementation behind one signature:
# (features, rois, (PH, PW), spatial_scale, sampling_ratio, aligned, aggregation)
FORWARDS = {
    "reference": lambda f, r, size, *settings: roi_align_forward_reference(f, r, *size, *settings),
    "cpu": lambda f, r, size, *s: roi_align_forward_cpu(f, r, *size, *s[:3], s[3] == "max"),
    "cuda": lambda f, r, size, *s: roi_align_forward_cuda(f, r, *size, *s[:3], s[3] == "max"),
}
# (grad_output, rois, argmax_samples, features_shape, spatial_scale, sampling_ratio, aligned,
#  aggregation)
BACKWARDS = {
    "reference": roi_align_backward_reference,
    "cpu": lambda g, r, a, shape, *s: roi_align_backward_cpu(
        g, r, a, shape[0], shape[2], shape[3], *s[:3], s[3] == "max"),
    "cuda": lambda g, r, a, shape, *s: roi_align_backward_cuda(
        g, r, a, shape[0], shape[2], shape[3], *s[:3], s[3] == "max"),
}


# ------------------------------------------------------------------ hand-computed values
@pytest.mark.parametrize("implementation", ["reference", "cpu", "cuda"])
@pytest.mark.parametrize("aligned, first_value", [(False, 7.5), (True, 4.5)])
def test_detectron2_worked_example(implementation, aligned, first_value):
    """REFERENCE §1: arange(25) as a 5x5 map, RoI (1, 1, 3, 3), 4x4 bins, adaptive sampling.

    The map is f(y, x) = 5y + x, which bilinear interpolation reproduces exactly. Bins are
    0.5 cells and ceil(2 / 4) = 1 sample sits at each bin's centre, y = start + 0.5 ph + 0.25,
    so the output is 5y + x = first_value + 2.5 ph + 0.5 pw, with the start 1 (aligned=False:
    first row 7.5 8 8.5 9) or 0.5 (aligned=True: first row 4.5 5 5.5 6)."""
    features = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5)
    rois = np.array([[0, 1.0, 1.0, 3.0, 3.0]])
    output, _ = FORWARDS[implementation](features, rois, (4, 4), 1.0, 0, aligned, "avg")
    ph, pw = np.mgrid[0:4, 0:4]
    np.testing.assert_allclose(output[0, 0], first_value + 2.5 * ph + 0.5 * pw, atol=1e-12)


def test_adaptive_sampling_is_the_default_and_any_non_positive_ratio():
    features = random_features(1, 2, 9, 9)
    rois = np.array([[0, 0.3, 1.1, 7.9, 6.2]])
    default = roi_align(features, rois, 2).data
    for sampling_ratio in (0, -1, -3):
        np.testing.assert_array_equal(roi_align(features, rois, 2, sampling_ratio=sampling_ratio)
                                      .data, default)
    # the RoI is 7.6 x 5.1 cells: ceil(7.6 / 2) = 4 by ceil(5.1 / 2) = 3 samples, not 2 x 2
    assert not np.allclose(roi_align(features, rois, 2, sampling_ratio=2).data, default)


@pytest.mark.parametrize("aggregation", ["avg", "max"])
def test_max_takes_the_largest_sample_and_avg_their_mean(aggregation):
    """One bin, 2 x 2 samples on the linear map 5y + x: values 5y + x at y, x in {1.5, 2.5}."""
    features = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5)
    rois = np.array([[0, 1.0, 1.0, 3.0, 3.0]])
    output = roi_align(features, rois, 1, sampling_ratio=2, aggregation=aggregation).data
    samples = [5 * y + x for y in (1.5, 2.5) for x in (1.5, 2.5)]
    expected = max(samples) if aggregation == "max" else np.mean(samples)
    np.testing.assert_allclose(output[0, 0, 0, 0], expected, atol=1e-12)


# ------------------------------------------------------------------ invariance
def test_half_size_map_with_half_scale_gives_the_same_output_when_aligned():
    """Detectron2's test: shrink the map by 2 (each cell the mean of a 2x2 block, which is
    what bilinear downscaling by exactly 2 computes) and halve spatial_scale: RoIAlign must
    read the same values. Here the RoI covers cells 10..20 of the full map, 2x2 samples per
    2-cell bin land on cell centres 10, 11 (+2 per bin), and on the half map one sample per
    1-cell bin lands on cell 5 (+1 per bin), the mean of cells 10 and 11: equal, exactly.
    Only with aligned=True: without the half-cell shift the two reads are half a cell apart
    on the full map and a whole cell apart on the half map."""
    features = random_features(1, 2, 30, 30)
    half_size = features.reshape(1, 2, 15, 2, 15, 2).mean(axis=(3, 5))
    rois = np.array([[0, 20.0, 20.0, 40.0, 40.0]])  # image pixels

    def both(aligned):
        full = roi_align(features, rois, 5, spatial_scale=0.5, sampling_ratio=0, aligned=aligned)
        half = roi_align(half_size, rois, 5, spatial_scale=0.25, sampling_ratio=0,
                         aligned=aligned)
        return full.data, half.data

    full, half = both(aligned=True)
    np.testing.assert_allclose(half, full, atol=1e-12)
    full, half = both(aligned=False)
    assert np.abs(half - full).max() > 0.1


# ------------------------------------------------------------------ kernels vs reference
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
@pytest.mark.parametrize("aggregation", ["avg", "max"])
def test_cpu_kernel_matches_reference(dtype, aligned, sampling_ratio, aggregation):
    check_against_reference("cpu", dtype, aligned, sampling_ratio, aggregation,
                            features_shape=(2, 3, 7, 9), num_random=6, output_size=(3, 2))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("aggregation", ["avg", "max"])
def test_cuda_kernel_matches_reference(dtype, aligned, aggregation):
    # the simulator runs one Python thread per CUDA thread: keep it tiny
    check_against_reference("cuda", dtype, aligned, 0, aggregation,
                            features_shape=(2, 2, 5, 6), num_random=1, output_size=(2, 2))


def check_against_reference(implementation, dtype, aligned, sampling_ratio, aggregation,
                            features_shape, num_random, output_size):
    spatial_scale = 0.5
    features = random_features(*features_shape, dtype=dtype)
    rois = awkward_rois(*features_shape[2:], spatial_scale, num_random=num_random)
    settings = (spatial_scale, sampling_ratio, aligned, aggregation)
    expected, expected_argmax = FORWARDS["reference"](features, rois, output_size, *settings)
    output, argmax = FORWARDS[implementation](features, rois, output_size, *settings)
    assert output.dtype == dtype
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(output, expected, rtol=tolerance, atol=tolerance)
    np.testing.assert_array_equal(argmax, expected_argmax)

    grad_output = random_features(*output.shape, dtype=dtype, seed=1)
    expected_grad = BACKWARDS["reference"](grad_output, rois, expected_argmax, features.shape,
                                           *settings)
    grad = BACKWARDS[implementation](grad_output, rois, argmax, features.shape, *settings)
    assert grad.dtype == dtype
    np.testing.assert_allclose(grad, expected_grad, rtol=tolerance, atol=tolerance)
    assert np.abs(expected_grad).sum() > 0  # the case reaches some cells


def test_cpu_backward_is_deterministic():
    """Threads own whole channel planes, so no addition races: every run gives the same bits."""
    features = random_features(2, 8, 12, 12, dtype=np.float32)
    rois = awkward_rois(12, 12, num_random=20)
    output, argmax = roi_align_forward_cpu(features, rois, 3, 3, 1.0, 0, True, False)
    grad_output = random_features(*output.shape, dtype=np.float32, seed=1)
    runs = [roi_align_backward_cpu(grad_output, rois, argmax, 2, 12, 12, 1.0, 0, True, False)
            for _ in range(3)]
    for run in runs[1:]:
        np.testing.assert_array_equal(run, runs[0])


# ------------------------------------------------------------------ gradients
@pytest.mark.parametrize("aggregation", ["avg", "max"])
@pytest.mark.parametrize("aligned", [False, True])
def test_gradient_by_finite_differences(aggregation, aligned):
    """For a fixed box RoIAlign is linear in the features (avg) or picks one linear sample
    (max), so the only kinks are ties between samples: distinct values keep them away."""
    features = distinct(2, 2, 5, 6)
    rois = np.array([[0, 0.7, 0.4, 4.3, 3.6], [1, -0.6, 1.2, 2.2, 5.5], [1, 2.5, 0.5, 5.5, 2.5]])
    error = gradcheck(lambda f: roi_align(f, rois, 2, 1.0, 2, aligned, aggregation), [features])
    assert error < 1e-6


# ------------------------------------------------------------------ the public function
def test_tensor_input_gets_a_gradient_and_array_input_none():
    features = random_features(2, 3, 6, 6)
    rois = awkward_rois(6, 6, num_random=2)
    from_array = roi_align(features, rois, 2)
    assert isinstance(from_array, Tensor) and not from_array.requires_grad
    tensor = Tensor(features, requires_grad=True)
    output = roi_align(tensor, rois, 2)
    np.testing.assert_array_equal(output.data, from_array.data)
    grad_output = random_features(*output.shape, seed=1)
    output.backward(grad_output)
    _, argmax = roi_align_forward_reference(features, rois, 2, 2)
    expected = roi_align_backward_reference(grad_output, rois, argmax, features.shape)
    np.testing.assert_allclose(tensor.grad, expected, atol=1e-12)


def test_list_of_boxes_per_image_equals_rows_with_batch_index():
    features = random_features(2, 3, 8, 8, dtype=np.float32)
    boxes_image0 = np.array([[0.5, 1.0, 6.0, 7.0], [2.0, 2.0, 3.0, 5.0]], dtype=np.float32)
    boxes_image1 = np.array([[1.0, 0.0, 4.0, 4.0]], dtype=np.float32)
    rows = np.array([[0, 0.5, 1.0, 6.0, 7.0], [0, 2.0, 2.0, 3.0, 5.0], [1, 1.0, 0.0, 4.0, 4.0]])
    from_list = roi_align(features, [boxes_image0, boxes_image1], (2, 3), aligned=True)
    from_rows = roi_align(features, rows, (2, 3), aligned=True)
    assert from_list.dtype == np.float32 and from_list.shape == (3, 3, 2, 3)
    np.testing.assert_array_equal(from_list.data, from_rows.data)


@pytest.mark.parametrize("boxes", [np.zeros((0, 5)), [np.zeros((0, 4)), np.zeros((0, 4))]],
                         ids=["rows", "list"])
def test_no_rois_give_an_empty_output_and_a_zero_gradient(boxes):
    features = Tensor(random_features(2, 3, 5, 5), requires_grad=True)
    output = roi_align(features, boxes, (2, 3))
    assert output.shape == (0, 3, 2, 3)
    output.backward(np.zeros(output.shape))
    assert features.grad.shape == (2, 3, 5, 5) and not features.grad.any()


@pytest.mark.parametrize("kernels", [(roi_align_forward_cpu, roi_align_backward_cpu),
                                     (roi_align_forward_cuda, roi_align_backward_cuda)],
                         ids=["cpu", "cuda"])
@pytest.mark.parametrize("take_max", [False, True])
def test_kernels_accept_no_rois(kernels, take_max):
    forward, backward = kernels
    output, argmax = forward(random_features(2, 3, 5, 5), np.zeros((0, 5)), 2, 2, 1.0, 0, True,
                             take_max)
    assert output.shape == (0, 3, 2, 2)
    assert argmax.shape == ((0, 3, 2, 2) if take_max else (0, 0, 0, 0))  # avg keeps none
    grad = backward(output, np.zeros((0, 5)), argmax, 2, 5, 5, 1.0, 0, True, take_max)
    assert grad.shape == (2, 3, 5, 5) and not grad.any()


@pytest.mark.parametrize("features, boxes, message", [
    (np.zeros((3, 5, 5)), np.zeros((1, 5)), "shape \\(N, C, H, W\\)"),
    (np.zeros((1, 1, 5, 5), dtype=np.int64), np.zeros((1, 5)), "float32 and float64"),
    (np.zeros((1, 1, 5, 5)), np.zeros((1, 4)), "\\(K, 5\\)"),
    (np.zeros((1, 1, 5, 5)), [np.zeros((1, 5))], "\\(Ki, 4\\)"),
    (np.zeros((2, 1, 5, 5)), np.array([[2, 0, 0, 1, 1.0]]), "batch indices"),
    (np.zeros((2, 1, 5, 5)), np.array([[0.5, 0, 0, 1, 1.0]]), "whole numbers"),
])
def test_bad_inputs_say_what_is_wrong(features, boxes, message):
    with pytest.raises((ValueError, TypeError), match=message):
        roi_align(features, boxes, 2)


def test_bad_settings_say_what_is_wrong():
    features, rois = np.zeros((1, 1, 5, 5)), np.zeros((1, 5))
    with pytest.raises(ValueError, match="aggregation"):
        roi_align(features, rois, 2, aggregation="mean")
    with pytest.raises(ValueError, match="output_size"):
        roi_align(features, rois, (0, 2))


# ------------------------------------------------------------------ torchvision, GPU
@pytest.mark.torch
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_matches_torchvision(aligned, sampling_ratio):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    features = random_features(2, 3, 8, 9)
    rois = awkward_rois(8, 9, spatial_scale=0.5)
    check_against_torch(
        lambda f: roi_align(f, rois, (3, 2), 0.5, sampling_ratio, aligned),
        lambda f: torchvision.ops.roi_align(f, torch.from_numpy(rois), (3, 2), 0.5,
                                            sampling_ratio, aligned),
        [features])


@pytest.mark.gpu
@pytest.mark.parametrize("aggregation", ["avg", "max"])
def test_cupy_features_run_on_the_gpu_and_match_the_cpu_kernel(aggregation):
    """FPN-sized: P2 of a 512-px image, 256 channels, 512 RoIs, 7x7."""
    cupy = pytest.importorskip("cupy")
    features = random_features(2, 256, 128, 128, dtype=np.float32)
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 512, size=(512, 2))
    sizes = rng.uniform(8, 200, size=(512, 2))
    rois = np.concatenate([rng.integers(0, 2, (512, 1)), corners, corners + sizes], axis=1)

    on_cpu = Tensor(features, requires_grad=True)
    on_gpu = Tensor(cupy.asarray(features), requires_grad=True)
    cpu_output = roi_align(on_cpu, rois, 7, 0.25, 0, True, aggregation)
    gpu_output = roi_align(on_gpu, cupy.asarray(rois), 7, 0.25, 0, True, aggregation)
    assert isinstance(gpu_output.data, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(gpu_output.data), cpu_output.data, rtol=1e-5,
                               atol=1e-5)
    grad_output = random_features(*cpu_output.shape, dtype=np.float32, seed=1)
    cpu_output.backward(grad_output)
    gpu_output.backward(cupy.asarray(grad_output))
    assert isinstance(on_gpu.grad, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(on_gpu.grad), on_cpu.grad, rtol=1e-4, atol=1e-4)
