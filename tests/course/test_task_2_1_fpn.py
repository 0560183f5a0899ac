"""Task 2.1, the FPN's top-down pathway (``tinymask/model/fpn.py``, ``FPN.forward``):
lesson 2."""

import numpy as np
import pytest
from expect import expect_close, expect_equal

import tinymask as tm
from tinymask.model.fpn import FPN

pytestmark = pytest.mark.task_2_1


def identity_fpn():
    """One channel everywhere: 1x1 lateral convs that copy their input and 3x3 output convs
    that copy their centre cell, so P_i is the merged map itself."""
    fpn = FPN([1, 1, 1, 1], out_channels=1, extra_p6=False)
    for conv in fpn.inner_blocks:
        conv.weight.data[...] = 1.0
        conv.bias.data[...] = 0.0
    for conv in fpn.layer_blocks:
        conv.weight.data[...] = 0.0
        conv.weight.data[0, 0, 1, 1] = 1.0
        conv.bias.data[...] = 0.0
    return fpn


def nearest(array, size):
    rows = (np.arange(size[0]) * array.shape[0] // size[0])
    cols = (np.arange(size[1]) * array.shape[1] // size[1])
    return array[rows][:, cols]


def test_each_level_adds_the_upsampled_coarser_level():
    sizes = [(8, 12), (4, 6), (2, 3), (1, 2)]  # C2..C5
    rng = np.random.default_rng(0)
    maps = [rng.integers(0, 5, size=s).astype(np.float64) for s in sizes]
    outputs = identity_fpn()([tm.Tensor(m[None, None]) for m in maps])
    merged = maps[3]
    expected = [merged]
    for level in (2, 1, 0):
        merged = maps[level] + nearest(merged, sizes[level])
        expected.insert(0, merged)
    expect_equal([tuple(p.shape[-2:]) for p in outputs], sizes, "sizes of P2..P5")
    for name, got, want in zip(("P2", "P3", "P4", "P5"), outputs, expected):
        expect_close(got.data[0, 0], want, f"{name} of an identity FPN")


def test_odd_sizes_upsample_to_the_lateral_size():
    sizes = [(13, 21), (7, 11), (4, 6), (2, 3)]  # a 50 x 84 image: not halvings
    outputs = identity_fpn()([tm.Tensor(np.ones((1, 1, *s))) for s in sizes])
    expect_equal([tuple(p.shape[-2:]) for p in outputs], sizes, "sizes of P2..P5, odd input")
    expect_close(outputs[0].data, np.full((1, 1, 13, 21), 4.0), "P2 of all-ones maps")
