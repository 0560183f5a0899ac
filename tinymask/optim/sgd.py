"""Stochastic gradient descent with momentum, exactly ``torch.optim.SGD``'s update.

For each parameter p with gradient g (Sutskever et al.'s momentum, as torch applies it):

    g   = g + weight_decay * p
    buf = g                                      on the first step
    buf = momentum * buf + (1 - dampening) * g   afterwards
    g   = g + momentum * buf   if nesterov  else  buf
    p   = p - lr * g

The paper trains with lr 0.02 (16 images), momentum 0.9, weight decay 1e-4.

On NumPy arrays with momentum each parameter is updated by one Numba loop (sgd_cpu.py),
which gives the same bits as ``sgd_update_reference``, the NumPy code that runs on CuPy.
"""

from __future__ import annotations

import numpy

from tinymask.backend import array_module, to_numpy
from tinymask.optim.sgd_cpu import sgd_update_kernel


class Optimizer:
    """Holds ``param_groups``: a list of dicts, each with "params" and its hyper-parameters.
    Groups let, e.g., normalisation weights skip weight decay."""

    def __init__(self, params, defaults: dict):
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups = []
        for group in groups:
            unknown = set(group) - set(defaults) - {"params"}
            if unknown:
                raise ValueError(f"unknown optimizer options {sorted(unknown)}; "
                                 f"valid: {sorted(defaults)}")
            self.param_groups.append({**defaults, **group, "params": list(group["params"])})
        self.state: dict = {}  # id(parameter) -> per-parameter state

    def zero_grad(self) -> None:
        for group in self.param_groups:
            for parameter in group["params"]:
                parameter.grad = None

    def _indexed_params(self):
        index = 0
        for group in self.param_groups:
            for parameter in group["params"]:
                yield index, parameter
                index += 1

    def state_dict(self) -> dict:
        """Flat name -> array/number dict (savable in .npz): the per-parameter state keyed by
        parameter position, and each group's hyper-parameters."""
        flat = {}
        for index, parameter in self._indexed_params():
            for key, value in self.state.get(id(parameter), {}).items():
                flat[f"state.{index}.{key}"] = to_numpy(value)
        for g, group in enumerate(self.param_groups):
            for key, value in group.items():
                if key != "params":
                    flat[f"group.{g}.{key}"] = value
        return flat

    def load_state_dict(self, flat: dict) -> None:
        for g, group in enumerate(self.param_groups):
            for key in group:
                if key != "params" and f"group.{g}.{key}" in flat:
                    group[key] = type(self.defaults[key])(flat[f"group.{g}.{key}"])
        self.state = {}
        for index, parameter in self._indexed_params():
            prefix = f"state.{index}."
            entries = {k[len(prefix):]: v for k, v in flat.items() if k.startswith(prefix)}
            if entries:
                xpm = array_module(parameter.data)
                self.state[id(parameter)] = {
                    k: xpm.asarray(v).astype(parameter.dtype) for k, v in entries.items()
                }


class SGD(Optimizer):
    def __init__(self, params, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: lr={lr}, momentum={momentum}, weight_decay={weight_decay} "
                             "must be >= 0")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov needs momentum > 0 and dampening 0")
        super().__init__(params, dict(lr=float(lr), momentum=float(momentum),
                                      dampening=float(dampening),
                                      weight_decay=float(weight_decay), nesterov=bool(nesterov)))

    def step(self) -> None:
        for group in self.param_groups:
            options = {key: group[key] for key in
                       ("lr", "momentum", "dampening", "weight_decay", "nesterov")}
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                state = self.state.setdefault(id(parameter), {}) if options["momentum"] else {}
                if _fits_kernel(parameter.data, parameter.grad, options["momentum"]):
                    _sgd_update_cpu(parameter.data, parameter.grad, state, **options)
                else:
                    sgd_update_reference(parameter.data, parameter.grad, state, **options)


def sgd_update_reference(param, grad, state, lr, momentum, dampening, weight_decay, nesterov):
    """One SGD step on ``param`` in place; ``state`` holds the momentum buffer."""
    if weight_decay:
        grad = grad + weight_decay * param
    if momentum:
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = grad.copy()
        else:
            buf *= momentum
            buf += (1 - dampening) * grad
        grad = grad + momentum * buf if nesterov else buf
    param -= lr * grad


def _fits_kernel(param, grad, momentum) -> bool:
    return (bool(momentum) and isinstance(param, numpy.ndarray)
            and isinstance(grad, numpy.ndarray) and param.dtype.kind == "f"
            and param.flags.c_contiguous and grad.dtype == param.dtype
            and grad.shape == param.shape)


def _sgd_update_cpu(param, grad, state, lr, momentum, dampening, weight_decay, nesterov):
    grad = numpy.ascontiguousarray(grad)  # the kernel walks both in memory order
    buf = state.get("momentum_buffer")
    first_step = buf is None
    if first_step:
        buf = state["momentum_buffer"] = numpy.empty_like(param)
    scalar = param.dtype.type  # NumPy rounds Python floats to the array's dtype first
    sgd_update_kernel(param.reshape(-1), grad.reshape(-1), buf.reshape(-1), scalar(lr),
                      scalar(momentum), scalar(1 - dampening), scalar(weight_decay), nesterov,
                      first_step)
