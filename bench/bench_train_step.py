"""One Mask R-CNN training step (forward + backward + SGD) on the CPU: this code against an
older commit, side by side, with the same seed and the same batches.

    python bench/bench_train_step.py --baseline a8119ae          # the main job's setting
    python bench/bench_train_step.py --baseline a8119ae --baseline 7e1f887   # three versions
    python bench/bench_train_step.py --baseline a8119ae --profile 25   # own time per function
    python bench/bench_train_step.py --baseline a8119ae --breakdown    # CPU time per op
    python bench/bench_train_step.py --model r50 --size 512 --steps 2   # this code alone
    python bench/bench_train_step.py --threads-question --rounds 3 --steps 20

``small`` is ``MaskRCNNConfig.small(box_batch_size_per_image=64)``, the main job's model
(quarter-width ResNet-18 + FPN-64, group norm) at 128 px, batch 2; ``r50`` is torchvision's
maskrcnn_resnet50_fpn layout (ResNet-50 + FPN-256, the same heads) with group norm and nothing
frozen, as one trains from scratch. Images come from the built-in shapes.

How the comparison runs. ``--baseline REV`` (repeatable) extracts that commit with ``git
archive`` into a temporary folder. Each round starts one worker process per version, in turn
(each baseline, then this code), so all of them see the same load on a shared machine. A
worker trains a fresh model from the seed for ``--warmup + --steps`` steps on the same
batches as the others (the first steps compile the Numba kernels and are not timed) and
reports each step's wall and CPU time and losses. Per round the ratio is this code's total
step time over a baseline's; the script prints the median, smallest and largest over the
rounds. Wall time is what a run waits for; on a machine busy with other work it also counts
the time the worker waited for a core, which CPU time does not. Threads: ``--threads``
(default 1, the main job's setting) sets OMP/OpenBLAS/MKL/Numba threads in each worker.

Same results: one more worker per version trains ``--check-steps`` steps (50) in float64
(the parameters cast to float64 after init, so every layer computes in float64), and every
loss of every step must equal the baseline's within relative 1e-4. In float32 the two
versions agree at step 0 but part ways within a few steps however carefully the
arithmetic matches: a rounding-level difference (even splitting one GEMM's sum in two, in
the baseline itself) moves a proposal across the 0.5 IoU threshold or a score across the
top-k cut, and the sampler then draws other RoIs. The script prints the float32 losses'
agreement too. Memory: after the timed steps each worker runs one more step under
tracemalloc (peak NumPy memory in that step) and reports its peak RSS.

Threads (``--threads-question``): per round, one worker with 2 threads, then two
single-threaded workers started together (the main job runs two trainings at a time on 2
cores); the script compares the steps per second the machine makes each way.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")
LOSS_RTOL = 1e-4


# ------------------------------------------------------------------ the worker (one version)
def build_trainer(model: str, size: int, batch: int, steps: int, dtype: str = "float32"):
    import numpy as np

    from tinymask.config import MaskRCNNConfig
    from tinymask.data import ShapesDataset
    from tinymask.train import TrainConfig, Trainer

    dataset = ShapesDataset(max(8, batch * 4), image_size=size, seed=0)
    common = dict(num_classes=dataset.num_classes, min_size=size, max_size=size)
    if model == "small":
        config = MaskRCNNConfig.small(box_batch_size_per_image=64, **common)
    else:
        # from random init: group norm, nothing frozen. Frozen batch norm (torchvision's
        # setting) only makes sense with pretrained weights; with random ones it normalises
        # nothing and 50 layers overflow float32 by the second step.
        config = MaskRCNNConfig(backbone="resnet50", norm="gn", freeze_at=0, **common)
    train_config = TrainConfig(steps=steps + 1, batch_size=batch, warmup_iters=0, progress=False,
                               checkpoint_every=0)
    trainer = Trainer(config, train_config, dataset, tempfile.mkdtemp())
    for parameter in trainer.model.parameters():
        parameter.data = parameter.data.astype(np.dtype(dtype))
    return trainer


def worker(args) -> None:
    import resource
    import time
    import tracemalloc

    import numpy as np

    trainer = build_trainer(args.model, args.size, args.batch, args.warmup + args.steps,
                            args.dtype)
    records = []
    profiler = breakdown = None
    for step in range(args.warmup + args.steps):
        if step == args.warmup and args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        if step == args.warmup and args.breakdown:
            breakdown = OpClock(trainer)
        wall, cpu = time.perf_counter(), time.process_time()
        losses = trainer.train_step()
        records.append({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
                        "losses": losses})
    if profiler is not None:
        profiler.disable()
        print_profile(profiler, args.profile, args.steps)
    if breakdown is not None:
        breakdown.report(sum(record["cpu"] for record in records[args.warmup:]), args.steps)
    tracemalloc.start()
    trainer.train_step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    result = {"steps": records, "warmup": args.warmup, "peak_numpy_mib": peak / 2**20,
              "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "parameters": trainer.model.num_parameters(), "numpy": np.__version__}
    print("RESULT " + json.dumps(result))


class OpClock:
    """CPU time of each autograd op's forward and backward, and of the optimizer step: every
    ``Function`` subclass and ``optimizer.step`` wrapped with a clock (process time)."""

    def __init__(self, trainer):
        import time

        from tinymask.autograd import Function

        self.clock, self.totals = time.process_time, {}
        original_apply = Function.apply.__func__

        def apply(cls, *args, **kwargs):
            start = self.clock()
            result = original_apply(cls, *args, **kwargs)
            self._add(cls.__name__, 0, self.clock() - start)
            return result

        Function.apply = classmethod(apply)
        stack = list(Function.__subclasses__())
        while stack:
            cls = stack.pop()
            stack.extend(cls.__subclasses__())
            cls.backward = staticmethod(self._timed_backward(cls))
        optimizer = trainer.optimizer
        original_step = optimizer.step

        def step():
            start = self.clock()
            original_step()
            self._add("optimizer step", 0, self.clock() - start)

        optimizer.step = step

    def _add(self, name, which, seconds):
        self.totals.setdefault(name, [0.0, 0.0])[which] += seconds

    def _timed_backward(self, cls):
        original = cls.backward

        def backward(ctx, grad):
            start = self.clock()
            result = original(ctx, grad)
            self._add(cls.__name__, 1, self.clock() - start)
            return result

        return backward

    def report(self, total_cpu: float, steps: int) -> None:
        print(f"BREAKDOWN {'op':24s} {'forward':>8s} {'backward':>8s} {'total':>8s}  "
              f"(CPU ms per step)")
        rows = sorted(self.totals.items(), key=lambda kv: -sum(kv[1]))
        for name, (forward, backward) in rows:
            print(f"BREAKDOWN {name:24s} {1e3 * forward / steps:8.2f} {1e3 * backward / steps:8.2f}"
                  f" {1e3 * (forward + backward) / steps:8.2f}")
        ops = sum(sum(pair) for pair in self.totals.values())
        print(f"BREAKDOWN {'everything else':24s} {'':8s} {'':8s} "
              f"{1e3 * (total_cpu - ops) / steps:8.2f}  (data, RPN and RoI bookkeeping, "
              f"losses, the autograd walk)")
        print(f"BREAKDOWN {'step':24s} {'':8s} {'':8s} {1e3 * total_cpu / steps:8.2f}")


def print_profile(profiler, top: int, steps: int) -> None:
    """The functions that took the most time of their own, in ms per step."""
    import pstats

    stats = pstats.Stats(profiler)
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]
    total = sum(entry[2] for entry in stats.stats.values())
    print(f"PROFILE total {1e3 * total / steps:.1f} ms/step (profiler overhead included)")
    for (filename, line, name), (_, calls, own, cumulative, _) in rows:
        where = os.path.relpath(filename, ROOT) if filename.startswith(ROOT) else filename
        if "site-packages" in where or "<" in where:
            where = os.path.basename(where)
        print(f"PROFILE {1e3 * own / steps:7.2f} ms own {1e3 * cumulative / steps:7.2f} ms cum "
              f"{calls / steps:7.1f} calls  {where}:{line}({name})")


# ------------------------------------------------------------------ the driver
def worker_command(tree: str, args, steps=None, warmup=None, dtype="float32", profile=None,
                   breakdown=None, threads=None):
    """The command line and environment of one worker on ``tree``."""
    env = dict(os.environ, PYTHONPATH=tree)
    threads = args.threads if threads is None else threads
    env.update({name: str(threads) for name in THREAD_VARIABLES})
    steps = args.steps if steps is None else steps
    warmup = args.warmup if warmup is None else warmup
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--model", args.model,
               "--size", str(args.size), "--batch", str(args.batch), "--steps", str(steps),
               "--warmup", str(warmup), "--dtype", dtype,
               "--profile", str(args.profile if profile is None else profile)]
    if args.breakdown if breakdown is None else breakdown:
        command.append("--breakdown")
    return command, env


def read_worker(tree: str, label: str, returncode: int, stdout: str, stderr: str) -> dict:
    if returncode != 0:
        raise RuntimeError(f"the worker on {tree} failed:\n{stderr[-3000:]}")
    result = None
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
        elif line.startswith(("PROFILE ", "BREAKDOWN ")):
            print(f"  [{label}] {line.split(' ', 1)[1]}")
    return result


def run_worker(tree: str, args, label: str, **options) -> dict:
    command, env = worker_command(tree, args, **options)
    done = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True)
    return read_worker(tree, label, done.returncode, done.stdout, done.stderr)


def run_workers_together(tree: str, args, count: int, threads: int) -> list[dict]:
    """``count`` workers started at once, each with ``threads`` threads."""
    command, env = worker_command(tree, args, threads=threads, profile=0, breakdown=False)
    running = [subprocess.Popen(command, env=env, cwd=tree, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(count)]
    outputs = [process.communicate() for process in running]
    return [read_worker(tree, "together", process.returncode, stdout, stderr)
            for process, (stdout, stderr) in zip(running, outputs)]


def threads_question(args) -> None:
    """One worker with 2 threads against two single-threaded workers at once (the main
    job's setting), alternating: steps per second of the machine, from the timed steps."""
    print(f"machine: {cpu_name()} ({os.cpu_count()} cores); {args.model} model, batch "
          f"{args.batch} x {args.size} px, {args.warmup} warm-up + {args.steps} timed steps "
          f"per worker")
    ratios = []
    for round_index in range(args.rounds):
        (alone,) = run_workers_together(ROOT, args, 1, threads=2)
        pair = run_workers_together(ROOT, args, 2, threads=1)
        one_process = args.steps / sum(timed(alone, "wall"))
        two_processes = sum(args.steps / sum(timed(result, "wall")) for result in pair)
        ratios.append(two_processes / one_process)
        print(f"round {round_index + 1}: one process with 2 threads {one_process:.2f} steps/s, "
              f"two with 1 thread {two_processes:.2f} steps/s together "
              f"({two_processes / one_process:.2f}x)", flush=True)
    print(f"two single-threaded processes / one with 2 threads, steps per second: median "
          f"{statistics.median(ratios):.2f}x over {len(ratios)} rounds")


def extract(revision: str) -> str:
    """The tree of ``revision`` in a temporary folder (git archive: no worktree is touched)."""
    folder = tempfile.mkdtemp(prefix="tinymask-baseline-")
    archive = subprocess.run(["git", "-C", ROOT, "archive", revision], capture_output=True,
                             check=True)
    subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)
    return folder


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed(result: dict, key: str) -> list[float]:
    return [step[key] for step in result["steps"][result["warmup"]:]]


