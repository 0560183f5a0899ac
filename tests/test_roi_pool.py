"""RoIPool (REFERENCE.md §1): hand-computed tables (C's rounding), every kernel against the
reference loop, gradients by finite differences, and torchvision where it is installed."""

from __future__ import annotations

import numpy as np
import pytest
from op_check import check_against_torch, distinct
from roi_cases import awkward_rois, random_features

from tinymask import Tensor
from tinymask.gradcheck import gradcheck
from tinymask.ops import roi_pool
from tinymask.ops.roi_geometry import quantize_rois, round_half_away_from_zero
from tinymask.ops.roi_pool_cpu import roi_pool_backward_cpu, roi_pool_forward_cpu
from tinymask.ops.roi_pool_cuda import roi_pool_backward_cuda, roi_pool_forward_cuda
from tinymask.ops.roi_pool_reference import roi_pool_backward_reference, roi_pool_forward_reference

# every implementation behind one signature: (features, rois in image pixels, (PH, PW), scale)
FORWARDS = {
    "reference": lambda f, r, size, scale: roi_pool_forward_reference(f, r, *size, scale),
    "cpu": lambda f, r, size, scale: roi_pool_forward_cpu(f, quantize_rois(r, scale), *size),
    "cuda": lambda f, r, size, scale: roi_pool_forward_cuda(f, quantize_rois(r, scale), *size),
}
# (grad_output, rois, argmax_cells, features_shape, spatial_scale)
BACKWARDS = {
    "reference": lambda g, r, a, shape, scale: roi_pool_backward_reference(g, r, a, shape),
    "cpu": lambda g, r, a, shape, scale: roi_pool_backward_cpu(
        g, quantize_rois(r, scale), a, shape[0], shape[2], shape[3]),
    "cuda": lambda g, r, a, shape, scale: roi_pool_backward_cuda(
        g, quantize_rois(r, scale), a, shape[0], shape[2], shape[3]),
}

LINEAR_MAP = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5)  # f(y, x) = 5y + x


# ------------------------------------------------------------------ hand-computed values
def test_round_half_away_from_zero_is_c_round_not_numpy_round():
    values = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.4999, -0.49999999999999994])
    np.testing.assert_array_equal(round_half_away_from_zero(values),
                                  [-3, -2, -1, 1, 2, 3, 2, 0])
    assert np.round(0.5) == 0 and np.round(2.5) == 2  # what RoIPool must not do


@pytest.mark.parametrize("implementation", ["reference", "cpu", "cuda"])
@pytest.mark.parametrize("box, spatial_scale, expected, expected_argmax", [
    # corners 0.5 and 2.5 round to cells 1 and 3 (NumPy's round would give 0 and 2, and
    # [[6, 7], [11, 12]]): 3 cells, bins of 1.5 cells, rows [1, 3) and [2, 4), likewise
    # columns; the max of each bin is its bottom-right cell, 5y + x
    ((0.5, 0.5, 2.5, 2.5), 1.0, [[12, 13], [17, 18]], [[12, 13], [17, 18]]),
    # the same RoI in image pixels at stride 2: 1 * 0.5 = 0.5 and 5 * 0.5 = 2.5
    ((1.0, 1.0, 5.0, 5.0), 0.5, [[12, 13], [17, 18]], [[12, 13], [17, 18]]),
    # -0.5 rounds to -1: 4 cells -1..2, bins of 2 cells [-1, 1) -> [0, 1) and [1, 3)
    ((-0.5, -0.5, 1.5, 1.5), 1.0, [[0, 2], [10, 12]], [[0, 2], [10, 12]]),
    # columns -4..1 in bins of 3 cells: [-4, -1) lies outside the map (empty: 0, no
    # arg-max), [-1, 2) is clipped to [0, 2); rows 0..4 in bins of 2.5: [0, 3) and [2, 5)
    ((-4.0, 0.0, 1.0, 4.0), 1.0, [[0, 11], [0, 21]], [[-1, 11], [-1, 21]]),
])
def test_hand_computed_tables(implementation, box, spatial_scale, expected, expected_argmax):
    rois = np.array([[0, *box]])
    output, argmax = FORWARDS[implementation](LINEAR_MAP, rois, (2, 2), spatial_scale)
    np.testing.assert_array_equal(output[0, 0], expected)
    np.testing.assert_array_equal(argmax[0, 0], expected_argmax)


