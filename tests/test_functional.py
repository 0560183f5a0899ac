"""Every differentiable op of tinymask.functional: a float64 gradient check and, where torch
is installed, forward and backward parity with torch.nn.functional (1e-6 relative).

One row per op and configuration; ``CASES`` is the table both tests walk.
"""

import numpy as np
import pytest

import tinymask.functional as F
from tests.op_check import (
    away_from_zero,
    check_against_torch,
    check_gradients,
    distinct,
    randn,
)


def _targets(shape, num_classes, seed=3):
    return np.random.default_rng(seed).integers(0, num_classes, size=shape)


def _probabilities(*shape, seed=4):
    return np.random.default_rng(seed).uniform(0, 1, size=shape)


CLASS_WEIGHT = np.array([1.0, 2.0, 0.5, 1.5])  # a constant, not differentiated (as in torch)

# (id, tinymask fn, torch fn name-or-callable, inputs)
CASES = [
    ("conv2d", lambda x, w, b: F.conv2d(x, w, b, padding=1),
     lambda T: lambda x, w, b: T.nn.functional.conv2d(x, w, b, padding=1),
     [randn(2, 3, 5, 4), randn(4, 3, 3, 3, seed=1), randn(4, seed=2)]),
    ("conv2d stride2 dilation2", lambda x, w: F.conv2d(x, w, stride=2, padding=2, dilation=2),
     lambda T: lambda x, w: T.nn.functional.conv2d(x, w, stride=2, padding=2, dilation=2),
     [randn(2, 2, 7, 6), randn(3, 2, 3, 3, seed=1)]),
    ("conv2d groups", lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 0), groups=2),
     lambda T: lambda x, w, b: T.nn.functional.conv2d(x, w, b, stride=(2, 1), padding=(1, 0),
                                                      groups=2),
     [randn(2, 4, 5, 5), randn(6, 2, 3, 3, seed=1), randn(6, seed=2)]),
    ("conv2d 1x1", lambda x, w: F.conv2d(x, w),
     lambda T: lambda x, w: T.nn.functional.conv2d(x, w),
     [randn(2, 3, 4, 4), randn(5, 3, 1, 1, seed=1)]),
    ("conv2d 1x1 stride2", lambda x, w, b: F.conv2d(x, w, b, stride=2),
     lambda T: lambda x, w, b: T.nn.functional.conv2d(x, w, b, stride=2),
     [randn(2, 3, 5, 4), randn(4, 3, 1, 1, seed=1), randn(4, seed=2)]),
    ("conv2d dilation2 (shifted)", lambda x, w: F.conv2d(x, w, padding=(2, 1), dilation=2),
     lambda T: lambda x, w: T.nn.functional.conv2d(x, w, padding=(2, 1), dilation=2),
     [randn(2, 2, 6, 7), randn(3, 2, 3, 3, seed=1)]),
    ("conv2d 5x3 no padding (shifted)", lambda x, w, b: F.conv2d(x, w, b),
     lambda T: lambda x, w, b: T.nn.functional.conv2d(x, w, b),
     [randn(3, 2, 7, 5), randn(2, 2, 5, 3, seed=1), randn(2, seed=2)]),
    ("conv_transpose2d 2x2 stride2", lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2),
     lambda T: lambda x, w, b: T.nn.functional.conv_transpose2d(x, w, b, stride=2),
     [randn(2, 3, 3, 4), randn(3, 2, 2, 2, seed=1), randn(2, seed=2)]),
    ("conv_transpose2d padded groups",
     lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1, groups=2),
     lambda T: lambda x, w: T.nn.functional.conv_transpose2d(x, w, stride=2, padding=1,
                                                             output_padding=1, groups=2),
     [randn(1, 4, 3, 3), randn(4, 1, 3, 3, seed=1)]),
    ("linear", F.linear, lambda T: T.nn.functional.linear,
     [randn(4, 5), randn(3, 5, seed=1), randn(3, seed=2)]),
    ("linear (N, L, in), no bias", F.linear, lambda T: T.nn.functional.linear,
     [randn(2, 4, 5), randn(3, 5, seed=1)]),
    ("linear 1-D input", F.linear, lambda T: T.nn.functional.linear,
     [randn(5), randn(3, 5, seed=1), randn(3, seed=2)]),
    ("relu", F.relu, lambda T: T.nn.functional.relu, [away_from_zero(3, 4)]),
    ("sigmoid", F.sigmoid, lambda T: T.sigmoid, [randn(3, 4, scale=3)]),
    ("softmax", lambda x: F.softmax(x, dim=1), lambda T: lambda x: T.softmax(x, dim=1),
     [randn(3, 5)]),
    ("log_softmax", lambda x: F.log_softmax(x, dim=-1),
     lambda T: lambda x: T.log_softmax(x, dim=-1), [randn(2, 3, 4, scale=2)]),
    ("max_pool2d 3x3/2 pad1", lambda x: F.max_pool2d(x, 3, 2, 1),
     lambda T: lambda x: T.nn.functional.max_pool2d(x, 3, 2, 1), [distinct(2, 2, 7, 6)]),
    ("max_pool2d 1/2 (P6)", lambda x: F.max_pool2d(x, 1, 2),
     lambda T: lambda x: T.nn.functional.max_pool2d(x, 1, 2), [distinct(1, 2, 5, 5)]),
    ("max_pool2d 2x2", lambda x: F.max_pool2d(x, 2),
     lambda T: lambda x: T.nn.functional.max_pool2d(x, 2), [distinct(1, 3, 4, 6)]),
    ("interpolate nearest x2", lambda x: F.interpolate(x, scale_factor=2),
     lambda T: lambda x: T.nn.functional.interpolate(x, scale_factor=2), [randn(1, 2, 3, 4)]),
    ("interpolate nearest to size (odd)", lambda x: F.interpolate(x, size=(7, 5)),
     lambda T: lambda x: T.nn.functional.interpolate(x, size=(7, 5)), [randn(2, 2, 4, 3)]),
    ("interpolate nearest down", lambda x: F.interpolate(x, size=(3, 2)),
     lambda T: lambda x: T.nn.functional.interpolate(x, size=(3, 2)), [randn(1, 2, 7, 5)]),
    ("interpolate bilinear", lambda x: F.interpolate(x, size=(7, 9), mode="bilinear"),
     lambda T: lambda x: T.nn.functional.interpolate(x, size=(7, 9), mode="bilinear",
                                                     align_corners=False),
     [randn(2, 2, 4, 3)]),
    ("interpolate bilinear align_corners",
     lambda x: F.interpolate(x, size=(5, 6), mode="bilinear", align_corners=True),
     lambda T: lambda x: T.nn.functional.interpolate(x, size=(5, 6), mode="bilinear",
                                                     align_corners=True),
     [randn(1, 2, 3, 4)]),
    ("batch_norm train", lambda x, w, b: F.batch_norm(x, np.zeros(3), np.ones(3), w, b,
                                                      training=True),
     lambda T: lambda x, w, b: T.nn.functional.batch_norm(x, T.zeros(3, dtype=T.float64),
                                                          T.ones(3, dtype=T.float64), w, b,
                                                          training=True),
     [randn(4, 3, 2, 3), randn(3, seed=1), randn(3, seed=2)]),
    ("batch_norm eval", lambda x, w, b: F.batch_norm(x, np.full(3, 0.5), np.full(3, 2.0), w, b),
     lambda T: lambda x, w, b: T.nn.functional.batch_norm(
         x, T.full((3,), 0.5, dtype=T.float64), T.full((3,), 2.0, dtype=T.float64), w, b),
     [randn(2, 3, 2, 2), randn(3, seed=1), randn(3, seed=2)]),
    ("batch_norm (N, C)", lambda x: F.batch_norm(x, None, None, training=True),
     lambda T: lambda x: T.nn.functional.batch_norm(x, None, None, training=True),
     [randn(5, 3)]),
    ("group_norm", lambda x, w, b: F.group_norm(x, 2, w, b),
     lambda T: lambda x, w, b: T.nn.functional.group_norm(x, 2, w, b),
     [randn(2, 4, 3, 2), randn(4, seed=1), randn(4, seed=2)]),
    ("bce_with_logits mean", F.binary_cross_entropy_with_logits,
     lambda T: T.nn.functional.binary_cross_entropy_with_logits,
     [randn(3, 4, scale=3), _probabilities(3, 4)]),
    ("bce_with_logits none",
     lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="none"),
     lambda T: lambda x, t: T.nn.functional.binary_cross_entropy_with_logits(x, t,
                                                                             reduction="none"),
     [randn(2, 5, scale=3), _probabilities(2, 5)]),
    ("cross_entropy", F.cross_entropy, lambda T: T.nn.functional.cross_entropy,
     [randn(6, 4), _targets(6, 4)]),
    ("cross_entropy sum weighted",
     lambda x, t: F.cross_entropy(x, t, weight=CLASS_WEIGHT, reduction="sum"),
     lambda T: lambda x, t: T.nn.functional.cross_entropy(x, t, weight=T.tensor(CLASS_WEIGHT),
                                                          reduction="sum"),
     [randn(6, 4), _targets(6, 4)]),
    ("cross_entropy mean weighted",
     lambda x, t: F.cross_entropy(x, t, weight=CLASS_WEIGHT),
     lambda T: lambda x, t: T.nn.functional.cross_entropy(x, t, weight=T.tensor(CLASS_WEIGHT)),
     [randn(6, 4), _targets(6, 4)]),
    ("cross_entropy ignore_index",
     lambda x, t: F.cross_entropy(x, t, ignore_index=2),
     lambda T: lambda x, t: T.nn.functional.cross_entropy(x, t, ignore_index=2),
     [randn(8, 3), _targets(8, 3)]),
    ("cross_entropy spatial (softmax mask loss)", F.cross_entropy,
     lambda T: T.nn.functional.cross_entropy, [randn(2, 3, 4, 4), _targets((2, 4, 4), 3)]),
    ("cross_entropy spatial none",
     lambda x, t: F.cross_entropy(x, t, reduction="none"),
     lambda T: lambda x, t: T.nn.functional.cross_entropy(x, t, reduction="none"),
     [randn(2, 3, 2, 3), _targets((2, 2, 3), 3)]),
    ("smooth_l1 beta 1/9", lambda x, t: F.smooth_l1_loss(x, t, beta=1 / 9, reduction="sum"),
     lambda T: lambda x, t: T.nn.functional.smooth_l1_loss(x, t, beta=1 / 9, reduction="sum"),
     [randn(4, 4), randn(4, 4, seed=5)]),
    ("smooth_l1 mean beta 1", F.smooth_l1_loss, lambda T: T.nn.functional.smooth_l1_loss,
     [randn(3, 4, scale=2), randn(3, 4, seed=5)]),
]
IDS = [case[0] for case in CASES]


