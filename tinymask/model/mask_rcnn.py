"""Mask R-CNN (He et al. 2017): the whole model, built from a ``MaskRCNNConfig``.

    images --transform--> batch (N, 3, H, W) --backbone (+FPN)--> features
           --RPN--> proposals --RoI heads--> losses (training) | detections + masks (eval)

Contract (torchvision's): in training mode ``model(images, targets)`` returns a dict of
scalar loss Tensors ``loss_objectness, loss_rpn_box_reg, loss_classifier, loss_box_reg,
loss_mask``; in eval mode ``model(images)`` returns one dict per image with ``boxes`` (D, 4)
xyxy in the original image's pixels, ``labels`` (D,), ``scores`` (D,) and ``masks``
(D, H, W) (binary at ``config.mask_threshold``, probabilities if it is None).
With ``config.keypoint_branch`` (Keypoint R-CNN, paper §5) targets also hold ``keypoints``
(M, K, 3) ``(x, y, v)``, training adds ``loss_keypoint``, and eval adds ``keypoints``
(D, K, 3) and ``keypoints_scores`` (D, K); ``mask_branch=False`` drops the masks.
``inspect=True`` also returns what happened inside (anchors, RPN labels, proposals, sampled
RoIs, mask targets), for the lessons.
"""

from __future__ import annotations

from tinymask import nn
from tinymask.anchors import AnchorGenerator
from tinymask.config import MaskRCNNConfig
from tinymask.model.fpn import BackboneWithFPN
from tinymask.model.heads import BoxPredictor, MaskFCNHead, MaskMLPHead, MaskPredictor, TwoMLPHead
from tinymask.model.keypoint_head import KeypointHead, KeypointPredictor
from tinymask.model.resnet import ResNet, make_res5_head
from tinymask.model.roi_heads import RoIHeads
from tinymask.model.rpn import RPN
from tinymask.model.transform import ImageTransform
from tinymask.ops.poolers import RoIPooler
from tinymask.random import generator as global_generator
from tinymask.tensor import Tensor

FPN_STRIDES = (4, 8, 16, 32, 64)  # P2..P6


def build_backbone(config: MaskRCNNConfig):
    """-> (module, RPN feature names, RoI feature names, their strides, channels)."""
    if config.fpn:
        body = ResNet(config.backbone, norm=config.norm, freeze_at=config.freeze_at,
                      frozen_bn_eps=config.frozen_bn_eps)
        backbone = BackboneWithFPN(body, config.fpn_channels)
        return backbone, ["p2", "p3", "p4", "p5", "p6"], ["p2", "p3", "p4", "p5"], \
            [4, 8, 16, 32], config.fpn_channels
    stage = "res4" if config.single_map == "c4" else "res5"
    body = ResNet(config.backbone, out_features=(stage,), norm=config.norm,
                  freeze_at=config.freeze_at, frozen_bn_eps=config.frozen_bn_eps)
    return body, [stage], [stage], [config.feature_stride], body.out_channels[stage]


def build_anchor_generator(config: MaskRCNNConfig) -> AnchorGenerator:
    if config.fpn:  # one size per level
        return AnchorGenerator(tuple((size,) for size in config.anchor_sizes),
                               config.aspect_ratios, FPN_STRIDES,
                               config.anchor_strides_from_image)
    return AnchorGenerator((tuple(config.anchor_sizes),), config.aspect_ratios,
                           (config.feature_stride,), config.anchor_strides_from_image)


def _pooler(config, output_size, strides):
    return RoIPooler(output_size, strides, op=config.roi_op, aggregation=config.roi_aggregation,
                     aligned=config.aligned, sampling_ratio=config.sampling_ratio,
                     roi_pool_bins_in_input_dtype=config.roi_pool_bins_in_input_dtype,
                     warp_aligned=config.warp_aligned)


