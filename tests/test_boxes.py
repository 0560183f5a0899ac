"""Box geometry: hand-computed tables, IoU properties, shape errors (REFERENCE.md §6)."""

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinymask.backend import is_cupy_array, to_backend, to_numpy
from tinymask.boxes import (
    box_area,
    box_iou,
    box_xywh_to_xyxy,
    box_xyxy_to_xywh,
    clip_boxes_to_image,
    remove_small_boxes,
)


def test_box_area_has_no_plus_one():
    boxes = numpy.array(
        [
            [0, 0, 2, 3],  # 2 wide, 3 tall: 6 (old Detectron's +1 would give 12)
            [1, 1, 1, 5],  # zero width: 0
            [0.5, 0.5, 1.0, 1.5],  # 0.5 x 1.0: 0.5
        ],
        dtype=numpy.float32,
    )
    numpy.testing.assert_array_equal(box_area(boxes), [6.0, 0.0, 0.5])


def test_box_iou_hand_table():
    boxes1 = numpy.array([[0, 0, 2, 2], [0, 0, 4, 4]], dtype=numpy.float64)
    boxes2 = numpy.array([[0, 0, 2, 2], [1, 1, 3, 3], [2, 0, 4, 2]], dtype=numpy.float64)
    expected = numpy.array(
        [
            # [0,0,2,2] vs itself: 1; vs [1,1,3,3]: inter 1, union 4 + 4 - 1 = 7;
            # vs [2,0,4,2]: the boxes touch along x = 2, inter 0.
            [1.0, 1 / 7, 0.0],
            # [0,0,4,4] (area 16) contains [0,0,2,2]: 4/16; contains [1,1,3,3]: 4/16;
            # contains [2,0,4,2]: 4/16.
            [0.25, 0.25, 0.25],
        ]
    )
    numpy.testing.assert_allclose(box_iou(boxes1, boxes2), expected, rtol=1e-15)


def test_box_iou_of_two_empty_boxes_is_zero_not_nan():
    # Two zero-area boxes: union 0. torchvision gives NaN; tinymask defines it as 0.
    point = numpy.array([[1, 1, 1, 1]], dtype=numpy.float32)
    line = numpy.array([[0, 2, 5, 2]], dtype=numpy.float32)
    iou = box_iou(point, numpy.concatenate([point, line]))
    numpy.testing.assert_array_equal(iou, [[0.0, 0.0]])
    assert iou.dtype == numpy.float32


def test_box_iou_shapes_with_empty_sets():
    some = numpy.array([[0, 0, 1, 1]], dtype=numpy.float32)
    none = numpy.zeros((0, 4), dtype=numpy.float32)
    assert box_iou(some, none).shape == (1, 0)
    assert box_iou(none, some).shape == (0, 1)


@pytest.mark.parametrize(
    "bad_shape",
    [(4,), (3, 5), (2, 2, 4)],
)
def test_wrong_box_shape_names_the_shape(bad_shape):
    bad = numpy.zeros(bad_shape, dtype=numpy.float32)
    good = numpy.zeros((1, 4), dtype=numpy.float32)
    with pytest.raises(ValueError, match=str(bad_shape).replace("(", r"\(").replace(")", r"\)")):
        box_iou(bad, good)
    with pytest.raises(ValueError, match="shape"):
        box_area(bad)
    with pytest.raises(ValueError, match="shape"):
        remove_small_boxes(bad, 1.0)


# Boxes as (x1, y1, width, height) with width, height > 0, in a range where float64 areas are
# far from overflow and underflow.
_coordinate = st.floats(-1000, 1000, allow_nan=False, allow_infinity=False)
_side = st.floats(0.01, 1000, allow_nan=False, allow_infinity=False)
_box = st.tuples(_coordinate, _coordinate, _side, _side).map(
    lambda xywh: [xywh[0], xywh[1], xywh[0] + xywh[2], xywh[1] + xywh[3]]
)
_boxes = st.lists(_box, min_size=1, max_size=8).map(lambda rows: numpy.array(rows))