@pytest.mark.parametrize("name, fn, torch_fn, inputs", CASES, ids=IDS)
def test_gradient_check(name, fn, torch_fn, inputs):
    check_gradients(fn, inputs)


@pytest.mark.torch
@pytest.mark.parametrize("name, fn, torch_fn, inputs", CASES, ids=IDS)
def test_matches_torch(name, fn, torch_fn, inputs):
    import torch

    check_against_torch(fn, torch_fn(torch), inputs)


@pytest.mark.parametrize("spelling", ["F.relu", "Tensor.relu"])
def test_relu_at_exactly_zero(spelling):
    """relu's kink: value 0 and gradient 0 at x = 0, whichever way it is called (torch gives
    0; a clamp(min=0) would let the gradient through at the boundary)."""
    import tinymask as tm

    x = tm.Tensor(np.array([-1.0, 0.0, 2.0]), requires_grad=True)
    y = F.relu(x) if spelling == "F.relu" else x.relu()
    y.sum().backward()
    np.testing.assert_array_equal(y.data, [0.0, 0.0, 2.0])
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 1.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_kernels_give_the_reference_bits(dtype):
    """The one-pass Numba ReLU (activation_cpu.py) against its NumPy reference, bit for bit:
    the -0.0 of a negative input, NaN and inf in the values and in the gradient."""
    from tinymask.functional import activation

    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5, 6)).astype(dtype)
    x.flat[:6] = [0.0, -0.0, np.nan, np.inf, -np.inf, -2.0]
    grad = rng.standard_normal(x.shape).astype(dtype)
    grad.flat[6:9] = [np.nan, np.inf, -np.inf]
    grad.flat[2] = np.nan  # a NaN gradient where x is NaN
    y = activation._relu_cpu(x)
    with np.errstate(invalid="ignore"):  # inf * 0 in the reference: NaN, as in the kernel
        expected = activation.relu_reference(x)
        expected_grad = activation.relu_backward_reference(grad, expected)
    assert y.dtype == expected.dtype
    np.testing.assert_array_equal(y.view(np.uint8), expected.view(np.uint8))
    grad_x = activation._relu_backward_cpu(grad, y)
    np.testing.assert_array_equal(grad_x.view(np.uint8), expected_grad.view(np.uint8))
    with np.errstate(invalid="ignore"):  # not contiguous: NumPy's code runs, the same values
        y_strided = activation._relu_cpu(x.transpose(0, 2, 1, 3))
        grad_strided = activation._relu_backward_cpu(grad.transpose(0, 2, 1, 3),
                                                     y.transpose(0, 2, 1, 3))
    np.testing.assert_array_equal(y_strided, expected.transpose(0, 2, 1, 3))
    np.testing.assert_array_equal(grad_strided, expected_grad.transpose(0, 2, 1, 3))


@pytest.mark.torch
def test_relu_at_exactly_zero_matches_torch():
    import torch

    x = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64, requires_grad=True)
    torch.relu(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 1.0])
