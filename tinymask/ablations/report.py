"""What an ablation measured: the results file, its tables and its figure.

``run_ablation`` (``tinymask.ablations.run``) collects one record per finished training
(variant, seed, its COCO metrics) in an ``AblationRun``; ``to_json`` turns it into the
results file that ``tinymask ablate NAME --record`` writes to ``lessons/results/NAME.json``
(``--out DIR``: to ``DIR/NAME.json``) and the lessons read. Everything in the file's rows
is computed from its trainings:

* each variant's mean and *sample* standard deviation over its seeds (ddof=1: with 2-3
  seeds the population formula would understate the spread; one seed has no spread);
* for every row after the first (the baseline), the **paired difference**: row minus
  baseline at each seed, and their mean and sample standard deviation. Variants trained
  from the same seed share their initial weights and their batches, so the per-seed
  difference is the comparison to read: the seeds' common luck cancels in it.

The rest of this file reads that dict: a text table, the per-seed numbers, the paired
differences, and a figure of them.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import textwrap
from dataclasses import dataclass, field

import numpy

from tinymask.ablations.table import ABLATIONS, SEED_BLOCK, Ablation
from tinymask.backend import get_backend
from tinymask.machine import cpu_name

METRIC_NAMES = ("AP", "AP50", "AP75")
STATISTICS = ("mean and sample standard deviation (ddof=1) over seeds; paired: each row "
              "minus the first row at the same seed")


@dataclass
class AblationRun:
    """Everything one ``run_ablation`` call measured so far (see ``to_json``)."""

    ablation: Ablation
    preset: str
    seeds: list
    command: str
    settings: dict = field(default_factory=dict)  # what the trainings depend on (resume)
    trainings: list = field(default_factory=list)  # one record per finished (variant, seed)
    seconds: float = 0.0
    jobs: int = 1
    resumed: list = field(default_factory=list)  # [{"command", "finished_before", "jobs"}]


def metric_suffix(iou_type: str) -> str:
    """Mask AP is plain "AP"; box AP "AP_bb", keypoint AP "AP_kp" (the paper's AP^bb, AP^kp)."""
    return {"segm": "", "bbox": "_bb", "keypoints": "_kp"}[iou_type]


def metric_keys(ablation: Ablation) -> list[str]:
    """The keys an ablation's trainings carry: AP, AP50, AP75 (+ ``_bb`` for boxes)."""
    return [metric + metric_suffix(iou_type) for iou_type in ablation.metrics
            for metric in METRIC_NAMES]


def mean_and_spread(values) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof=1); the spread of one value is None."""
    values = [float(v) for v in values]
    spread = float(numpy.std(values, ddof=1)) if len(values) > 1 else None
    return float(numpy.mean(values)), spread


def _rounded(value):
    return None if value is None else round(value, 2)


def _measured_by_seed(trainings: list, variant: str) -> dict:
    """{seed: training record} of the variant's trainings that did not diverge."""
    return {t["seed"]: t for t in trainings if t["variant"] == variant and "diverged" not in t}


def summarize(ablation: Ablation, trainings: list) -> list[dict]:
    """Rows of the results file: the paper's numbers, our mean and spread per variant and,
    after the first row, the paired differences from it (see the module docstring)."""
    keys = metric_keys(ablation)
    baseline = _measured_by_seed(trainings, ablation.variants[0].name)
    rows = []
    for index, variant in enumerate(ablation.variants):
        by_seed = _measured_by_seed(trainings, variant.name)
        measured = {}
        for key in keys:
            if by_seed:
                mean, spread = mean_and_spread([t[key] for t in by_seed.values()])
                measured[key], measured[key + "_std"] = _rounded(mean), _rounded(spread)
        row = {"variant": variant.name, "paper": variant.paper, "measured": measured,
               "seeds_measured": sorted(by_seed)}
        diverged = sorted(t["seed"] for t in trainings
                          if t["variant"] == variant.name and "diverged" in t)
        if diverged:  # mean and spread are over the other seeds
            row["diverged_seeds"] = diverged
        shared = sorted(set(by_seed) & set(baseline))
        if index > 0 and shared:
            paired = {"baseline": ablation.variants[0].name, "seeds": shared}
            for key in keys:
                differences = [by_seed[s][key] - baseline[s][key] for s in shared]
                mean, spread = mean_and_spread(differences)
                paired[key] = {"mean": _rounded(mean), "std": _rounded(spread),
                               "differences": [round(d, 2) for d in differences]}
            row["paired"] = paired
        rows.append(row)
    return rows



