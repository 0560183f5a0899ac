"""Activations and the linear layer: relu, sigmoid, softmax, log_softmax, linear.

Each op keeps only what its backward reads: relu and sigmoid their output, softmax its
output (d softmax = y * (g - sum(g * y))), linear its input and weight.
"""

from __future__ import annotations

import numpy

from tinymask.autograd import Function
from tinymask.backend import array_module
from tinymask.functional.activation_cpu import relu_backward_kernel, relu_forward_kernel


class ReLU(Function):
    """y = x * (x > 0). The backward needs only where x was positive, which is where y is:
    y is kept, no mask. On NumPy arrays each way is one Numba pass (activation_cpu.py)."""

    @staticmethod
    def forward(ctx, x):
        y = _relu_cpu(x) if array_module(x) is numpy else relu_reference(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        if array_module(grad) is numpy:
            return _relu_backward_cpu(grad, y)
        return relu_backward_reference(grad, y)


def relu_reference(x):
    return x * (x > 0)


def relu_backward_reference(grad, y):
    return grad * (y > 0)


def _relu_cpu(x):
    if not x.flags.c_contiguous:  # NumPy walks the strides as fast as a copy would
        return relu_reference(x)
    y = numpy.empty_like(x)
    relu_forward_kernel(x.reshape(-1), y.reshape(-1))
    return y


def _relu_backward_cpu(grad, y):
    if not grad.flags.c_contiguous:
        return relu_backward_reference(grad, y)
    grad_x = numpy.empty_like(grad)
    relu_backward_kernel(grad.reshape(-1), y.reshape(-1), grad_x.reshape(-1))
    return grad_x


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        y = stable_sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y * (1 - y)


def stable_sigmoid(x):
    """1 / (1 + exp(-x)) without overflow for large |x| (an array function, no autograd)."""
    xpm = array_module(x)
    e = xpm.exp(-abs(x))  # in (0, 1]: never overflows
    return xpm.where(x >= 0, 1 / (1 + e), e / (1 + e))


def stable_log_softmax(x, axis):
    """log softmax along ``axis``, shifted by the max so exp never overflows."""
    xpm = array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xpm.log(xpm.exp(shifted).sum(axis=axis, keepdims=True))


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, dim):
        y = array_module(x).exp(stable_log_softmax(x, dim))
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return y * (grad - (grad * y).sum(axis=ctx.dim, keepdims=True))


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx, x, dim):
        log_y = stable_log_softmax(x, dim)
        ctx.save_for_backward(log_y)
        ctx.dim = dim
        return log_y

    @staticmethod
    def backward(ctx, grad):
        (log_y,) = ctx.saved_tensors
        return grad - array_module(log_y).exp(log_y) * grad.sum(axis=ctx.dim, keepdims=True)


class Linear(Function):
    """y = x @ W^T + b. Backward, with the leading axes of x and g = dL/dy flattened into
    rows: dL/dx = g @ W, dL/dW = g^T @ x (already in W's (out, in) layout), dL/db = sum of g."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        out = x @ weight.T
        if bias is not None:
            out += bias
        ctx.save_for_backward(x, weight)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        grad_rows = grad.reshape(-1, grad.shape[-1])  # (rows, out)
        grad_x = grad @ weight if need_x else None
        grad_w = grad_rows.T @ x.reshape(-1, x.shape[-1]) if need_w else None
        grad_b = grad_rows.sum(axis=0) if need_b else None
        return grad_x, grad_w, grad_b


def relu(x):
    """max(x, 0); the gradient at exactly 0 is 0, as in torch."""
    return ReLU.apply(x)


def sigmoid(x):
    return Sigmoid.apply(x)


def softmax(x, dim: int):
    return Softmax.apply(x, dim=dim)


def log_softmax(x, dim: int):
    return LogSoftmax.apply(x, dim=dim)


def linear(x, weight, bias=None):
    """y = x @ weight^T + bias, as ``torch.nn.functional.linear``. x: (..., in);
    weight: (out, in) (torch's layout); bias: (out,)."""
    return Linear.apply(x, weight, bias)
