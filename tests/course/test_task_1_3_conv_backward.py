"""Task 1.3, the gradients of a convolution (``tinymask/functional/conv.py``,
``conv2d_shifted_weight_grad`` and ``Conv2dShifted.backward``): lesson 1. Needs task 1.2."""

import numpy as np
import pytest
from expect import expect_close, expect_true

import tinymask as tm
import tinymask.functional as F

pytestmark = pytest.mark.task_1_3
rng = np.random.default_rng(1)


def gradients_by_definition(x, weight, upstream, padding):
    """The chain rule on the definition: every output element spreads its upstream gradient
    over the window it read (input gradient) and the window it multiplied (weight)."""
    _, _, kh, kw = weight.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    grad_xpad, grad_w = np.zeros_like(xpad), np.zeros_like(weight)
    oh, ow = upstream.shape[2:]
    for i in range(kh):
        for j in range(kw):
            window = xpad[:, :, i : i + oh, j : j + ow]
            grad_w[:, :, i, j] = np.einsum("nohw,nchw->oc", upstream, window)
            grad_xpad[:, :, i : i + oh, j : j + ow] += np.einsum("oc,nohw->nchw",
                                                               weight[:, :, i, j], upstream)
    h, w = x.shape[2:]
    return grad_xpad[:, :, padding : padding + h, padding : padding + w], grad_w


@pytest.mark.parametrize("padding", [0, 1, 2])
def test_input_and_weight_gradients_by_the_chain_rule(padding):
    x = rng.standard_normal((2, 3, 6, 5))
    weight = rng.standard_normal((4, 3, 3, 3))
    x_tensor, w_tensor = tm.Tensor(x, requires_grad=True), tm.Tensor(weight, requires_grad=True)
    out = F.conv2d(x_tensor, w_tensor, padding=padding)
    upstream = rng.standard_normal(out.shape)
    (out * tm.Tensor(upstream)).sum().backward()
    grad_x, grad_w = gradients_by_definition(x, weight, upstream, padding)
    expect_close(x_tensor.grad, grad_x, f"input gradient of a 3x3 conv, padding {padding}",
                 atol=1e-9)
    expect_close(w_tensor.grad, grad_w, f"weight gradient of a 3x3 conv, padding {padding}",
                 atol=1e-9)


def test_a_single_pixel_spreads_over_the_flipped_kernel():
    weight = np.arange(9.0).reshape(1, 1, 3, 3)
    x = tm.Tensor(np.zeros((1, 1, 5, 5)), requires_grad=True)
    out = F.conv2d(x, tm.Tensor(weight), padding=1)
    upstream = np.zeros(out.shape)
    upstream[0, 0, 2, 2] = 1.0  # the gradient of one output pixel
    (out * tm.Tensor(upstream)).sum().backward()
    expected = np.zeros((5, 5))
    expected[1:4, 1:4] = weight[0, 0]  # output (2, 2) read x[1:4, 1:4] times the kernel
    expect_close(x.grad[0, 0], expected, "input gradient of one output pixel")


def test_dilated_gradients_pass_a_gradient_check():
    def fn(x, w):
        return F.conv2d(x, w, padding=2, dilation=2)

    error = tm.gradcheck(fn, [rng.standard_normal((1, 2, 6, 6)),
                              rng.standard_normal((3, 2, 3, 3))], raise_on_failure=False)
    expect_true(error < 1e-6, f"gradcheck of a dilated 3x3 conv: relative error {error:.2e}")
