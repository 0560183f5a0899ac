"""tinymask: Mask R-CNN from scratch in NumPy (CPU) and CuPy (GPU), for learning how it works.

    import tinymask as tm
    import tinymask.functional as F
    x = tm.Tensor(array, requires_grad=True)
    y = F.conv2d(x, weight).relu().sum(); y.backward(); x.grad

    model = tm.MaskRCNN(tm.MaskRCNNConfig.small())      # the whole detector
    model = tm.from_torchvision(state_dict)             # torchvision's weights
"""

from tinymask import functional, nn, optim
from tinymask.autograd import Function, enable_grad, is_grad_enabled, no_grad
from tinymask.backend import get_backend, set_backend
from tinymask.config import MaskRCNNConfig
from tinymask.gradcheck import GradcheckError, gradcheck
from tinymask.model.mask_rcnn import MaskRCNN
from tinymask.random import manual_seed
from tinymask.tensor import Tensor, cat, ones, stack, tensor, where, zeros
from tinymask.torchvision_weights import from_torchvision, to_torchvision
from tinymask.weights import pretrained

__version__ = "0.1.0"

__all__ = [
    "Function",
    "GradcheckError",
    "MaskRCNN",
    "MaskRCNNConfig",
    "Tensor",
    "cat",
    "enable_grad",
    "from_torchvision",
    "functional",
    "get_backend",
    "gradcheck",
    "is_grad_enabled",
    "manual_seed",
    "nn",
    "no_grad",
    "ones",
    "optim",
    "pretrained",
    "set_backend",
    "stack",
    "tensor",
    "to_torchvision",
    "where",
    "zeros",
]
