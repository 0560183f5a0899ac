"""Running an ablation: every (variant, seed) trains on the built-in data (shapes, or the
stick figures for Table 4) and is evaluated.

``run_ablation(name)`` trains each variant of ``ABLATIONS[name]`` for every seed, in
parallel single-threaded processes on the CPU, evaluates COCO AP on the validation images,
and returns the results dict of ``tinymask.ablations.report``.

Given a results file (``tinymask ablate NAME --out DIR`` or ``--record``), each training is
written into it as soon as it finishes (atomically), so an interrupted ablation loses only
the trainings in progress: the same command again resumes it, training only what the file
lacks. A file from a run with other settings (preset, seeds, data, recipe, backend) is
never mixed with this one: it is refused, or replaced when asked (``overwrite=True``).
"""

from __future__ import annotations

import json
import os
import tempfile
import time

from tinymask.ablations.report import (
    METRIC_NAMES,
    AblationRun,
    metric_keys,
    metric_suffix,
    to_json,
    write_results,
)
from tinymask.ablations.table import ABLATIONS
from tinymask.backend import get_backend
from tinymask.errors import ConfigError, UserError, writing

# How long each variant trains: a training preset, changes to it, and the default seeds.
# standard: the default, sized to run Table 2c (four trainings) on a 2-core CPU in under 10
# minutes, two single-threaded trainings at a time. On the tables' data
# (tinymask.ablations.table.SHAPES_DATA) RoIAlign (avg) reached 27.2 mask AP in 600 steps and
# 34.9 in 800 (seed 0; RoIPool 18.1 and 22.1): 800 steps put it above 30 with the margin a
# seed's spread needs. 64 RoIs per image instead of 128 is what pays for the steps. 100
# validation images halve the noise of 50.
ABLATION_PRESETS = {
    "smoke": {"preset": "starter", "seeds": 1, "jobs": 1,  # for CI and the lessons' smoke mode
              "data": {"train": 4, "val": 2, "image_size": 64},
              "train": {"steps": 2, "batch_size": 1, "warmup_iters": 1, "log_every": 1}},
    "standard": {"preset": "starter", "seeds": 1, "data": {"val": 100},
                 "model": {"box_batch_size_per_image": 64}, "train": {"steps": 800}},
    "full": {"preset": "full", "seeds": 3, "data": {}, "train": {}},
}
# the results recorded before "standard" was named so call it "quick"; they still read
OLD_PRESET_NAMES = {"quick": "standard"}
ABLATION_PRESETS.update({old: ABLATION_PRESETS[new] for old, new in OLD_PRESET_NAMES.items()})


def table_settings(ablation, settings: dict) -> tuple[dict, dict]:
    """(data, train) of every training of ``ablation`` under an ablation preset's
    ``settings``: the training preset's sections, then the table's data options, the
    preset's changes, the table's own training changes, its image scale (the image size
    and the smallest object's) and its steps factor."""
    from tinymask.presets import load_preset

    base = load_preset(settings["preset"])
    data = {**base["data"], **ablation.data_options(), **settings["data"],
            "dataset": ablation.dataset}
    if ablation.image_scale != 1:  # the image (a side or [height, width]) and its objects
        size, scale = data["image_size"], ablation.image_scale
        data["image_size"] = ([side * scale for side in size] if isinstance(size, (list, tuple))
                              else size * scale)
        for name in ("min_size", "min_height"):  # the shapes' and the figures' smallest
            if name in data:
                data[name] *= scale
    train = {**base["train"], **settings["train"], **ablation.train, "progress": False,
             "checkpoint_every": 0}
    train["steps"] *= ablation.steps_factor
    return data, train


