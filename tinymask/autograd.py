"""The autograd tape: ``Function``, its ``Context``, grad mode and the backward pass.

An op is a ``Function`` subclass with two static methods that sit side by side::

    class Exp(Function):
        @staticmethod
        def forward(ctx, x):              # x: an xp array (Tensors are unwrapped)
            y = xp.exp(x)
            ctx.save_for_backward(y)      # keep only what backward reads
            return y
        @staticmethod
        def backward(ctx, grad_y):        # grad_y: array shaped like the output
            (y,) = ctx.saved_tensors
            return grad_y * y             # one gradient per positional input of forward

    y = Exp.apply(x)                      # a Tensor, recorded on the tape if x needs grad

``backward`` returns one entry per positional argument of ``forward`` (a tuple when there
are several); ``None`` where no gradient flows (integer indices, hyper-parameters).
Keyword arguments of ``apply`` are passed to ``forward`` and never get gradients.

Kernels know nothing of autograd: a Function calls array code and records what the
backward needs. The tape is the graph of ``Node`` objects hanging off each Tensor that a
Function made; ``backward`` walks it once in reverse topological order.
"""

from __future__ import annotations

import contextlib
import functools

_grad_enabled = True


def is_grad_enabled() -> bool:
    return _grad_enabled


class no_grad(contextlib.ContextDecorator):
    """Context manager (and decorator) under which no op is recorded on the tape."""

    def __enter__(self):
        global _grad_enabled
        self._previous = _grad_enabled
        _grad_enabled = False
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._previous
        return False


class enable_grad(no_grad):
    """The opposite of ``no_grad``: record ops again inside a ``no_grad`` block."""

    def __enter__(self):
        global _grad_enabled
        self._previous = _grad_enabled
        _grad_enabled = True
        return self


class Context:
    """What a Function's forward leaves for its backward."""

    __slots__ = ("saved_tensors", "needs_input_grad", "__dict__")

    def __init__(self, needs_input_grad: tuple[bool, ...]):
        self.saved_tensors: tuple = ()
        # needs_input_grad[i]: whether positional input i wants a gradient, so a backward
        # can skip work (e.g. conv2d's weight gradient when the weight is frozen).
        self.needs_input_grad = needs_input_grad

    def save_for_backward(self, *arrays) -> None:
        self.saved_tensors = arrays


class Node:
    """One recorded op: the Function, its context, and the Tensors it read."""

    __slots__ = ("function", "ctx", "inputs")

    def __init__(self, function, ctx, inputs):
        self.function = function
        self.ctx = ctx
        self.inputs = inputs  # one entry per positional argument: a Tensor or None


@functools.cache
def _tensor_class():
    from tinymask.tensor import Tensor  # a late import: tensor.py imports this module

    return Tensor


class Function:
    """Base class of every differentiable op (see the module docstring)."""

    @staticmethod
    def forward(ctx, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_output):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        Tensor = _tensor_class()
        arrays = [a.data if isinstance(a, Tensor) else a for a in args]
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        record = _grad_enabled and any(needs)
        ctx = Context(needs)
        output = cls.forward(ctx, *arrays, **kwargs)
        result = Tensor(output, requires_grad=record)
        if record:
            inputs = tuple(a if isinstance(a, Tensor) else None for a in args)
            result._node = Node(cls, ctx, inputs)
        return result


def _topological_order(root) -> list:
    """Tensors reachable from ``root`` through recorded ops, inputs before outputs."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        tensor, expanded = stack.pop()
        if expanded:
            order.append(tensor)
            continue
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        stack.append((tensor, True))
        if tensor._node is not None:
            for parent in tensor._node.inputs:
                if parent is not None and parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    return order


def backward(root, grad, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) * grad into ``.grad`` of every leaf that requires grad.

    Intermediate Tensors get a ``.grad`` only if ``retain_grad()`` was called on them, as
    in torch. Without ``retain_graph`` the saved arrays are released as the pass goes, so
    a second backward through the same graph raises instead of silently reusing them.
    """
    grads = {id(root): grad}
    for tensor in reversed(_topological_order(root)):
        grad_here = grads.pop(id(tensor), None)
        if grad_here is None:
            continue
        node = tensor._node
        if node is None or tensor._retains_grad:
            tensor._accumulate_grad(grad_here)
        if node is None:
            continue
        if node.ctx is None:
            raise RuntimeError(
                f"backward through {node.function.__name__} a second time: its saved values "
                "were freed after the first backward; pass retain_graph=True the first time"
            )
        input_grads = node.function.backward(node.ctx, grad_here)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        if len(input_grads) != len(node.inputs):
            raise RuntimeError(
                f"{node.function.__name__}.backward returned {len(input_grads)} gradients "
                f"for {len(node.inputs)} inputs"
            )
        for parent, parent_grad in zip(node.inputs, input_grads):
            if parent is None or parent_grad is None or not parent.requires_grad:
                continue
            if parent_grad.shape != parent.shape:
                raise RuntimeError(
                    f"{node.function.__name__}.backward returned a gradient of shape "
                    f"{parent_grad.shape} for an input of shape {parent.shape}"
                )
            if parent_grad.dtype != parent.dtype:
                parent_grad = parent_grad.astype(parent.dtype)
            previous = grads.get(id(parent))
            grads[id(parent)] = parent_grad if previous is None else previous + parent_grad
        if not retain_graph:
            node.ctx = None