def same_model_elsewhere(ablation: Ablation) -> dict:
    """{variant name: [(other ablation, its variant name)]} for the rows of ``ablation``
    that train exactly the same model as a row of another table (the reference model
    appears in most of them): the same whole ``MaskRCNNConfig.small`` config, on the same
    data, with the same training changes."""
    from tinymask.config import MaskRCNNConfig

    def config(table, variant):
        return (MaskRCNNConfig.small(**{**table.base, **variant.changes}),
                table.data_options(), table.image_scale, table.train, table.steps_factor)

    found = {}
    for variant in ablation.variants:
        mine = config(ablation, variant)
        found[variant.name] = [(other, theirs) for other in ABLATIONS.values()
                               if other.name != ablation.name for theirs in other.variants
                               if config(other, theirs) == mine]
    return {name: [(other, theirs.name) for other, theirs in pairs]
            for name, pairs in found.items() if pairs}


def shared_rows(ablation: Ablation, seeds: list) -> list[dict]:
    """For each row that is also a row of other tables: which, and whether its trainings
    are this table's own (its seeds outside the others' default seeds) or shared."""
    notes = []
    for variant, others in same_model_elsewhere(ablation).items():
        overlap = sorted({other.table for other, _ in others if set(seeds) & set(
            other.default_seeds(SEED_BLOCK))})
        notes.append({"variant": variant,
                      "same_model_as": [f"{other.table} {name}" for other, name in others],
                      "seeds_shared_with": overlap})
    return notes


def to_json(run: AblationRun) -> dict:
    """The results file: the run's settings, its rows, and every finished training in
    table order. ``complete`` is false while trainings are missing (an interrupted run)."""
    import tinymask

    ablation = run.ablation
    order = {(v.name, seed): i for i, (v, seed) in enumerate(
        (v, seed) for v in ablation.variants for seed in run.seeds)}
    trainings = sorted(run.trainings, key=lambda t: order[(t["variant"], t["seed"])])
    result = {"ablation": ablation.table, "name": ablation.name,
              "question": ablation.question, "paper_finding": ablation.finding,
              "command": run.command, "preset": run.preset, "seeds": run.seeds,
              "machine": f"{cpu_name()}, {os.cpu_count()} cores, backend {get_backend()}",
              "tinymask": tinymask.__version__, "seconds": round(run.seconds, 1),
              "jobs": run.jobs, "statistics": STATISTICS,
              "complete": len(trainings) == len(order),
              "rows": summarize(ablation, trainings),
              "shared_rows": shared_rows(ablation, run.seeds),
              "settings": run.settings, "trainings": trainings}
    if run.resumed:
        result["resumed"] = run.resumed
    return result


def _spread_text(mean, spread) -> str:
    return f"{mean:.1f}" if spread is None else f"{mean:.1f} +- {spread:.1f}"


