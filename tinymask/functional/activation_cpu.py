"""ReLU on the CPU: Numba kernels, one pass over the data each way.

Twin of ``relu_reference`` and ``relu_backward_reference`` in activation.py, which are the
versions to read (and what runs on CuPy arrays). NumPy needs two passes each way (the mask
``x > 0``, then the product); these loops do the same arithmetic in one, value by value:
``x * (x > 0)`` keeps its -0.0 for negative inputs and its NaN, and the gradient
``grad * (y > 0)`` keeps a NaN gradient NaN, so the results are the same bits.
"""

from __future__ import annotations

from numba import njit


@njit(cache=True)
def relu_forward_kernel(x, out):
    """x, out: 1-D, the same size; writes out = x * (x > 0)."""
    for i in range(x.size):
        value = x[i]
        out[i] = value if value > 0 else value * 0.0


@njit(cache=True)
def relu_backward_kernel(grad, out, grad_x):
    """grad, out (the forward's output), grad_x: 1-D; writes grad_x = grad * (out > 0)."""
    for i in range(grad.size):
        grad_x[i] = grad[i] if out[i] > 0 else grad[i] * 0.0
