"""Gradient clipping by global norm, as ``torch.nn.utils.clip_grad_norm_``."""

from __future__ import annotations

import math

from tinymask.backend import array_module


def clip_grad_norm_(parameters, max_norm: float) -> float:
    """Scale all gradients down together so their joint L2 norm is at most ``max_norm``.
    Returns the norm before clipping (inf/nan if a gradient is not finite)."""
    with_grad = [p for p in parameters if p.grad is not None]
    if not with_grad:
        return 0.0
    xpm = array_module(with_grad[0].grad)
    total = math.sqrt(sum(float(xpm.sum(p.grad.astype(xpm.float64) ** 2)) for p in with_grad))
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for p in with_grad:  # new arrays: two parameters may share one gradient array
            p.grad = p.grad * p.grad.dtype.type(scale)
    return total