def build_roi_heads(config: MaskRCNNConfig, channels: int, strides) -> RoIHeads:
    num_classes = config.num_classes
    mask_pooler = mask_head = mask_predictor = res5_head = box_head = None
    if config.uses_c4_head:
        # Detectron2's Res5ROIHeads: pool 14x14 from res4, res5 on every RoI
        res5_head = make_res5_head(config.backbone, norm=config.norm,
                                   frozen_bn_eps=config.frozen_bn_eps)
        res5_channels = channels * 2
        box_pooler = _pooler(config, config.mask_pool_size, strides)
        box_predictor = BoxPredictor(res5_channels, num_classes)
        if config.mask_branch:
            mask_predictor = MaskPredictor(res5_channels, config.mask_conv_channels, num_classes)
    else:
        box_pooler = _pooler(config, config.box_pool_size, strides)
        box_head = TwoMLPHead(channels * config.box_pool_size**2, config.box_head_dim)
        box_predictor = BoxPredictor(config.box_head_dim, num_classes)
        if config.mask_branch:
            mask_pooler = _pooler(config, config.mask_pool_size, strides)
            if config.mask_head == "fcn":
                mask_head = MaskFCNHead(channels, config.mask_conv_channels)
                mask_predictor = MaskPredictor(mask_head.out_channels, config.mask_conv_channels,
                                               num_classes)
            else:
                mask_head = MaskMLPHead(channels * config.mask_pool_size**2, config.mask_mlp_dim,
                                        config.mask_mlp_layers, num_classes, config.mask_size)
    if config.uses_c4_head and config.mask_branch and config.mask_head == "mlp":
        raise ValueError("mask_head='mlp' is defined for the FPN/C5 heads (Table 2e), not C4")
    keypoint_pooler = keypoint_head = keypoint_predictor = None
    if config.keypoint_branch:  # its own 14x14 RoIAlign on the RoI maps, whatever the box head
        keypoint_pooler = _pooler(config, config.keypoint_pool_size, strides)
        keypoint_head = KeypointHead(channels, config.keypoint_conv_channels)
        keypoint_predictor = KeypointPredictor(keypoint_head.out_channels, config.num_keypoints)
    return RoIHeads(
        box_pooler=box_pooler, box_head=box_head, box_predictor=box_predictor,
        mask_pooler=mask_pooler, mask_head=mask_head, mask_predictor=mask_predictor,
        res5_head=res5_head,
        keypoint_pooler=keypoint_pooler, keypoint_head=keypoint_head,
        keypoint_predictor=keypoint_predictor,
        keypoint_resize_to_box=config.keypoint_resize_to_box,
        fg_iou_thresh=config.box_fg_iou_thresh, bg_iou_thresh=config.box_bg_iou_thresh,
        batch_size_per_image=config.box_batch_size_per_image,
        positive_fraction=config.box_positive_fraction,
        bbox_reg_weights=config.bbox_reg_weights, smooth_l1_beta=config.box_smooth_l1_beta,
        mask_size=config.mask_size, mask_loss=config.mask_loss,
        mask_target_aligned=config.mask_target_aligned,
        binarize_mask_targets=config.binarize_mask_targets,
        score_thresh=config.box_score_thresh, min_size=config.box_min_size,
        nms_thresh=config.box_nms_thresh, detections_per_img=config.detections_per_img)


class MaskRCNN(nn.Module):
    def __init__(self, config: MaskRCNNConfig | None = None):
        super().__init__()
        config = config or MaskRCNNConfig()
        self.config = config
        self.transform = ImageTransform(config.min_size, config.max_size, config.image_mean,
                                        config.image_std, config.size_divisibility,
                                        num_classes=config.num_classes,
                                        num_keypoints=config.num_keypoints
                                        if config.keypoint_branch else None)
        backbone, self.rpn_features, self.roi_features, strides, channels = \
            build_backbone(config)
        self.backbone = backbone
        self.rpn = RPN(
            channels, build_anchor_generator(config),
            fg_iou_thresh=config.rpn_fg_iou_thresh, bg_iou_thresh=config.rpn_bg_iou_thresh,
            batch_size_per_image=config.rpn_batch_size_per_image,
            positive_fraction=config.rpn_positive_fraction,
            pre_nms_top_n=(config.rpn_pre_nms_top_n_train, config.rpn_pre_nms_top_n_test),
            post_nms_top_n=(config.rpn_post_nms_top_n_train, config.rpn_post_nms_top_n_test),
            nms_thresh=config.rpn_nms_thresh, min_size=config.rpn_min_size,
            smooth_l1_beta=config.box_smooth_l1_beta)
        self.roi_heads = build_roi_heads(config, channels, strides)

    def forward(self, images, targets=None, inspect=False, generator=None):
        """images: list of (H, W, 3) uint8 or (3, H, W) float arrays; targets (training): one
        dict per image with ``boxes`` (M, 4) xyxy, ``labels`` (M,) in 1..K, ``masks`` (M, H, W).
        generator: the ``numpy.random.Generator`` the samplers draw from (default: tinymask's
        global one, see ``tinymask.manual_seed``); the trainer passes one per step so that a
        resumed run samples exactly as an uninterrupted one."""
        if self.training and targets is None:
            raise ValueError("in training mode the model needs targets: model(images, targets)")
        batch, targets = self.transform(images, targets if self.training else None)
        generator = generator if generator is not None else global_generator()
        features = self.backbone(Tensor(batch.images))  # {"p2": (N, F, H/4, W/4), ...}
        gt_boxes = [target["boxes"] for target in targets] if targets else None
        proposals, rpn_losses, rpn_details = self.rpn(
            [features[name] for name in self.rpn_features], batch.image_sizes, gt_boxes, generator,
            padded_size=batch.images.shape[-2:])
        detections, roi_losses, roi_details = self.roi_heads(
            [features[name] for name in self.roi_features], proposals, batch.image_sizes,
            targets, generator)
        if self.training:
            output = {**rpn_losses, **roi_losses}
        else:
            output = self.transform.postprocess(detections, batch.image_sizes,
                                                batch.original_sizes, self.config.mask_threshold)
        if inspect:
            return output, {"batch": batch, "targets": targets, "features": features,
                            "rpn": rpn_details, "roi_heads": roi_details}
        return output