def loss_differences(baseline: dict, ours: dict) -> list[float]:
    """Per step, the largest relative difference of any loss."""
    return [max(abs(new["losses"][name] - value) / max(abs(value), 1e-12)
                for name, value in old["losses"].items())
            for old, new in zip(baseline["steps"], ours["steps"])]


def summary(label: str, results: list[dict]) -> str:
    walls = [t for r in results for t in timed(r, "wall")]
    return (f"{label}: seconds per step median {statistics.median(walls):.4f} "
            f"(min {min(walls):.4f}); peak NumPy memory in one step "
            f"{max(r['peak_numpy_mib'] for r in results):.0f} MiB, peak RSS "
            f"{max(r['peak_rss_mib'] for r in results):.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("small", "r50"), default="small")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=45, help="timed steps per worker")
    parser.add_argument("--warmup", type=int, default=5, help="untimed first steps per worker")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--baseline", action="append", default=[],
                        help="a git revision to compare with (e.g. main); may be repeated")
    parser.add_argument("--check-steps", type=int, default=50,
                        help="steps of the float64 loss comparison (0: skip)")
    parser.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--profile", type=int, default=0,
                        help="print the N functions with the most own time (one round)")
    parser.add_argument("--breakdown", action="store_true",
                        help="print the CPU time of each op and the optimizer (one round)")
    parser.add_argument("--threads-question", action="store_true",
                        help="one process with 2 threads against two with 1 (throughput)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.threads_question:
        threads_question(args)
        return

    trees = {f"baseline {revision}": extract(revision) for revision in args.baseline}
    trees["this code"] = ROOT
    print(f"machine: {cpu_name()} ({os.cpu_count()} cores), Python {platform.python_version()}, "
          f"{args.threads} thread(s) per worker; {args.model} model, batch {args.batch} x "
          f"{args.size} px, {args.warmup} warm-up + {args.steps} timed steps per worker")
    results = {label: [] for label in trees}
    rounds = 1 if args.profile or args.breakdown else args.rounds
    for round_index in range(rounds):
        for label, tree in trees.items():
            results[label].append(run_worker(tree, args, label))
        line = "  ".join(f"{label} {statistics.mean(timed(results[label][-1], 'wall')):.4f} s"
                         for label in trees)
        print(f"round {round_index + 1}: mean step {line}", flush=True)
    for label in trees:
        print(summary(label, results[label]))
    print(f"parameters: {results['this code'][0]['parameters']:,}, "
          f"numpy {results['this code'][0]['numpy']}")
    for revision in args.baseline:
        compare(f"baseline {revision}", results)
    if not args.baseline or not args.check_steps or args.profile or args.breakdown:
        return
    checks = {label: run_worker(tree, args, label, steps=args.check_steps, warmup=0,
                                dtype="float64", profile=0, breakdown=False)
              for label, tree in trees.items()}
    worst = 0.0
    for revision in args.baseline:
        float64 = loss_differences(checks[f"baseline {revision}"], checks["this code"])
        worst = max(worst, max(float64))
        verdict = "equal" if max(float64) <= LOSS_RTOL else "DIFFERENT"
        print(f"float64 losses of {len(float64)} steps from the same seed, against "
              f"{revision}: largest relative difference {max(float64):.1e} ({verdict} within "
              f"{LOSS_RTOL:g})")
    if worst > LOSS_RTOL:
        sys.exit(1)


def compare(baseline_label: str, results: dict) -> None:
    """This code's step time over one baseline's, per round (wall and CPU time), and the
    float32 losses' agreement."""
    for key, name in (("wall", "wall"), ("cpu", "CPU")):
        ratios = [sum(timed(new, key)) / sum(timed(old, key))
                  for old, new in zip(results[baseline_label], results["this code"])]
        print(f"ratio this code / {baseline_label} ({name} time per step): median "
              f"{statistics.median(ratios):.3f} over {len(ratios)} rounds "
              f"(min {min(ratios):.3f}, max {max(ratios):.3f}: "
              f"{', '.join(f'{r:.3f}' for r in ratios)}); speed-up "
              f"{1 / statistics.median(ratios):.2f}x")
    float32 = loss_differences(results[baseline_label][0], results["this code"][0])
    first_apart = next((i for i, d in enumerate(float32) if d > LOSS_RTOL), None)
    print(f"float32 losses against {baseline_label}, {len(float32)} steps: step 0 within "
          f"{float32[0]:.1e}; "
          + ("all within 1e-4" if first_apart is None else
             f"first apart by more than 1e-4 at step {first_apart} (the sampler drew other "
             f"RoIs), {max(float32):.1e} at most"))


if __name__ == "__main__":
    main()
