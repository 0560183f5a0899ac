"""The losses Mask R-CNN trains with (REFERENCE.md §7), as torch.nn.functional defines them.

* binary_cross_entropy_with_logits: RPN objectness and the paper's per-class sigmoid mask loss.
* cross_entropy: the box head's (K+1)-way classifier, and Table 2b's multinomial mask loss
  (class axis 1, any trailing spatial axes).
* smooth_l1_loss: box regression (beta = 1/9 in Mask R-CNN).

Each Function returns the per-element loss; ``reduction`` ("none" | "mean" | "sum") is then
applied with ordinary Tensor ops, so the reductions need no backward of their own. As in
torch, the mean over zero elements is NaN: a model that may have nothing to average (no
positive RoI) must divide by max(count, 1) itself.
"""

from __future__ import annotations

import numpy

from tinymask.autograd import Function
from tinymask.backend import array_module
from tinymask.functional.activation import stable_log_softmax, stable_sigmoid
from tinymask.tensor import unwrap

REDUCTIONS = ("none", "mean", "sum")


def _reduce(loss, reduction: str):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    raise ValueError(f"unknown reduction {reduction!r}; choose one of {REDUCTIONS}")


def _check_same_shape(name, input, target):
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(f"{name}: input shape {tuple(input.shape)} and target shape "
                         f"{tuple(target.shape)} differ")


class BCEWithLogits(Function):
    """loss = max(x, 0) - x*t + log(1 + exp(-|x|)): log(sigmoid) without overflow."""

    @staticmethod
    def forward(ctx, logits, target, weight):
        xpm = array_module(logits)
        loss = xpm.maximum(logits, 0) - logits * target + xpm.log1p(xpm.exp(-abs(logits)))
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(logits, target, weight)
        return loss

    @staticmethod
    def backward(ctx, grad):
        logits, target, weight = ctx.saved_tensors
        if weight is not None:
            grad = grad * weight
        grad_logits = grad * (stable_sigmoid(logits) - target) if ctx.needs_input_grad[0] else None
        grad_target = -grad * logits if ctx.needs_input_grad[1] else None
        return grad_logits, grad_target, None


class SmoothL1(Function):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target)."""

    @staticmethod
    def forward(ctx, input, target, beta):
        xpm = array_module(input)
        diff = input - target
        abs_diff = abs(diff)
        if beta == 0:  # torch's definition: plain L1
            loss = abs_diff
        else:
            loss = xpm.where(abs_diff < beta, 0.5 * diff * diff / beta, abs_diff - 0.5 * beta)
        ctx.save_for_backward(diff)
        ctx.beta = beta
        return loss

    @staticmethod
    def backward(ctx, grad):
        (diff,) = ctx.saved_tensors
        xpm = array_module(diff)
        if ctx.beta == 0:
            slope = xpm.sign(diff)
        else:
            slope = xpm.where(abs(diff) < ctx.beta, diff / ctx.beta, xpm.sign(diff))
        return grad * slope, -grad * slope, None


class CrossEntropy(Function):
    """Per-element -w[t] * log softmax(x)[t]; ignored targets give 0 and no gradient."""

    @staticmethod
    def forward(ctx, logits, target, class_weight, ignore_index):
        xpm = array_module(logits)
        log_probs = stable_log_softmax(logits, axis=1)
        valid = target != ignore_index
        safe_target = xpm.where(valid, target, 0)
        picked = xpm.take_along_axis(log_probs, safe_target[:, None], axis=1)[:, 0]
        element_weight = valid.astype(logits.dtype)
        if class_weight is not None:
            element_weight = element_weight * class_weight[safe_target]
        ctx.save_for_backward(log_probs, safe_target, element_weight)
        return -picked * element_weight

    @staticmethod
    def backward(ctx, grad):
        log_probs, safe_target, element_weight = ctx.saved_tensors
        xpm = array_module(log_probs)
        # d(-log softmax[t]) / dx = softmax - onehot(t)
        grad_logits = xpm.exp(log_probs)
        one_hot = xpm.zeros_like(grad_logits)
        xpm.put_along_axis(one_hot, safe_target[:, None], 1.0, axis=1)
        grad_logits -= one_hot
        grad_logits *= (grad * element_weight)[:, None]
        return grad_logits, None, None, None


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean"):
    """Sigmoid + binary cross-entropy in one stable op. input, target: same shape; target in
    [0, 1] (soft targets allowed); weight: broadcastable per-element weights."""
    _check_same_shape("binary_cross_entropy_with_logits", input, target)
    return _reduce(BCEWithLogits.apply(input, target, unwrap(weight)), reduction)


def smooth_l1_loss(input, target, beta=1.0, reduction="mean"):
    """Huber-like box-regression loss; beta is the switch point (1/9 in Mask R-CNN)."""
    _check_same_shape("smooth_l1_loss", input, target)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    return _reduce(SmoothL1.apply(input, target, beta), reduction)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Softmax cross-entropy with integer class targets, as ``torch.nn.functional.cross_entropy``.

    input: (N, C) or (N, C, d1, ...) logits; target: (N,) or (N, d1, ...) integers in
    [0, C) or ``ignore_index``; weight: (C,) class weights. "mean" divides by the summed
    weights of the non-ignored targets (torch's rule).
    """
    target = unwrap(target)
    if input.ndim < 2 or tuple(target.shape) != (input.shape[0],) + tuple(input.shape[2:]):
        raise ValueError(f"cross_entropy: logits {tuple(input.shape)} need integer targets of "
                         f"shape {(input.shape[0],) + tuple(input.shape[2:])}, got "
                         f"{tuple(target.shape)}")
    if target.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: targets must be integer class indices, got {target.dtype}")
    num_classes = input.shape[1]
    target_shape = tuple(target.shape)
    valid = target != ignore_index
    if bool(((target < 0) | (target >= num_classes))[valid].any()):
        raise ValueError(f"cross_entropy: a target is outside [0, {num_classes}) and is not "
                         f"ignore_index={ignore_index}")
    if input.ndim > 2:  # move the class axis last and flatten: (N*d1*..., C)
        order = (0,) + tuple(range(2, input.ndim)) + (1,)
        input = input.permute(order).reshape(-1, num_classes)
        target = target.reshape(-1)
        valid = valid.reshape(-1)
    class_weight = unwrap(weight)
    loss = CrossEntropy.apply(input, target, class_weight, ignore_index)
    if reduction == "mean":
        total_weight = valid.sum() if class_weight is None else class_weight[target[valid]].sum()
        total_weight = float(total_weight)
        return loss.sum() * (1.0 / total_weight if total_weight else numpy.nan)
    if reduction == "none":
        return loss.reshape(target_shape)  # (N, d1, ...), like the targets
    return _reduce(loss, reduction)
