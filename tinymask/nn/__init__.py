"""Modules with weights, torch.nn's names: a student can hold one against the other."""

from tinymask.nn import init
from tinymask.nn.layers import (
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    Flatten,
    FrozenBatchNorm2d,
    GroupNorm,
    Identity,
    Linear,
    MaxPool2d,
    ReLU,
)
from tinymask.nn.module import Module, ModuleList, Parameter, Sequential

__all__ = [
    "BatchNorm2d",
    "Conv2d",
    "ConvTranspose2d",
    "Flatten",
    "FrozenBatchNorm2d",
    "GroupNorm",
    "Identity",
    "Linear",
    "MaxPool2d",
    "Module",
    "ModuleList",
    "Parameter",
    "ReLU",
    "Sequential",
    "init",
]
