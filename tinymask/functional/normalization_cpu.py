"""Group norm on the CPU: Numba kernels, one call and two passes over the data each way.

Twin of ``GroupNorm`` in normalization.py, whose NumPy code is the reference (and what runs
on CuPy arrays). The same formulas, written as loops over one (sample, group) at a time:

* forward: pass 1 sums the group's values for the mean, pass 2 the squared deviations for the
  variance, pass 3 writes x_hat = (x - mean) * inv_std and out = x_hat * weight + bias;
* backward: pass 1 sums g = weight * grad and g * x_hat over the group (and grad, grad * x_hat
  per channel for the bias and weight gradients), pass 2 writes
  dL/dx = inv_std * (g - mean(g) - x_hat * mean(g * x_hat)).

Sums run in float64 whatever the data type. ``fastmath`` only lets LLVM reorder those sums
(so they vectorise): NaN and inf still propagate, so a diverging training still shows NaN.

Shape letters: N samples, C channels, S = H * W values per channel, G groups.
"""

from __future__ import annotations

import math

from numba import njit

# reassociation only: vectorised sums, with IEEE NaN/inf semantics kept
REORDER_SUMS = {"reassoc"}


@njit(cache=True, fastmath=REORDER_SUMS)
def group_norm_forward_kernel(x, weight, bias, num_groups, eps, out, x_hat, inv_std):
    """x, out, x_hat: (N, C, S) C-contiguous; weight, bias: (C,); inv_std: (N, G), written."""
    n, c, s = x.shape
    per_group = c // num_groups
    count = per_group * s
    for i in range(n):
        for g in range(num_groups):
            first, last = g * per_group, (g + 1) * per_group
            total = 0.0
            for ch in range(first, last):
                for k in range(s):
                    total += x[i, ch, k]
            mean = total / count
            squares = 0.0
            for ch in range(first, last):
                for k in range(s):
                    deviation = x[i, ch, k] - mean
                    squares += deviation * deviation
            scale = 1.0 / math.sqrt(squares / count + eps)
            inv_std[i, g] = scale
            for ch in range(first, last):
                w, b = weight[ch], bias[ch]
                for k in range(s):
                    normalized = (x[i, ch, k] - mean) * scale
                    x_hat[i, ch, k] = normalized
                    out[i, ch, k] = normalized * w + b


@njit(cache=True, fastmath=REORDER_SUMS)
def group_norm_backward_kernel(grad, x_hat, inv_std, weight, num_groups, grad_x, grad_w,
                               grad_b):
    """grad, x_hat, grad_x: (N, C, S); inv_std: (N, G); weight: (C,); grad_w, grad_b: (C,)
    float64, accumulated into. Writes grad_x only when it has the shape of grad."""
    n, c, s = grad.shape
    per_group = c // num_groups
    count = per_group * s
    write_grad_x = grad_x.shape == grad.shape
    for i in range(n):
        for g in range(num_groups):
            first, last = g * per_group, (g + 1) * per_group
            sum_g = 0.0  # sum of g = weight * grad over the group
            sum_g_x_hat = 0.0  # sum of g * x_hat over the group
            for ch in range(first, last):
                channel_sum = 0.0
                channel_dot = 0.0
                for k in range(s):
                    channel_sum += grad[i, ch, k]
                    channel_dot += grad[i, ch, k] * x_hat[i, ch, k]
                grad_b[ch] += channel_sum
                grad_w[ch] += channel_dot
                sum_g += weight[ch] * channel_sum
                sum_g_x_hat += weight[ch] * channel_dot
            if not write_grad_x:
                continue
            mean_g = sum_g / count
            mean_g_x_hat = sum_g_x_hat / count
            scale = inv_std[i, g]
            for ch in range(first, last):
                w = weight[ch]
                for k in range(s):
                    grad_x[i, ch, k] = scale * (w * grad[i, ch, k] - mean_g
                                                - x_hat[i, ch, k] * mean_g_x_hat)
