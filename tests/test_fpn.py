"""FPN: P2..P6 shapes and strides (including odd sizes), torchvision's parameter count, and
that the top-down path and P6 are wired as the paper says."""

import numpy as np
import pytest

import tinymask as tm
from tinymask.model import FPN, BackboneWithFPN, ResNet


def test_parameter_count_of_the_r50_fpn():
    fpn = FPN([256, 512, 1024, 2048], 256)
    lateral = (256 + 512 + 1024 + 2048) * 256 + 4 * 256
    output = 4 * (256 * 256 * 9 + 256)
    assert fpn.num_parameters() == lateral + output == 3_344_384


@pytest.mark.parametrize("size, expected", [
    ((224, 224), [(56, 56), (28, 28), (14, 14), (7, 7), (4, 4)]),
    ((200, 333), [(50, 84), (25, 42), (13, 21), (7, 11), (4, 6)]),
])
def test_pyramid_shapes_and_strides(size, expected):
    backbone = BackboneWithFPN(ResNet("resnet18_w16", norm="gn"), out_channels=32)
    image = tm.Tensor(np.random.default_rng(0).standard_normal((2, 3, *size)).astype(np.float32))
    pyramid = backbone(image)
    assert list(pyramid) == ["p2", "p3", "p4", "p5", "p6"]
    assert backbone.out_strides == {"p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64}
    assert [p.shape for p in pyramid.values()] == [(2, 32, h, w) for h, w in expected]


def _levels(seed, channels=(4, 6, 8, 10), sizes=((8, 12), (4, 6), (2, 3), (1, 2))):
    rng = np.random.default_rng(seed)
    return [tm.Tensor(rng.standard_normal((1, c, h, w))) for c, (h, w) in zip(channels, sizes)]


def test_top_down_path_reaches_the_finest_level_and_p6_subsamples_p5():
    tm.manual_seed(0)
    fpn = FPN([4, 6, 8, 10], out_channels=5).double()
    levels = _levels(0)
    p2, p3, p4, p5, p6 = fpn(levels)
    np.testing.assert_array_equal(p6.data, p5.data[:, :, ::2, ::2])  # max-pool, kernel 1, stride 2
    changed = levels[:3] + [tm.Tensor(levels[3].data + 1.0)]  # only C5 changes...
    q2 = fpn(changed)[0]
    assert not np.allclose(q2.data, p2.data)  # ...and P2 sees it through the top-down path


def test_fpn_gradient_check():
    tm.manual_seed(0)
    fpn = FPN([2, 3], out_channels=2, extra_p6=False).double()
    rng = np.random.default_rng(1)
    c4 = tm.Tensor(rng.standard_normal((1, 2, 3, 5)), requires_grad=True)
    c5 = tm.Tensor(rng.standard_normal((1, 3, 2, 3)), requires_grad=True)  # 3x5 <- 2x3: odd

    def pyramid_sum(c4, c5, *params):
        p4, p5 = fpn([c4, c5])
        return (p4 * p4).sum() + p5.sum()

    assert tm.gradcheck(pyramid_sum, [c4, c5, *fpn.parameters()]) < 1e-6
