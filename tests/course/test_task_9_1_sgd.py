"""Task 9.1, one SGD step with momentum and weight decay (``tinymask/optim/sgd_cpu.py``,
``sgd_update_kernel``): lesson 9."""

import numpy as np
import pytest
from expect import expect_close

import tinymask as tm
from tinymask.optim import SGD

pytestmark = pytest.mark.task_9_1


def steps(values, grads, **options):
    parameter = tm.Tensor(np.array(values, dtype=np.float64), requires_grad=True)
    optimizer = SGD([parameter], **options)
    history = []
    for grad in grads:
        parameter.grad = np.array(grad, dtype=np.float64)
        optimizer.step()
        history.append(parameter.data.copy())
    return history


def test_plain_momentum_by_hand():
    # buf_1 = g_1 = 1; p_1 = 1 - 0.1 * 1 = 0.9
    # buf_2 = 0.9 * buf_1 + g_2 = 0.9 + 2 = 2.9; p_2 = 0.9 - 0.1 * 2.9 = 0.61
    history = steps([1.0], [[1.0], [2.0]], lr=0.1, momentum=0.9)
    expect_close(history, [[0.9], [0.61]], "parameter after two momentum steps")


def test_weight_decay_joins_the_gradient():
    # g = 1 + 0.5 * 2 = 2: p = 2 - 0.1 * 2 = 1.8 (the first step's buffer is g)
    history = steps([2.0], [[1.0]], lr=0.1, momentum=0.9, weight_decay=0.5)
    expect_close(history, [[1.8]], "parameter after one step with weight decay 0.5")


def test_dampening_and_nesterov():
    # dampening 0.5: buf_2 = 0.9 * 1 + 0.5 * 2 = 1.9 -> p_2 = 0.9 - 0.19 = 0.71
    history = steps([1.0], [[1.0], [2.0]], lr=0.1, momentum=0.9, dampening=0.5)
    expect_close(history[1], [0.71], "second step with dampening 0.5")
    # nesterov: step with g + momentum * buf: first 1 + 0.9 * 1 = 1.9 -> p_1 = 0.81
    history = steps([1.0], [[1.0]], lr=0.1, momentum=0.9, nesterov=True)
    expect_close(history[0], [0.81], "first nesterov step")


def test_many_values_follow_the_formula():
    rng = np.random.default_rng(0)
    values = rng.standard_normal((3, 4))
    grads = [rng.standard_normal((3, 4)) for _ in range(3)]
    history = steps(values, grads, lr=0.05, momentum=0.9, weight_decay=1e-2)
    parameter, buf = values.copy(), None
    for grad, got in zip(grads, history):
        grad = grad + 1e-2 * parameter
        buf = grad if buf is None else 0.9 * buf + grad
        parameter = parameter - 0.05 * buf
        expect_close(got, parameter, "a 3 x 4 parameter step by step")


def test_float32_parameters_stay_float32():
    parameter = tm.Tensor(np.ones(3, np.float32), requires_grad=True)
    parameter.grad = np.ones(3, np.float32)
    SGD([parameter], lr=0.1, momentum=0.9).step()
    expect_close(parameter.data, [0.9, 0.9, 0.9], "float32 parameter after one step")
    assert parameter.data.dtype == np.float32, f"dtype changed to {parameter.data.dtype}"
