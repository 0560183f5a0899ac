"""Benchmark tinymask's NMS against the reference loop and, where installed, torchvision.

    python bench/bench_nms.py                      # 1k / 5k / 20k boxes, IoU 0.7 and 0.5
    python bench/bench_nms.py --sizes 1000 --repeats 3 --threads 1

Rows: tinymask's public ``tinymask.ops.nms`` on NumPy arrays (the Numba CPU kernel, sort
included), the reference loop at the smallest size only (it is slow on purpose), and, where
they can run in this process, ``torchvision.ops.nms`` on the CPU, tinymask's CUDA kernels on
CuPy arrays, and ``torchvision.ops.nms`` on CUDA. GPU timings synchronise the device before
the clock stops. Each time is the median of ``--repeats`` runs after warm-up runs (which
also compile the Numba kernels). The "same" columns check that the other implementation
kept exactly the boxes tinymask kept.

On the CPU, each thread count of ``--threads`` is set on both sides (Numba's threads for
tinymask, ``torch.set_num_threads`` for torchvision), and the two are timed in alternation,
one run of each per round, so that a machine shared with other work slows both alike; the
ratio column is the median over the rounds of torchvision's time / tinymask's.

Boxes are what an RPN hands to NMS: clustered around a few dozen objects in an 800 x 800
image (centres jittered by 10% of the object size, sizes by 15%), plus 20% background boxes
anywhere, with uniform random scores.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import platform
import statistics
import time

import numba
import numpy

import tinymask
from tinymask.backend import array_module, to_backend, to_numpy
from tinymask.ops import nms, nms_reference


def realistic_boxes(count, rng, image_size=800.0, num_objects=60, background_fraction=0.2):
    """``(count, 4)`` float32 xyxy boxes clustered around objects, and ``(count,)`` scores."""
    object_size = numpy.exp(rng.uniform(numpy.log(16), numpy.log(400), (num_objects, 2)))
    object_centre = rng.uniform(0, image_size, (num_objects, 2))
    owner = rng.integers(0, num_objects, count)
    centre = object_centre[owner] + rng.normal(0, 0.1, (count, 2)) * object_size[owner]
    size = object_size[owner] * numpy.exp(rng.normal(0, 0.15, (count, 2)))
    background = rng.random(count) < background_fraction
    num_background = int(background.sum())
    centre[background] = rng.uniform(0, image_size, (num_background, 2))
    size[background] = numpy.exp(rng.uniform(numpy.log(16), numpy.log(400), (num_background, 2)))
    boxes = numpy.concatenate([centre - size / 2, centre + size / 2], axis=1)
    boxes = numpy.clip(boxes, 0, image_size).astype(numpy.float32)
    scores = rng.random(count).astype(numpy.float32)
    return boxes, scores


def median_ms(run, repeats, warmup, synchronize=None):
    """Median wall time of ``run()`` in milliseconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        run()
    if synchronize is not None:
        synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        if synchronize is not None:
            synchronize()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def optional_torchvision():
    if importlib.util.find_spec("torchvision") is None:
        return None, None
    import torch  # noqa: PLC0415  (optional: only where torchvision exists)
    import torchvision  # noqa: PLC0415

    return torch, torchvision


def gpu_available():
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        probe = to_backend(numpy.zeros(1, dtype=numpy.float32), "cupy")
        return array_module(probe).cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001  (no driver, no device: no GPU rows)
        return False


def describe_machine(torch, torchvision, has_gpu):
    model = platform.processor() or "unknown CPU"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as cpuinfo:
            names = [line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line]
        model = names[0] if names else model
    versions = [
        f"Python {platform.python_version()}",
        f"NumPy {numpy.__version__}",
        f"Numba {numba.__version__}",
        f"tinymask {tinymask.__version__}",
    ]
    if torch is not None:
        versions += [f"torch {torch.__version__}", f"torchvision {torchvision.__version__}"]
    if has_gpu:
        probe = to_backend(numpy.zeros(1), "cupy")
        cupy = array_module(probe)
        device = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        versions += [f"CuPy {cupy.__version__}", f"GPU {device}"]
    return f"CPU: {model}, {os.cpu_count()} logical cores; " + ", ".join(versions)


def alternating_ms(first, second, repeats, warmup):
    """Time ``first()`` and ``second()`` in turn, ``repeats`` rounds after ``warmup``: the
    medians in milliseconds and the median over the rounds of second / first."""
    for _ in range(warmup):
        first()
        second()
    pairs = []
    for _ in range(repeats):
        times = []
        for run in (first, second):
            start = time.perf_counter()
            run()
            times.append(1000.0 * (time.perf_counter() - start))
        pairs.append(times)
    return (statistics.median(a for a, _ in pairs), statistics.median(b for _, b in pairs),
            statistics.median(b / a for a, b in pairs))


