"""The paper's ablations (Table 2a-2e, Table 3) as config changes, run at small scale.

Each ablation is a list of variants; a variant is a few ``MaskRCNNConfig`` field changes
(never a fork of the code) and the row of the paper it stands for. ``run_ablation`` trains
each variant on the built-in shapes for every seed, evaluates COCO AP on the validation
images, and reports mean and spread beside the paper's numbers.

Scale: the paper trains ResNet-50/101 on COCO for 160k iterations on 8 GPUs; we train a
quarter-width ResNet-18/34 from scratch on 128-px synthetic shapes for minutes. The
absolute numbers are not comparable; the *directions* are what a lesson checks. Where we
stand one model in for another (ResNet-18 for ResNet-50, ResNet-34 for ResNet-101), the
variant's name says so.

The paper's numbers are copied from its Table 2 and Table 3 (mask AP unless marked
``_bb``, box AP), as given in the project's paper notes.
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field

import numpy

from tinymask.backend import get_backend


@dataclass(frozen=True)
class Variant:
    name: str
    changes: dict  # MaskRCNNConfig fields
    paper: dict  # the paper's row: {"AP": .., "AP50": .., "AP75": ..} (+ "_bb" box AP)


@dataclass(frozen=True)
class Ablation:
    name: str  # the CLI name
    table: str  # the paper's table
    question: str
    base: dict  # changes shared by every variant
    variants: tuple
    metrics: tuple = ("segm",)  # "segm" (mask AP) and/or "bbox" (box AP)
    finding: str = ""  # what the paper concluded


# The paper samples 64 RoIs per image for C4 and 512 for FPN (Sec. 3.1): C4's head runs res5
# on every RoI. We sample 32 for C4, which keeps a C4 step under twice an FPN step here.
C4 = {"fpn": False, "single_map": "c4", "anchor_sizes": (8, 16, 32, 64, 128),
      "box_batch_size_per_image": 32}
C5 = {"fpn": False, "single_map": "c5", "anchor_sizes": (8, 16, 32, 64, 128)}

ABLATIONS = {
    "backbone": Ablation(
        "backbone", "2a", "Do better backbones give better masks?", {}, (
            Variant("ResNet-18-C4 (for R50-C4)", {**C4, "backbone": "resnet18_w16"},
                    {"AP": 30.3, "AP50": 51.2, "AP75": 31.5}),
            Variant("ResNet-34-C4 (for R101-C4)", {**C4, "backbone": "resnet34_w16"},
                    {"AP": 32.7, "AP50": 54.2, "AP75": 34.3}),
            Variant("ResNet-18-FPN (for R50-FPN)", {"backbone": "resnet18_w16"},
                    {"AP": 33.6, "AP50": 55.2, "AP75": 35.3}),
            Variant("ResNet-34-FPN (for R101-FPN)", {"backbone": "resnet34_w16"},
                    {"AP": 35.4, "AP50": 57.3, "AP75": 37.5}),
            Variant("ResNeXt-50-FPN (for X101-FPN)", {"backbone": "resnext50_32x4d_w16"},
                    {"AP": 36.7, "AP50": 59.5, "AP75": 38.9}),
        ), finding="deeper networks do better, FPN beats C4, ResNeXt improves on ResNet"),
    "mask-loss": Ablation(
        "mask-loss", "2b", "Per-class sigmoid masks or one softmax over classes?", {}, (
            Variant("softmax (multinomial)", {"mask_loss": "softmax"},
                    {"AP": 24.8, "AP50": 44.1, "AP75": 25.1}),
            Variant("sigmoid (per class)", {"mask_loss": "sigmoid"},
                    {"AP": 30.3, "AP50": 51.2, "AP75": 31.5}),
        ), finding="decoupling masks from classification (sigmoid) gives large gains"),
    # The paper's Table 2c uses ResNet-50-C4. Our C4 head runs res5 on every sampled RoI,
    # about 10x the time of a step of the FPN model on a CPU, which would put the main job
    # (this ablation, quick preset) far over its 10 minutes; so at small scale the RoI ops
    # are compared on the FPN model. Table 2d below keeps a single large-stride map.
    "roi-align": Ablation(
        "roi-align", "2c", "Does RoIAlign beat RoIPool and RoIWarp? (FPN model; paper: C4)",
        {}, (
            Variant("RoIPool (max)", {"roi_op": "pool", "roi_aggregation": "max"},
                    {"AP": 26.9, "AP50": 48.8, "AP75": 26.4}),
            Variant("RoIWarp (bilinear, max)", {"roi_op": "warp", "roi_aggregation": "max"},
                    {"AP": 27.2, "AP50": 49.2, "AP75": 27.1}),
            Variant("RoIAlign (max)", {"roi_op": "align", "roi_aggregation": "max"},
                    {"AP": 30.2, "AP50": 51.0, "AP75": 31.8}),
            Variant("RoIAlign (avg)", {"roi_op": "align", "roi_aggregation": "avg"},
                    {"AP": 30.3, "AP50": 51.2, "AP75": 31.5}),
        ), finding="alignment, not bilinear sampling alone, gives ~3 AP and ~5 AP75"),
    "large-stride": Ablation(
        "large-stride", "2d", "How much worse is RoIPool on stride-32 features?", dict(C5), (
            Variant("RoIPool", {"roi_op": "pool", "roi_aggregation": "max"},
                    {"AP": 23.6, "AP50": 46.5, "AP75": 21.6,
                     "AP_bb": 28.2, "AP50_bb": 52.7, "AP75_bb": 26.9}),
            Variant("RoIAlign", {"roi_op": "align", "roi_aggregation": "avg"},
                    {"AP": 30.9, "AP50": 51.8, "AP75": 32.1,
                     "AP_bb": 34.0, "AP50_bb": 55.3, "AP75_bb": 36.4}),
        ), metrics=("segm", "bbox"),
        finding="at stride 32 RoIAlign's gain grows: +7.3 mask AP, +5.8 box AP"),
    "mask-head": Ablation(
        "mask-head", "2e", "A fully convolutional mask head or fully connected layers?", {}, (
            Variant("MLP fc 1024-1024", {"mask_head": "mlp", "mask_mlp_layers": 2},
                    {"AP": 31.5, "AP50": 53.7, "AP75": 32.8}),
            Variant("MLP fc 1024-1024-1024", {"mask_head": "mlp", "mask_mlp_layers": 3},
                    {"AP": 31.5, "AP50": 54.0, "AP75": 32.6}),
            Variant("FCN (4 convs + deconv)", {"mask_head": "fcn"},
                    {"AP": 33.6, "AP50": 55.2, "AP75": 35.3}),
        ), finding="FCNs keep the spatial layout and improve masks"),
    "multitask": Ablation(
        "multitask", "3", "Does training masks too help the boxes?", {}, (
            Variant("Faster R-CNN, RoIAlign", {"mask_branch": False},
                    {"AP_bb": 37.3, "AP50_bb": 59.6, "AP75_bb": 40.3}),
            Variant("Mask R-CNN", {"mask_branch": True},
                    {"AP_bb": 38.2, "AP50_bb": 60.3, "AP75_bb": 41.7}),
        ), metrics=("bbox",), finding="multi-task training adds ~0.9 box AP"),
}

# How long each variant trains: a training preset, changes to it, and the default seeds.
# quick: what the README's main job runs on a 2-core CPU in under 10 minutes (two
# single-threaded trainings at a time). 1000 steps is where the small model first separates
# the RoI ops (at 400 steps, AP ~3, the seeds' spread hid every gap); 64 RoIs per image
# instead of 128 is what pays for the steps. 100 validation images halve the noise of 50.
ABLATION_PRESETS = {
    "smoke": {"preset": "quick", "seeds": 1, "jobs": 1,  # for CI and the lessons' smoke mode
              "data": {"train": 4, "val": 2, "image_size": 64},
              "train": {"steps": 2, "batch_size": 1, "warmup_iters": 1, "log_every": 1}},
    "quick": {"preset": "quick", "seeds": 1, "data": {"val": 100},
              "model": {"box_batch_size_per_image": 64}, "train": {"steps": 1000}},
    "full": {"preset": "full", "seeds": 3, "data": {}, "train": {}},
}
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


# ---- running: every (variant, seed) trains and is evaluated -------------------------

def run_ablation(name: str, preset: str = "quick", seeds=None, command: str = "",
                 progress: bool = True, log=print, jobs: int | None = None) -> dict:
    """Train and evaluate every variant of ablation ``name``; returns the results dict.

    ``jobs``: how many (variant, seed) trainings run at once, each in its own process with
    one thread (default: ``default_jobs``). Every training is seeded by its seed alone, so
    the numbers do not depend on ``jobs`` beyond float rounding: a worker's BLAS runs one
    thread, the parent's may run several and sum in another order (tested).
    """
    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; choose one of {', '.join(ABLATIONS)}")
    if preset not in ABLATION_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of "
                         f"{', '.join(ABLATION_PRESETS)}")
    from tinymask.presets import load_preset

    ablation, settings = ABLATIONS[name], ABLATION_PRESETS[preset]
    base = load_preset(settings["preset"])
    data = {**base["data"], **settings["data"]}
    train_fields = {**base["train"], **settings["train"], "progress": False,
                    "checkpoint_every": 0}
    seeds = list(range(settings["seeds"])) if seeds is None else list(seeds)
    if not seeds:
        raise ValueError("seeds: give at least one seed (mean and spread are over seeds)")
    tasks = [{"variant": variant.name, "seed": seed, "data": data, "train": train_fields,
              "model": {**settings.get("model", {}), **ablation.base, **variant.changes}}
             for variant in ablation.variants for seed in seeds]
    if jobs is None:
        jobs = settings.get("jobs") or default_jobs(len(tasks))
    jobs = int(jobs)
    if jobs < 1:
        raise ValueError(f"jobs={jobs}: run at least one training at a time")
    if jobs > 1 and get_backend() != "numpy":
        raise ValueError("jobs > 1 runs trainings in CPU processes; the cupy backend trains "
                         "one at a time on the GPU (jobs=1)")
    run = AblationRun(ablation, preset, seeds, command or f"tinymask ablate {name} "
                      f"--preset {preset} --seeds {len(seeds)}")
    start = time.perf_counter()
    bar = _progress_bar(len(tasks) * train_fields["steps"], f"{name} ({jobs} at a time)",
                        progress)
    outcomes = {}

    def finished(task, outcome):
        outcomes[(task["variant"], task["seed"])] = outcome
        summary = outcome.get("diverged") or ", ".join(
            f"{t} AP {m['AP']:.1f} AP75 {m['AP75']:.1f}" for t, m in outcome["metrics"].items())
        log(f"{task['variant']}, seed {task['seed']}: {summary} "
            f"({outcome['seconds']:.0f} s)")

    if jobs == 1:
        for task in tasks:
            finished(task, _train_one(task, bar.update))
    else:
        _run_in_processes(tasks, jobs, finished, bar.update)
    bar.close()
    trainings = []
    for task in tasks:  # in table order, whatever order they finished in
        outcome = outcomes[(task["variant"], task["seed"])]
        training = {"variant": task["variant"], "seed": task["seed"],
                    "seconds": round(outcome["seconds"], 1),
                    "final_loss": outcome["final_loss"]}
        if outcome.get("diverged"):
            training["diverged"] = outcome["diverged"]
            run.diverged.setdefault(task["variant"], []).append(task["seed"])
        else:
            run.per_seed.setdefault(task["variant"], []).append(outcome["metrics"])
            training.update({metric + _suffix(iou_type): round(values[metric], 2)
                             for iou_type, values in outcome["metrics"].items()
                             for metric in METRIC_NAMES})
        trainings.append(training)
    run.seconds = time.perf_counter() - start
    result = to_json(run)
    # each training on its own: per-seed AP (for paired comparisons) and its time
    result.update(jobs=jobs, trainings=trainings)
    return result


# the thread pools a worker must size before NumPy/Numba start (read once, at import)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


def _train_one(task: dict, steps_done=None) -> dict:
    """Train and evaluate one (variant, seed): the unit of work, run here or in a worker.
    ``steps_done``: called with the number of steps trained since its last call (progress);
    a worker is given a queue's ``put``."""
    from tinymask.config import MaskRCNNConfig
    from tinymask.data import make_shapes_splits
    from tinymask.evaluate import evaluate_model
    from tinymask.train import TrainConfig, Trainer, TrainingDivergedError

    data = task["data"]
    extra = {k: v for k, v in data.items() if k not in ("train", "val")}
    # the same images for every variant and seed: only the model and its training vary
    train_data, val_data = make_shapes_splits(data["train"], data["val"], seed=0, **extra)
    model_config = MaskRCNNConfig.small(
        num_classes=train_data.num_classes, min_size=data["image_size"],
        max_size=data["image_size"], **task["model"])
    train_config = TrainConfig.from_dict({**task["train"], "seed": task["seed"]})
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out_dir:
        trainer = Trainer(model_config, train_config, train_data, out_dir)
        reported = [0]

        def report(record):
            if steps_done is not None:
                steps_done(record["step"] - reported[0])
                reported[0] = record["step"]

        try:
            last = trainer.run(log=report)
        except TrainingDivergedError as exc:  # a result too: reported, never dropped
            return {"metrics": None, "diverged": str(exc), "final_loss": None,
                    "seconds": time.perf_counter() - start}
    metrics = evaluate_model(trainer.model, val_data, progress=False)
    return {"metrics": metrics, "seconds": time.perf_counter() - start,
            "final_loss": float(last["loss"])}


