"""The Tensor's own ops (gradient check + torch parity, one row each) and the tape's
behaviour: accumulation, no_grad, retain_graph, dtype rules, error messages."""

import numpy as np
import pytest

import tinymask as tm
from tests.op_check import (
    away_from_zero,
    check_against_torch,
    check_gradients,
    distinct,
    randn,
)

CASES = [
    ("add broadcast", lambda a, b: a + b, [randn(3, 4), randn(4, seed=1)]),
    ("radd scalar", lambda a: 2.5 + a, [randn(2, 3)]),
    ("sub broadcast", lambda a, b: a - b, [randn(3, 1), randn(1, 4, seed=1)]),
    ("rsub scalar", lambda a: 1.0 - a, [randn(3)]),
    ("mul broadcast", lambda a, b: a * b, [randn(2, 3, 4), randn(3, 1, seed=1)]),
    ("div", lambda a, b: a / b, [randn(3, 4), away_from_zero(3, 4, seed=1)]),
    ("rdiv", lambda a: 2.0 / a, [away_from_zero(5)]),
    ("neg", lambda a: -a, [randn(3)]),
    ("pow", lambda a: a**3, [randn(2, 3)]),
    ("sqrt", lambda a: (a * a + 1).sqrt(), [randn(4)]),
    ("matmul 2d", lambda a, b: a @ b, [randn(3, 4), randn(4, 5, seed=1)]),
    ("matmul batched broadcast", lambda a, b: a @ b, [randn(2, 3, 4), randn(4, 2, seed=1)]),
    ("matmul vector", lambda a, b: a @ b, [randn(3, 4), randn(4, seed=1)]),
    ("exp", lambda a: a.exp(), [randn(3, 2)]),
    ("log", lambda a: (a * a + 0.5).log(), [randn(3, 2)]),
    ("abs", lambda a: a.abs(), [away_from_zero(4, 2)]),
    ("clamp", lambda a: a.clamp(min=-0.5, max=0.6), [away_from_zero(5, 3)]),
    ("sum all", lambda a: a.sum(), [randn(2, 3)]),
    ("sum dim keepdim", lambda a: a.sum(dim=(0, 2), keepdim=True), [randn(2, 3, 4)]),
    ("mean dim", lambda a: a.mean(dim=1), [randn(2, 3, 4)]),
    ("max all", lambda a: a.max(), [distinct(3, 4)]),
    ("max dim", lambda a: a.max(dim=1), [distinct(3, 4, 2)]),
    ("reshape", lambda a: a.reshape(4, -1) * 2, [randn(2, 3, 2)]),
    ("permute", lambda a: a.permute(2, 0, 1), [randn(2, 3, 4)]),
    ("transpose", lambda a: a.transpose(0, 2), [randn(2, 3, 4)]),
    ("flatten", lambda a: a.flatten(1), [randn(2, 3, 4)]),
    ("expand", lambda a: a.expand(3, 2, 4), [randn(2, 1)]),
    ("slice", lambda a: a[1:, ::2], [randn(3, 5)]),
    ("fancy index with repeats", lambda a: a[np.array([0, 2, 0, 1])], [randn(3, 4)]),
    ("boolean mask", lambda a: a[np.array([True, False, True])], [randn(3, 2)]),
    ("unsqueeze/squeeze", lambda a: a.unsqueeze(1).squeeze(1) * a, [randn(3, 2)]),
    ("cat", lambda a, b: tm.cat([a, b], dim=1), [randn(2, 3), randn(2, 2, seed=1)]),
    ("stack", lambda a, b: tm.stack([a, b], dim=1), [randn(2, 3), randn(2, 3, seed=1)]),
    ("where", lambda a, b: tm.where(np.array([True, False, True]), a, b),
     [randn(3), randn(3, seed=1)]),
]
IDS = [case[0] for case in CASES]

