"""Training curves: the losses of a run against its steps, read from its ``log.jsonl``.

Everything builds a ``matplotlib.figure.Figure`` directly, never through pyplot, so nothing
opens a window and it works on a headless machine.
"""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure


def read_log(log) -> list[dict]:
    """Training log records from a JSON-lines file (one JSON object a line) or a list."""
    if not isinstance(log, str | Path):
        return list(log)
    records = []
    with open(log) as file:
        for line_number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{str(log)!r} line {line_number} is not JSON ({exc}); a "
                                 f"training log holds one JSON object a line") from exc
    return records


def plot_loss_curves(log, log_scale: bool = False) -> Figure:
    """A Figure of the total ``loss`` and each ``loss_*`` term against ``step``.

    ``log`` is a JSON-lines path or a list of records like ``{"step": 10, "loss": 1.23,
    "loss_mask": 0.41, "lr": 0.02, ...}``; records without a key are skipped for its curve
    (evaluation records in the same log, say)."""
    records = read_log(log)
    names = sorted({key for record in records for key in record if key.startswith("loss_")})
    if not any("step" in record and "loss" in record for record in records):
        raise ValueError("no record has both 'step' and 'loss'; plot_loss_curves reads a "
                         "training log of {'step': ..., 'loss': ..., 'loss_*': ...} records")
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.subplots()
    for name in ["loss", *names]:
        points = [(record["step"], record[name]) for record in records
                  if "step" in record and name in record]
        steps, values = zip(*points) if points else ((), ())
        ax.plot(steps, values, label=name, linewidth=2.0 if name == "loss" else 1.0)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if log_scale:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    return figure
