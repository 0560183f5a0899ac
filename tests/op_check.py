"""Shared helpers for op tests: float64 inputs, gradient checks and torch parity.

``check_against_torch(tm_fn, torch_fn, arrays)`` runs the same op in tinymask and torch on
the same float64 inputs, backpropagates the same random output gradient through both, and
compares outputs and every input gradient at 1e-6 relative (the engine's parity contract).
Integer arrays (class targets) are passed through without gradients.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinymask as tm


def randn(*shape, seed=0, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


def away_from_zero(*shape, seed=0):
    """Values with |x| in [0.1, 1.1]: keeps relu/abs/clamp kinks out of the finite differences."""
    rng = np.random.default_rng(seed)
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.1, 1.1, size=shape)


def distinct(*shape, seed=0):
    """Distinct values spaced 1e-2 apart in random order: a max has one clear winner."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    return (rng.permutation(n) * 1e-2 - n * 5e-3).reshape(shape)


def _is_float(array):
    return isinstance(array, np.ndarray) and array.dtype.kind == "f"


def run_tinymask(fn, arrays, grad_seed=1):
    inputs = [tm.Tensor(a.copy(), requires_grad=True) if _is_float(a) else a for a in arrays]
    out = fn(*inputs)
    grad = np.random.default_rng(grad_seed).standard_normal(out.shape)
    out.backward(grad)
    grads = [t.grad if isinstance(t, tm.Tensor) else None for t in inputs]
    return out.data, grads


def check_against_torch(tm_fn, torch_fn, arrays, rtol=1e-6, atol=1e-9):
    torch = pytest.importorskip("torch")
    ours, our_grads = run_tinymask(tm_fn, arrays)
    inputs = [torch.tensor(a, requires_grad=True) if _is_float(a)
              else torch.as_tensor(a) if isinstance(a, np.ndarray) else a for a in arrays]
    out = torch_fn(*inputs)
    grad = np.random.default_rng(1).standard_normal(tuple(out.shape))
    out.backward(torch.tensor(grad))
    np.testing.assert_allclose(ours, out.detach().numpy(), rtol=rtol, atol=atol,
                               err_msg="forward differs from torch")
    for index, (a, ours_grad, theirs) in enumerate(zip(arrays, our_grads, inputs)):
        if _is_float(a):
            np.testing.assert_allclose(ours_grad, theirs.grad.numpy(), rtol=rtol, atol=atol,
                                       err_msg=f"gradient of input {index} differs from torch")


def check_gradients(fn, arrays, tolerance=1e-6):
    """Float64 central differences on every float input; constants pass through."""
    tensors = [tm.Tensor(a.copy(), requires_grad=True) if _is_float(a) else a for a in arrays]
    float_inputs = [t for t in tensors if isinstance(t, tm.Tensor)]

    def call(*checked):
        it = iter(checked)
        return fn(*[next(it) if isinstance(t, tm.Tensor) else t for t in tensors])

    error = tm.gradcheck(call, float_inputs, tolerance=tolerance)
    assert error < tolerance
    return error