def run_ablation(name: str, preset: str = "standard", seeds=None, command: str = "",
                 progress: bool = True, log=print, jobs: int | None = None,
                 results_file=None, overwrite: bool = False) -> dict:
    """Train and evaluate every variant of ablation ``name``; returns the results dict.

    ``seeds``: a list of seeds (default: the preset's count, from the table's own
    ``first_seed``). ``jobs``: how many (variant, seed) trainings run at once, each in its
    own process with one thread (default: ``default_jobs``). Every training is seeded by
    its seed alone, so the numbers do not depend on ``jobs`` beyond float rounding: a
    worker's BLAS runs one thread, the parent's may run several and sum in another order
    (tested). ``results_file``: where each finished training is written at once, and what
    an interrupted run resumes from (see the module docstring); ``overwrite``: start again
    over a file that holds another run (it is replaced when the first training finishes).
    """
    if name not in ABLATIONS:
        raise ConfigError(f"unknown ablation {name!r}; choose one of {', '.join(ABLATIONS)}")
    if preset not in ABLATION_PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of "
                         f"{', '.join(p for p in ABLATION_PRESETS if p not in OLD_PRESET_NAMES)}")

    ablation, settings = ABLATIONS[name], ABLATION_PRESETS[preset]
    data, train_fields = table_settings(ablation, settings)
    seeds = ablation.default_seeds(settings["seeds"]) if seeds is None else list(seeds)
    if not seeds:
        raise ConfigError("seeds: give at least one seed (mean and spread are over seeds)")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds {seeds}: each seed once (a repeated seed repeats a training)")
    tasks = [{"variant": variant.name, "seed": seed, "data": data, "train": train_fields,
              "model": {**settings.get("model", {}), **ablation.base, **variant.changes}}
             for variant in ablation.variants for seed in seeds]
    if jobs is None:
        jobs = settings.get("jobs") or default_jobs(len(tasks))
    jobs = int(jobs)
    if jobs < 1:
        raise ConfigError(f"jobs={jobs}: run at least one training at a time")
    if jobs > 1 and get_backend() != "numpy":
        raise ConfigError("jobs > 1 runs trainings in CPU processes; the cupy backend trains "
                         "one at a time on the GPU (jobs=1)")
    # what the numbers depend on, beyond the code: a resumed run must match it
    run_settings = json.loads(json.dumps({"data": data, "train": train_fields,
                                          "model": settings.get("model", {}),
                                          "backend": get_backend()}))
    run = AblationRun(ablation, preset, seeds, command or f"tinymask ablate {name} "
                      f"--preset {preset} --seeds {len(seeds)}", settings=run_settings,
                      jobs=jobs)
    if results_file is not None and not overwrite:
        _resume(run, results_file, log)
    done = {(t["variant"], t["seed"]) for t in run.trainings}
    tasks = [task for task in tasks if (task["variant"], task["seed"]) not in done]
    earlier_seconds, start = run.seconds, time.perf_counter()
    jobs = min(jobs, max(1, len(tasks)))
    bar = _progress_bar(len(tasks) * train_fields["steps"], f"{name} ({jobs} at a time)",
                        progress)

    def finished(task, outcome):
        training = training_record(task, outcome)
        run.trainings.append(training)
        summary = outcome.get("diverged") or ", ".join(
            f"{t} AP {m['AP']:.1f} AP75 {m['AP75']:.1f}" for t, m in outcome["metrics"].items())
        log(f"{task['variant']}, seed {task['seed']}: {summary} "
            f"({outcome['seconds']:.0f} s)")
        if results_file is not None:
            run.seconds = earlier_seconds + time.perf_counter() - start
            with writing(results_file, "results file"):
                write_results(to_json(run), results_file)

    if jobs == 1:
        for task in tasks:
            finished(task, _train_one(task, bar.update))
    elif tasks:
        _run_in_processes(tasks, jobs, finished, bar.update)
    bar.close()
    run.seconds = earlier_seconds + time.perf_counter() - start
    result = to_json(run)
    if results_file is not None and tasks:  # its total time, evaluations included
        with writing(results_file, "results file"):
            write_results(result, results_file)
    return result


def training_record(task: dict, outcome: dict) -> dict:
    """One training as the results file keeps it: its variant and seed, time, final loss
    and late loss (the mean over the last fifth of the steps), and its metrics rounded to
    0.01 AP (or why it diverged)."""
    training = {"variant": task["variant"], "seed": task["seed"],
                "seconds": round(outcome["seconds"], 1), "final_loss": outcome["final_loss"]}
    if outcome.get("late_loss") is not None:
        training["late_loss"] = round(outcome["late_loss"], 4)
    if outcome.get("diverged"):
        training["diverged"] = outcome["diverged"]
    else:
        training.update({metric + metric_suffix(iou_type): round(values[metric], 2)
                         for iou_type, values in outcome["metrics"].items()
                         for metric in METRIC_NAMES})
    return training


def _differences(stored: dict, current: dict, prefix: str = "") -> list[str]:
    """``"key stored -> current"`` for each setting that differs (nested dicts walked)."""
    out = []
    for key in sorted(set(stored) | set(current)):
        old, new = stored.get(key, "(none)"), current.get(key, "(none)")
        if isinstance(old, dict) and isinstance(new, dict):
            out += _differences(old, new, f"{prefix}{key}.")
        elif old != new:
            out.append(f"{prefix}{key} {json.dumps(old)} -> {json.dumps(new)}")
    return out


