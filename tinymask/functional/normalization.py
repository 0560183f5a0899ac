"""batch_norm and group_norm, as torch.nn.functional defines them.

Both normalise ``x_hat = (x - mean) / sqrt(var + eps)`` over some axes, then scale and
shift per channel: ``y = weight * x_hat + bias``. They differ in the axes: batch norm
takes statistics per channel over (N, H, W); group norm per sample and channel group over
(C/G, H, W), so it behaves the same at batch size 1 (why small-batch detectors use it).

Backward of the normalisation, with M values per statistic and g = dL/dx_hat:
    dL/dx = (g - mean(g) - x_hat * mean(g * x_hat)) / sqrt(var + eps)
when the statistics come from the batch; when they are fixed (eval-mode batch norm) the
last two terms vanish: dL/dx = g / sqrt(running_var + eps).

Group norm runs every layer of the small model's backbone; on NumPy arrays it runs as Numba
kernels (normalization_cpu.py), tested against the NumPy code here.
"""

from __future__ import annotations

import math

import numpy

from tinymask.autograd import Function
from tinymask.backend import array_module
from tinymask.functional.normalization_cpu import (
    group_norm_backward_kernel,
    group_norm_forward_kernel,
)
from tinymask.tensor import unwrap


def _normalized_backward(grad_hat, x_hat, inv_std, axes):
    mean_grad = grad_hat.mean(axis=axes, keepdims=True)
    mean_grad_x_hat = (grad_hat * x_hat).mean(axis=axes, keepdims=True)
    return (grad_hat - mean_grad - x_hat * mean_grad_x_hat) * inv_std


class BatchNorm(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, training, momentum, eps):
        xpm = array_module(x)
        axes = (0,) + tuple(range(2, x.ndim))  # all but the channel axis
        shape = (1, -1) + (1,) * (x.ndim - 2)
        if training:
            count = x.size // x.shape[1]
            if count <= 1:
                raise ValueError(
                    f"batch_norm in training mode needs more than 1 value per channel, got input "
                    f"{x.shape}; use eval mode, FrozenBatchNorm2d or GroupNorm for batch size 1"
                )
            mean = x.mean(axis=axes)
            var = x.var(axis=axes)  # biased, for normalising (as torch)
            if running_mean is not None:
                # running statistics are buffers, updated in place (unbiased variance, as torch)
                running_mean *= 1 - momentum
                running_mean += momentum * mean
                running_var *= 1 - momentum
                running_var += momentum * var * count / (count - 1)
        else:
            if running_mean is None:
                raise ValueError("batch_norm in eval mode needs running_mean and running_var")
            mean, var = running_mean, running_var
        inv_std = (1.0 / xpm.sqrt(var + eps)).astype(x.dtype).reshape(shape)
        x_hat = (x - mean.reshape(shape).astype(x.dtype)) * inv_std
        out = x_hat * weight.reshape(shape) if weight is not None else x_hat.copy()
        if bias is not None:
            out += bias.reshape(shape)
        ctx.save_for_backward(x_hat, inv_std, weight)
        ctx.axes, ctx.shape, ctx.training = axes, shape, training
        return out

    @staticmethod
    def backward(ctx, grad):
        x_hat, inv_std, weight = ctx.saved_tensors
        axes, shape = ctx.axes, ctx.shape
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_x = grad_w = grad_b = None
        if need_x:
            grad_hat = grad * weight.reshape(shape) if weight is not None else grad
            if ctx.training:
                grad_x = _normalized_backward(grad_hat, x_hat, inv_std, axes)
            else:
                grad_x = grad_hat * inv_std
        if need_w:
            grad_w = (grad * x_hat).sum(axis=axes)
        if need_b:
            grad_b = grad.sum(axis=axes)
        return grad_x, grad_w, grad_b, None, None, None, None, None


class GroupNorm(Function):
    """On NumPy arrays forward and backward each run as one Numba kernel of two or three
    passes (normalization_cpu.py); the NumPy functions below are their reference, and what
    runs on CuPy arrays."""

    @staticmethod
    def forward(ctx, x, weight, bias, num_groups, eps):
        if array_module(x) is numpy:
            out, x_hat, inv_std = _group_norm_forward_cpu(x, weight, bias, num_groups, eps)
        else:
            out, x_hat, inv_std = group_norm_reference(x, weight, bias, num_groups, eps)
        ctx.save_for_backward(x_hat, inv_std, weight)
        ctx.num_groups = num_groups
        return out

    @staticmethod
    def backward(ctx, grad):
        x_hat, inv_std, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad[:3]
        if array_module(grad) is numpy:
            grads = _group_norm_backward_cpu(grad, x_hat, inv_std, weight, ctx.num_groups, needs)
        else:
            grads = group_norm_backward_reference(grad, x_hat, inv_std, weight, ctx.num_groups,
                                                  needs)
        return (*grads, None, None)