# ------------------------------------------------------------------ kernels vs reference
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("output_size", [(3, 2), (7, 7)])
def test_cpu_kernel_matches_reference(dtype, output_size):
    check_against_reference("cpu", dtype, output_size, features_shape=(2, 3, 7, 9),
                            num_random=6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cuda_kernel_matches_reference(dtype):
    # the simulator runs one Python thread per CUDA thread: keep it tiny
    check_against_reference("cuda", dtype, (2, 2), features_shape=(2, 2, 5, 6), num_random=1)


def check_against_reference(implementation, dtype, output_size, features_shape, num_random):
    spatial_scale = 0.5
    features = distinct(*features_shape).astype(dtype)  # no ties: one arg-max per bin
    rois = awkward_rois(*features_shape[2:], spatial_scale, num_random=num_random)
    expected, expected_argmax = FORWARDS["reference"](features, rois, output_size, spatial_scale)
    output, argmax = FORWARDS[implementation](features, rois, output_size, spatial_scale)
    assert output.dtype == dtype
    np.testing.assert_array_equal(output, expected)
    np.testing.assert_array_equal(argmax, expected_argmax)
    assert (argmax == -1).any() and (argmax >= 0).any()  # empty bins and full ones

    grad_output = random_features(*output.shape, dtype=dtype, seed=1)
    expected_grad = BACKWARDS["reference"](grad_output, rois, expected_argmax, features.shape,
                                           spatial_scale)
    grad = BACKWARDS[implementation](grad_output, rois, argmax, features.shape, spatial_scale)
    assert grad.dtype == dtype
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(grad, expected_grad, rtol=tolerance, atol=tolerance)


# ------------------------------------------------------------------ gradients
def test_gradient_by_finite_differences():
    """The max of distinct values (1e-2 apart) does not change under a 1e-5 nudge."""
    features = distinct(2, 2, 6, 6)
    rois = np.array([[0, 0.7, 0.4, 4.3, 3.6], [1, -0.6, 1.2, 2.2, 5.5], [1, 2.5, 0.5, 5.5, 2.5]])
    assert gradcheck(lambda f: roi_pool(f, rois, (2, 3)), [features]) < 1e-6


# ------------------------------------------------------------------ the public function
def test_public_function_matches_reference_and_backpropagates():
    features = random_features(2, 3, 8, 8, dtype=np.float32)
    rois = awkward_rois(8, 8, spatial_scale=0.25, num_random=3)
    tensor = Tensor(features, requires_grad=True)
    output = roi_pool(tensor, rois, 3, spatial_scale=0.25)
    expected, argmax = roi_pool_forward_reference(features, rois, 3, 3, 0.25)
    assert output.dtype == np.float32
    np.testing.assert_array_equal(output.data, expected)
    grad_output = random_features(*output.shape, dtype=np.float32, seed=1)
    output.backward(grad_output)
    np.testing.assert_allclose(tensor.grad,
                               roi_pool_backward_reference(grad_output, rois, argmax,
                                                           features.shape), atol=1e-6)


def test_no_rois_give_an_empty_output_and_a_zero_gradient():
    features = Tensor(random_features(2, 3, 5, 5), requires_grad=True)
    output = roi_pool(features, [np.zeros((0, 4)), np.zeros((0, 4))], (2, 3))
    assert output.shape == (0, 3, 2, 3)
    output.backward(np.zeros(output.shape))
    assert features.grad.shape == (2, 3, 5, 5) and not features.grad.any()
    for forward, backward in ((roi_pool_forward_cpu, roi_pool_backward_cpu),
                              (roi_pool_forward_cuda, roi_pool_backward_cuda)):
        output, argmax = forward(features.data, np.zeros((0, 5)), 2, 2)
        assert output.shape == argmax.shape == (0, 3, 2, 2)
        assert not backward(output, np.zeros((0, 5)), argmax, 2, 5, 5).any()


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(ValueError, match="\\(K, 5\\)"):
        roi_pool(np.zeros((1, 1, 5, 5)), np.zeros((1, 4)), 2)
    with pytest.raises(ValueError, match="batch indices"):
        roi_pool(np.zeros((1, 1, 5, 5)), np.array([[1, 0, 0, 2, 2.0]]), 2)


# ------------------------------------------------------------------ torchvision, GPU
@pytest.mark.torch
@pytest.mark.parametrize("spatial_scale", [1.0, 0.5])
def test_matches_torchvision(spatial_scale):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    features = distinct(2, 3, 8, 9)
    rois = awkward_rois(8, 9, spatial_scale)
    check_against_torch(
        lambda f: roi_pool(f, rois, (3, 2), spatial_scale),
        lambda f: torchvision.ops.roi_pool(f, torch.from_numpy(rois), (3, 2), spatial_scale),
        [features])


@pytest.mark.gpu
def test_cupy_features_run_on_the_gpu_and_match_the_cpu_kernel():
    cupy = pytest.importorskip("cupy")
    features = random_features(2, 256, 64, 64, dtype=np.float32)
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 1024, size=(512, 2))
    rois = np.concatenate([rng.integers(0, 2, (512, 1)), corners,
                           corners + rng.uniform(16, 400, size=(512, 2))], axis=1)
    on_cpu = Tensor(features, requires_grad=True)
    on_gpu = Tensor(cupy.asarray(features), requires_grad=True)
    cpu_output = roi_pool(on_cpu, rois, 7, 1 / 16)
    gpu_output = roi_pool(on_gpu, cupy.asarray(rois), 7, 1 / 16)
    np.testing.assert_array_equal(cupy.asnumpy(gpu_output.data), cpu_output.data)
    grad_output = random_features(*cpu_output.shape, dtype=np.float32, seed=1)
    cpu_output.backward(grad_output)
    gpu_output.backward(cupy.asarray(grad_output))
    np.testing.assert_allclose(cupy.asnumpy(on_gpu.grad), on_cpu.grad, rtol=1e-5, atol=1e-5)
