"""``Tensor``: an xp array (NumPy or CuPy) plus what autograd needs, and the basic ops.

Each op below is a ``Function`` whose backward sits right under its forward. Method names
and arguments follow torch (``sum(dim, keepdim)``, ``permute``, ``transpose(d0, d1)``),
so a student can hold tinymask code against torch code line by line.

dtype rules: a Python number or list becomes float32 (or int64 for integers), like
``torch.tensor``; an existing array keeps its dtype, so float64 flows end to end for
gradient checks.
"""

from __future__ import annotations

import math

import numpy

from tinymask import autograd
from tinymask.autograd import Function
from tinymask.backend import array_module, is_cupy_array, to_numpy, xp

DEFAULT_FLOAT = numpy.float32


def _as_array(data, dtype=None):
    """An xp array for ``data``; Python values become float32/int64 on the current backend."""
    if isinstance(data, numpy.ndarray) or is_cupy_array(data):
        return data if dtype is None else data.astype(dtype, copy=False)
    if isinstance(data, numpy.generic):
        return numpy.asarray(data, dtype=dtype)
    array = numpy.asarray(data)
    if dtype is None:
        if array.dtype.kind == "f":
            dtype = DEFAULT_FLOAT
        elif array.dtype.kind in "iu":
            dtype = numpy.int64
    array = array.astype(dtype, copy=False) if dtype is not None else array
    return xp().asarray(array)


def _unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the backward of numpy broadcasting."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, size in enumerate(shape) if size == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad


def unwrap(value):
    """The xp array inside a Tensor; anything else is returned unchanged."""
    return value.data if isinstance(value, Tensor) else value