def _group_size(x, num_groups: int) -> int:
    """Values in one group of one sample, C/G * H * W: computed, not inferred with -1, so that
    a batch of zero RoIs (N = 0) reshapes too."""
    return x.shape[1] // num_groups * math.prod(x.shape[2:])


def group_norm_reference(x, weight, bias, num_groups, eps):
    """Group norm forward in NumPy: (out, x_hat, inv_std (N, G)). x: (N, C, ...)."""
    xpm = array_module(x)
    n = x.shape[0]
    grouped = x.reshape(n, num_groups, _group_size(x, num_groups))  # (N, G, C/G * H * W)
    mean = grouped.mean(axis=2, keepdims=True)
    var = grouped.var(axis=2, keepdims=True)
    inv_std = 1.0 / xpm.sqrt(var + eps)
    x_hat = ((grouped - mean) * inv_std).reshape(x.shape)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    out = x_hat * weight.reshape(shape) if weight is not None else x_hat.copy()
    if bias is not None:
        out += bias.reshape(shape)
    return out, x_hat, inv_std[:, :, 0]


def group_norm_backward_reference(grad, x_hat, inv_std, weight, num_groups, needs):
    """Group norm backward in NumPy: (grad_x, grad_weight, grad_bias), None where not needed."""
    n = grad.shape[0]
    shape = (1, -1) + (1,) * (grad.ndim - 2)
    axes = (0,) + tuple(range(2, grad.ndim))
    need_x, need_w, need_b = needs
    grad_x = grad_w = grad_b = None
    if need_x:
        grad_hat = grad * weight.reshape(shape) if weight is not None else grad
        grad_x = _normalized_backward(
            grad_hat.reshape(n, num_groups, _group_size(grad, num_groups)),
            x_hat.reshape(n, num_groups, _group_size(grad, num_groups)),
            inv_std[:, :, None], axes=2,
        ).reshape(grad.shape)
    if need_w:
        grad_w = (grad * x_hat).sum(axis=axes)
    if need_b:
        grad_b = grad.sum(axis=axes)
    return grad_x, grad_w, grad_b


def _group_norm_forward_cpu(x, weight, bias, num_groups, eps):
    n, c = x.shape[:2]
    rows = numpy.ascontiguousarray(x).reshape(n, c, math.prod(x.shape[2:]))  # (N, C, S)
    weight = numpy.ones(c, dtype=x.dtype) if weight is None else weight
    bias = numpy.zeros(c, dtype=x.dtype) if bias is None else bias
    out = numpy.empty(rows.shape, dtype=numpy.result_type(x, weight, bias))
    x_hat = numpy.empty_like(rows)
    inv_std = numpy.empty((n, num_groups), dtype=x.dtype)
    group_norm_forward_kernel(rows, weight, bias, num_groups, eps, out, x_hat, inv_std)
    return out.reshape(x.shape), x_hat.reshape(x.shape), inv_std


def _group_norm_backward_cpu(grad, x_hat, inv_std, weight, num_groups, needs):
    n, c = grad.shape[:2]
    rows = numpy.ascontiguousarray(grad).reshape(n, c, math.prod(grad.shape[2:]))
    need_x, need_w, need_b = needs
    weight_or_ones = numpy.ones(c, dtype=grad.dtype) if weight is None else weight
    grad_x = numpy.empty(rows.shape if need_x else (0, 0, 0), dtype=grad.dtype)
    grad_w, grad_b = numpy.zeros(c), numpy.zeros(c)  # float64 sums
    group_norm_backward_kernel(rows, x_hat.reshape(rows.shape), inv_std, weight_or_ones,
                               num_groups, grad_x, grad_w, grad_b)
    dtype = weight.dtype if weight is not None else grad.dtype
    return (grad_x.reshape(grad.shape) if need_x else None,
            grad_w.astype(dtype) if need_w else None,
            grad_b.astype(dtype) if need_b else None)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalisation over (N, C, ...) inputs, as ``torch.nn.functional.batch_norm``.

    running_mean, running_var: (C,) arrays (or buffer Tensors), updated in place when
    ``training``; weight, bias: (C,) Tensors or None. Gradients flow to x, weight, bias.
    """
    if x.ndim < 2:
        raise ValueError(f"batch_norm expects (N, C, ...), got shape {tuple(x.shape)}")
    return BatchNorm.apply(x, weight, bias, unwrap(running_mean), unwrap(running_var),
                           training, momentum, eps)


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    """Group normalisation, as ``torch.nn.functional.group_norm``: statistics per sample
    over groups of C/num_groups channels. x: (N, C, ...); weight, bias: (C,)."""
    if x.ndim < 2 or x.shape[1] % num_groups:
        raise ValueError(f"group_norm: {num_groups} groups do not divide the channels of "
                         f"an input of shape {tuple(x.shape)}")
    return GroupNorm.apply(x, weight, bias, num_groups, eps)
