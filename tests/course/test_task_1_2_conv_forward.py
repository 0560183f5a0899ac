"""Task 1.2, a convolution as shifted matrix products (``tinymask/functional/conv.py``,
``conv2d_shifted``): lesson 1."""

import numpy as np
import pytest
from expect import expect_close

import tinymask as tm
import tinymask.functional as F

pytestmark = pytest.mark.task_1_2
rng = np.random.default_rng(0)


def conv_by_definition(x, weight, padding=0, dilation=1):
    """out[n, o, y, x] = sum over c, i, j of weight[o, c, i, j] * xpad[n, c, y + i*d, x + j*d]."""
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh = h + 2 * padding - dilation * (kh - 1)
    ow = w + 2 * padding - dilation * (kw - 1)
    out = np.zeros((n, o, oh, ow))
    for i in range(kh):
        for j in range(kw):
            window = xpad[:, :, i * dilation : i * dilation + oh, j * dilation : j * dilation + ow]
            out += np.einsum("oc,nchw->nohw", weight[:, :, i, j], window)
    return out


def test_a_3x3_box_filter_by_hand():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    out = F.conv2d(tm.Tensor(x), tm.Tensor(np.ones((1, 1, 3, 3)))).data
    # each output is the sum of a 3x3 window: 0+1+2+4+5+6+8+9+10 = 45, and so on
    expect_close(out, [[[[45.0, 54.0], [81.0, 90.0]]]], "3x3 sums over arange(16) as 4x4")


def test_padding_and_bias():
    x = np.ones((1, 1, 3, 3))
    out = F.conv2d(tm.Tensor(x), tm.Tensor(np.ones((1, 1, 3, 3))), tm.Tensor(np.array([0.5])),
                   padding=1).data
    expected = np.array([[4, 6, 4], [6, 9, 6], [4, 6, 4]]) + 0.5
    expect_close(out[0, 0], expected, "3x3 sums of ones with padding 1, bias 0.5")


@pytest.mark.parametrize("padding, dilation", [(0, 1), (1, 1), (2, 2), (1, 2)])
def test_several_channels_against_the_definition(padding, dilation):
    x = rng.standard_normal((2, 3, 7, 6))
    weight = rng.standard_normal((4, 3, 3, 3))
    got = F.conv2d(tm.Tensor(x), tm.Tensor(weight), padding=padding, dilation=dilation).data
    expect_close(got, conv_by_definition(x, weight, padding, dilation),
                 f"conv2d (2, 3, 7, 6) * (4, 3, 3, 3), padding {padding}, dilation {dilation}",
                 atol=1e-9)


def test_float32_stays_float32():
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    weight = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    got = F.conv2d(tm.Tensor(x), tm.Tensor(weight), padding=1).data
    expect_close(got, conv_by_definition(x.astype(np.float64), weight.astype(np.float64), 1),
                 "float32 conv2d", atol=1e-4, rtol=1e-4)
    assert got.dtype == np.float32, f"dtype of a float32 conv: expected float32, got {got.dtype}"
