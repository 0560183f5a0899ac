"""The gradient checker itself must catch a wrong backward, not only pass right ones."""

import numpy as np
import pytest

import tinymask as tm


class WrongSquare(tm.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x  # should be 2 * x


def test_catches_a_wrong_backward():
    x = np.array([0.5, -1.0, 2.0])
    with pytest.raises(tm.GradcheckError, match=r"input 0 \(shape \(3,\)\)"):
        tm.gradcheck(WrongSquare.apply, [x])
    assert tm.gradcheck(WrongSquare.apply, [x], raise_on_failure=False) > 0.3


def test_passes_a_right_backward():
    assert tm.gradcheck(lambda x: x * x, [np.array([0.5, -1.0, 2.0])]) < 1e-9


def test_needs_float64():
    with pytest.raises(TypeError, match="float64"):
        tm.gradcheck(lambda x: x * x, [tm.Tensor(np.ones(2, dtype=np.float32), requires_grad=True)])


def test_non_contiguous_inputs_are_perturbed_for_real():
    strided = np.random.default_rng(0).standard_normal((4, 6))[::2, ::3]  # a strided view
    assert not strided.flags.c_contiguous
    assert tm.gradcheck(lambda x: (x * x).sum(), [strided]) < 1e-9
