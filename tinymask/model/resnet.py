"""ResNet and ResNeXt backbones (He et al. 2016; Xie et al. 2017), torchvision's layout.

Shape letters: N images, C channels, H x W the input. A ResNet is a stem and four stages:

    stem   conv1 7x7/2 -> bn1 -> relu -> maxpool 3x3/2      (N, 64, H/4, W/4)
    res2   layer1: blocks at stride 4                      (N, 64 * e, H/4,  W/4)
    res3   layer2: first block strides to 8               (N, 128 * e, H/8,  W/8)
    res4   layer3: stride 16                               (N, 256 * e, H/16, W/16)
    res5   layer4: stride 32                               (N, 512 * e, H/32, W/32)

with e = 1 for basic blocks (ResNet-18/34) and 4 for bottlenecks (ResNet-50/101,
ResNeXt). Widths scale with ``base_width`` (64 in the papers; 16 gives the quarter-width
nets the CPU lessons train in minutes). Module names equal torchvision's (``conv1``,
``bn1``, ``layer1.0.conv2``, ``layer1.0.downsample.0``), so a torchvision state_dict maps
onto ours name for name.

A bottleneck strides in its 3x3 conv (torchvision's "ResNet v1.5"; the original paper and
Detectron's C2 models stride in the first 1x1). ResNeXt makes that 3x3 conv grouped:
``groups`` paths of ``width_per_group`` channels each.

The Mask R-CNN variants (paper §3, "Network Architecture"):
* FPN: return res2..res5, and the FPN module (fpn.py) builds P2..P6 from them;
* C4: stop at res4 (stride 16) and keep res5 aside as the RoI head (``make_res5_head``);
* C5: a single stride-32 map, res5 (Table 2d's large-stride experiment).
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass

from tinymask import functional as F
from tinymask import nn

STAGE_NAMES = ("res2", "res3", "res4", "res5")
STAGE_STRIDES = {"stem": 4, "res2": 4, "res3": 8, "res4": 16, "res5": 32}
NORMS = ("bn", "frozen_bn", "gn")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """The normalisation after each conv: trainable batch norm, frozen batch norm (for
    pretrained weights) or group norm (small batches; 32 groups, fewer when the channel
    count is small: gcd(32, C) so quarter-width nets still divide evenly)."""
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "frozen_bn":
        return nn.FrozenBatchNorm2d(channels)
    if kind == "gn":
        return nn.GroupNorm(math.gcd(32, channels), channels)
    raise ValueError(f"unknown norm {kind!r}; choose one of {NORMS}")


class BasicBlock(nn.Module):
    """Two 3x3 convs and a shortcut (ResNet-18/34). (N, C_in, H, W) -> (N, planes, H/s, W/s)."""

    expansion = 1

    def __init__(self, in_channels, planes, stride=1, groups=1, width_per_group=64, norm="bn"):
        super().__init__()
        if groups != 1 or width_per_group != 64:
            raise ValueError("BasicBlock supports only groups=1 and width_per_group=64")
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm_layer(norm, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = norm_layer(norm, planes)
        self.downsample = _shortcut(in_channels, planes, stride, norm)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, grouped for ResNeXt), 1x1 expand x4, plus a shortcut.
    (N, C_in, H, W) -> (N, 4 * planes, H/s, W/s)."""

    expansion = 4

    def __init__(self, in_channels, planes, stride=1, groups=1, width_per_group=64, norm="bn"):
        super().__init__()
        width = int(planes * (width_per_group / 64.0)) * groups  # torchvision's formula
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = norm_layer(norm, width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=groups,
                               bias=False)
        self.bn2 = norm_layer(norm, width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = norm_layer(norm, planes * self.expansion)
        self.downsample = _shortcut(in_channels, planes * self.expansion, stride, norm)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + identity)


