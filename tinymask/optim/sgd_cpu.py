"""The SGD update on the CPU: one Numba loop per parameter, one pass over its values.

Twin of ``sgd_update_reference`` in sgd.py (the NumPy code, also what runs on CuPy arrays):
the same arithmetic in the same order and the same dtype, element by element, so the two
give the same bits. The NumPy version makes about ten passes over each parameter and three
temporary arrays; this one reads the parameter, its gradient and its momentum buffer once.
"""

from __future__ import annotations

from numba import njit


@njit(cache=True)
def sgd_update_kernel(param, grad, buf, lr, momentum, undamped, weight_decay, nesterov,
                      first_step):
    """In place on 1-D ``param`` and ``buf`` (momentum > 0). The scalars have the dtype of
    ``param`` (``undamped`` is 1 - dampening), so the arithmetic rounds as NumPy's does."""
    # --- task 9.1: one SGD step with momentum and weight decay ---
    for k in range(param.shape[0]):
        g = grad[k]
        if weight_decay != 0:
            g = g + weight_decay * param[k]
        if first_step:
            b = g
        else:
            b = momentum * buf[k] + undamped * g
        buf[k] = b
        if nesterov:
            g = g + momentum * b
        else:
            g = b
        param[k] = param[k] - lr * g
    # --- end task ---
