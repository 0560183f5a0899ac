"""``MaskRCNNConfig``: every choice of the model in one place, each ablation a field.

The paper's ablations (Table 2a-2e, Table 3) are switches here, never forks of the code: a
lesson changes one field and trains again.

Whose semantics the defaults follow (REFERENCE.md §1-§9): the architecture, the anchors'
sizes and layout, matching, sampling, the losses and inference are torchvision's
``maskrcnn_resnet50_fpn``. Seven choices are not, and each is a field that switches back:

    field                         default (whose)                      torchvision
    aligned, sampling_ratio       True, 0: adaptive (Detectron2's      False, 2
                                  ROIAlignV2)
    mask_target_aligned,          True, True: RoIAlign aligned, then   False, False: soft
    binarize_mask_targets         thresholded at 0.5 (Detectron2)      targets, not aligned
    anchor_strides_from_image     False: strides 4..64 as given        True: padded image size
                                  (Detectron2)                         // level size, per axis
    roi_pool_bins_in_input_dtype  False: bin edges in float64 for      True: in the features'
                                  float32 and float64 maps alike       dtype
    frozen_bn_eps                 1e-5 (torchvision's and Detectron2's 0.0 in the pretrained
                                  FrozenBatchNorm2d default)           COCO build
    mask_threshold                0.5: binary masks (as evaluated)     None: probabilities
    keypoint_resize_to_box        False: keypoints at the arg-max of   True: of the map
                                  the 56x56 map                        resized to the box

``MaskRCNNConfig.torchvision()`` sets all of them to torchvision's, so torchvision's weights
(``tinymask.from_torchvision``) give its numbers; ``MaskRCNNConfig.small()`` is the CPU
lessons' variant for 128-px synthetic images.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields

from tinymask.errors import ConfigError, UnknownFieldError
from tinymask.ops.roi_inputs import AGGREGATIONS, ROI_OPS
from tinymask.validation import check_field_types

MASK_LOSSES = ("sigmoid", "softmax")
MASK_HEADS = ("fcn", "mlp")
NORMS = ("bn", "frozen_bn", "gn")
# checked by validate(): sizes and counts, and fractions or IoU thresholds
POSITIVE_FIELDS = ("fpn_channels", "mask_conv_channels", "mask_mlp_dim", "box_head_dim",
                   "box_pool_size", "mask_pool_size", "num_keypoints", "keypoint_conv_channels",
                   "keypoint_pool_size", "min_size", "max_size",
                   "size_divisibility", "rpn_batch_size_per_image", "box_batch_size_per_image",
                   "rpn_pre_nms_top_n_train", "rpn_pre_nms_top_n_test",
                   "rpn_post_nms_top_n_train", "rpn_post_nms_top_n_test", "detections_per_img")
FRACTION_FIELDS = ("rpn_fg_iou_thresh", "rpn_bg_iou_thresh", "rpn_positive_fraction",
                   "rpn_nms_thresh", "box_fg_iou_thresh", "box_bg_iou_thresh",
                   "box_positive_fraction", "box_score_thresh", "box_nms_thresh")


@dataclass
class MaskRCNNConfig:
    # ---- backbone (Table 2a) -------------------------------------------------------------
    backbone: str = "resnet50"  # resnet18/34/50/101, resnext50_32x4d; "_w16" = quarter width
    fpn: bool = True  # True: FPN P2..P6; False: single map (C4 with a res5 head, or C5)
    single_map: str = "c4"  # without FPN: "c4" (stride 16, res5 head) | "c5" (stride 32, Table 2d)
    fpn_channels: int = 256  # F, the FPN width
    norm: str = "frozen_bn"  # "bn" | "frozen_bn" (pretrained) | "gn" (from scratch, small batch)
    freeze_at: int = 2  # freeze the stem and res2 (torchvision's trainable_layers=3)
    frozen_bn_eps: float = 1e-5  # eps of frozen batch norm; torchvision's COCO weights use 0.0

    # ---- the RoI op (Table 2c, 2d) -------------------------------------------------------
    roi_op: str = "align"  # "align" | "warp" (MNC) | "pool" (Fast R-CNN)
    roi_aggregation: str = "avg"  # "avg" | "max": how samples in a bin are combined
    aligned: bool = True  # RoIAlign's half-pixel shift (Detectron2's ROIAlignV2; TV: False)
    sampling_ratio: int = 0  # samples per bin side; <= 0: adaptive ceil(roi_size / bins) (TV: 2)
    # RoIPool's bin edges: False computes them in float64, so a float32 and a float64 map pool
    # the same cells; True in the features' dtype, as torchvision (float32 rounds a bin edge
    # of a few RoI sizes to the next cell where float64 does not, and the other way round)
    roi_pool_bins_in_input_dtype: bool = False
    # RoIWarp's rounded box sampled with RoIAlign's half-cell shift: not the paper's RoIWarp
    # (False), a control that leaves the rounding as its only misalignment (lesson 6)
    warp_aligned: bool = False

    # ---- the mask branch (Table 2b, 2e, 3) ------------------------------------------------
    mask_branch: bool = True  # False: Faster R-CNN with the same RoI op (Table 3)
    mask_head: str = "fcn"  # "fcn": 4 convs + deconv | "mlp": fully connected (Table 2e)
    mask_mlp_layers: int = 2  # hidden fc layers of the MLP head (2 or 3 in Table 2e)
    mask_loss: str = "sigmoid"  # "sigmoid": per-class binary | "softmax": multinomial (Table 2b)
    mask_conv_channels: int = 256  # width of the FCN mask head's convs
    mask_mlp_dim: int = 1024  # width of the MLP mask head's fc layers
    # the target is the GT mask cropped to the RoI by RoIAlign at m x m (adaptive sampling)
    mask_target_aligned: bool = True  # that RoIAlign's half-pixel shift (Detectron2; TV: False)
    binarize_mask_targets: bool = True  # threshold it at 0.5 (Detectron2; TV keeps it soft)

    # ---- the keypoint branch (paper §5, Table 4) ------------------------------------------
    keypoint_branch: bool = False  # True: Keypoint R-CNN's head beside the box (and mask) head
    num_keypoints: int = 17  # K keypoint types (COCO persons: 17), one heatmap each
    keypoint_conv_channels: int = 512  # width of the head's 8 convs (the paper's 512-d)
    keypoint_pool_size: int = 14  # RoIAlign 14x14; heatmaps are 4x that (56x56)
    # decoding: False: the arg-max of the 56x56 map; True: of the map resized (bicubic) to
    # the box's size in pixels (TV), which downsamples, and may miss a sharp peak, on boxes
    # under 56 pixels (see tinymask.keypoints.heatmaps_to_keypoints)
    keypoint_resize_to_box: bool = False

    # ---- classes and heads ---------------------------------------------------------------
    num_classes: int = 91  # including background (index 0), as torchvision
    box_head_dim: int = 1024  # width of the two fc layers of the FPN box head
    box_pool_size: int = 7  # box-head RoI features: 7x7
    mask_pool_size: int = 14  # mask-head RoI features: 14x14

    # ---- images --------------------------------------------------------------------------
    min_size: int = 800  # resize so the shorter side is this ...
    max_size: int = 1333  # ... unless the longer side would exceed this
    size_divisibility: int = 32  # pad the batch to a multiple of this
    image_mean: tuple = (0.485, 0.456, 0.406)  # ImageNet normalisation, images in [0, 1]
    image_std: tuple = (0.229, 0.224, 0.225)

    # ---- anchors and RPN -----------------------------------------------------------------
    anchor_sizes: tuple = (32, 64, 128, 256, 512)  # one per level P2..P6 (all on C4/C5)
    aspect_ratios: tuple = (0.5, 1.0, 2.0)  # h / w
    # False: each level's nominal stride, 4..64 on P2..P6 (16 or 32 on one map; Detectron2).
    # True: padded image size // level size per axis (torchvision): P6 of an 800-px side has
    # 13 cells, so a stride of 61 instead of 64
    anchor_strides_from_image: bool = False
    rpn_fg_iou_thresh: float = 0.7
    rpn_bg_iou_thresh: float = 0.3
    rpn_batch_size_per_image: int = 256  # anchors sampled per image for the RPN loss
    rpn_positive_fraction: float = 0.5
    rpn_pre_nms_top_n_train: int = 2000  # per level (FPN) or per image (single map)
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_train: int = 2000  # per image
    rpn_post_nms_top_n_test: int = 1000  # the paper's C4 uses 300
    rpn_nms_thresh: float = 0.7
    rpn_min_size: float = 1e-3  # proposals with a side below this (pixels) are dropped

    # ---- RoI heads -----------------------------------------------------------------------
    box_fg_iou_thresh: float = 0.5
    box_bg_iou_thresh: float = 0.5
    box_batch_size_per_image: int = 512  # RoIs sampled per image
    box_positive_fraction: float = 0.25  # the paper's 1:3
    bbox_reg_weights: tuple = (10.0, 10.0, 5.0, 5.0)
    box_smooth_l1_beta: float = 1.0 / 9  # smooth L1 switch point for both box losses

    # ---- inference -----------------------------------------------------------------------
    box_score_thresh: float = 0.05
    box_nms_thresh: float = 0.5
    detections_per_img: int = 100
    box_min_size: float = 1e-2
    mask_threshold: float | None = 0.5  # binarise pasted masks at this (None: probabilities, as TV)

    extra: dict = field(default_factory=dict, repr=False)  # free-form notes (e.g. a lesson's name)

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Refuse values that do not fit a field or impossible combinations, with a message
        naming the field (``ConfigError``)."""
        check_field_types(self)
        choices = {"roi_op": ROI_OPS, "roi_aggregation": AGGREGATIONS, "mask_loss": MASK_LOSSES,
                   "mask_head": MASK_HEADS, "norm": NORMS, "single_map": ("c4", "c5")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"MaskRCNNConfig.{name}={getattr(self, name)!r}; choose one "
                                  f"of {allowed}")
        if self.warp_aligned and self.roi_op != "warp":
            raise ConfigError(f"MaskRCNNConfig.warp_aligned=True changes RoIWarp only; with "
                              f"roi_op={self.roi_op!r} set it False (RoIAlign's is 'aligned')")
        if self.num_classes < 2:
            raise ConfigError(f"num_classes={self.num_classes} must count background too (>= 2)")
        if self.mask_mlp_layers not in (2, 3):
            raise ConfigError(f"mask_mlp_layers={self.mask_mlp_layers}: Table 2e has 2 or 3")
        if self.fpn and len(self.anchor_sizes) != 5:
            raise ConfigError("with fpn=True, anchor_sizes needs one size per level P2..P6 (5)")
        if not 0 <= self.freeze_at <= 5:
            raise ConfigError(f"freeze_at={self.freeze_at} must be in 0..5")
        if self.uses_c4_head and self.mask_branch and self.mask_head == "mlp":
            raise ConfigError("mask_head='mlp' is defined for the FPN and C5 heads (Table 2e), "
                              "not for C4 (fpn=false, single_map='c4')")
        for name in POSITIVE_FIELDS:
            if getattr(self, name) < 1:
                raise ConfigError(f"MaskRCNNConfig.{name}={getattr(self, name)!r} must be >= 1")
        for name in FRACTION_FIELDS:
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"MaskRCNNConfig.{name}={getattr(self, name)!r} must be in "
                                  f"[0, 1]")
        from tinymask.model.resnet import parse_backbone_name  # the one list of backbones

        try:
            parse_backbone_name(self.backbone)
        except ValueError as exc:
            raise ConfigError(f"MaskRCNNConfig.backbone: {exc}") from exc

    # ------------------------------------------------------------------ helpers
    @property
    def uses_c4_head(self) -> bool:
        return not self.fpn and self.single_map == "c4"

    @property
    def mask_size(self) -> int:
        """m: the predicted mask is m x m. The deconv doubles the pooled size (14 -> 28);
        the C4 head pools 14, halves it in res5 and doubles it back (14)."""
        return self.mask_pool_size if self.uses_c4_head else 2 * self.mask_pool_size

    @property
    def keypoint_heatmap_size(self) -> int:
        """m of the keypoint heatmaps: the deconv and the bilinear upsample each double the
        pooled size (14 -> 56)."""
        return 4 * self.keypoint_pool_size

    @property
    def feature_stride(self) -> int:
        """Stride of the single feature map when fpn=False."""
        return 16 if self.single_map == "c4" else 32

    def replace(self, **changes) -> MaskRCNNConfig:
        """A copy with some fields changed (unknown names are refused)."""
        check_keys(changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> MaskRCNNConfig:
        check_keys(values)
        converted = {}
        for f in fields(cls):
            if f.name in values:
                value = values[f.name]
                converted[f.name] = tuple(value) if isinstance(value, list) else value
        return cls(**converted)

    @classmethod
    def torchvision(cls, **changes) -> MaskRCNNConfig:
        """torchvision's ``maskrcnn_resnet50_fpn`` as it runs its COCO weights: every field
        that differs from torchvision by default (the table at the top of this module) set to
        torchvision's value. With these weights loaded (``tinymask.from_torchvision``) the
        model gives torchvision's proposals, detections and masks, and its five training
        losses. ``changes`` then override any field (e.g. ``num_classes``)."""
        torchvision = dict(
            aligned=False, sampling_ratio=2,  # MultiScaleRoIAlign's defaults
            mask_target_aligned=False, binarize_mask_targets=False,  # project_masks_on_boxes
            anchor_strides_from_image=True,  # AnchorGenerator: image_size // grid_size
            roi_pool_bins_in_input_dtype=True,  # torchvision.ops.roi_pool computes in T
            frozen_bn_eps=0.0,  # the COCO weights were trained with eps 0
            mask_threshold=None,  # masks are returned as probabilities
            keypoint_resize_to_box=True,  # heatmaps_to_keypoints resizes to the box
        )
        torchvision.update(changes)
        check_keys(torchvision)
        return cls(**torchvision)

    @classmethod
    def small(cls, **changes) -> MaskRCNNConfig:
        """The CPU lessons' model: quarter-width ResNet-18 + FPN(64) with group norm, trained
        from scratch on 128-px synthetic images, with every count scaled down to match."""
        small = dict(
            backbone="resnet18_w16", fpn_channels=64, norm="gn", freeze_at=0,
            mask_conv_channels=64, box_head_dim=256, mask_mlp_dim=256, num_classes=4,
            keypoint_conv_channels=64,
            min_size=128, max_size=128, anchor_sizes=(8, 16, 32, 64, 128),
            rpn_batch_size_per_image=128, rpn_pre_nms_top_n_train=300,
            rpn_pre_nms_top_n_test=200, rpn_post_nms_top_n_train=300,
            rpn_post_nms_top_n_test=100, box_batch_size_per_image=128, detections_per_img=30,
            sampling_ratio=2,  # a fixed 2x2 grid per bin keeps small-image training cheap
        )
        small.update(changes)
        check_keys(small)
        return cls(**small)


def field_names() -> list[str]:
    return [f.name for f in fields(MaskRCNNConfig)]


def check_keys(values: dict) -> None:
    unknown = sorted(set(values) - set(field_names()))
    if unknown:
        raise UnknownFieldError(f"unknown MaskRCNNConfig field(s) {unknown}; valid fields: "
                                f"{', '.join(field_names())}")