def format_table(result: dict) -> str:
    """A text table: each variant's paper numbers beside ours (mean +- sample standard
    deviation over seeds), and a note for each row that other tables train too."""
    keys = [k for k in ("AP", "AP50", "AP75", "AP_bb", "AP50_bb", "AP75_bb", "AP_kp",
                        "AP50_kp", "AP75_kp")
            if any(k in row["measured"] or k in row["paper"] for row in result["rows"])]
    header = f"{'variant':32s} " + " ".join(f"{'paper ' + k:>14s} {'ours ' + k:>16s}"
                                            for k in keys)
    seeds = result["seeds"]
    spread = ("one seed, no spread" if len(seeds) == 1 else
              "ours: mean +- sample standard deviation over the seeds")
    lines = [f"Table {result['ablation']} ({result['name']}): preset {result['preset']}, "
             f"seeds {seeds} ({spread})", header, "-" * len(header)]
    for row in result["rows"]:
        cells = []
        for key in keys:
            paper = row["paper"].get(key)
            mean, std = row["measured"].get(key), row["measured"].get(key + "_std")
            cells.append(f"{paper if paper is not None else '-':>14} "
                         f"{_spread_text(mean, std) if mean is not None else '-':>16s}")
        diverged = row.get("diverged_seeds")
        lines.append(f"{row['variant']:32s} " + " ".join(cells)
                     + (f"  (diverged at seed {diverged}: not in the mean)" if diverged else ""))
    if result.get("complete") is False:
        lines.append(f"(unfinished: {len(result.get('trainings', []))} of "
                     f"{len(result['rows']) * len(seeds)} trainings)")
    for note in result.get("shared_rows", []):
        where = ", ".join(note["same_model_as"])
        if note["seeds_shared_with"]:
            whose = (f"its seeds are also those of Table {', '.join(note['seeds_shared_with'])}"
                     f": there the same trainings, not a second result")
        else:
            whose = "trained here with this table's own seeds, not shared with them"
        lines.append(textwrap.fill(f"note: '{note['variant']}' is the same model as Table "
                                   f"{where}; {whose}", width=100, subsequent_indent="  "))
    return "\n".join(lines)


def headline_keys(result: dict) -> tuple:
    """The metrics an ablation is read by: AP and AP75 of masks, or of boxes for Table 3
    (boxes only), plus box AP for Table 2d (masks and boxes)."""
    metrics = ABLATIONS[result["name"]].metrics
    keys = ("AP", "AP75") if "segm" in metrics else ()
    if "bbox" in metrics:
        keys += ("AP_bb",) if keys else ("AP_bb", "AP75_bb")
    if "keypoints" in metrics:  # Table 4: keypoint AP alone
        keys = ("AP_kp", "AP75_kp")
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


def format_paired(result: dict) -> str:
    """Each row minus the first, seed by seed: mean +- sample standard deviation of the
    per-seed differences, the differences, and at how many seeds the row is ahead."""
    rows = [row for row in result["rows"][1:] if "paired" in row]
    if not rows:
        return ""
    keys = headline_keys(result)
    lines = [f"paired differences from '{result['rows'][0]['variant']}' (the same seed: the "
             f"same initial weights and batches), mean +- sd, then seed by seed:"]
    for row in rows:
        paired = row["paired"]
        cells = []
        for key in keys:
            differences = paired[key]["differences"]
            ahead = sum(d > 0 for d in differences)
            cells.append(f"{key} {_signed(paired[key]['mean'], paired[key]['std'])} "
                         f"[{' '.join(f'{d:+.1f}' for d in differences)}] ahead at {ahead}/"
                         f"{len(differences)}")
        lines.append(f"  {row['variant']:32s} " + "   ".join(cells))
    return "\n".join(lines)


def _signed(mean, spread) -> str:
    return f"{mean:+.1f}" if spread is None else f"{mean:+.1f} +- {spread:.1f}"


@dataclass(frozen=True)
class Gain:
    """One row's gain over the first row: the paper's, and ours as the mean of the
    per-seed (paired) differences with their sample spread and each seed's value."""

    variant: str
    paper: float
    mean: float
    spread: float | None
    per_seed: tuple


def gains(result: dict, key: str) -> list[Gain]:
    """The gain of every row after the first, measured from the first row (the baseline).
    From the per-seed differences where the file has them; a file without trainings gives
    the difference of the means and the rows' spreads combined."""
    baseline = result["rows"][0]
    per_seed = {}
    for training in result.get("trainings", []):
        if "diverged" not in training:
            per_seed.setdefault(training["variant"], {})[training["seed"]] = training[key]
    out = []
    for row in result["rows"][1:]:
        paper = row["paper"].get(key, math.nan) - baseline["paper"].get(key, math.nan)
        base_seeds = per_seed.get(baseline["variant"], {})
        row_seeds = per_seed.get(row["variant"], {})
        differences = tuple(row_seeds[s] - base_seeds[s] for s in sorted(row_seeds)
                            if s in base_seeds)
        if differences:
            mean, spread = mean_and_spread(differences)
        else:
            mean = row["measured"].get(key, math.nan) - baseline["measured"].get(key, math.nan)
            spread = math.hypot(row["measured"].get(key + "_std") or 0.0,
                                baseline["measured"].get(key + "_std") or 0.0)
        out.append(Gain(row["variant"], paper, mean, spread, differences))
    return out


