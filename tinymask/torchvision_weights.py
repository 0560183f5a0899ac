"""torchvision's Mask R-CNN weights in and out: ``from_torchvision`` and ``to_torchvision``.

tinymask's modules carry torchvision's names (``backbone.body.layer1.0.conv1``,
``rpn.head.cls_logits``, ``roi_heads.box_head.fc6``...), so a state dict maps across name
for name, with one exception: torchvision (0.13 on) wraps four kinds of conv in a
``Conv2dNormActivation`` block, which adds an index to their names. These are the 26 of
``maskrcnn_resnet50_fpn``'s 307 entries that are renamed:

    torchvision                              tinymask (and torchvision before 0.13)
    backbone.fpn.inner_blocks.{i}.0.weight   backbone.fpn.inner_blocks.{i}.weight
    backbone.fpn.layer_blocks.{i}.0.weight   backbone.fpn.layer_blocks.{i}.weight
    rpn.head.conv.0.0.weight                 rpn.head.conv.weight
    roi_heads.mask_head.{i}.0.weight         roi_heads.mask_head.mask_fcn{i+1}.weight

(and the same for ``.bias``). The older names, which torchvision's own COCO checkpoint file
still uses, are accepted as they are. Load torchvision's weights into the model that runs
them as torchvision does: ``MaskRCNNConfig.torchvision()`` (the default here).

    import torch, torchvision, tinymask
    theirs = torchvision.models.detection.maskrcnn_resnet50_fpn(weights="DEFAULT")
    model = tinymask.from_torchvision(theirs.state_dict()).eval()
    theirs.load_state_dict({name: torch.from_numpy(array)
                            for name, array in tinymask.to_torchvision(model).items()})

torch is not needed here: a torch tensor is read through its ``.numpy()``.
"""

from __future__ import annotations

import re

import numpy

from tinymask.backend import to_numpy
from tinymask.config import MaskRCNNConfig
from tinymask.model.mask_rcnn import MaskRCNN

# (torchvision's pattern, tinymask's replacement) and back, for the renamed entries
_FROM_TORCHVISION = [
    (re.compile(r"^backbone\.fpn\.(inner|layer)_blocks\.(\d+)\.0\.(weight|bias)$"),
     lambda m: f"backbone.fpn.{m[1]}_blocks.{m[2]}.{m[3]}"),
    (re.compile(r"^rpn\.head\.conv\.0\.0\.(weight|bias)$"), lambda m: f"rpn.head.conv.{m[1]}"),
    (re.compile(r"^roi_heads\.mask_head\.(\d+)\.0\.(weight|bias)$"),
     lambda m: f"roi_heads.mask_head.mask_fcn{int(m[1]) + 1}.{m[2]}"),
]
_TO_TORCHVISION = [
    (re.compile(r"^backbone\.fpn\.(inner|layer)_blocks\.(\d+)\.(weight|bias)$"),
     lambda m: f"backbone.fpn.{m[1]}_blocks.{m[2]}.0.{m[3]}"),
    (re.compile(r"^rpn\.head\.conv\.(weight|bias)$"), lambda m: f"rpn.head.conv.0.0.{m[1]}"),
    (re.compile(r"^roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)$"),
     lambda m: f"roi_heads.mask_head.{int(m[1]) - 1}.0.{m[2]}"),
]
# BatchNorm2d's step counter: torchvision's randomly initialised build has batch norms that
# count their steps; the count does not change a single output, so it is not carried over
BATCH_COUNTER = "num_batches_tracked"


def _rename(name: str, rules) -> str:
    for pattern, replacement in rules:
        match = pattern.match(name)
        if match:
            return replacement(match)
    return name


def tinymask_name(torchvision_name: str) -> str:
    """torchvision's name of a state-dict entry -> tinymask's."""
    return _rename(torchvision_name, _FROM_TORCHVISION)


def torchvision_name(tinymask_name: str) -> str:
    """tinymask's name of a state-dict entry -> torchvision's current one."""
    return _rename(tinymask_name, _TO_TORCHVISION)


def _as_array(value):
    """A NumPy array from a NumPy or CuPy array or a torch tensor (on any device)."""
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        return value.detach().cpu().numpy()
    return to_numpy(value)


def from_torchvision(state_dict, config: MaskRCNNConfig | None = None) -> MaskRCNN:
    """A tinymask ``MaskRCNN`` holding torchvision's weights.

    state_dict: a torchvision Mask R-CNN's ``state_dict()`` (torch tensors or arrays), with
        current or pre-0.13 names.
    config: the model to build; by default ``MaskRCNNConfig.torchvision()`` with as many
        classes as the state dict's box predictor has rows (91 for COCO).

    Every entry of the model must be in the state dict and every entry of the state dict in
    the model (BatchNorm2d's ``num_batches_tracked`` counters excepted); otherwise a KeyError
    names them. A shape that does not fit raises a ValueError naming the entry. The model is
    returned in training mode, as built; call ``.eval()`` to predict.
    """
    arrays = {tinymask_name(name): _as_array(value) for name, value in state_dict.items()}
    if config is None:
        classifier = arrays.get("roi_heads.box_predictor.cls_score.weight")
        if classifier is None:
            raise KeyError("from_torchvision: no 'roi_heads.box_predictor.cls_score.weight' in "
                           "the state dict, so the number of classes is unknown: is it a "
                           "Mask R-CNN's? Pass config=MaskRCNNConfig.torchvision(num_classes=K)")
        config = MaskRCNNConfig.torchvision(num_classes=int(classifier.shape[0]))
    model = MaskRCNN(config)
    own = model.state_dict()
    arrays = {name: array for name, array in arrays.items()
              if name in own or not name.endswith(BATCH_COUNTER)}
    missing = [name for name in own if name not in arrays and not name.endswith(BATCH_COUNTER)]
    unexpected = [name for name in arrays if name not in own]
    if missing or unexpected:
        problems = []
        if missing:
            problems.append(f"missing (tinymask names) {_listed(missing)}")
        if unexpected:
            problems.append(f"not in this model {_listed(unexpected)}")
        raise KeyError(f"from_torchvision: the state dict does not fit MaskRCNN({_summary(config)}"
                       f"): {'; '.join(problems)}. Pass the config the weights were trained "
                       "with (backbone, fpn, num_classes, mask_branch ...)")
    model.load_state_dict(arrays, strict=False)
    return model


def to_torchvision(model: MaskRCNN) -> dict:
    """The model's weights under torchvision's current names: ``{name: NumPy array}``
    (copies), for ``torchvision_model.load_state_dict({k: torch.from_numpy(v) ...})``."""
    return {torchvision_name(name): numpy.array(to_numpy(array))
            for name, array in model.state_dict().items()}


def _listed(names, limit=8) -> str:
    shown = ", ".join(names[:limit])
    return f"[{shown}{f', ... ({len(names)} in all)' if len(names) > limit else ''}]"


def _summary(config: MaskRCNNConfig) -> str:
    return (f"backbone={config.backbone!r}, fpn={config.fpn}, num_classes={config.num_classes}, "
            f"mask_branch={config.mask_branch}")
