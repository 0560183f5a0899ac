"""Layers with weights (and a few without, for Sequential), torch.nn's names and defaults.

Default inits follow torch exactly: Conv2d/Linear/ConvTranspose2d weights
kaiming_uniform(a=sqrt(5)) and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)); batch/group
norm weight 1, bias 0. Models re-initialise as their papers say (ResNet: kaiming normal
fan_out; RPN: normal std 0.01).
"""

from __future__ import annotations

import math

import numpy

from tinymask import functional as F
from tinymask.backend import array_module, xp
from tinymask.functional.conv import _pair
from tinymask.nn import init
from tinymask.nn.module import Module, Parameter
from tinymask.tensor import DEFAULT_FLOAT


def _empty_parameter(*shape) -> Parameter:
    return Parameter(xp().zeros(shape, dtype=DEFAULT_FLOAT))


def _torch_default_init(weight, bias) -> None:
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init.calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(bias, -bound, bound)


class Conv2d(Module):
    """weight (out_channels, in_channels/groups, kh, kw); bias (out_channels,)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride, self.padding = _pair(stride, "stride"), _pair(padding, "padding")
        self.dilation, self.groups = _pair(dilation, "dilation"), groups
        self.weight = _empty_parameter(out_channels, in_channels // groups, *self.kernel_size)
        self.bias = _empty_parameter(out_channels) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        _torch_default_init(self.weight, self.bias)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}"
                + (f", groups={self.groups}" if self.groups > 1 else "")
                + (", bias=False" if self.bias is None else ""))


class ConvTranspose2d(Module):
    """weight (in_channels, out_channels/groups, kh, kw) (torch's layout); bias (out_channels,)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride, self.padding = _pair(stride, "stride"), _pair(padding, "padding")
        self.output_padding = _pair(output_padding, "output_padding")
        self.dilation, self.groups = _pair(dilation, "dilation"), groups
        self.weight = _empty_parameter(in_channels, out_channels // groups, *self.kernel_size)
        self.bias = _empty_parameter(out_channels) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        _torch_default_init(self.weight, self.bias)

    def forward(self, x):
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  self.output_padding, self.groups, self.dilation)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")


class Linear(Module):
    """weight (out_features, in_features) (torch's layout); bias (out_features,)."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = _empty_parameter(out_features, in_features)
        self.bias = _empty_parameter(out_features) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        _torch_default_init(self.weight, self.bias)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class BatchNorm2d(Module):
    """Batch norm over (N, C, H, W): batch statistics in training mode (updating the
    running ones), running statistics in eval mode. weight/bias are trained."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        if affine:
            self.weight = Parameter(xp().ones(num_features, dtype=DEFAULT_FLOAT))
            self.bias = Parameter(xp().zeros(num_features, dtype=DEFAULT_FLOAT))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.register_buffer("running_mean", xp().zeros(num_features, dtype=DEFAULT_FLOAT))
        self.register_buffer("running_var", xp().ones(num_features, dtype=DEFAULT_FLOAT))
        # torch keeps this counter in its state_dict; we keep it so state dicts map 1:1
        self.register_buffer("num_batches_tracked", xp().zeros((), dtype=numpy.int64))

    def forward(self, x):
        if self.training:
            self.num_batches_tracked += 1
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training=self.training, momentum=self.momentum, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class FrozenBatchNorm2d(Module):
    """Batch norm with fixed statistics and affine values, all buffers (torchvision's
    FrozenBatchNorm2d): y = x * scale + shift, scale = weight / sqrt(running_var + eps),
    shift = bias - running_mean * scale. Used with pretrained weights and tiny batches,
    where batch statistics would be noise. Gradients still flow to x."""

    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.num_features, self.eps = num_features, eps
        self.register_buffer("weight", xp().ones(num_features, dtype=DEFAULT_FLOAT))
        self.register_buffer("bias", xp().zeros(num_features, dtype=DEFAULT_FLOAT))
        self.register_buffer("running_mean", xp().zeros(num_features, dtype=DEFAULT_FLOAT))
        self.register_buffer("running_var", xp().ones(num_features, dtype=DEFAULT_FLOAT))

    def forward(self, x):
        scale = self.weight / array_module(self.running_var).sqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


class GroupNorm(Module):
    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(
                f"GroupNorm: {num_groups} groups do not divide {num_channels} channels"
            )
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        if affine:
            self.weight = Parameter(xp().ones(num_channels, dtype=DEFAULT_FLOAT))
            self.bias = Parameter(xp().zeros(num_channels, dtype=DEFAULT_FLOAT))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}"


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Identity(Module):
    def forward(self, x):
        return x


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)
