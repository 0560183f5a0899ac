"""What an ablation measured: the results file, its tables and its figure.

``run_ablation`` (``tinymask.ablations.run``) fills an ``AblationRun`` with each training's
COCO metrics; ``to_json`` turns it into the results file that ``tinymask ablate NAME
--record`` writes to ``lessons/results/NAME.json`` and the lessons read: the paper's row
beside our mean and spread for every variant, plus every training on its own. The rest of
this file reads that dict: a text table, the per-seed (paired) numbers, the gains over the
first row, and a figure of them.
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
from dataclasses import dataclass, field

import numpy

from tinymask.ablations.table import ABLATIONS, Ablation
from tinymask.backend import get_backend

METRIC_NAMES = ("AP", "AP50", "AP75")


@dataclass
class AblationRun:
    """Everything one ``run_ablation`` call measured (see ``to_json``)."""

    ablation: Ablation
    preset: str
    seeds: list
    command: str
    per_seed: dict = field(default_factory=dict)  # variant name -> [metrics of each seed]
    diverged: dict = field(default_factory=dict)  # variant name -> [seeds whose loss was NaN]
    seconds: float = 0.0


def metric_suffix(iou_type: str) -> str:
    return "" if iou_type == "segm" else "_bb"


def summarize(run: AblationRun) -> list[dict]:
    """Rows of the results file: the paper's numbers and our mean and spread per variant."""
    rows = []
    for variant in run.ablation.variants:
        measured = {}
        for iou_type in run.ablation.metrics:
            for metric in METRIC_NAMES:
                values = [m[iou_type][metric] for m in run.per_seed.get(variant.name, [])]
                if values:
                    key = metric + metric_suffix(iou_type)
                    measured[key] = round(float(numpy.mean(values)), 2)
                    measured[key + "_std"] = round(float(numpy.std(values)), 2)
        row = {"variant": variant.name, "paper": variant.paper, "measured": measured}
        if run.diverged.get(variant.name):  # mean and spread are over the other seeds
            row["diverged_seeds"] = run.diverged[variant.name]
        rows.append(row)
    return rows


def _cpu_name() -> str:
    """The CPU's model name where the OS tells it (Linux), else the architecture."""
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def to_json(run: AblationRun) -> dict:
    cpu = _cpu_name()
    return {"ablation": run.ablation.table, "name": run.ablation.name,
            "question": run.ablation.question, "paper_finding": run.ablation.finding,
            "command": run.command, "preset": run.preset, "seeds": run.seeds,
            "machine": f"{cpu}, {os.cpu_count()} cores, backend {get_backend()}",
            "seconds": round(run.seconds, 1), "rows": summarize(run)}


def format_table(result: dict) -> str:
    """A text table: each variant's paper numbers beside ours (mean +- std over seeds)."""
    keys = [k for k in ("AP", "AP50", "AP75", "AP_bb", "AP50_bb", "AP75_bb")
            if any(k in row["measured"] or k in row["paper"] for row in result["rows"])]
    header = f"{'variant':32s} " + " ".join(f"{'paper ' + k:>14s} {'ours ' + k:>16s}"
                                            for k in keys)
    lines = [f"Table {result['ablation']} ({result['name']}): preset {result['preset']}, "
             f"seeds {result['seeds']}", header, "-" * len(header)]
    for row in result["rows"]:
        cells = []
        for key in keys:
            paper = row["paper"].get(key)
            mean, std = row["measured"].get(key), row["measured"].get(key + "_std")
            cells.append(f"{paper if paper is not None else '-':>14} "
                         f"{f'{mean:.1f} +- {std:.1f}' if mean is not None else '-':>16s}")
        diverged = row.get("diverged_seeds")
        lines.append(f"{row['variant']:32s} " + " ".join(cells)
                     + (f"  (diverged at seed {diverged}: not in the mean)" if diverged else ""))
    return "\n".join(lines)


def headline_keys(result: dict) -> tuple:
    """The metrics an ablation is read by: AP and AP75 of masks, or of boxes for Table 3
    (boxes only), plus box AP for Table 2d (masks and boxes)."""
    metrics = ABLATIONS[result["name"]].metrics
    keys = ("AP", "AP75") if "segm" in metrics else ()
    if "bbox" in metrics:
        keys += ("AP_bb",) if keys else ("AP_bb", "AP75_bb")
    return keys