def default_jobs(num_tasks: int) -> int:
    """Parallel training processes: one per core on the NumPy backend (each single-threaded:
    the small model's layers are too small for threads to pay, so two processes train two
    variants in the time one two-threaded process trains one), one on the GPU."""
    if get_backend() != "numpy":
        return 1
    return max(1, min(os.cpu_count() or 1, num_tasks))


def _progress_bar(total: int, description: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="step", disable=not enabled)


def _run_in_processes(tasks: list, jobs: int, finished, steps_done) -> None:
    """Run ``_train_one`` over ``tasks`` in ``jobs`` fresh single-threaded processes; the
    workers' step counts come back through a queue to ``steps_done``."""
    import multiprocessing
    import queue as queue_module
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: "1" for name in THREAD_VARIABLES})  # the workers inherit it
    try:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter reads them
        with context.Manager() as manager, ProcessPoolExecutor(
                max_workers=jobs, mp_context=context) as pool:
            steps = manager.Queue()
            futures = {pool.submit(_train_one, task, steps.put): task for task in tasks}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                while True:
                    try:
                        steps_done(steps.get_nowait())
                    except queue_module.Empty:
                        break
                for future in done:
                    finished(futures[future], future.result())
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# ---- the results file: rows, tables, figures -----------------------------------------

def _suffix(iou_type: str) -> str:
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
                    key = metric + _suffix(iou_type)
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
    on one axis. Error bars: the spread of our per-seed gains."""
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