def _resume(run: AblationRun, path, log) -> None:
    """Take the finished trainings of ``path`` into ``run`` when the file holds this run
    (same ablation, preset, seeds and settings); refuse a file that holds another."""
    if not os.path.exists(path):
        return
    name = run.ablation.name
    again = "give another --out, or start again over it with --overwrite"
    try:
        with open(path) as stream:
            stored = json.load(stream)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is there but is not a readable results file ({exc}); "
                        f"{again}") from exc
    if not isinstance(stored, dict) or "settings" not in stored or not isinstance(
            stored.get("trainings"), list):
        raise UserError(f"{path} holds no resumable ablation results (no settings or "
                        f"trainings: another file, or one from an older tinymask); {again}")
    current = {"ablation": name, "preset": run.preset, "seeds": run.seeds, **run.settings}
    recorded = {"ablation": stored.get("name"), "preset": stored.get("preset"),
                "seeds": stored.get("seeds"), **stored["settings"]}
    differences = _differences(recorded, current)
    if differences:
        raise ConfigError(f"{path} holds a run with other settings ({'; '.join(differences)})"
                          f": resuming would mix two runs' trainings; {again}")
    keys = metric_keys(run.ablation)
    wanted = {(variant.name, seed) for variant in run.ablation.variants for seed in run.seeds}
    for training in stored["trainings"]:
        complete = isinstance(training, dict) and (
            "diverged" in training or all(key in training for key in keys))
        if not complete or (training.get("variant"), training.get("seed")) not in wanted:
            raise UserError(f"{path}: a training record that does not belong to this run "
                            f"({json.dumps(training)[:120]}); {again}")
    run.trainings = list(stored["trainings"])
    run.seconds = float(stored.get("seconds", 0.0))
    resumed_by, run.command = run.command, stored.get("command", run.command)
    run.resumed = list(stored.get("resumed", []))
    finished = len(run.trainings)
    if finished == len(wanted):
        log(f"{path} already holds all {finished} trainings of this run: nothing to train "
            f"(--overwrite trains them again)")
        return
    run.resumed.append({"command": resumed_by, "finished_before": finished,
                        "jobs": run.jobs})
    names = ", ".join(f"{t['variant']} seed {t['seed']}" for t in run.trainings)
    log(f"resuming {path}: {finished} of {len(wanted)} trainings already there ({names}), "
        f"{len(wanted) - finished} to train"
        + ("" if resumed_by == run.command else
           f"; started by '{run.command}', same settings"))


# the thread pools a worker must size before NumPy/Numba start (read once, at import)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


def _train_one(task: dict, steps_done=None) -> dict:
    """Train and evaluate one (variant, seed): the unit of work, run here or in a worker.
    ``steps_done``: called with the number of steps trained since its last call (progress);
    a worker is given a queue's ``put``."""
    from tinymask.evaluate import evaluate_model
    from tinymask.presets import built_in_splits, model_config_for
    from tinymask.train import TrainConfig, Trainer, TrainingDivergedError

    data = task["data"]
    # the same images for every variant and seed: only the model and its training vary
    train_data, val_data = built_in_splits({**data, "seed": 0})
    model_config = model_config_for(train_data, task["model"], data["image_size"])
    train_config = TrainConfig.from_dict({**task["train"], "seed": task["seed"]})
    start, start_cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as out_dir:
        trainer = Trainer(model_config, train_config, train_data, out_dir)
        reported, late_losses = [0], []
        late_from = train_config.steps - max(1, train_config.steps // 5)

        def report(record):
            if record["step"] > late_from:
                late_losses.append(record["loss"])
            if steps_done is not None:
                steps_done(record["step"] - reported[0])
                reported[0] = record["step"]

        try:
            last = trainer.run(log=report)
        except TrainingDivergedError as exc:  # a result too: reported, never dropped
            return {"metrics": None, "diverged": str(exc), "final_loss": None,
                    "seconds": time.perf_counter() - start}
    # the training alone, in wall and CPU time (the CPU time is the step's own cost on a
    # shared machine)
    timing = {"train_seconds": time.perf_counter() - start,
              "train_cpu_seconds": time.process_time() - start_cpu}
    metrics = evaluate_model(trainer.model, val_data, progress=False)
    outcome = {"metrics": metrics, "seconds": time.perf_counter() - start,
               "final_loss": float(last["loss"]), **timing,
               # the mean logged loss over the last fifth of the steps: one step's loss is
               # one batch of a few images, too noisy to compare two models by
               "late_loss": float(sum(late_losses) / len(late_losses))}
    if task.get("fit_images"):  # how well it fits its own training images (a probe's ask):
        # image i of the built-in data depends on (seed, i) only, so a training split of
        # fewer images is the first images of the one it trained on
        first_images, _ = built_in_splits(
            {**data, "seed": 0, "train": min(task["fit_images"], data["train"])})
        outcome["train_metrics"] = evaluate_model(trainer.model, first_images, progress=False)
    return outcome


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