@settings(max_examples=150, deadline=None)
@given(boxes1=_boxes, boxes2=_boxes)
def test_iou_is_symmetric_and_in_unit_interval(boxes1, boxes2):
    iou = box_iou(boxes1, boxes2)
    # Symmetry holds exactly: max/min and a + b commute in floating point too.
    numpy.testing.assert_array_equal(iou, box_iou(boxes2, boxes1).T)
    assert numpy.all(iou >= 0.0)
    assert numpy.all(iou <= 1.0)


@settings(max_examples=150, deadline=None)
@given(boxes=_boxes)
def test_iou_of_a_box_with_itself_is_one(boxes):
    numpy.testing.assert_array_equal(numpy.diag(box_iou(boxes, boxes)), 1.0)


def test_clip_boxes_to_image_clamps_x_to_width_and_y_to_height():
    boxes = numpy.array(
        [
            [-5, -5, 10, 10],  # top-left corner outside: -> [0, 0, 10, 10]
            [90, 40, 120, 70],  # x2 past width 100, y2 past height 60: -> [90, 40, 100, 60]
            [10, 10, 20, 20],  # inside: unchanged
        ],
        dtype=numpy.float32,
    )
    clipped = clip_boxes_to_image(boxes, (60, 100))  # (height, width)
    numpy.testing.assert_array_equal(clipped, [[0, 0, 10, 10], [90, 40, 100, 60], [10, 10, 20, 20]])
    assert boxes[0, 0] == -5  # the input is not modified


def test_clip_boxes_to_image_takes_class_specific_boxes():
    boxes = numpy.array([[[-1, 2, 50, 3], [4, -2, 5, 70]]], dtype=numpy.float32)  # (1, 2, 4)
    clipped = clip_boxes_to_image(boxes, (60, 40))
    numpy.testing.assert_array_equal(clipped, [[[0, 2, 40, 3], [4, 0, 5, 60]]])


def test_remove_small_boxes_keeps_sides_at_least_min_size():
    boxes = numpy.array(
        [
            [0, 0, 1, 1],  # 1 x 1: kept at min_size 1 (the comparison is >=)
            [0, 0, 0.5, 2],  # 0.5 wide: dropped
            [0, 0, 3, 0.99],  # 0.99 tall: dropped
            [2, 2, 5, 5],  # 3 x 3: kept
        ],
        dtype=numpy.float32,
    )
    keep = remove_small_boxes(boxes, 1.0)
    numpy.testing.assert_array_equal(keep, [0, 3])
    assert keep.dtype == numpy.int64


def test_xyxy_xywh_round_trip():
    xyxy = numpy.array([[10, 20, 40, 80], [0, 0, 0, 0]], dtype=numpy.float64)
    xywh = box_xyxy_to_xywh(xyxy)
    numpy.testing.assert_array_equal(xywh, [[10, 20, 30, 60], [0, 0, 0, 0]])
    numpy.testing.assert_array_equal(box_xywh_to_xyxy(xywh), xyxy)


@pytest.mark.gpu
def test_geometry_on_cupy_arrays_matches_numpy():
    rng = numpy.random.default_rng(0)
    top_left = rng.uniform(-20, 500, (50, 2))
    boxes = numpy.concatenate([top_left, top_left + rng.uniform(0, 200, (50, 2))], axis=1)
    boxes = boxes.astype(numpy.float32)
    for function, arguments in [
        (box_iou, (boxes, boxes[:20])),
        (box_area, (boxes,)),
        (clip_boxes_to_image, (boxes, (300, 400))),
        (remove_small_boxes, (boxes, 50.0)),
        (box_xyxy_to_xywh, (boxes,)),
    ]:
        gpu_arguments = [
            to_backend(argument, "cupy") if isinstance(argument, numpy.ndarray) else argument
            for argument in arguments
        ]
        on_gpu = function(*gpu_arguments)
        assert is_cupy_array(on_gpu)
        numpy.testing.assert_allclose(to_numpy(on_gpu), function(*arguments), rtol=1e-6)
