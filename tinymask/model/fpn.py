"""Feature Pyramid Network (Lin et al. 2017), as torchvision builds it for Mask R-CNN.

Shape letters: N images, F the FPN width (256 in the paper), Ci the channels of stage i.
From the backbone's res2..res5 (strides 4..32):

    lateral_i = inner_blocks[i](C_i)                 1x1 conv to F channels
    top_down  = nearest-upsample(merged_{i+1}) to lateral_i's exact size
    merged_i  = lateral_i + top_down                 (merged_5 = lateral_5)
    P_i       = layer_blocks[i](merged_i)            3x3 conv, F -> F
    P6        = max_pool(P5, kernel 1, stride 2)     the RPN's extra coarse level

Upsampling to the lateral's *size* rather than by a factor of 2 is what makes odd input
sizes work: a 200x333 image gives a 7x11 res5 map but a 13x21 res4 map.
Convolutions have biases; init is kaiming uniform with a=1 and zero bias (torchvision).
"""

from __future__ import annotations

from collections import OrderedDict

from tinymask import functional as F
from tinymask import nn
from tinymask.model.resnet import STAGE_NAMES, ResNet


class FPN(nn.Module):
    """in_channels: list of C_i for res2..res5 (in order); out_channels: F."""

    def __init__(self, in_channels, out_channels=256, extra_p6=True):
        super().__init__()
        self.inner_blocks = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.layer_blocks = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1)
                                          for _ in in_channels)
        self.out_channels, self.extra_p6 = out_channels, extra_p6
        for conv in [*self.inner_blocks, *self.layer_blocks]:
            nn.init.kaiming_uniform_(conv.weight, a=1)
            nn.init.zeros_(conv.bias)

    def forward(self, features: list) -> list:
        """features: [C2, C3, C4, C5], finest first -> [P2, P3, P4, P5(, P6)], each
        (N, F, Hi, Wi)."""
        if len(features) != len(self.inner_blocks):
            raise ValueError(f"FPN built for {len(self.inner_blocks)} levels got {len(features)}")
        # --- task 2.1: the FPN's top-down pathway ---
        merged = self.inner_blocks[-1](features[-1])
        results = [self.layer_blocks[-1](merged)]
        for index in range(len(features) - 2, -1, -1):
            lateral = self.inner_blocks[index](features[index])
            top_down = F.interpolate(merged, size=lateral.shape[-2:], mode="nearest")
            merged = lateral + top_down
            results.insert(0, self.layer_blocks[index](merged))
        # --- end task ---
        if self.extra_p6:
            # P6 only feeds the RPN's largest anchors (512); it is never pooled by RoI heads
            results.append(F.max_pool2d(results[-1], kernel_size=1, stride=2))
        return results


class BackboneWithFPN(nn.Module):
    """A ResNet body and an FPN on top: image (N, 3, H, W) -> {"p2": ..., "p6": ...}.

    Names follow torchvision's ``backbone.body`` / ``backbone.fpn``."""

    def __init__(self, body: ResNet, out_channels=256):
        super().__init__()
        if body.out_features != STAGE_NAMES:
            raise ValueError(f"an FPN needs res2..res5 from the body, got {body.out_features}")
        self.body = body
        self.fpn = FPN([body.out_channels[name] for name in STAGE_NAMES], out_channels)
        self.out_channels = out_channels
        self.out_strides = {"p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64}

    def forward(self, images) -> OrderedDict:
        pyramid = self.fpn(list(self.body(images).values()))
        return OrderedDict(zip(self.out_strides, pyramid))
