"""Task 5.4, the balanced sampler (``tinymask/matching.py``,
``BalancedPositiveNegativeSampler``): lesson 5."""

import numpy as np
import pytest
from expect import expect_equal, expect_true

from tinymask.matching import BalancedPositiveNegativeSampler

pytestmark = pytest.mark.task_5_4


def sample(labels, batch, fraction, seed=0):
    sampler = BalancedPositiveNegativeSampler(batch, fraction)
    (positive,), (negative,) = sampler([np.asarray(labels)], np.random.default_rng(seed))
    return positive, negative


def test_counts_follow_the_batch_size_and_the_fraction():
    labels = np.array([1] * 10 + [0] * 100 + [-1] * 5)
    positive, negative = sample(labels, 16, 0.25)
    expect_equal([positive.sum(), negative.sum()], [4, 12],
                 "(positives, negatives) sampled from 10 fg / 100 bg, batch 16 at 25%")


def test_background_fills_in_for_missing_foreground():
    labels = np.array([2] * 3 + [0] * 100)
    positive, negative = sample(labels, 16, 0.5)
    expect_equal([positive.sum(), negative.sum()], [3, 13],
                 "(positives, negatives) sampled from 3 fg / 100 bg, batch 16 at 50%")


def test_only_labels_of_the_right_kind_are_sampled():
    labels = np.array([1, 0, -1, 3, 0, -1, 0, 2] * 20)
    positive, negative = sample(labels, 64, 0.25, seed=3)
    expect_true(bool(np.all(labels[positive] >= 1)), "a sampled positive has label < 1")
    expect_true(bool(np.all(labels[negative] == 0)), "a sampled negative does not have label 0")
    expect_true(not np.any(positive & negative), "a prediction is sampled as both")


def test_small_images_take_everything_they_have():
    labels = np.array([1, 0, 0, -1])
    positive, negative = sample(labels, 256, 0.5)
    expect_equal([positive.sum(), negative.sum()], [1, 2],
                 "(positives, negatives) when the image has fewer than the batch")


def test_the_draw_comes_from_the_generator():
    labels = np.array([1] * 50 + [0] * 500)
    first, second = sample(labels, 32, 0.25, seed=7), sample(labels, 32, 0.25, seed=7)
    expect_true(np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1]),
                "two draws from generators with the same seed differ")
    other = sample(labels, 32, 0.25, seed=8)
    expect_true(not np.array_equal(first[1], other[1]),
                "generators with different seeds drew the same negatives (not random?)")
