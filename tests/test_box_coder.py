"""Box coding (REFERENCE.md §3): hand-computed deltas, round trip, the decode clamp."""

import math

import numpy
import pytest

from tinymask.backend import is_cupy_array, to_backend, to_numpy
from tinymask.box_coder import DEFAULT_BBOX_XFORM_CLIP, BoxCoder


def test_encode_hand_table():
    proposals = numpy.array(
        [
            [0, 0, 10, 10],  # w = h = 10, centre (5, 5)
            [0, 0, 10, 10],
            [10, 20, 14, 28],  # w = 4, h = 8, centre (12, 24)
        ],
        dtype=numpy.float64,
    )
    gt_boxes = numpy.array(
        [
            [2, 2, 12, 12],  # same size, centre (7, 7): shift 2 / 10 = 0.2 each way
            [0, 0, 20, 10],  # twice as wide, centre (10, 5): dx = 5/10, dw = log 2
            [10, 20, 14, 28],  # identical: all zero
        ],
        dtype=numpy.float64,
    )
    deltas = BoxCoder().encode(gt_boxes, proposals)
    expected = numpy.array(
        [
            [0.2, 0.2, 0.0, 0.0],
            [0.5, 0.0, math.log(2), 0.0],
            [0.0, 0.0, 0.0, 0.0],
        ]
    )
    numpy.testing.assert_allclose(deltas, expected, rtol=1e-12, atol=1e-15)


def test_weights_scale_each_delta():
    proposals = numpy.array([[0, 0, 10, 10]], dtype=numpy.float64)
    gt_boxes = numpy.array([[0, 0, 20, 10]], dtype=numpy.float64)
    # The box head's (10, 10, 5, 5): dx = 10 * 0.5 = 5, dw = 5 * log 2.
    deltas = BoxCoder((10.0, 10.0, 5.0, 5.0)).encode(gt_boxes, proposals)
    numpy.testing.assert_allclose(deltas, [[5.0, 0.0, 5 * math.log(2), 0.0]], rtol=1e-12)


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_decode_inverts_encode(weights):
    rng = numpy.random.default_rng(0)
    proposals = _random_boxes(rng, 50)
    gt_boxes = _random_boxes(rng, 50)
    coder = BoxCoder(weights)
    decoded = coder.decode(coder.encode(gt_boxes, proposals), proposals)
    numpy.testing.assert_allclose(decoded, gt_boxes, rtol=1e-10, atol=1e-9)


def test_decode_clamps_dw_dh_at_log_1000_over_16():
    assert DEFAULT_BBOX_XFORM_CLIP == pytest.approx(math.log(62.5))
    proposals = numpy.array([[0, 0, 16, 16]], dtype=numpy.float64)  # w = h = 16, centre (8, 8)
    # dw = 10 would make the box e^10 * 16 = 352,423 pixels wide; the clamp stops at
    # 62.5 * 16 = 1000. dh = -10 is not clamped (only growth is): height 16 e^-10.
    rel_codes = numpy.array([[0.0, 0.0, 10.0, -10.0]])
    decoded = BoxCoder().decode(rel_codes, proposals)
    half_height = 8 * math.exp(-10)
    numpy.testing.assert_allclose(
        decoded, [[8 - 500, 8 - half_height, 8 + 500, 8 + half_height]], rtol=1e-12
    )


def test_decode_class_specific_deltas_one_group_per_class():
    rng = numpy.random.default_rng(1)
    num_boxes, num_classes = 7, 3
    proposals = _random_boxes(rng, num_boxes)
    rel_codes = rng.normal(0, 1, (num_boxes, 4 * num_classes))  # (N, 4K)
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    decoded = coder.decode(rel_codes, proposals)
    assert decoded.shape == (num_boxes, 4 * num_classes)
    for k in range(num_classes):
        one_class = coder.decode(rel_codes[:, 4 * k : 4 * k + 4], proposals)
        numpy.testing.assert_array_equal(decoded[:, 4 * k : 4 * k + 4], one_class)


