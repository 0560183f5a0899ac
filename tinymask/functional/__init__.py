"""Differentiable ops with torch.nn.functional's names, argument orders and weight layouts,
so a student can hold each one against ``torch.nn.functional``."""

from tinymask.functional.activation import linear, log_softmax, relu, sigmoid, softmax
from tinymask.functional.conv import conv2d, conv_transpose2d
from tinymask.functional.interpolation import interpolate
from tinymask.functional.loss import (
    binary_cross_entropy_with_logits,
    cross_entropy,
    smooth_l1_loss,
)
from tinymask.functional.normalization import batch_norm, group_norm
from tinymask.functional.pooling import max_pool2d

__all__ = [
    "batch_norm",
    "binary_cross_entropy_with_logits",
    "conv2d",
    "conv_transpose2d",
    "cross_entropy",
    "group_norm",
    "interpolate",
    "linear",
    "log_softmax",
    "max_pool2d",
    "relu",
    "sigmoid",
    "smooth_l1_loss",
    "softmax",
]
