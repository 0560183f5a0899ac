"""tinymask: Mask R-CNN from scratch in NumPy (CPU) and CuPy (GPU), for learning how it works.

    import tinymask as tm
    import tinymask.functional as F
    x = tm.Tensor(array, requires_grad=True)
    y = F.conv2d(x, weight).relu().sum(); y.backward(); x.grad
"""

from tinymask import functional, nn, optim
from tinymask.autograd import Function, enable_grad, is_grad_enabled, no_grad
from tinymask.backend import get_backend, set_backend
from tinymask.gradcheck import GradcheckError, gradcheck
from tinymask.random import manual_seed
from tinymask.tensor import Tensor, cat, ones, stack, tensor, where, zeros

__version__ = "0.1.0"

__all__ = [
    "Function",
    "GradcheckError",
    "Tensor",
    "cat",
    "enable_grad",
    "functional",
    "get_backend",
    "gradcheck",
    "is_grad_enabled",
    "manual_seed",
    "nn",
    "no_grad",
    "ones",
    "optim",
    "set_backend",
    "stack",
    "tensor",
    "where",
    "zeros",
]