def test_decode_keeps_the_dtype_of_the_codes():
    anchors = numpy.array([[0, 0, 8, 8]], dtype=numpy.float32)
    assert BoxCoder().decode(numpy.zeros((1, 4), numpy.float32), anchors).dtype == numpy.float32
    assert BoxCoder().decode(numpy.zeros((1, 4), numpy.float64), anchors).dtype == numpy.float64


def test_empty_inputs():
    none = numpy.zeros((0, 4), dtype=numpy.float32)
    coder = BoxCoder()
    assert coder.encode(none, none).shape == (0, 4)
    assert coder.decode(numpy.zeros((0, 8), numpy.float32), none).shape == (0, 8)


def test_shape_errors_say_what_was_wrong():
    boxes = numpy.zeros((3, 4), dtype=numpy.float32)
    coder = BoxCoder()
    with pytest.raises(ValueError, match="3 reference boxes and 2 proposals"):
        coder.encode(boxes, boxes[:2])
    with pytest.raises(ValueError, match=r"\(N, 4\*K\), got shape \(3, 5\)"):
        coder.decode(numpy.zeros((3, 5)), boxes)
    with pytest.raises(ValueError, match="2 rows of rel_codes and 3 boxes"):
        coder.decode(numpy.zeros((2, 4)), boxes)
    with pytest.raises(ValueError, match="four numbers"):
        BoxCoder((1.0, 1.0))


@pytest.mark.torch
def test_matches_torchvision_box_coder():
    det_utils = pytest.importorskip("torchvision.models.detection._utils")
    torch = pytest.importorskip("torch")
    rng = numpy.random.default_rng(2)
    proposals = _random_boxes(rng, 40).astype(numpy.float32)
    gt_boxes = _random_boxes(rng, 40).astype(numpy.float32)
    rel_codes = rng.normal(0, 3, (40, 8)).astype(numpy.float32)
    weights = (10.0, 10.0, 5.0, 5.0)
    ours = BoxCoder(weights)
    theirs = det_utils.BoxCoder(weights)
    numpy.testing.assert_allclose(
        ours.encode(gt_boxes, proposals),
        theirs.encode_single(torch.from_numpy(gt_boxes), torch.from_numpy(proposals)).numpy(),
        rtol=1e-6,
        atol=1e-6,
    )
    numpy.testing.assert_allclose(
        ours.decode(rel_codes, proposals),
        theirs.decode_single(torch.from_numpy(rel_codes), torch.from_numpy(proposals)).numpy(),
        rtol=1e-6,
        atol=1e-4,
    )


def _random_boxes(rng, count):
    # Sides from 10 to 300: no size ratio exceeds 62.5, so the decode clamp never bites.
    top_left = rng.uniform(0, 500, (count, 2))
    size = rng.uniform(10, 300, (count, 2))
    return numpy.concatenate([top_left, top_left + size], axis=1)


@pytest.mark.gpu
def test_box_coder_on_cupy_arrays_matches_numpy():
    rng = numpy.random.default_rng(3)
    proposals = _random_boxes(rng, 30).astype(numpy.float32)
    gt_boxes = _random_boxes(rng, 30).astype(numpy.float32)
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    deltas = coder.encode(to_backend(gt_boxes, "cupy"), to_backend(proposals, "cupy"))
    assert is_cupy_array(deltas)
    numpy.testing.assert_allclose(to_numpy(deltas), coder.encode(gt_boxes, proposals), rtol=1e-5)
    rel_codes = rng.normal(0, 1, (30, 8)).astype(numpy.float32)
    decoded = coder.decode(to_backend(rel_codes, "cupy"), to_backend(proposals, "cupy"))
    numpy.testing.assert_allclose(
        to_numpy(decoded), coder.decode(rel_codes, proposals), rtol=1e-5, atol=1e-3
    )
