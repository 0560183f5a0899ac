"""Task 5.2, box encode and decode (``tinymask/box_coder.py``, ``BoxCoder``): lesson 5."""

import math

import numpy as np
import pytest
from expect import expect_close

from tinymask.box_coder import BoxCoder

pytestmark = pytest.mark.task_5_2


def test_encode_one_box_by_hand():
    proposal = np.array([[0.0, 0, 10, 10]])  # centre (5, 5), 10 x 10
    target = np.array([[1.0, 2, 11, 14]])  # centre (6, 8), 10 x 12
    expected = [[(6 - 5) / 10, (8 - 5) / 10, math.log(10 / 10), math.log(12 / 10)]]
    expect_close(BoxCoder().encode(target, proposal), expected,
                 "deltas of [1,2,11,14] from [0,0,10,10], weights (1,1,1,1)")


def test_encode_scales_by_the_weights():
    proposal = np.array([[0.0, 0, 10, 10]])
    target = np.array([[1.0, 2, 11, 14]])
    expected = [[10 * 0.1, 10 * 0.3, 5 * 0.0, 5 * math.log(1.2)]]
    expect_close(BoxCoder((10, 10, 5, 5)).encode(target, proposal), expected,
                 "deltas with the box head's weights (10, 10, 5, 5)")


def test_decode_one_box_by_hand():
    reference = np.array([[0.0, 0, 10, 10]])
    deltas = np.array([[0.1, 0.3, 0.0, math.log(1.2)]])  # centre -> (6, 8), size -> 10 x 12
    expect_close(BoxCoder().decode(deltas, reference), [[1.0, 2, 11, 14]],
                 "box from deltas [0.1, 0.3, 0, log 1.2] on [0,0,10,10]")


def test_decode_undoes_encode_for_several_classes():
    rng = np.random.default_rng(0)
    reference = np.array([[5.0, 5, 25, 15], [0.0, 10, 8, 40]])
    corners = rng.uniform(0, 50, size=(2, 3, 2, 2))  # 3 classes per reference box
    targets = np.concatenate([corners.min(axis=2), corners.max(axis=2) + 1], axis=2)
    coder = BoxCoder((10, 10, 5, 5))
    codes = np.concatenate([coder.encode(targets[:, k], reference) for k in range(3)], axis=1)
    expect_close(coder.decode(codes, reference), targets.reshape(2, 12),
                 "decode(encode(boxes)) with 3 classes per box", atol=1e-9)


def test_decode_clamps_huge_size_deltas():
    reference = np.array([[0.0, 0, 16, 16]])
    deltas = np.array([[0.0, 0.0, 50.0, 50.0]])  # exp(50): clamped at log(1000 / 16)
    expect_close(BoxCoder().decode(deltas, reference), [[-492.0, -492, 508, 508]],
                 "box from dw = dh = 50 on a 16-pixel box (1000 pixels at most)")