def _shortcut(in_channels, out_channels, stride, norm):
    """A projection (1x1 conv + norm) when the shape changes, else None (identity)."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                         norm_layer(norm, out_channels))


def make_stage(block, in_channels, planes, num_blocks, stride, groups=1, width_per_group=64,
               norm="bn") -> nn.Sequential:
    """``num_blocks`` blocks; only the first strides and projects the shortcut."""
    blocks = [block(in_channels, planes, stride, groups, width_per_group, norm)]
    for _ in range(1, num_blocks):
        blocks.append(block(planes * block.expansion, planes, 1, groups, width_per_group, norm))
    return nn.Sequential(*blocks)


@dataclass(frozen=True)
class ResNetSpec:
    """What distinguishes the named ResNets."""

    block: type
    stage_blocks: tuple[int, int, int, int]
    groups: int = 1
    width_per_group: int = 64


SPECS = {
    "resnet18": ResNetSpec(BasicBlock, (2, 2, 2, 2)),
    "resnet34": ResNetSpec(BasicBlock, (3, 4, 6, 3)),
    "resnet50": ResNetSpec(Bottleneck, (3, 4, 6, 3)),
    "resnet101": ResNetSpec(Bottleneck, (3, 4, 23, 3)),
    "resnext50_32x4d": ResNetSpec(Bottleneck, (3, 4, 6, 3), groups=32, width_per_group=4),
}


def parse_backbone_name(name: str) -> tuple[ResNetSpec, int]:
    """"resnet50" -> (spec, 64); a "_wN" suffix sets the base width: "resnet18_w16" is
    ResNet-18 at a quarter of the width (the CPU lessons' backbone)."""
    match = re.fullmatch(r"(?P<arch>[a-z0-9_]+?)(?:_w(?P<width>\d+))?", name)
    arch = match["arch"] if match else name
    if arch not in SPECS:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(SPECS)}, "
                         "optionally with a width suffix such as 'resnet18_w16'")
    width = int(match["width"]) if match and match["width"] else 64
    if width % 8 or width < 8:
        raise ValueError(f"backbone width must be a multiple of 8, got {width} in {name!r}")
    return SPECS[arch], width


class ResNet(nn.Module):
    """A ResNet trunk returning the requested stage outputs, in an OrderedDict.

    Args:
        name: "resnet18" | "resnet34" | "resnet50" | "resnet101" | "resnext50_32x4d",
            optionally "_wN" for base width N (e.g. "resnet18_w16").
        out_features: which of "res2".."res5" to return; stages after the last one are not
            built (the C4 trunk stops at res4).
        norm: "bn" | "frozen_bn" | "gn" (see ``norm_layer``).
        num_classes: adds torchvision's global-pool + fc classifier (``classify``); None for
            detection backbones.
        freeze_at: Detectron2's meaning: 0 trains all, 1 freezes the stem, k >= 2 the stem
            and res2..res_k. Frozen parameters stop requiring grad and their batch norms
            become FrozenBatchNorm2d (fixed statistics).
        frozen_bn_eps: the eps of every FrozenBatchNorm2d (1e-5; torchvision's COCO
            weights were trained with 0).
    """

    def __init__(self, name="resnet50", out_features=STAGE_NAMES, norm="bn", num_classes=None,
                 freeze_at=0, frozen_bn_eps=1e-5):
        super().__init__()
        spec, base_width = parse_backbone_name(name)
        unknown = set(out_features) - set(STAGE_NAMES)
        if unknown or not out_features:
            raise ValueError(f"out_features must be a non-empty subset of {STAGE_NAMES}, got "
                             f"{tuple(out_features)}")
        self.name, self.out_features = name, tuple(out_features)
        num_stages = max(STAGE_NAMES.index(f) for f in out_features) + 1
        if num_classes is not None and num_stages < 4:
            raise ValueError("a classifier needs all four stages (out_features up to res5)")

        self.conv1 = nn.Conv2d(3, base_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(norm, base_width)
        in_channels = base_width
        self.out_channels = {}
        for index in range(num_stages):
            planes = base_width * 2**index
            stage = make_stage(spec.block, in_channels, planes, spec.stage_blocks[index],
                               stride=1 if index == 0 else 2, groups=spec.groups,
                               width_per_group=spec.width_per_group, norm=norm)
            setattr(self, f"layer{index + 1}", stage)
            in_channels = planes * spec.block.expansion
            self.out_channels[STAGE_NAMES[index]] = in_channels
        self.out_strides = {name: STAGE_STRIDES[name] for name in self.out_features}
        self.fc = nn.Linear(in_channels, num_classes) if num_classes is not None else None
        self.spec, self.base_width, self.norm = spec, base_width, norm
        init_resnet(self)
        if freeze_at:
            freeze(self, freeze_at)
        set_frozen_bn_eps(self, frozen_bn_eps)

    def stages(self):
        """(name, module) for each built stage, in order."""
        for index, name in enumerate(STAGE_NAMES):
            stage = self._modules.get(f"layer{index + 1}")
            if stage is not None:
                yield name, stage

    def forward(self, x) -> OrderedDict:
        """x: (N, 3, H, W) -> {"res2": (N, C2, H/4, W/4), ..., "res5": (N, C5, H/32, W/32)},
        only the stages in ``out_features``."""
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)  # (N, C, H/4, W/4)
        outputs = OrderedDict()
        for name, stage in self.stages():
            x = stage(x)
            if name in self.out_features:
                outputs[name] = x
        return outputs

    def classify(self, x):
        """ImageNet-style logits: global average pool of res5, then fc. (N, num_classes)."""
        if self.fc is None:
            raise RuntimeError("this ResNet was built without a classifier (num_classes=None)")
        features = self.forward(x)[STAGE_NAMES[-1]] if "res5" in self.out_features else None
        if features is None:
            raise RuntimeError("classify needs 'res5' in out_features")
        return self.fc(features.mean(dim=(2, 3)))


