"""Running an ablation: every (variant, seed) trains on the built-in shapes and is evaluated.

``run_ablation(name)`` trains each variant of ``ABLATIONS[name]`` for every seed, in
parallel single-threaded processes on the CPU, evaluates COCO AP on the validation images,
and returns the results dict of ``tinymask.ablations.report``.
"""

from __future__ import annotations

import os
import tempfile
import time

from tinymask.ablations.report import METRIC_NAMES, AblationRun, metric_suffix, to_json
from tinymask.ablations.table import ABLATIONS
from tinymask.backend import get_backend
from tinymask.errors import ConfigError

# How long each variant trains: a training preset, changes to it, and the default seeds.
# standard: the default, sized to run Table 2c on a 2-core CPU in under 10 minutes (two
# single-threaded trainings at a time). 1000 steps is where the small model first separates
# the RoI ops (at 400 steps, AP ~3, the seeds' spread hid every gap); 64 RoIs per image
# instead of 128 is what pays for the steps. 100 validation images halve the noise of 50.
ABLATION_PRESETS = {
    "smoke": {"preset": "starter", "seeds": 1, "jobs": 1,  # for CI and the lessons' smoke mode
              "data": {"train": 4, "val": 2, "image_size": 64},
              "train": {"steps": 2, "batch_size": 1, "warmup_iters": 1, "log_every": 1}},
    "standard": {"preset": "starter", "seeds": 1, "data": {"val": 100},
                 "model": {"box_batch_size_per_image": 64}, "train": {"steps": 1000}},
    "full": {"preset": "full", "seeds": 3, "data": {}, "train": {}},
}
# the results recorded before "standard" was named so call it "quick"; they still read
OLD_PRESET_NAMES = {"quick": "standard"}
ABLATION_PRESETS.update({old: ABLATION_PRESETS[new] for old, new in OLD_PRESET_NAMES.items()})


def run_ablation(name: str, preset: str = "standard", seeds=None, command: str = "",
                 progress: bool = True, log=print, jobs: int | None = None) -> dict:
    """Train and evaluate every variant of ablation ``name``; returns the results dict.

    ``jobs``: how many (variant, seed) trainings run at once, each in its own process with
    one thread (default: ``default_jobs``). Every training is seeded by its seed alone, so
    the numbers do not depend on ``jobs`` beyond float rounding: a worker's BLAS runs one
    thread, the parent's may run several and sum in another order (tested).
    """
    if name not in ABLATIONS:
        raise ConfigError(f"unknown ablation {name!r}; choose one of {', '.join(ABLATIONS)}")
    if preset not in ABLATION_PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of "
                         f"{', '.join(p for p in ABLATION_PRESETS if p not in OLD_PRESET_NAMES)}")
    from tinymask.presets import load_preset

    ablation, settings = ABLATIONS[name], ABLATION_PRESETS[preset]
    base = load_preset(settings["preset"])
    data = {**base["data"], **settings["data"]}
    train_fields = {**base["train"], **settings["train"], "progress": False,
                    "checkpoint_every": 0}
    seeds = list(range(settings["seeds"])) if seeds is None else list(seeds)
    if not seeds:
        raise ConfigError("seeds: give at least one seed (mean and spread are over seeds)")
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
            training.update({metric + metric_suffix(iou_type): round(values[metric], 2)
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
    from tinymask.data import make_shapes_splits
    from tinymask.evaluate import evaluate_model
    from tinymask.presets import model_config_for
    from tinymask.train import TrainConfig, Trainer, TrainingDivergedError

    data = task["data"]
    extra = {k: v for k, v in data.items() if k not in ("train", "val")}
    # the same images for every variant and seed: only the model and its training vary
    train_data, val_data = make_shapes_splits(data["train"], data["val"], seed=0, **extra)
    model_config = model_config_for(train_data, task["model"], data["image_size"])
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

