"""Weights in and out of torchvision: ``tinymask.from_torchvision`` / ``to_torchvision``.

The renaming and the errors are checked on NumPy arrays (no torch needed); the round trips
through torchvision's own models run where torchvision is installed."""

import numpy as np
import pytest

import tinymask as tm
from tinymask.torchvision_weights import tinymask_name, torchvision_name

SMALL = dict(min_size=64, max_size=64)
RENAMED = {
    "backbone.fpn.inner_blocks.2.0.weight": "backbone.fpn.inner_blocks.2.weight",
    "backbone.fpn.layer_blocks.3.0.bias": "backbone.fpn.layer_blocks.3.bias",
    "rpn.head.conv.0.0.weight": "rpn.head.conv.weight",
    "roi_heads.mask_head.0.0.weight": "roi_heads.mask_head.mask_fcn1.weight",
    "roi_heads.mask_head.3.0.bias": "roi_heads.mask_head.mask_fcn4.bias",
}


def test_names_map_both_ways():
    for theirs, ours in RENAMED.items():
        assert tinymask_name(theirs) == ours
        assert torchvision_name(ours) == theirs
    for same in ("backbone.body.layer1.0.conv1.weight", "rpn.head.cls_logits.bias",
                 "roi_heads.box_head.fc6.weight", "roi_heads.mask_predictor.conv5_mask.weight"):
        assert tinymask_name(same) == torchvision_name(same) == same


def test_round_trip_through_torchvisions_names():
    tm.manual_seed(0)
    model = tm.MaskRCNN(tm.MaskRCNNConfig.small(**SMALL))
    exported = tm.to_torchvision(model)
    assert "rpn.head.conv.0.0.weight" in exported and "rpn.head.conv.weight" not in exported
    tm.manual_seed(1)  # different random weights, all replaced by the loaded ones
    loaded = tm.from_torchvision(exported, tm.MaskRCNNConfig.small(**SMALL))
    for name, array in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], array, err_msg=name)


def test_the_old_names_load_as_they_are():
    """torchvision's COCO checkpoint file still has the pre-0.13 names, which are ours."""
    tm.manual_seed(0)
    model = tm.MaskRCNN(tm.MaskRCNNConfig.small(**SMALL))
    loaded = tm.from_torchvision(model.state_dict(), tm.MaskRCNNConfig.small(**SMALL))
    np.testing.assert_array_equal(loaded.rpn.head.conv.weight.data, model.rpn.head.conv.weight.data)


def test_the_number_of_classes_comes_from_the_box_predictor():
    """Without a config: MaskRCNNConfig.torchvision() with the state dict's classes."""
    tm.manual_seed(0)
    config = tm.MaskRCNNConfig.torchvision(num_classes=5, fpn_channels=32, backbone="resnet18_w16",
                                           mask_conv_channels=32, box_head_dim=64)
    exported = tm.to_torchvision(tm.MaskRCNN(config))
    # the default is torchvision's resnet50, which this small backbone does not fit
    with pytest.raises(KeyError, match="backbone='resnet50', fpn=True, num_classes=5"):
        tm.from_torchvision(exported)
    loaded = tm.from_torchvision(exported, config)
    assert loaded.config.num_classes == 5 and loaded.config.aligned is False


def test_missing_and_extra_entries_are_named():
    config = tm.MaskRCNNConfig.small(**SMALL)
    exported = tm.to_torchvision(tm.MaskRCNN(config))
    incomplete = dict(exported)
    del incomplete["rpn.head.conv.0.0.bias"]
    with pytest.raises(KeyError, match=r"missing \(tinymask names\) \[rpn\.head\.conv\.bias\]"):
        tm.from_torchvision(incomplete, config)
    extra = {**exported, "roi_heads.keypoint_head.0.weight": np.zeros(3)}
    with pytest.raises(KeyError, match=r"not in this model \[roi_heads\.keypoint_head"):
        tm.from_torchvision(extra, config)
    without_mask_branch = config.replace(mask_branch=False)
    with pytest.raises(KeyError, match="mask_branch=False"):
        tm.from_torchvision(exported, without_mask_branch)
    with pytest.raises(KeyError, match="number of classes is unknown"):
        tm.from_torchvision({"backbone.body.conv1.weight": np.zeros((64, 3, 7, 7))})


@pytest.fixture(scope="module")
def torchvision_models():
    """torchvision's maskrcnn_resnet50_fpn as a new user builds it (random weights, trainable
    BatchNorm2d, which count their steps in num_batches_tracked), and a second one."""
    torch = pytest.importorskip("torch")
    detection = pytest.importorskip("torchvision").models.detection
    torch.manual_seed(0)
    first = detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    second = detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    return torch, first, second


@pytest.mark.torchvision
def test_torchvision_round_trip(torchvision_models):
    torch, theirs, other = torchvision_models
    state = theirs.state_dict()
    model = tm.from_torchvision(state)  # torch tensors in, MaskRCNNConfig.torchvision()
    assert model.config.num_classes == 91 and model.config.frozen_bn_eps == 0.0
    exported = tm.to_torchvision(model)
    counted = {name for name in state if name.endswith("num_batches_tracked")}
    assert set(exported) == set(state) - counted  # torchvision's current names, all of them
    for name, array in exported.items():
        np.testing.assert_array_equal(array, state[name].numpy(), err_msg=name)
    # and back into another torchvision model, strictly
    other.load_state_dict({name: torch.from_numpy(array) for name, array in exported.items()})
    for name, value in other.state_dict().items():
        if name not in counted:
            assert torch.equal(value, state[name]), name


@pytest.mark.torchvision
def test_torchvision_names_before_0_13_load_too(torchvision_models):
    _, theirs, _ = torchvision_models
    old_names = {tinymask_name(name): value for name, value in theirs.state_dict().items()}
    model = tm.from_torchvision(old_names)
    np.testing.assert_array_equal(model.roi_heads.mask_head.mask_fcn2.weight.data,
                                  theirs.roi_heads.mask_head[1][0].weight.detach().numpy())