class Tensor:
    """An array with an optional gradient. ``.data`` is the xp array, ``.grad`` its gradient."""

    __array_priority__ = 1000  # numpy_array + tensor calls Tensor.__radd__

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        self.data = _as_array(data, dtype)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require grad, got {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._node = None  # the recorded op that produced this tensor (None for leaves)
        self._retains_grad = False

    # ----------------------------------------------------------------- basics
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    def numel(self) -> int:
        return int(self.data.size)

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({to_numpy(self.data)!r}{grad})"

    def item(self) -> float:
        return self.data.item()

    def numpy(self) -> numpy.ndarray:
        """A NumPy array of the values (copied from the GPU if needed), never on the tape."""
        return to_numpy(self.data)

    def detach(self) -> Tensor:
        """The same values, cut off from the tape (shares memory, like torch)."""
        return Tensor(self.data)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        if not self.is_leaf:
            raise RuntimeError("requires_grad_ can only change leaf tensors")
        self.requires_grad = flag
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this intermediate tensor after backward (as torch does)."""
        self._retains_grad = True

    def astype(self, dtype) -> Tensor:
        return Cast.apply(self, dtype=numpy.dtype(dtype))

    def float(self) -> Tensor:
        return self.astype(numpy.float32)

    def double(self) -> Tensor:
        return self.astype(numpy.float64)

    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Backpropagate from this tensor. ``grad``: array of this tensor's shape (None for
        a one-element tensor, meaning d(self)/d(self) = 1)."""
        if not self.requires_grad:
            raise RuntimeError("backward on a tensor that does not require grad")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"grad can be implicit only for a one-element tensor, this one has shape "
                    f"{self.shape}: pass grad=<array of that shape>"
                )
            grad = array_module(self.data).ones_like(self.data)
        else:
            grad = _as_array(unwrap(grad), self.dtype).copy()  # the caller keeps theirs
            if grad.shape != self.shape:
                raise ValueError(f"grad has shape {grad.shape}, the tensor has {self.shape}")
        autograd.backward(self, grad, retain_graph=retain_graph)

    def _accumulate_grad(self, grad) -> None:
        # no copy: the backward pass never writes into a gradient it has handed on, so the
        # array is ours (one array may serve two leaves, e.g. both inputs of an Add)
        self.grad = grad if self.grad is None else self.grad + grad

    # -------------------------------------------------------------- arithmetic
    def __add__(self, other):
        return Add.apply(self, other)

    def __radd__(self, other):
        return Add.apply(other, self)

    def __sub__(self, other):
        return Sub.apply(self, other)

    def __rsub__(self, other):
        return Sub.apply(other, self)

    def __mul__(self, other):
        return Mul.apply(self, other)

    def __rmul__(self, other):
        return Mul.apply(other, self)

    def __truediv__(self, other):
        return Div.apply(self, other)

    def __rtruediv__(self, other):
        return Div.apply(other, self)

    def __neg__(self):
        return Neg.apply(self)

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor):
            raise TypeError("only a constant exponent is supported: tensor ** number")
        return Pow.apply(self, exponent=exponent)

    def __matmul__(self, other):
        return MatMul.apply(self, other)

    def __rmatmul__(self, other):
        return MatMul.apply(other, self)

    # comparisons give plain boolean arrays: they have no gradient
    def __lt__(self, other):
        return self.data < unwrap(other)

    def __le__(self, other):
        return self.data <= unwrap(other)

    def __gt__(self, other):
        return self.data > unwrap(other)

    def __ge__(self, other):
        return self.data >= unwrap(other)

    __hash__ = object.__hash__  # tensors are keys by identity (== is not overloaded)

    def exp(self):
        return Exp.apply(self)

    def log(self):
        return Log.apply(self)

    def sqrt(self):
        return self**0.5

    def abs(self):
        return Abs.apply(self)

    def clamp(self, min=None, max=None):  # noqa: A002  (torch's names)
        return Clamp.apply(self, low=min, high=max)

    def relu(self):
        """``F.relu``: one op, so the gradient at exactly 0 is 0 both ways (as torch's)."""
        from tinymask.functional import relu

        return relu(self)

    def sigmoid(self):
        from tinymask.functional import sigmoid

        return sigmoid(self)

    # -------------------------------------------------------------- reductions
    def sum(self, dim=None, keepdim: bool = False):
        return Sum.apply(self, dim=dim, keepdim=keepdim)

    def mean(self, dim=None, keepdim: bool = False):
        count = 1
        for axis in _normalize_dims(dim, self.ndim):
            count *= self.shape[axis]
        # the mean of nothing is NaN, as in torch (and without NumPy's warning)
        return self.sum(dim=dim, keepdim=keepdim) * (1.0 / count if count else numpy.nan)

    def max(self, dim=None, keepdim: bool = False):
        return Max.apply(self, dim=dim, keepdim=keepdim)

    # ------------------------------------------------------------ shape ops
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Reshape.apply(self, shape=shape)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        start = start_dim % max(self.ndim, 1)
        end = end_dim % max(self.ndim, 1)
        # the merged size is spelled out, not -1: NumPy cannot infer -1 from a size-0 array
        # (zero RoIs in a batch give (0, C, 7, 7) -> (0, C*49))
        merged = math.prod(self.shape[start : end + 1])
        shape = self.shape[:start] + (merged,) + self.shape[end + 1 :]
        return self.reshape(shape)

    def permute(self, *dims):
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        return Permute.apply(self, dims=dims)

    def transpose(self, dim0: int, dim1: int):
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return self.permute(dims)

    @property
    def T(self):  # noqa: N802  (torch's name)
        return self.permute(tuple(reversed(range(self.ndim))))

    def unsqueeze(self, dim: int):
        dim = dim % (self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim: int):
        if self.shape[dim] != 1:
            return self
        dim = dim % self.ndim
        return self.reshape(self.shape[:dim] + self.shape[dim + 1 :])

    def expand(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        shape = tuple(s if s != -1 else self.shape[i - len(shape) + self.ndim]
                      for i, s in enumerate(shape))
        return Expand.apply(self, shape=shape)

    def __getitem__(self, index):
        return GetItem.apply(self, index=_data_index(index))


def _data_index(index):
    """Unwrap Tensors used as indices."""
    if isinstance(index, tuple):
        return tuple(unwrap(i) for i in index)
    return unwrap(index)


def _normalize_dims(dim, ndim):
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int):
        dim = (dim,)
    return tuple(d % ndim for d in dim)


