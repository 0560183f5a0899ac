"""The fast convolutions against the im2col reference they replace, and which one runs.

``Conv2dShifted`` (stride 1: shifted GEMMs on a flat grid) and ``Conv2dPointwise`` (1x1: a
batched matrix product) must give the reference's output and all three gradients to float
rounding: 1e-10 relative in float64, 1e-5 in float32. Torch parity and gradient checks of
``conv2d`` itself are rows of tests/test_functional.py.
"""

import numpy as np
import pytest

import tinymask as tm
import tinymask.functional as F
from tests.op_check import randn
from tinymask.functional import conv


def _run(apply, x, weight, bias, *geometry, grad_seed=7):
    """Output and (x, weight, bias) gradients of one conv Function on fresh leaves."""
    leaves = [tm.Tensor(a.copy(), requires_grad=True) if a is not None else None
              for a in (x, weight, bias)]
    out = apply(*leaves, *geometry)
    out.backward(np.random.default_rng(grad_seed).standard_normal(out.shape).astype(x.dtype))
    return [out.data] + [leaf.grad if leaf is not None else None for leaf in leaves]


def _assert_same(ours, reference, rtol):
    for index, (a, b) in enumerate(zip(ours, reference)):
        if b is None:
            assert a is None
            continue
        assert a.dtype == b.dtype, f"result {index}: dtype {a.dtype} != {b.dtype}"
        scale = np.abs(b).max()
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale,
                                   err_msg=f"result {index} (0: output, 1-3: gradients)")


# (N, C, O, H, W, kernel, padding, dilation): 3x3 "same" convs as the model has, valid
# convs, asymmetric kernels and paddings, dilation, a 1-pixel image, a map smaller than
# the kernel's reach
SHIFTED_CASES = [
    (2, 3, 4, 5, 6, (3, 3), (1, 1), (1, 1)),
    (1, 2, 3, 7, 4, (3, 3), (0, 0), (1, 1)),
    (3, 4, 2, 6, 6, (5, 3), (2, 1), (1, 1)),
    (2, 3, 3, 8, 7, (3, 3), (2, 2), (2, 2)),
    (2, 3, 3, 8, 7, (3, 3), (1, 0), (2, 1)),
    (1, 1, 1, 1, 1, (3, 3), (1, 1), (1, 1)),
    (2, 2, 2, 4, 4, (1, 3), (0, 1), (1, 1)),
    (2, 3, 5, 2, 3, (5, 5), (4, 4), (1, 1)),
]


@pytest.mark.parametrize("n, c, o, h, w, kernel, padding, dilation", SHIFTED_CASES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_shifted_equals_im2col(n, c, o, h, w, kernel, padding, dilation, with_bias):
    x, weight = randn(n, c, h, w), randn(o, c, *kernel, seed=1)
    bias = randn(o, seed=2) if with_bias else None
    ours = _run(conv.Conv2dShifted.apply, x, weight, bias, padding, dilation)
    reference = _run(conv.Conv2dIm2col.apply, x, weight, bias, (1, 1), padding, dilation, 1)
    _assert_same(ours, reference, rtol=1e-10)


@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (2, 1)])
def test_pointwise_equals_im2col(stride):
    x, weight, bias = randn(3, 4, 7, 6), randn(5, 4, 1, 1, seed=1), randn(5, seed=2)
    ours = _run(conv.Conv2dPointwise.apply, x, weight, bias, stride)
    reference = _run(conv.Conv2dIm2col.apply, x, weight, bias, stride, (0, 0), (1, 1), 1)
    _assert_same(ours, reference, rtol=1e-10)


def test_float32_stays_float32_and_matches_the_reference():
    x = randn(3, 16, 14, 14).astype(np.float32)
    weight = randn(16, 16, 3, 3, seed=1, scale=0.1).astype(np.float32)
    bias = randn(16, seed=2).astype(np.float32)
    ours = _run(conv.Conv2dShifted.apply, x, weight, bias, (1, 1), (1, 1))
    reference = _run(conv.Conv2dIm2col.apply, x, weight, bias, (1, 1), (1, 1), (1, 1), 1)
    assert all(a.dtype == np.float32 for a in ours)
    _assert_same(ours, reference, rtol=1e-5)


def test_frozen_input_and_weight_get_no_gradient():
    x, weight = randn(2, 3, 5, 5), randn(4, 3, 3, 3, seed=1)
    frozen = tm.Tensor(weight)
    leaf = tm.Tensor(x.copy(), requires_grad=True)
    F.conv2d(leaf, frozen, padding=1).sum().backward()
    assert frozen.grad is None and leaf.grad.shape == x.shape
    image = tm.Tensor(x)
    trained = tm.Tensor(weight.copy(), requires_grad=True)
    F.conv2d(image, trained, padding=1).sum().backward()
    assert image.grad is None and trained.grad.shape == weight.shape


def test_transposed_conv_tiling_path_equals_col2im(monkeypatch):
    """The 2x2 stride-2 deconvolution's reshuffle against col2im's sum of patches."""
    x, weight, bias = randn(2, 3, 3, 4), randn(3, 5, 2, 2, seed=1), randn(5, seed=2)

    def deconv(a, w, b):
        return F.conv_transpose2d(a, w, b, stride=2)

    ours = _run(deconv, x, weight, bias)
    monkeypatch.setattr(conv, "_patches_tile", lambda *args: False)
    reference = _run(deconv, x, weight, bias)
    _assert_same(ours, reference, rtol=1e-10)


@pytest.mark.parametrize("kwargs, kernel, expected", [
    ({"padding": 1}, (3, 3), conv.Conv2dShifted),
    ({"padding": 0}, (3, 3), conv.Conv2dShifted),
    ({}, (1, 1), conv.Conv2dPointwise),
    ({"stride": 2}, (1, 1), conv.Conv2dPointwise),
    ({"stride": 2, "padding": 1}, (3, 3), conv.Conv2dIm2col),
    ({"padding": 3}, (3, 3), conv.Conv2dIm2col),  # wider than the kernel's reach
    ({"groups": 2, "padding": 1}, (3, 3), conv.Conv2dIm2col),
    ({"padding": 1}, (1, 1), conv.Conv2dIm2col),
])
def test_conv2d_picks_the_fast_path_where_it_applies(kwargs, kernel, expected):
    groups = kwargs.get("groups", 1)
    x = tm.Tensor(randn(1, 4, 6, 6), requires_grad=True)
    weight = tm.Tensor(randn(4, 4 // groups, *kernel, seed=1))
    assert F.conv2d(x, weight, **kwargs)._node.function is expected
