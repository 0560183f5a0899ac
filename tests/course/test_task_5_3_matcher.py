"""Task 5.3, the matcher with low-quality matches (``tinymask/matching.py``, ``Matcher``):
lesson 5."""

import numpy as np
import pytest
from expect import expect_equal

from tinymask.matching import Matcher

pytestmark = pytest.mark.task_5_3
BG, IGNORE = Matcher.BELOW_LOW_THRESHOLD, Matcher.BETWEEN_THRESHOLDS


def test_thresholds_split_foreground_ignore_and_background():
    iou = np.array([[0.9, 0.5, 0.1, 0.7, 0.3],
                    [0.2, 0.6, 0.0, 0.1, 0.29]])  # 2 ground truths x 5 predictions
    # each prediction's best: gt 0 at .9, gt 1 at .6, gt 0 at .1, gt 0 at .7, gt 0 at .3
    expect_equal(Matcher(0.7, 0.3)(iou), [0, IGNORE, BG, 0, IGNORE],
                 "matches at thresholds (0.7, 0.3)")


def test_low_quality_matches_rescue_each_ground_truths_best():
    iou = np.array([[0.9, 0.2, 0.0, 0.0],
                    [0.0, 0.4, 0.4, 0.1]])  # gt 1 reaches 0.4 at most, twice
    expect_equal(Matcher(0.7, 0.3, allow_low_quality_matches=True)(iou), [0, 1, 1, BG],
                 "matches with low-quality matches (gt 1's best is 0.4, tied)")
    expect_equal(Matcher(0.7, 0.3, allow_low_quality_matches=False)(iou),
                 [0, IGNORE, IGNORE, BG], "matches without low-quality matches")


def test_a_rescued_prediction_keeps_its_own_best_ground_truth():
    iou = np.array([[0.2, 0.1],
                    [0.5, 0.0]])  # gt 0's best is prediction 0, whose own best is gt 1
    expect_equal(Matcher(0.7, 0.3, allow_low_quality_matches=True)(iou), [1, BG],
                 "the rescued prediction's match")


def test_box_head_matcher_has_no_ignore_band():
    iou = np.array([[0.49, 0.5, 0.51]])
    expect_equal(Matcher(0.5, 0.5)(iou), [BG, 0, 0], "matches at thresholds (0.5, 0.5)")


def test_no_ground_truth_makes_everything_background():
    expect_equal(Matcher(0.7, 0.3, True)(np.zeros((0, 3))), [BG, BG, BG],
                 "matches of an image without objects")