def make_res5_head(name="resnet50", norm="bn", frozen_bn_eps=1e-5) -> nn.Sequential:
    """res5 on its own, for the C4 model's RoI head (Detectron2's Res5ROIHeads): takes
    (R, C4, 14, 14) pooled features to (R, C5, 7, 7), the first block striding by 2."""
    spec, base_width = parse_backbone_name(name)
    in_channels = base_width * 4 * spec.block.expansion  # res4's output channels
    head = make_stage(spec.block, in_channels, base_width * 8, spec.stage_blocks[3], stride=2,
                      groups=spec.groups, width_per_group=spec.width_per_group, norm=norm)
    init_resnet(head)
    set_frozen_bn_eps(head, frozen_bn_eps)
    return head


def init_resnet(module: nn.Module) -> None:
    """torchvision's init: convs kaiming normal (fan_out, relu), norms weight 1 bias 0."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(layer, (nn.BatchNorm2d, nn.GroupNorm)) and layer.weight is not None:
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)


def set_frozen_bn_eps(module: nn.Module, eps: float) -> None:
    """Give every FrozenBatchNorm2d in ``module`` this eps. Weights carry the eps they were
    trained with: torchvision's COCO Mask R-CNN was trained with 0, and 1e-5 changes the
    scale of every channel whose running variance is not much larger than 1e-5."""
    for layer in module.modules():
        if isinstance(layer, nn.FrozenBatchNorm2d):
            layer.eps = eps


def freeze(resnet: ResNet, freeze_at: int) -> None:
    """Freeze the stem (freeze_at >= 1) and res2..res_{freeze_at} (Detectron2's rule)."""
    if not 0 <= freeze_at <= 5:
        raise ValueError(f"freeze_at must be in 0..5, got {freeze_at}")
    frozen = [("conv1", "bn1")] + [(f"layer{i}",) for i in range(1, freeze_at)]
    for names in frozen[:freeze_at]:
        for name in names:
            module = getattr(resnet, name, None)
            if module is None:
                continue
            module.requires_grad_(False)
            _freeze_batch_norms(resnet, name)


def _freeze_batch_norms(parent: nn.Module, name: str) -> None:
    """Replace every BatchNorm2d in ``parent.<name>`` by a FrozenBatchNorm2d with its values."""
    module = getattr(parent, name)
    if isinstance(module, nn.BatchNorm2d):
        frozen = nn.FrozenBatchNorm2d(module.num_features, module.eps)
        frozen.load_state_dict({"weight": module.weight.data, "bias": module.bias.data,
                                "running_mean": module.running_mean,
                                "running_var": module.running_var})
        setattr(parent, name, frozen)
        return
    for child_name, _ in list(module.named_children()):
        _freeze_batch_norms(module, child_name)