def format_per_seed(result: dict) -> str:
    """Each variant's AP and AP75 seed by seed (results recorded with per-training numbers):
    variants trained from the same seed share their initial weights and batches, so the
    difference between two variants *at one seed* is the paired comparison to read."""
    trainings = result.get("trainings")
    if not trainings:
        return ""
    keys = headline_keys(result)[:2]
    lines = [f"per seed ({', '.join(keys)}), seeds {result['seeds']}:"]
    for row in result["rows"]:
        cells = [f"{t[keys[0]]:5.1f} / {t[keys[1]]:5.1f}" if "diverged" not in t
                 else f"{'diverged':>13s}" for t in trainings if t["variant"] == row["variant"]]
        lines.append(f"  {row['variant']:32s} " + "   ".join(cells))
    return "\n".join(lines)


def gains(result: dict, key: str) -> list[tuple]:
    """``(variant, paper gain, our mean gain, our spread)`` of every row after the first,
    measured from the first row (the baseline). With per-training numbers the spread is
    that of the per-seed (paired) differences, else the rows' spreads combined."""
    baseline = result["rows"][0]
    per_seed = {}
    for training in result.get("trainings", []):
        if "diverged" in training:
            continue
        per_seed.setdefault(training["variant"], {})[training["seed"]] = training[key]
    out = []
    for row in result["rows"][1:]:
        paper = row["paper"].get(key, math.nan) - baseline["paper"].get(key, math.nan)
        ours = row["measured"].get(key, math.nan) - baseline["measured"].get(key, math.nan)
        base_seeds, row_seeds = per_seed.get(baseline["variant"], {}), per_seed.get(
            row["variant"], {})
        paired = [row_seeds[s] - base_seeds[s] for s in row_seeds if s in base_seeds]
        if paired:
            spread = float(numpy.std(paired))
        else:
            spread = math.hypot(row["measured"].get(key + "_std", 0.0),
                                baseline["measured"].get(key + "_std", 0.0))
        out.append((row["variant"], paper, ours, spread))
    return out


def plot_result(result: dict):
    """What a student compares: each variant's gain over the first row, the paper's beside
    ours, for AP and AP75 (a matplotlib Figure). Absolute numbers are in the table: ours
    are a few AP from a minutes-long run, the paper's 30 from days, so only the gains sit
    on one axis. Error bars: the spread of our per-seed gains. A variant whose every seed
    diverged has no bar; its slot says "diverged"."""
    from matplotlib.figure import Figure

    keys = headline_keys(result)
    names = [row["variant"] for row in result["rows"][1:]]
    figure = Figure(figsize=(2.2 + 1.6 * len(names) * len(keys), 3.8))
    axes_list = figure.subplots(1, len(keys))
    positions = numpy.arange(len(names))
    for axes, key in zip(axes_list, keys):
        rows = gains(result, key)
        axes.bar(positions - 0.2, [r[1] for r in rows], 0.4, label="paper (COCO)",
                 color="#bbbbbb")
        axes.bar(positions + 0.2, [r[2] for r in rows], 0.4, yerr=[r[3] for r in rows],
                 label="ours (shapes)", color="#3a7bd5", capsize=3)
        axes.axhline(0, color="black", lw=0.6)
        for position, row in zip(positions, result["rows"][1:]):
            if row.get("diverged_seeds") and key not in row["measured"]:  # no bar to draw
                axes.text(position + 0.2, 0, "diverged", rotation=90, ha="center",
                          va="bottom", fontsize=8, color="#3a7bd5")
        axes.set_xlim(-0.6, len(names) - 0.4)  # every slot, with or without a bar
        axes.set_xticks(positions, names, rotation=25, ha="right", fontsize=8)
        axes.set_title(f"{key.replace('_bb', ' (box)')} minus {result['rows'][0]['variant']}",
                       fontsize=9)
        axes.legend(fontsize=7)
    figure.suptitle(f"Table {result['ablation']}: {result['question']}", fontsize=10)
    figure.tight_layout()
    return figure


def record(result: dict, folder) -> tuple[str, str]:
    """Write ``<folder>/<name>.json`` and ``<name>.png``; returns their paths."""
    os.makedirs(folder, exist_ok=True)
    json_path = os.path.join(folder, f"{result['name']}.json")
    # written beside, then renamed over: an interrupted write never leaves half a record
    with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".json.tmp",
                                     delete=False) as stream:
        json.dump(result, stream, indent=2, allow_nan=False)
        stream.write("\n")
    os.replace(stream.name, json_path)
    png_path = os.path.join(folder, f"{result['name']}.png")
    plot_result(result).savefig(png_path, dpi=100)
    return json_path, png_path
