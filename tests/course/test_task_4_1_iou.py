"""Task 4.1, the IoU matrix (``tinymask/boxes.py``, ``box_iou``): lesson 4."""

import numpy as np
import pytest
from expect import expect_close, expect_equal

from tinymask.boxes import box_iou

pytestmark = pytest.mark.task_4_1


def iou_by_hand(a, b):
    """The definition, one pair at a time (no +1 on widths)."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(width, 0.0) * max(height, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def test_two_overlapping_squares():
    # 2x2 squares shifted by (1, 1): they share one unit square, the union is 4 + 4 - 1
    got = box_iou(np.array([[0.0, 0, 2, 2]]), np.array([[1.0, 1, 3, 3]]))
    expect_close(got, [[1 / 7]], "IoU of [0,0,2,2] and [1,1,3,3]")


def test_identical_contained_and_disjoint_boxes():
    boxes1 = np.array([[0.0, 0, 4, 4]])
    boxes2 = np.array([[0.0, 0, 4, 4],     # the same box: 1
                       [1.0, 1, 2, 2],     # inside it: 1 / 16
                       [5.0, 5, 6, 6],     # apart in x and y: 0 (no negative overlap)
                       [4.0, 0, 6, 4]])    # touching along an edge: 0
    expect_close(box_iou(boxes1, boxes2), [[1.0, 1 / 16, 0.0, 0.0]],
                 "IoU of [0,0,4,4] with itself, an inner box, a far box, an edge neighbour")


def test_boxes_apart_along_both_axes_do_not_overlap():
    # both side lengths of the "intersection" are negative: their product is positive
    # unless each is clamped at 0 first
    got = box_iou(np.array([[0.0, 0, 1, 1]]), np.array([[2.0, 2, 3, 3]]))
    expect_close(got, [[0.0]], "IoU of [0,0,1,1] and [2,2,3,3]")


def test_shape_is_n_by_m_and_matches_the_definition():
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 20, size=(7, 2, 2))
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
    got = box_iou(boxes[:3], boxes[3:])
    expected = [[iou_by_hand(a, b) for b in boxes[3:]] for a in boxes[:3]]
    expect_close(got, expected, "IoU of 3 random boxes with 4 others")


def test_zero_area_boxes_give_zero_not_nan():
    point = np.array([[1.0, 1, 1, 1]])
    expect_close(box_iou(point, point), [[0.0]], "IoU of a zero-area box with itself")


def test_float32_stays_float32():
    got = box_iou(np.array([[0, 0, 2, 2]], np.float32), np.array([[1, 1, 3, 3]], np.float32))
    expect_equal(str(got.dtype), "float32", "dtype of the IoU of float32 boxes")