# ====================================================================== ops
class Cast(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        ctx.dtype_in = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad.astype(ctx.dtype_in)


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (numpy.shape(a), numpy.shape(b))
        return a + b

    @staticmethod
    def backward(ctx, grad):
        shape_a, shape_b = ctx.shapes
        return _unbroadcast(grad, shape_a), _unbroadcast(grad, shape_b)


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (numpy.shape(a), numpy.shape(b))
        return a - b

    @staticmethod
    def backward(ctx, grad):
        shape_a, shape_b = ctx.shapes
        return _unbroadcast(grad, shape_a), _unbroadcast(-grad, shape_b)


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        # --- task 1.1: the backward of mul and matmul ---
        grad_a = _unbroadcast(grad * b, numpy.shape(a)) if ctx.needs_input_grad[0] else None
        grad_b = _unbroadcast(grad * a, numpy.shape(b)) if ctx.needs_input_grad[1] else None
        # --- end task ---
        return grad_a, grad_b


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        grad_a = _unbroadcast(grad / b, numpy.shape(a)) if ctx.needs_input_grad[0] else None
        grad_b = None
        if ctx.needs_input_grad[1]:
            grad_b = _unbroadcast(-grad * a / (b * b), numpy.shape(b))
        return grad_a, grad_b


class Neg(Function):
    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Pow(Function):
    @staticmethod
    def forward(ctx, x, exponent):
        ctx.save_for_backward(x)
        ctx.exponent = exponent
        return x**exponent

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * ctx.exponent * x ** (ctx.exponent - 1)


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        xpm = array_module(a, b)
        # --- task 1.1: the backward of mul and matmul ---
        grad_a = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_a = grad @ xpm.swapaxes(b, -1, -2) if b.ndim > 1 else xpm.multiply.outer(grad, b)
            grad_a = _unbroadcast(grad_a, a.shape)
        if ctx.needs_input_grad[1]:
            grad_b = xpm.swapaxes(a, -1, -2) @ grad if a.ndim > 1 else xpm.multiply.outer(a, grad)
            grad_b = _unbroadcast(grad_b, b.shape)
        return grad_a, grad_b
        # --- end task ---


class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        y = array_module(x).exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y


class Log(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return array_module(x).log(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / x


class Abs(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return abs(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * array_module(x).sign(x)


class Clamp(Function):
    """Clip to [low, high]; the gradient passes only where the value was inside."""

    @staticmethod
    def forward(ctx, x, low=None, high=None):
        xpm = array_module(x)
        inside = xpm.ones(x.shape, dtype=bool)
        if low is not None:
            inside &= x >= low
        if high is not None:
            inside &= x <= high
        ctx.save_for_backward(inside)
        return xpm.clip(x, low, high) if (low is not None or high is not None) else x.copy()

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside


class Sum(Function):
    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False):
        axes = _normalize_dims(dim, x.ndim)
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        return x.sum(axis=axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad):
        xpm = array_module(grad)
        if not ctx.keepdim:
            grad = xpm.expand_dims(grad, ctx.axes) if ctx.axes else grad
        return xpm.broadcast_to(grad, ctx.shape).copy()


class Max(Function):
    """Max over dims; the gradient goes to the first position holding the max (as torch)."""

    @staticmethod
    def forward(ctx, x, dim=None, keepdim=False):
        xpm = array_module(x)
        axes = _normalize_dims(dim, x.ndim)
        values = x.max(axis=axes, keepdims=True)
        # one-hot of the first arg-max over the reduced axes
        hit = x == values
        moved = xpm.moveaxis(hit, axes, tuple(range(x.ndim - len(axes), x.ndim)))
        flat = moved.reshape(moved.shape[: x.ndim - len(axes)] + (-1,))
        first = xpm.zeros_like(flat)
        xpm.put_along_axis(first, flat.argmax(axis=-1)[..., None], True, axis=-1)
        mask = xpm.moveaxis(first.reshape(moved.shape),
                            tuple(range(x.ndim - len(axes), x.ndim)), axes)
        ctx.save_for_backward(mask)
        ctx.axes, ctx.keepdim = axes, keepdim
        return values if keepdim else values.squeeze(axis=axes)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        if not ctx.keepdim:
            grad = array_module(grad).expand_dims(grad, ctx.axes)
        return grad * mask


class Reshape(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.shape)


class Permute(Function):
    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        return x.transpose(dims)

    @staticmethod
    def backward(ctx, grad):
        return grad.transpose(numpy.argsort(ctx.dims))


class Expand(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return array_module(x).broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, grad):
        return _unbroadcast(grad, ctx.shape)


class GetItem(Function):
    """Indexing and slicing. Advanced (array) indices may repeat, so their backward adds."""

    @staticmethod
    def forward(ctx, x, index):
        ctx.shape, ctx.dtype, ctx.index = x.shape, x.dtype, index
        return x[index]

    @staticmethod
    def backward(ctx, grad):
        xpm = array_module(grad)
        full = xpm.zeros(ctx.shape, dtype=grad.dtype)
        if _writes_each_position_once(ctx.index):
            full[ctx.index] = grad  # plain assignment is exact when nothing repeats
        else:
            xpm.add.at(full, ctx.index, grad)  # repeated indices must add up
        return full


def _writes_each_position_once(index) -> bool:
    """True for slices and ints, a boolean mask, or one integer array without repeats
    (e.g. a permutation): then ``x[index] = g`` equals the (much slower) ``add.at``."""
    items = index if isinstance(index, tuple) else (index,)
    arrays = [i for i in items if hasattr(i, "dtype") and getattr(i, "ndim", 0) > 0]
    if not arrays:
        return True
    if len(arrays) > 1:
        return False
    (array,) = arrays
    if array.dtype == bool:
        return True
    return int(array_module(array).unique(array).size) == int(array.size)


class Cat(Function):
    @staticmethod
    def forward(ctx, *arrays, dim=0):
        ctx.dim = dim
        ctx.sizes = [a.shape[dim] for a in arrays]
        return array_module(*arrays).concatenate(arrays, axis=dim)

    @staticmethod
    def backward(ctx, grad):
        bounds = numpy.cumsum(ctx.sizes)[:-1]
        return tuple(array_module(grad).split(grad, bounds, axis=ctx.dim))


class Stack(Function):
    @staticmethod
    def forward(ctx, *arrays, dim=0):
        ctx.dim = dim
        return array_module(*arrays).stack(arrays, axis=dim)

    @staticmethod
    def backward(ctx, grad):
        xpm = array_module(grad)
        return tuple(xpm.take(grad, i, axis=ctx.dim) for i in range(grad.shape[ctx.dim]))


class Where(Function):
    @staticmethod
    def forward(ctx, condition, a, b):
        ctx.save_for_backward(condition)
        ctx.shapes = (numpy.shape(a), numpy.shape(b))
        return array_module(a, b).where(condition, a, b)

    @staticmethod
    def backward(ctx, grad):
        (condition,) = ctx.saved_tensors
        zero = grad.dtype.type(0)
        xpm = array_module(grad)
        grad_a = _unbroadcast(xpm.where(condition, grad, zero), ctx.shapes[0])
        grad_b = _unbroadcast(xpm.where(condition, zero, grad), ctx.shapes[1])
        return None, grad_a, grad_b


# ============================================================ constructors
def tensor(data, requires_grad: bool = False, dtype=None) -> Tensor:
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def cat(tensors, dim: int = 0) -> Tensor:
    """Concatenate along an existing dim (torch.cat)."""
    if len(tensors) == 0:
        raise ValueError("cat needs at least one tensor")
    return Cat.apply(*tensors, dim=dim)


def stack(tensors, dim: int = 0) -> Tensor:
    """Stack along a new dim (torch.stack)."""
    if len(tensors) == 0:
        raise ValueError("stack needs at least one tensor")
    return Stack.apply(*tensors, dim=dim)


def where(condition, a, b) -> Tensor:
    """Elementwise ``a if condition else b``; ``condition`` is a boolean array."""
    return Where.apply(unwrap(condition), a, b)


def zeros(*shape, dtype=DEFAULT_FLOAT, requires_grad: bool = False) -> Tensor:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Tensor(xp().zeros(shape, dtype=dtype), requires_grad=requires_grad)


def ones(*shape, dtype=DEFAULT_FLOAT, requires_grad: bool = False) -> Tensor:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Tensor(xp().ones(shape, dtype=dtype), requires_grad=requires_grad)
