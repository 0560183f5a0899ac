"""Task 1.1, the backward of mul and matmul (``tinymask/tensor.py``, ``Mul.backward`` and
``MatMul.backward``): lesson 1."""

import numpy as np
import pytest
from expect import expect_close, expect_true

import tinymask as tm

pytestmark = pytest.mark.task_1_1
rng = np.random.default_rng(0)


def leaf(array):
    return tm.Tensor(np.array(array, dtype=np.float64), requires_grad=True)


def test_mul_by_hand():
    a, b = leaf([1.0, 2.0, 3.0]), leaf([4.0, 5.0, 6.0])
    (a * b).sum().backward()
    expect_close(a.grad, [4.0, 5.0, 6.0], "d sum(a*b) / da")
    expect_close(b.grad, [1.0, 2.0, 3.0], "d sum(a*b) / db")


def test_mul_with_broadcasting_sums_over_the_repeated_axis():
    a, b = leaf(rng.standard_normal((2, 3))), leaf(rng.standard_normal(3))
    weights = rng.standard_normal((2, 3))
    ((a * b) * tm.Tensor(weights)).sum().backward()
    expect_close(a.grad, weights * b.data, "d/da of sum(w * a * b), a (2, 3), b (3,)")
    expect_close(b.grad, (weights * a.data).sum(axis=0), "d/db of sum(w * a * b), b (3,)")


def test_mul_by_a_constant_needs_no_gradient_for_it():
    a = leaf([1.0, -2.0])
    (a * tm.Tensor(np.array([3.0, 3.0]))).sum().backward()
    expect_close(a.grad, [3.0, 3.0], "d sum(3a) / da")


def test_matmul_of_two_matrices():
    a, b = leaf(rng.standard_normal((2, 3))), leaf(rng.standard_normal((3, 4)))
    upstream = rng.standard_normal((2, 4))
    ((a @ b) * tm.Tensor(upstream)).sum().backward()
    expect_close(a.grad, upstream @ b.data.T, "dL/da of a @ b: upstream @ b^T")
    expect_close(b.grad, a.data.T @ upstream, "dL/db of a @ b: a^T @ upstream")


def test_matmul_batched_and_with_a_vector():
    a, b = leaf(rng.standard_normal((5, 2, 3))), leaf(rng.standard_normal((3, 4)))
    (a @ b).sum().backward()  # b is shared by the 5 matrices of the batch
    expect_close(b.grad, a.data.sum(axis=(0, 1))[:, None] * np.ones((1, 4)),
                 "dL/db of a batched (5, 2, 3) @ (3, 4), summed over the batch")
    matrix, vector = leaf(rng.standard_normal((2, 3))), leaf(rng.standard_normal(3))
    (matrix @ vector).sum().backward()
    expect_close(vector.grad, matrix.data.sum(axis=0), "dL/dv of (2, 3) @ v")
    expect_close(matrix.grad, np.ones((2, 1)) * vector.data[None], "dL/dM of M @ v")


def test_gradients_agree_with_central_differences():
    def fn(a, b):
        return ((a * b) @ b.T).sum()

    error = tm.gradcheck(fn, [rng.standard_normal((3, 4)), rng.standard_normal((3, 4))],
                         raise_on_failure=False)
    expect_true(error < 1e-6, f"gradcheck of sum((a*b) @ b^T): relative error {error:.2e}")