TORCH_EQUIVALENT = {
    "max dim": lambda a: a.max(dim=1).values,
    "cat": lambda a, b: __import__("torch").cat([a, b], dim=1),
    "stack": lambda a, b: __import__("torch").stack([a, b], dim=1),
    "where": lambda a, b: __import__("torch").where(
        __import__("torch").tensor([True, False, True]), a, b),
    "boolean mask": lambda a: a[__import__("torch").tensor([True, False, True])],
    "fancy index with repeats": lambda a: a[__import__("torch").tensor([0, 2, 0, 1])],
}


@pytest.mark.parametrize("name, fn, inputs", CASES, ids=IDS)
def test_gradient_check(name, fn, inputs):
    check_gradients(fn, inputs)


@pytest.mark.torch
@pytest.mark.parametrize("name, fn, inputs", CASES, ids=IDS)
def test_matches_torch(name, fn, inputs):
    # tinymask's Tensor methods share torch's names, so most rows run unchanged in torch
    check_against_torch(fn, TORCH_EQUIVALENT.get(name, fn), inputs)


def test_gradients_accumulate_over_paths_and_calls():
    x = tm.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x + x).sum()  # dy/dx = 2x + 1
    y.backward()
    np.testing.assert_allclose(x.grad, [3.0, 5.0])
    (x * 3).sum().backward()  # leaves accumulate, as in torch
    np.testing.assert_allclose(x.grad, [6.0, 8.0])


def test_shared_subexpression_is_backpropagated_once():
    x = tm.Tensor(np.array(3.0), requires_grad=True)
    h = x * x  # used twice below: the walk must visit it after both users
    (h * h + h).backward()  # d/dx (x^4 + x^2) = 4x^3 + 2x
    assert x.grad == pytest.approx(4 * 27 + 6)


def test_no_grad_records_nothing():
    x = tm.Tensor(np.ones(3), requires_grad=True)
    with tm.no_grad():
        y = x * 2
    assert not y.requires_grad and y.is_leaf
    with tm.no_grad(), tm.enable_grad():
        assert (x * 2).requires_grad


def test_intermediate_grads_only_when_retained():
    x = tm.Tensor(np.ones(2), requires_grad=True)
    h = x * 2
    h.retain_grad()
    k = x * 3
    (h * k).sum().backward()
    np.testing.assert_allclose(h.grad, [3.0, 3.0])
    assert k.grad is None


def test_second_backward_needs_retain_graph():
    x = tm.Tensor(np.ones(2), requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 4 * np.e * np.ones(2))
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_deep_graph_does_not_recurse():
    x = tm.Tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(5000):  # deeper than Python's recursion limit
        y = y + 1e-3
    y.backward()
    assert x.grad == 1.0


def test_gradient_dtype_follows_the_input():
    x = tm.Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    (x * np.ones(3, dtype=np.float64)).sum().backward()  # float64 result
    assert x.grad.dtype == np.float32


def test_dtype_rules():
    assert tm.Tensor([1.0, 2.0]).dtype == np.float32  # Python floats: float32, as torch
    assert tm.Tensor([1, 2]).dtype == np.int64
    assert tm.Tensor(np.zeros(2)).dtype == np.float64  # arrays keep theirs
    assert tm.Tensor([1.0]).double().dtype == np.float64
    with pytest.raises(TypeError, match="floating-point"):
        tm.Tensor([1, 2], requires_grad=True)


def test_mean_of_nothing_is_nan_like_torch():
    assert np.isnan(tm.Tensor(np.zeros((0, 3))).mean().item())


def test_implicit_grad_needs_a_scalar():
    x = tm.Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="one-element"):
        (x * 2).backward()
    with pytest.raises(ValueError, match="shape"):
        (x * 2).backward(np.ones(4))


def test_custom_function_with_wrong_gradient_count_is_reported():
    class Broken(tm.Function):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, grad):
            return grad  # forgot b's gradient

    a = tm.Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match="returned 1 gradients for 2 inputs"):
        Broken.apply(a, a).sum().backward()
