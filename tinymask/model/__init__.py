"""The model's parts with weights: backbones (ResNet/ResNeXt, FPN), heads and Mask R-CNN."""

from tinymask.model.fpn import FPN, BackboneWithFPN
from tinymask.model.resnet import ResNet, make_res5_head, parse_backbone_name

__all__ = ["FPN", "BackboneWithFPN", "ResNet", "make_res5_head", "parse_backbone_name"]
