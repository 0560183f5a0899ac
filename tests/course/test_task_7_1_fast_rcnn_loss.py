"""Task 7.1, the Fast R-CNN loss (``tinymask/losses.py``, ``fast_rcnn_losses``): lesson 7."""

import numpy as np
import pytest
from expect import expect_close

import tinymask as tm
from tinymask.losses import fast_rcnn_losses

pytestmark = pytest.mark.task_7_1


def smooth_l1(x, beta):
    x = np.abs(x)
    return np.where(x < beta, 0.5 * x * x / beta, x - 0.5 * beta)


def by_hand(logits, deltas, labels, targets, beta):
    log_p = logits - logits.max(1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(1, keepdims=True))
    classifier = -log_p[np.arange(len(labels)), labels].mean()
    per_class = deltas.reshape(len(labels), -1, 4)
    box = sum(smooth_l1(per_class[r, labels[r]] - targets[r], beta).sum()
              for r in range(len(labels)) if labels[r] > 0)
    return classifier, box / len(labels)


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    labels = np.array([0, 2, 0, 1, 3, 0])  # 6 RoIs, 3 foreground, K + 1 = 4 classes
    return (rng.standard_normal((6, 4)), rng.standard_normal((6, 16)), labels,
            rng.standard_normal((6, 4)) * 0.3)


def test_both_losses_match_their_definitions(batch):
    logits, deltas, labels, targets = batch
    classifier, box = fast_rcnn_losses(tm.Tensor(logits), tm.Tensor(deltas), labels, targets,
                                       beta=1 / 9)
    expected_classifier, expected_box = by_hand(logits, deltas, labels, targets, 1 / 9)
    expect_close(classifier, expected_classifier, "loss_classifier")
    expect_close(box, expected_box, "loss_box_reg (the ground-truth class's deltas, "
                 "summed over foreground, divided by all sampled RoIs)")


def test_only_the_ground_truth_class_deltas_get_a_gradient(batch):
    logits, deltas, labels, targets = batch
    deltas_tensor = tm.Tensor(deltas, requires_grad=True)
    _, box = fast_rcnn_losses(tm.Tensor(logits), deltas_tensor, labels, targets)
    box.backward()
    touched = np.abs(deltas_tensor.grad.reshape(6, 4, 4)).sum(axis=2) > 0  # (R, K+1)
    expected = np.zeros((6, 4), bool)
    expected[[1, 3, 4], [2, 1, 3]] = True
    expect_close(touched, expected, "which (RoI, class) deltas get a gradient")


def test_no_foreground_gives_a_zero_box_loss(batch):
    logits, deltas, _, targets = batch
    _, box = fast_rcnn_losses(tm.Tensor(logits), tm.Tensor(deltas), np.zeros(6, np.int64),
                              targets)
    expect_close(box, 0.0, "loss_box_reg with no foreground RoI")
