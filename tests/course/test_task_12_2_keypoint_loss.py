"""Task 12.2, the keypoint loss, a softmax over the heatmap (``tinymask/keypoints.py``,
``keypoint_loss``): lesson 12."""

import numpy as np
import pytest
from expect import expect_close, expect_true

import tinymask as tm
from tinymask.keypoints import keypoint_loss

pytestmark = pytest.mark.task_12_2


@pytest.fixture
def heatmaps():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 3, 4, 4))  # R = 2 RoIs, K = 3 keypoints, m = 4
    targets = rng.integers(0, 16, size=(2, 3))
    valid = np.array([[True, False, True], [True, True, False]])
    return logits, targets, valid


def softmax_cross_entropy(logits, target):
    flat = logits.reshape(-1)
    return np.log(np.exp(flat - flat.max()).sum()) + flat.max() - flat[target]


def test_the_loss_is_a_softmax_over_the_cells_of_each_valid_keypoint(heatmaps):
    logits, targets, valid = heatmaps
    expected = np.mean([softmax_cross_entropy(logits[r, k], targets[r, k])
                        for r in range(2) for k in range(3) if valid[r, k]])
    expect_close(keypoint_loss(tm.Tensor(logits), targets, valid), expected,
                 "keypoint loss (mean over valid pairs of the cross-entropy over m*m cells)")


def test_keypoints_that_are_not_valid_get_no_gradient(heatmaps):
    logits, targets, valid = heatmaps
    logits_tensor = tm.Tensor(logits, requires_grad=True)
    keypoint_loss(logits_tensor, targets, valid).backward()
    touched = np.abs(logits_tensor.grad).sum(axis=(2, 3)) > 0  # (R, K)
    expect_close(touched, valid, "which (RoI, keypoint) heatmaps get a gradient")
    # a softmax's gradient sums to zero over its cells: p - one_hot
    expect_close(logits_tensor.grad.sum(axis=(2, 3)), np.zeros((2, 3)),
                 "the gradient summed over each heatmap's cells")


def test_no_valid_keypoint_gives_a_zero_loss_not_nan(heatmaps):
    logits, targets, _ = heatmaps
    loss = keypoint_loss(tm.Tensor(logits), targets, np.zeros((2, 3), bool))
    expect_true(np.isfinite(float(loss.data)) and float(loss.data) == 0.0,
                f"with no valid keypoint the loss must be 0, got {float(loss.data)}")
