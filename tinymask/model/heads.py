"""The heads with weights: the RPN head, the box head and the mask heads (REFERENCE.md §8).

Shape letters: N images, A anchors per location, F feature channels, R RoIs,
K+1 classes (0 = background), m the mask size. Names follow torchvision's
``maskrcnn_resnet50_fpn`` (``rpn.head.cls_logits``, ``roi_heads.box_head.fc6``,
``roi_heads.mask_head.mask_fcn1``, ``roi_heads.mask_predictor.conv5_mask``...).
"""

from __future__ import annotations

from tinymask import functional as F
from tinymask import nn


class RPNHead(nn.Module):
    """3x3 conv + ReLU shared by all levels, then two 1x1 convs per location:
    A objectness logits and 4A box deltas. Init normal(std 0.01), bias 0 (Faster R-CNN)."""

    def __init__(self, in_channels: int, num_anchors: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(in_channels, 4 * num_anchors, 1)
        for conv in (self.conv, self.cls_logits, self.bbox_pred):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, features):
        """features: list of (N, F, Hi, Wi) ->
        (objectness [(N, A, Hi, Wi)], deltas [(N, 4A, Hi, Wi)]), one entry per level."""
        objectness, deltas = [], []
        for level in features:
            hidden = F.relu(self.conv(level))
            objectness.append(self.cls_logits(hidden))
            deltas.append(self.bbox_pred(hidden))
        return objectness, deltas


class TwoMLPHead(nn.Module):
    """FPN box head: flatten (R, F, 7, 7) -> fc6 -> ReLU -> fc7 -> ReLU -> (R, dim)."""

    def __init__(self, in_features: int, dim: int = 1024):
        super().__init__()
        self.fc6 = nn.Linear(in_features, dim)
        self.fc7 = nn.Linear(dim, dim)
        self.out_features = dim

    def forward(self, pooled):
        return F.relu(self.fc7(F.relu(self.fc6(pooled.flatten(1)))))


class BoxPredictor(nn.Module):
    """(R, dim) -> class logits (R, K+1) and class-specific deltas (R, 4(K+1))."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.cls_score = nn.Linear(in_features, num_classes)
        self.bbox_pred = nn.Linear(in_features, 4 * num_classes)

    def forward(self, box_features):
        return self.cls_score(box_features), self.bbox_pred(box_features)


def _init_kaiming_fan_out(module):
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(layer.bias)


class MaskFCNHead(nn.Module):
    """Table 2e's "FCN": ``num_convs`` x [3x3 conv + ReLU] on (R, F, 14, 14) RoI features."""

    def __init__(self, in_channels: int, channels: int = 256, num_convs: int = 4):
        super().__init__()
        for index in range(num_convs):
            setattr(self, f"mask_fcn{index + 1}",
                    nn.Conv2d(in_channels if index == 0 else channels, channels, 3, padding=1))
        self.num_convs = num_convs
        self.out_channels = channels if num_convs else in_channels
        _init_kaiming_fan_out(self)

    def forward(self, pooled):
        x = pooled
        for index in range(self.num_convs):
            x = F.relu(getattr(self, f"mask_fcn{index + 1}")(x))
        return x


class MaskPredictor(nn.Module):
    """2x2 stride-2 deconv + ReLU, then a 1x1 conv to one m x m logit map per class:
    (R, C, s, s) -> (R, K+1, 2s, 2s)."""

    def __init__(self, in_channels: int, channels: int, num_classes: int):
        super().__init__()
        self.conv5_mask = nn.ConvTranspose2d(in_channels, channels, 2, stride=2)
        self.mask_fcn_logits = nn.Conv2d(channels, num_classes, 1)
        _init_kaiming_fan_out(self)
        # Detectron2's choice, not torchvision's kaiming init: tiny logits make the initial
        # mask loss log 2 (every pixel at p = 0.5) instead of several nats, which matters
        # when training from scratch.
        nn.init.normal_(self.mask_fcn_logits.weight, std=0.001)

    def forward(self, mask_features):
        return self.mask_fcn_logits(F.relu(self.conv5_mask(mask_features)))


class MaskMLPHead(nn.Module):
    """Table 2e's "MLP": flatten (R, F, s, s) -> fc 1024 -> fc 1024 (-> fc 1024) ->
    (R, K+1, m, m). Fully connected layers see the whole RoI at once but lose the spatial
    layout that convolutions keep, which is what the ablation measures."""

    def __init__(self, in_features: int, dim: int, num_hidden: int, num_classes: int,
                 mask_size: int):
        super().__init__()
        for index in range(num_hidden):
            layer = nn.Linear(in_features if index == 0 else dim, dim)
            setattr(self, f"mask_fc{index + 1}", layer)
        self.mask_fc_logits = nn.Linear(dim, num_classes * mask_size * mask_size)
        self.num_hidden, self.num_classes, self.mask_size = num_hidden, num_classes, mask_size

    def forward(self, pooled):
        x = pooled.flatten(1)
        for index in range(self.num_hidden):
            x = F.relu(getattr(self, f"mask_fc{index + 1}")(x))
        logits = self.mask_fc_logits(x)
        return logits.reshape(-1, self.num_classes, self.mask_size, self.mask_size)