def format_ms(value):
    return "n/a" if value is None else f"{value:.2f}"


def format_ratio(numerator, denominator):
    if numerator is None or denominator is None:
        return "n/a"
    return f"{numerator / denominator:.2f}x"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.7, 0.5])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="CPU thread counts, each set on both sides")
    args = parser.parse_args()

    torch, torchvision = optional_torchvision()
    has_gpu = gpu_available()
    print(describe_machine(torch, torchvision, has_gpu))
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print()
    print(
        "| boxes | IoU | kept | CPU threads | tinymask CPU ms | reference loop ms "
        "| torchvision CPU ms | tv CPU / tinymask | same | tinymask CUDA ms "
        "| torchvision CUDA ms | tv CUDA / tinymask | same |"
    )
    print("|" + "---|" * 13)

    smallest = min(args.sizes)
    for count in args.sizes:
        boxes, scores = realistic_boxes(count, numpy.random.default_rng(args.seed + count))
        for iou_threshold in args.thresholds:
            keep = nms(boxes, scores, iou_threshold)
            reference = None
            if count == smallest:
                assert numpy.array_equal(nms_reference.nms(boxes, scores, iou_threshold), keep)
                reference = median_ms(
                    functools.partial(nms_reference.nms, boxes, scores, iou_threshold),
                    max(args.repeats // 2, 1),
                    1,
                )
            ours_run = functools.partial(nms, boxes, scores, iou_threshold)
            cpu_rows = []  # (threads, ours ms, theirs ms, ratio, same)
            for threads in args.threads:
                numba.set_num_threads(threads)
                if torch is None:
                    cpu_rows.append((threads, median_ms(ours_run, args.repeats, args.warmup),
                                     None, None, None))
                    continue
                torch.set_num_threads(threads)
                boxes_t, scores_t = torch.from_numpy(boxes), torch.from_numpy(scores)
                same_cpu = numpy.array_equal(
                    torchvision.ops.nms(boxes_t, scores_t, iou_threshold).numpy(), keep
                )
                theirs_run = functools.partial(torchvision.ops.nms, boxes_t, scores_t,
                                               iou_threshold)
                cpu_rows.append((threads, *alternating_ms(ours_run, theirs_run, args.repeats,
                                                          args.warmup), same_cpu))

            ours_gpu = theirs_gpu = same_gpu = None
            if has_gpu:
                boxes_gpu, scores_gpu = to_backend(boxes, "cupy"), to_backend(scores, "cupy")
                cupy = array_module(boxes_gpu)
                same_gpu_ours = numpy.array_equal(
                    to_numpy(nms(boxes_gpu, scores_gpu, iou_threshold)), keep
                )
                ours_gpu = median_ms(
                    functools.partial(nms, boxes_gpu, scores_gpu, iou_threshold),
                    args.repeats,
                    args.warmup,
                    synchronize=cupy.cuda.get_current_stream().synchronize,
                )
                same_gpu = same_gpu_ours
                if torch is not None and torch.cuda.is_available():
                    boxes_tc, scores_tc = boxes_t.cuda(), scores_t.cuda()
                    same_gpu = same_gpu_ours and numpy.array_equal(
                        torchvision.ops.nms(boxes_tc, scores_tc, iou_threshold).cpu().numpy(), keep
                    )
                    theirs_gpu = median_ms(
                        functools.partial(torchvision.ops.nms, boxes_tc, scores_tc, iou_threshold),
                        args.repeats,
                        args.warmup,
                        synchronize=torch.cuda.synchronize,
                    )

            for row, (threads, ours_cpu, theirs_cpu, ratio, same_cpu) in enumerate(cpu_rows):
                gpu_cells = (
                    f"| {format_ms(ours_gpu)} | {format_ms(theirs_gpu)} "
                    f"| {format_ratio(theirs_gpu, ours_gpu)} "
                    f"| {'n/a' if same_gpu is None else same_gpu} |"
                ) if row == 0 else "| | | | |"
                print(
                    f"| {count} | {iou_threshold} | {len(keep)} | {threads} "
                    f"| {format_ms(ours_cpu)} | {format_ms(reference) if row == 0 else ''} "
                    f"| {format_ms(theirs_cpu)} | {'n/a' if ratio is None else f'{ratio:.2f}x'} "
                    f"| {'n/a' if same_cpu is None else same_cpu} " + gpu_cells
                )
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
