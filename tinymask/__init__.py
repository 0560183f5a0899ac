"""tinymask: Mask R-CNN from scratch in NumPy (CPU) and CuPy (GPU), for learning how it works."""

from tinymask.autograd import Function, enable_grad, is_grad_enabled, no_grad
from tinymask.backend import get_backend, set_backend
from tinymask.tensor import Tensor, cat, ones, stack, tensor, where, zeros

__version__ = "0.1.0"
