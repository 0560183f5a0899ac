"""Task 8.2, the mask loss, per-class sigmoid or softmax (``tinymask/losses.py``, ``mask_loss``):
lesson 8."""

import numpy as np
import pytest
from expect import expect_close

import tinymask as tm
from tinymask.losses import mask_loss

pytestmark = pytest.mark.task_8_2


def bce_with_logits(x, t):
    return np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))


@pytest.fixture
def masks():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((3, 4, 5, 5))  # P = 3 positives, K + 1 = 4, m = 5
    targets = (rng.uniform(size=(3, 5, 5)) > 0.5).astype(np.float64)
    return logits, targets, np.array([2, 1, 2])


def test_the_loss_reads_only_the_ground_truth_class(masks):
    logits, targets, labels = masks
    expected = np.mean([bce_with_logits(logits[p, labels[p]], targets[p]) for p in range(3)])
    expect_close(mask_loss(tm.Tensor(logits), targets, labels), expected,
                 "mask loss (mean per-pixel BCE on each RoI's ground-truth class map)")


def test_other_classes_get_no_gradient(masks):
    logits, targets, labels = masks
    logits_tensor = tm.Tensor(logits, requires_grad=True)
    mask_loss(logits_tensor, targets, labels).backward()
    touched = np.abs(logits_tensor.grad).sum(axis=(2, 3)) > 0  # (P, K+1)
    expected = np.zeros((3, 4), bool)
    expected[[0, 1, 2], labels] = True
    expect_close(touched, expected, "which (RoI, class) maps get a gradient")


def test_a_perfect_prediction_costs_almost_nothing():
    targets = np.zeros((1, 4, 4))
    targets[0, 1:3, 1:3] = 1
    logits = np.full((1, 3, 4, 4), -20.0)
    logits[0, 1] = np.where(targets[0] > 0, 20.0, -20.0)
    expect_close(mask_loss(tm.Tensor(logits), targets, np.array([1])), 0.0,
                 "mask loss of a confident, correct class-1 mask", atol=1e-6)


def test_the_softmax_loss_makes_classes_compete_per_pixel(masks):
    logits, targets, labels = masks
    # each pixel's label: its RoI's class inside the mask, background (0) outside
    pixel_labels = np.where(targets > 0.5, labels[:, None, None], 0)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # (P, K+1, m, m)
    expected = -np.take_along_axis(log_p, pixel_labels[:, None], axis=1).mean()
    expect_close(mask_loss(tm.Tensor(logits), targets, labels, kind="softmax"), expected,
                 "softmax mask loss (cross-entropy over the K+1 maps at every pixel)")