def plot_result(result: dict):
    """What a student compares: each variant's gain over the first row, the paper's beside
    ours, for AP and AP75 (a matplotlib Figure). Absolute numbers are in the table; only
    the gains share an axis. Ours: a bar at the mean of the per-seed differences, an error
    bar of their sample standard deviation, and one dot per seed. A variant whose every seed
    diverged has no bar; its slot says "diverged"."""
    from matplotlib.figure import Figure

    keys = headline_keys(result)
    names = [row["variant"] for row in result["rows"][1:]]
    figure = Figure(figsize=(2.2 + 1.6 * len(names) * len(keys), 3.8))
    axes_list = figure.subplots(1, len(keys))
    axes_list = numpy.atleast_1d(axes_list)
    positions = numpy.arange(len(names))
    for axes, key in zip(axes_list, keys):
        rows = gains(result, key)
        axes.bar(positions - 0.2, [r.paper for r in rows], 0.4, label="paper (COCO)",
                 color="#bbbbbb")
        axes.bar(positions + 0.2, [r.mean for r in rows], 0.4,
                 yerr=[r.spread or 0.0 for r in rows],
                 label=f"ours ({ABLATIONS[result['name']].dataset}), mean", color="#9dbcea",
                 capsize=3)
        for position, row in zip(positions, rows):
            if row.per_seed:  # spread sideways a little so equal values stay visible
                offsets = numpy.linspace(-0.1, 0.1, len(row.per_seed)) if len(
                    row.per_seed) > 1 else numpy.zeros(1)
                axes.scatter(position + 0.2 + offsets, row.per_seed, s=14, color="#1b4f9c",
                             zorder=3, label="ours, each seed" if position == 0 else None)
        axes.axhline(0, color="black", lw=0.6)
        for position, row in zip(positions, result["rows"][1:]):
            if row.get("diverged_seeds") and key not in row["measured"]:  # no bar to draw
                axes.text(position + 0.2, 0, "diverged", rotation=90, ha="center",
                          va="bottom", fontsize=8, color="#3a7bd5")
        axes.set_xlim(-0.6, len(names) - 0.4)  # every slot, with or without a bar
        axes.set_xticks(positions, names, rotation=25, ha="right", fontsize=8)
        label = key.replace("_bb", " (box)").replace("_kp", " (keypoints)")
        axes.set_title(f"{label} minus\n{result['rows'][0]['variant']}", fontsize=9)
    # one legend for the figure, under the panels: inside one it can hide a seed's dot
    handles, labels = axes_list[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=7,
                  frameon=False)
    figure.suptitle(f"Table {result['ablation']}: {result['question']}", fontsize=10)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    return figure


def write_results(result: dict, path) -> None:
    """Write the results file atomically: written beside, then renamed over, so an
    interrupted write never leaves half a file."""
    folder = os.path.dirname(os.fspath(path)) or "."
    os.makedirs(folder, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".json.tmp",
                                     delete=False) as stream:
        json.dump(result, stream, indent=2, allow_nan=False)
        stream.write("\n")
    os.replace(stream.name, path)


def results_path(folder, name: str) -> str:
    return os.path.join(folder, f"{name}.json")


def record(result: dict, folder) -> tuple[str, str]:
    """Write ``<folder>/<name>.json`` and ``<name>.png``; returns their paths."""
    json_path = results_path(folder, result["name"])
    write_results(result, json_path)
    png_path = os.path.join(folder, f"{result['name']}.png")
    plot_result(result).savefig(png_path, dpi=100)
    return json_path, png_path
