"""Group norm's Numba kernels against the NumPy reference they replace on NumPy arrays.

Gradient checks and torch parity of ``group_norm`` itself are rows of
tests/test_functional.py (they run the kernels, since their inputs are NumPy arrays).
"""

import numpy as np
import pytest

from tests.op_check import randn
from tinymask.functional import normalization as N


@pytest.mark.parametrize("shape, groups", [((2, 4, 3, 2), 2), ((3, 16, 8, 8), 16),
                                           ((2, 64, 4, 4), 32), ((1, 6, 5), 3)])
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 2e-5)])
@pytest.mark.parametrize("affine", [True, False])
def test_kernels_equal_the_numpy_reference(shape, groups, dtype, rtol, affine):
    x = (randn(*shape) * 3 + 1).astype(dtype)  # an offset mean: the variance must not cancel
    weight = randn(shape[1], seed=1).astype(dtype) if affine else None
    bias = randn(shape[1], seed=2).astype(dtype) if affine else None
    grad = randn(*shape, seed=3).astype(dtype)
    needs = (True, affine, affine)

    ours = N._group_norm_forward_cpu(x, weight, bias, groups, 1e-5)
    reference = N.group_norm_reference(x, weight, bias, groups, 1e-5)
    for a, b in zip(ours, reference):
        assert a.dtype == dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
    x_hat, inv_std = reference[1], reference[2]
    ours = N._group_norm_backward_cpu(grad, x_hat, inv_std, weight, groups, needs)
    reference = N.group_norm_backward_reference(grad, x_hat, inv_std, weight, groups, needs)
    for a, b in zip(ours, reference):
        if b is None:
            assert a is None
            continue
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())


def test_input_gradient_alone():
    x, grad = randn(2, 4, 3, 3), randn(2, 4, 3, 3, seed=3)
    weight = randn(4, seed=1)
    _, x_hat, inv_std = N.group_norm_reference(x, weight, None, 2, 1e-5)
    grad_x, grad_w, grad_b = N._group_norm_backward_cpu(grad, x_hat, inv_std, weight, 2,
                                                        (True, False, False))
    reference = N.group_norm_backward_reference(grad, x_hat, inv_std, weight, 2,
                                                (True, False, False))
    assert grad_w is None and grad_b is None
    np.testing.assert_allclose(grad_x, reference[0], rtol=1e-10)


def test_nan_propagates():
    x = randn(1, 2, 3, 3)
    x[0, 0, 1, 1] = np.nan
    out, _, _ = N._group_norm_forward_cpu(x, None, None, 1, 1e-5)
    assert np.isnan(out).all()  # the whole group's statistics are NaN, as in NumPy and torch


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_group_norm_of_an_empty_batch(dtype):
    """A batch of zero RoIs (the C4 head with no proposal) keeps its shape both ways."""
    import tinymask as tm
    from tinymask.functional import group_norm

    x = tm.Tensor(np.zeros((0, 4, 3, 3), dtype), requires_grad=True)
    weight = tm.Tensor(np.ones(4, dtype), requires_grad=True)
    out = group_norm(x, 2, weight, tm.Tensor(np.zeros(4, dtype)))
    out.sum().backward()
    assert out.shape == (0, 4, 3, 3) and x.grad.shape == (0, 4, 3, 3)
    assert np.array_equal(weight.grad, np.zeros(4))
