"""The keypoint head (paper §5, "Implementation Details"; REFERENCE.md §12).

Shape letters: R RoIs, F feature channels, C the head's width, K keypoint types, s the
pooled size (14), m = 4s the heatmap size (56).

    RoI features (R, F, 14, 14) --8 x [3x3 conv C + ReLU]--> (R, C, 14, 14)
    --4x4 stride-2 deconv--> (R, K, 28, 28) --bilinear x2--> logits (R, K, 56, 56)

The paper stacks eight 512-d convs and deconvolves, then upsamples 2x with bilinear
interpolation, because "a relatively high resolution output (compared to masks) is required
for keypoint-level localization accuracy". Names and init follow torchvision's
KeypointRCNNHeads / KeypointRCNNPredictor (``kps_score_lowres``), the convs are named as
Detectron2's ``conv_fcn{i}``.
"""

from __future__ import annotations

from tinymask import functional as F
from tinymask import nn
from tinymask.model.heads import _init_kaiming_fan_out


class KeypointHead(nn.Module):
    """``num_convs`` x [3x3 conv + ReLU] on (R, F, s, s) RoI features -> (R, C, s, s)."""

    def __init__(self, in_channels: int, channels: int = 512, num_convs: int = 8):
        super().__init__()
        for index in range(num_convs):
            setattr(self, f"conv_fcn{index + 1}",
                    nn.Conv2d(in_channels if index == 0 else channels, channels, 3, padding=1))
        self.num_convs = num_convs
        self.out_channels = channels if num_convs else in_channels
        _init_kaiming_fan_out(self)  # torchvision: kaiming normal (fan_out, relu), bias 0

    def forward(self, pooled):
        x = pooled
        for index in range(self.num_convs):
            x = F.relu(getattr(self, f"conv_fcn{index + 1}")(x))
        return x


class KeypointPredictor(nn.Module):
    """(R, C, s, s) -> one heatmap of logits per keypoint type, (R, K, 4s, 4s): a 4x4
    stride-2 deconv (padding 1, so exactly 2x) to K channels, then a bilinear 2x upsample
    (align_corners=False). No ReLU: its output is the logits."""

    def __init__(self, in_channels: int, num_keypoints: int):
        super().__init__()
        self.kps_score_lowres = nn.ConvTranspose2d(in_channels, num_keypoints, 4, stride=2,
                                                   padding=1)
        _init_kaiming_fan_out(self)
        self.num_keypoints = num_keypoints

    def forward(self, keypoint_features):
        low_resolution = self.kps_score_lowres(keypoint_features)  # (R, K, 2s, 2s)
        return F.interpolate(low_resolution, scale_factor=2, mode="bilinear",
                             align_corners=False)
