"""The training-progress picture: the moving average is the one its docstring defines (a
constant stays constant from the first value on), and the figure draws every loss raw and
smoothed beside the evaluations given."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest

from tinymask.visualize.training_progress import plot_training_progress, smooth

matplotlib.use("Agg")

LOG = [{"step": s, "loss": 2.0 / s, "loss_mask": 1.0 / s, "lr": 0.02} for s in range(1, 21)]
LOG.append({"step": 20, "eval": True})  # a record without losses is skipped
EVALUATIONS = [{"step": 10, "AP": 1.0, "AP50": 3.0}, {"step": 20, "AP": 2.0, "AP50": 5.0}]


def test_smooth_is_the_debiased_moving_average():
    values = np.array([4.0, 2.0, 6.0])
    weight = 0.5
    expected, running = [], 0.0
    for t, value in enumerate(values, start=1):
        running = weight * running + (1 - weight) * value
        expected.append(running / (1 - weight**t))
    np.testing.assert_allclose(smooth(values, weight), expected)
    np.testing.assert_allclose(smooth(np.full(5, 3.0), 0.9), 3.0)  # no pull towards 0
    np.testing.assert_allclose(smooth(values, 0.0), values)
    with pytest.raises(ValueError, match="weight"):
        smooth(values, 1.0)


def test_every_loss_is_drawn_raw_and_smoothed():
    loss_ax, ap_ax = plot_training_progress(LOG, EVALUATIONS, weight=0.8).axes
    lines = loss_ax.get_lines()
    assert len(lines) == 4  # loss and loss_mask, each raw and smoothed
    raw, smoothed = lines[0].get_ydata(), lines[1].get_ydata()
    np.testing.assert_allclose(raw, [2.0 / s for s in range(1, 21)])
    np.testing.assert_allclose(smoothed, smooth(raw, 0.8))
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == ["loss", "loss_mask"]


def test_the_evaluations_are_drawn_at_their_steps():
    _, ap_ax = plot_training_progress(LOG, EVALUATIONS, metrics=("AP", "AP50")).axes
    (ap, ap50) = ap_ax.get_lines()
    np.testing.assert_array_equal(ap.get_xdata(), [10, 20])
    np.testing.assert_array_equal(ap50.get_ydata(), [3.0, 5.0])


def test_it_renders_and_refuses_a_log_without_losses():
    png = io.BytesIO()
    plot_training_progress(LOG, EVALUATIONS).savefig(png, format="png")
    assert png.getbuffer().nbytes > 1000
    with pytest.raises(ValueError, match="no record has both"):
        plot_training_progress([{"step": 1}], EVALUATIONS)
