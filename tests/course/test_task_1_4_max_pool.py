"""Task 1.4, max-pooling, forward and backward (``tinymask/functional/pooling.py``,
``MaxPool2d``): lesson 1."""

import numpy as np
import pytest
from expect import expect_close

import tinymask as tm
import tinymask.functional as F

pytestmark = pytest.mark.task_1_4
rng = np.random.default_rng(2)


def pool_by_definition(x, kernel, stride, padding):
    """Max over each window (padding never wins) and where the first maximum sits."""
    n, c, h, w = x.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)),
                  constant_values=-np.inf)
    oh = (h + 2 * padding - kernel) // stride + 1
    ow = (w + 2 * padding - kernel) // stride + 1
    out = np.zeros((n, c, oh, ow))
    grad = np.zeros_like(xpad)
    for b in range(n):
        for ch in range(c):
            for y in range(oh):
                for x_ in range(ow):
                    window = xpad[b, ch, y * stride : y * stride + kernel,
                                  x_ * stride : x_ * stride + kernel]
                    out[b, ch, y, x_] = window.max()
                    i, j = np.unravel_index(np.argmax(window), window.shape)  # first max
                    grad[b, ch, y * stride + i, x_ * stride + j] += 1.0
    return out, grad[:, :, padding : padding + h, padding : padding + w]


def test_a_2x2_pool_by_hand():
    x = tm.Tensor(np.arange(16.0).reshape(1, 1, 4, 4), requires_grad=True)
    out = F.max_pool2d(x, 2)
    expect_close(out.data, [[[[5.0, 7.0], [13.0, 15.0]]]], "2x2/2 max-pool of arange(16)")
    out.sum().backward()
    expected = np.zeros((4, 4))
    expected[[1, 1, 3, 3], [1, 3, 1, 3]] = 1.0
    expect_close(x.grad[0, 0], expected, "gradient of the 2x2/2 max-pool")


def test_ties_send_the_gradient_to_the_first_maximum_only():
    x = tm.Tensor(np.ones((1, 1, 2, 2)), requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    expect_close(x.grad[0, 0], [[1.0, 0.0], [0.0, 0.0]], "gradient of a pool over four ties")


def test_the_resnet_stem_pool_against_the_definition():
    x_array = rng.standard_normal((2, 3, 9, 8))
    x = tm.Tensor(x_array, requires_grad=True)
    out = F.max_pool2d(x, 3, stride=2, padding=1)
    out.sum().backward()
    expected_out, expected_grad = pool_by_definition(x_array, 3, 2, 1)
    expect_close(out.data, expected_out, "3x3/2 max-pool with padding 1 (ResNet's stem)")
    expect_close(x.grad, expected_grad, "its gradient (overlapping windows add up)")


def test_padding_never_wins_against_negative_values():
    x = tm.Tensor(-np.ones((1, 1, 3, 3)) * np.arange(1, 10).reshape(1, 1, 3, 3))
    out = F.max_pool2d(x, 3, stride=2, padding=1)
    expect_close(out.data, [[[[-1.0, -2.0], [-4.0, -5.0]]]],
                 "3x3/2 max-pool with padding 1 of negative values")
