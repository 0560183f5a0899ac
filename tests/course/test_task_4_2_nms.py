"""Task 4.2, greedy NMS (``tinymask/ops/nms_cpu.py``, ``nms`` and ``nms_kernel``): lesson 4."""

import numpy as np
import pytest
from expect import expect_equal

from tinymask.ops import nms

pytestmark = pytest.mark.task_4_2


def nms_by_hand(boxes, scores, threshold):
    """Visit by decreasing score (ties in input order), keep a box unless a kept one
    overlaps it by more than the threshold."""
    def iou(a, b):
        width = max(min(a[2], b[2]) - max(a[0], b[0]), 0)
        height = max(min(a[3], b[3]) - max(a[1], b[1]), 0)
        inter = width * height
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union
    keep = []
    for i in sorted(range(len(boxes)), key=lambda k: (-scores[k], k)):
        if all(iou(boxes[i], boxes[k]) <= threshold for k in keep):
            keep.append(i)
    return keep


def test_the_weaker_of_two_overlapping_boxes_goes():
    boxes = np.array([[0.0, 0, 10, 10], [1.0, 0, 11, 10], [20.0, 20, 30, 30]])
    scores = np.array([0.9, 0.8, 0.7])
    # IoU of the first two: 90 / 110 = 0.82 > 0.5; the third overlaps nothing
    expect_equal(nms(boxes, scores, 0.5), [0, 2], "kept boxes")


def test_kept_in_decreasing_score_order():
    boxes = np.array([[20.0, 20, 30, 30], [0.0, 0, 10, 10], [1.0, 0, 11, 10]])
    scores = np.array([0.1, 0.5, 0.9])
    expect_equal(nms(boxes, scores, 0.5), [2, 0], "kept boxes, best first")


def test_equal_scores_keep_the_earlier_box():
    boxes = np.array([[0.0, 0, 10, 10], [0.0, 0, 10, 10], [0.0, 0, 10, 10]])
    scores = np.array([0.5, 0.5, 0.5])
    expect_equal(nms(boxes, scores, 0.5), [0], "kept box among three equal ones, equal scores")


def test_an_overlap_of_exactly_the_threshold_survives():
    # IoU 50 / 150 = 1/3 exactly; suppression needs IoU > threshold
    boxes = np.array([[0.0, 0, 10, 10], [5.0, 0, 15, 10]])
    expect_equal(nms(boxes, np.array([0.9, 0.8]), 1 / 3), [0, 1],
                 "kept boxes at IoU == threshold")


def test_no_boxes_keeps_nothing():
    expect_equal(nms(np.zeros((0, 4)), np.zeros(0), 0.5), np.zeros(0, np.int64),
                 "kept boxes of an empty input")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_boxes_follow_the_definition(seed):
    rng = np.random.default_rng(seed)
    corners = rng.uniform(0, 40, size=(60, 2, 2))
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1) + 1], axis=1)
    scores = rng.integers(0, 8, size=60) / 8.0  # many ties
    expect_equal(nms(boxes, scores, 0.3), nms_by_hand(boxes, scores, 0.3),
                 f"kept boxes of 60 random boxes (seed {seed})")
