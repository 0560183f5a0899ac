"""Gradient checking by central differences, for users and tests.

For a function ``fn(*inputs)`` returning a Tensor, we compare the tape's gradient of the
scalar ``L = sum(fn(*inputs) * R)`` (R a fixed random array, so every output element
matters) with the numerical one, element by element::

    dL/dx_i  ~=  (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)

and report the relative error as CS231n defines it, |a - n| / max(|a|, |n|). Where both
are tiny the ratio means nothing: the numerical derivative carries an absolute rounding
error of about |L| * 1e-16 / eps (~1e-10 here), which is a large fraction of a gradient of
1e-7. So the denominator never drops below ``abs_floor`` (1e-3): gradients smaller than
that are compared by their absolute difference, scaled by 1/abs_floor. In float64 with
eps = 1e-5 a correct backward gives errors of 1e-8 or below; 1e-2 means a bug.
Inputs must be float64: in float32 the rounding error of L swamps the difference.
"""

from __future__ import annotations

import numpy

from tinymask.backend import array_module, to_numpy
from tinymask.tensor import Tensor


class GradcheckError(AssertionError):
    """The analytic and numerical gradients disagree."""


def _scalar_loss(fn, inputs, projection):
    output = fn(*inputs)
    return float((output.data * projection).sum())


def relative_error(analytic, numerical, abs_floor=1e-3):
    """Element-wise |a - n| / max(|a|, |n|, abs_floor)."""
    analytic, numerical = numpy.asarray(analytic), numpy.asarray(numerical)
    scale = numpy.maximum(numpy.maximum(abs(analytic), abs(numerical)), abs_floor)
    return abs(analytic - numerical) / scale


def gradcheck(fn, inputs, eps=1e-5, tolerance=1e-6, abs_floor=1e-3, seed=0,
              raise_on_failure=True) -> float:
    """Check the backward of ``fn`` at ``inputs`` and return the largest relative error.

    inputs: Tensors (those with ``requires_grad`` are checked, perturbed in place, so the
    parameters of a Module can be passed too) or float64 arrays (all checked).
    Raises ``GradcheckError`` naming the input and element when the error exceeds
    ``tolerance`` (unless ``raise_on_failure=False``).
    """
    tensors = [x if isinstance(x, Tensor) else Tensor(x, requires_grad=True) for x in inputs]
    checked = [t for t in tensors if t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad")
    for t in checked:
        if t.dtype != numpy.float64:
            raise TypeError(f"gradcheck needs float64 inputs, got {t.dtype}: call .double()")
        t.grad = None
        # perturbations go through a flat view, which only exists for contiguous data
        # (reshape(-1) of a strided view would silently perturb a copy)
        t.data = array_module(t.data).ascontiguousarray(t.data)

    output = fn(*tensors)
    rng = numpy.random.default_rng(seed)
    projection = rng.standard_normal(output.shape)
    projection = array_module(output.data).asarray(projection)
    output.backward(projection)

    worst = 0.0
    for position, t in enumerate(tensors):
        if not t.requires_grad:
            continue
        analytic = to_numpy(t.grad) if t.grad is not None else numpy.zeros(t.shape)
        numerical = numpy.zeros(t.shape)
        flat = t.data.reshape(-1)  # a view: perturbing it perturbs t
        for i in range(flat.size):
            original = flat[i].item()
            flat[i] = original + eps
            loss_plus = _scalar_loss(fn, tensors, projection)
            flat[i] = original - eps
            loss_minus = _scalar_loss(fn, tensors, projection)
            flat[i] = original
            numerical.reshape(-1)[i] = (loss_plus - loss_minus) / (2 * eps)
        errors = relative_error(analytic, numerical, abs_floor)
        if errors.size and errors.max() > worst:
            worst = float(errors.max())
        if raise_on_failure and errors.size and errors.max() > tolerance:
            index = numpy.unravel_index(int(errors.argmax()), t.shape)
            raise GradcheckError(
                f"input {position} (shape {t.shape}): relative error {errors.max():.3g} at "
                f"{index}: analytic {analytic[index]:.10g}, numerical {numerical[index]:.10g}"
            )
    return worst
