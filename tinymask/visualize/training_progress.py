"""A training run at a glance: its losses, smoothed, beside validation AP at checkpoints.

The losses of single steps jump with the batch (two images of different objects give very
different losses), so the curves are drawn smoothed by an exponential moving average, the
raw values faint behind them.

Everything builds a ``matplotlib.figure.Figure`` directly, never through pyplot, so nothing
opens a window and it works on a headless machine.
"""

from __future__ import annotations

import numpy
from matplotlib import colormaps
from matplotlib.figure import Figure

from tinymask.visualize.training import read_log


def smooth(values, weight: float = 0.9) -> numpy.ndarray:
    """Exponential moving average ``s_t = weight * s_(t-1) + (1 - weight) * x_t``, divided by
    ``1 - weight**t`` so that the first values are not pulled towards 0 (no bias to zero
    from the start ``s_0 = 0``)."""
    if not 0 <= weight < 1:
        raise ValueError(f"weight={weight}: the smoothing weight must be in [0, 1)")
    values = numpy.asarray(values, dtype=numpy.float64)
    out = numpy.empty_like(values)
    running = 0.0
    for index, value in enumerate(values):
        running = weight * running + (1 - weight) * value
        out[index] = running / (1 - weight ** (index + 1))
    return out


def plot_training_progress(log, evaluations, weight: float = 0.9,
                           metrics=("AP", "AP50", "AP75"), title: str = "validation AP"
                           ) -> Figure:
    """Left: the total ``loss`` and each ``loss_*`` of a training log (a JSON-lines path or a
    list of records) against ``step``, smoothed with ``weight`` over its records, raw values
    faint behind, on a log scale. Right: ``evaluations``, a list of ``{"step": s, "AP": ..,
    ...}`` records, one curve per name in ``metrics``."""
    records = [r for r in read_log(log) if "step" in r and "loss" in r]
    if not records:
        raise ValueError("no record has both 'step' and 'loss'; plot_training_progress reads "
                         "a training log of {'step': ..., 'loss': ..., 'loss_*': ...} records")
    names = ["loss", *sorted({key for r in records for key in r if key.startswith("loss_")})]
    figure = Figure(figsize=(11, 4.0), layout="constrained")
    loss_ax, ap_ax = figure.subplots(1, 2, width_ratios=(1.5, 1))
    palette = colormaps["tab10"].colors
    for index, name in enumerate(names):
        points = [(r["step"], r[name]) for r in records if name in r]
        steps, values = (numpy.array(v) for v in zip(*points))
        colour = palette[index % len(palette)]
        loss_ax.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8)
        loss_ax.plot(steps, smooth(values, weight), color=colour, label=name,
                     linewidth=2.2 if name == "loss" else 1.3)
    loss_ax.set_yscale("log")
    loss_ax.set_xlabel("step")
    loss_ax.set_title(f"training losses (moving average, weight {weight}; raw values faint)",
                      fontsize=10)
    loss_ax.grid(alpha=0.3, which="both")
    loss_ax.legend(fontsize=8)
    for metric in metrics:
        points = [(e["step"], e[metric]) for e in evaluations if metric in e]
        if points:
            steps, values = zip(*points)
            ap_ax.plot(steps, values, "o-", label=metric)
    ap_ax.set_xlim(loss_ax.get_xlim())
    ap_ax.set_xlabel("step")
    ap_ax.set_ylabel("percent")
    ap_ax.set_title(title, fontsize=10)
    ap_ax.grid(alpha=0.3)
    if evaluations:
        ap_ax.legend(fontsize=8)
    return figure
