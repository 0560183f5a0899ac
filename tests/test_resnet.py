"""ResNet/ResNeXt: torchvision's parameter counts, stage shapes and strides, the C4 and C5
variants, freezing, and gradients reaching every weight."""

import numpy as np
import pytest

import tinymask as tm
from tinymask import nn
from tinymask.model import ResNet, make_res5_head

# torchvision's published counts, 1000-way fc and batch-norm affine included
TORCHVISION_COUNTS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnext50_32x4d": 25_028_904,
}


@pytest.mark.parametrize("name", sorted(TORCHVISION_COUNTS))
def test_parameter_count_equals_torchvision(name):
    assert ResNet(name, num_classes=1000).num_parameters() == TORCHVISION_COUNTS[name]


def _image(h, w, n=1):
    return tm.Tensor(np.random.default_rng(0).standard_normal((n, 3, h, w)).astype(np.float32))


@pytest.mark.parametrize("size, expected", [
    ((224, 224), {"res2": (56, 56), "res3": (28, 28), "res4": (14, 14), "res5": (7, 7)}),
    # odd sizes: each stride-2 conv rounds up ((s + 2p - k) // 2 + 1)
    ((200, 333), {"res2": (50, 84), "res3": (25, 42), "res4": (13, 21), "res5": (7, 11)}),
])
def test_stage_shapes_and_strides(size, expected):
    net = ResNet("resnet50_w8", norm="gn")  # bottlenecks at 1/8 width: same geometry, fast
    features = net(_image(*size))
    assert list(features) == ["res2", "res3", "res4", "res5"]
    assert net.out_strides == {"res2": 4, "res3": 8, "res4": 16, "res5": 32}
    for name, (h, w) in expected.items():
        assert features[name].shape == (1, net.out_channels[name], h, w)
    assert net.out_channels == {"res2": 32, "res3": 64, "res4": 128, "res5": 256}


def test_torchvision_names():
    names = list(ResNet("resnet50").state_dict())
    assert names[:7] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean",
                         "bn1.running_var", "bn1.num_batches_tracked", "layer1.0.conv1.weight"]
    assert "layer1.0.downsample.0.weight" in names and "layer1.0.downsample.1.running_var" in names
    assert "layer4.2.bn3.bias" in names


def test_c4_trunk_and_res5_head_make_the_whole_resnet():
    trunk = ResNet("resnet50", out_features=("res4",))
    assert not hasattr(trunk, "layer4") or trunk._modules.get("layer4") is None
    head = make_res5_head("resnet50")
    fc = 2048 * 1000 + 1000
    assert trunk.num_parameters() + head.num_parameters() == TORCHVISION_COUNTS["resnet50"] - fc
    small_trunk = ResNet("resnet50_w8", out_features=("res4",), norm="gn")
    c4 = small_trunk(_image(64, 96))["res4"]
    assert c4.shape == (1, 128, 4, 6)  # stride 16
    pooled = tm.Tensor(np.ones((3, 128, 14, 14), dtype=np.float32))  # three RoIs, 14x14
    assert make_res5_head("resnet50_w8", norm="gn")(pooled).shape == (3, 256, 7, 7)


def test_c5_single_map_at_stride_32():
    net = ResNet("resnet18_w16", out_features=("res5",), norm="gn")
    features = net(_image(128, 160))
    assert list(features) == ["res5"] and features["res5"].shape == (1, 128, 4, 5)


def test_gradients_reach_every_parameter():
    net = ResNet("resnext50_32x4d_w16", norm="bn", num_classes=3)
    image = _image(64, 64, n=2)
    total = sum(f.mean() for f in net(image).values()) + net.classify(image).sum()
    total.backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:5]}"


def test_freeze_at_freezes_stem_and_res2():
    net = ResNet("resnet18_w16", norm="bn", freeze_at=2)
    frozen = {name for name, p in net.named_parameters() if not p.requires_grad}
    assert frozen == {"conv1.weight", "layer1.0.conv1.weight", "layer1.0.conv2.weight",
                      "layer1.1.conv1.weight", "layer1.1.conv2.weight"}
    assert isinstance(net.bn1, nn.FrozenBatchNorm2d)
    assert isinstance(net.layer1[0].bn1, nn.FrozenBatchNorm2d)
    assert isinstance(net.layer2[0].bn1, nn.BatchNorm2d)
    sum(f.sum() for f in net(_image(64, 64, n=2)).values()).backward()
    assert net.conv1.weight.grad is None and net.layer2[0].conv1.weight.grad is not None


def test_init_is_kaiming_fan_out():
    net = ResNet("resnet50")
    weight = net.layer3[0].conv2.weight.data  # 256 x 256 x 3 x 3
    assert weight.std() == pytest.approx(np.sqrt(2 / (256 * 9)), rel=0.02)
    assert np.all(net.layer3[0].bn2.weight.data == 1)


@pytest.mark.parametrize("name, message", [
    ("resnet19", "unknown backbone"),
    ("resnet18_w12", "multiple of 8"),
])
def test_bad_names_are_explained(name, message):
    with pytest.raises(ValueError, match=message):
        ResNet(name)


def test_unknown_norm_and_features():
    with pytest.raises(ValueError, match="unknown norm 'ln'"):
        ResNet("resnet18_w16", norm="ln")
    with pytest.raises(ValueError, match="out_features"):
        ResNet("resnet18_w16", out_features=("res6",))


@pytest.mark.torch
def test_same_outputs_as_torchvision_with_the_same_weights():
    torchvision = pytest.importorskip("torchvision")
    torch = pytest.importorskip("torch")
    theirs = torchvision.models.resnet18(num_classes=10).double().eval()
    ours = ResNet("resnet18", num_classes=10).double().eval()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64))
    np.testing.assert_allclose(ours.classify(tm.Tensor(x)).data,
                               theirs(torch.tensor(x)).detach().numpy(), rtol=1e-6, atol=1e-8)
