"""Benchmark of the RoI ops (a script, not a test): an FPN-like load, medians after warm-up.

Load: P2 of a 512-px image (stride 4: a 128 x 128 map), 256 channels, batch 2, float32;
512 RoIs pooled to 7x7 (the box head) and 128 RoIs to 14x14 (the mask head). The boxes are
those FPN's level mapper sends to P2: sqrt(area) log-uniform in [16, 112) px, aspect ratio
log-uniform in [1/2, 2], centres uniform in the image, clipped to it. RoIAlign runs with
aligned=True and sampling_ratio=0 (adaptive), tinymask's model defaults (REFERENCE.md §1).

Compared, side by side in one process:
* tinymask's Numba CPU kernels with ``--threads`` threads (2 by default), through the public
  ops: the forward is ``roi_align(features, rois, ...)``, the backward ``output.backward(g)``;
* the reference loop (pure Python), timed once on the first few RoIs only (``--reference-rois``)
  next to the Numba kernel on the same RoIs: measured, not extrapolated;
* ``torchvision.ops.roi_align`` / ``roi_pool`` on the CPU, where torchvision is installed,
  with 1 and then ``--threads`` threads on both sides (Numba's for tinymask,
  ``torch.set_num_threads`` for torchvision), the two timed in alternation, one run of each
  per round, so that a machine shared with other work slows both alike; the ratios are
  medians over the rounds;
* on a GPU (CuPy and a device present): tinymask's Numba CUDA kernels on CuPy arrays, and
  torchvision's CUDA kernels where torch has CUDA.

    python bench/bench_roi_ops.py [--threads 2] [--repeats 7] [--reference-rois 4]

Prints the machine, the library versions and a markdown table (times in milliseconds).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import subprocess
import time

import numba
import numpy as np

import tinymask
from tinymask import Tensor
from tinymask.ops import roi_align, roi_pool
from tinymask.ops.roi_align_reference import (
    roi_align_backward_reference,
    roi_align_forward_reference,
)

IMAGE_SIZE, STRIDE, CHANNELS, BATCH = 512, 4, 256, 2
LOADS = [(512, 7), (128, 14)]  # (RoIs, output size): box head, mask head


def p2_boxes(num_rois, rng):
    """(K, 5) float32 rows [batch_index, x1, y1, x2, y2] that FPN Eqn. 1 assigns to P2."""
    sizes = np.exp(rng.uniform(np.log(16), np.log(112), num_rois))
    aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0), num_rois))
    widths, heights = sizes * np.sqrt(aspect), sizes / np.sqrt(aspect)
    centres = rng.uniform(0, IMAGE_SIZE, (num_rois, 2))
    corners = np.concatenate([centres - np.stack([widths, heights], 1) / 2,
                              centres + np.stack([widths, heights], 1) / 2], axis=1)
    batch_index = rng.integers(0, BATCH, (num_rois, 1))
    return np.concatenate([batch_index, np.clip(corners, 0, IMAGE_SIZE)], 1).astype(np.float32)


def median_ms(run, repeats, warm_up=True):
    """run() -> (forward seconds, backward seconds); one warm-up, then medians in ms."""
    if warm_up:
        run()
    times = [run() for _ in range(repeats)]
    return tuple(1e3 * statistics.median(t[i] for t in times) for i in range(2))


def tinymask_run(op, features, rois, output_size, grad_output, **settings):
    def run():
        inputs = Tensor(features, requires_grad=True)
        start = time.perf_counter()
        output = op(inputs, rois, output_size, 1 / STRIDE, **settings)
        middle = time.perf_counter()
        output.backward(grad_output)
        return middle - start, time.perf_counter() - middle
    return run


def alternating_ms(ours, theirs, repeats):
    """ours() and theirs() -> (forward s, backward s), run in turn for ``repeats`` rounds after
    one warm-up each: (ours ms, theirs ms, median ratios theirs / ours), each (fwd, bwd)."""
    ours()
    theirs()
    rounds = [(ours(), theirs()) for _ in range(repeats)]
    def median_of(values):
        return tuple(statistics.median(v[i] for v in values) for i in range(2))
    ours_ms = tuple(1e3 * t for t in median_of([a for a, _ in rounds]))
    theirs_ms = tuple(1e3 * t for t in median_of([b for _, b in rounds]))
    ratios = median_of([(b[0] / a[0], b[1] / a[1]) for a, b in rounds])
    return ours_ms, theirs_ms, ratios


def torchvision_rows(op_name, load, ours, theirs, thread_counts, repeats, torch):
    """Rows of torchvision against tinymask at each thread count, timed in alternation."""
    rows = []
    for threads in thread_counts:
        numba.set_num_threads(threads)
        torch.set_num_threads(threads)
        ours_ms, theirs_ms, ratios = alternating_ms(ours, theirs, repeats)
        plural = "thread" if threads == 1 else "threads"
        rows.append((op_name, load, f"tinymask Numba CPU, {threads} {plural} (alternating)",
                     *ours_ms, ""))
        rows.append((op_name, load, f"torchvision CPU, {threads} {plural} (alternating)",
                     *theirs_ms, f"tinymask {ratios[0]:.2f}x / {ratios[1]:.2f}x faster "
                     "(fwd / bwd, median of per-round ratios)"))
    numba.set_num_threads(thread_counts[-1])
    return rows


def gpu_synchronized(run, synchronize):
    def timed():
        synchronize()
        forward, backward = run()
        synchronize()  # the backward's kernels finish within its time
        return forward, backward
    return timed


def torchvision_run(op, features, rois, output_size, grad_output, device, **settings):
    import torch  # noqa: PLC0415

    features_t = torch.from_numpy(features).to(device)
    rois_t, grad_t = torch.from_numpy(rois).to(device), torch.from_numpy(grad_output).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def run():
        inputs = features_t.clone().requires_grad_()
        sync()
        start = time.perf_counter()
        output = op(inputs, rois_t, output_size, 1 / STRIDE, **settings)
        sync()
        middle = time.perf_counter()
        output.backward(grad_t)
        sync()
        return middle - start, time.perf_counter() - middle
    return run


def reference_run(features, rois, output_size):
    def run():
        start = time.perf_counter()
        output, argmax = roi_align_forward_reference(features, rois.astype(np.float64),
                                                     output_size, output_size, 1 / STRIDE, 0,
                                                     True, "avg")
        middle = time.perf_counter()
        roi_align_backward_reference(np.ones_like(output), rois.astype(np.float64), argmax,
                                     features.shape, 1 / STRIDE, 0, True, "avg")
        return middle - start, time.perf_counter() - middle
    return run


def machine():
    model = next((line.split(":", 1)[1].strip() for line in
                  subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                  if line.startswith("Model name")), platform.processor())
    return f"{model}, {os.cpu_count()} cores"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="Numba threads for tinymask")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs after a warm-up")
    parser.add_argument("--reference-rois", type=int, default=4,
                        help="RoIs the pure-Python reference loop is timed on")
    args = parser.parse_args()
    numba.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    features = rng.standard_normal((BATCH, CHANNELS, IMAGE_SIZE // STRIDE,
                                    IMAGE_SIZE // STRIDE)).astype(np.float32)
    has_torchvision = importlib.util.find_spec("torchvision") is not None
    if has_torchvision:
        import torch  # noqa: PLC0415
        import torchvision  # noqa: PLC0415

        torch.set_num_threads(1)
    cupy = None
    if importlib.util.find_spec("cupy") is not None:
        import cupy  # noqa: PLC0415  (the benchmark's own choice of device)

        if cupy.cuda.runtime.getDeviceCount() == 0:
            cupy = None

    versions = [f"tinymask {tinymask.__version__}", f"numpy {np.__version__}",
                f"numba {numba.__version__}", f"python {platform.python_version()}"]
    if has_torchvision:
        versions += [f"torch {torch.__version__}", f"torchvision {torchvision.__version__}"]
    if cupy is not None:
        versions.append(f"cupy {cupy.__version__}")
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.2f}")
    print("versions: " + ", ".join(versions))
    print(f"tinymask threads: {args.threads} (and 1); torchvision threads: 1 and {args.threads}; "
          f"medians of {args.repeats} runs after a warm-up\n")
    thread_counts = sorted({1, args.threads})

    rows = []  # (op, load, implementation, forward ms, backward ms, note)
    for num_rois, size in LOADS:
        rois = p2_boxes(num_rois, rng)
        grad = rng.standard_normal((num_rois, CHANNELS, size, size)).astype(np.float32)
        load = f"{num_rois} RoIs, {size}x{size}"
        align = {"sampling_ratio": 0, "aligned": True}
        ours = median_ms(tinymask_run(roi_align, features, rois, size, grad, **align),
                         args.repeats)
        rows.append(("RoIAlign avg", load, f"tinymask Numba CPU, {args.threads} threads",
                     *ours, ""))
        if args.threads > 1:  # how much the threads bring on this machine, in this run
            numba.set_num_threads(1)
            one_thread = median_ms(tinymask_run(roi_align, features, rois, size, grad, **align),
                                   args.repeats)
            numba.set_num_threads(args.threads)
            rows.append(("RoIAlign avg", load, "tinymask Numba CPU, 1 thread", *one_thread,
                         f"{args.threads} threads: {one_thread[0] / ours[0]:.2f}x / "
                         f"{one_thread[1] / ours[1]:.2f}x faster (fwd / bwd)"))
        if has_torchvision:
            rows += torchvision_rows(
                "RoIAlign avg", load,
                tinymask_run(roi_align, features, rois, size, grad, **align),
                torchvision_run(torchvision.ops.roi_align, features, rois, size, grad, "cpu",
                                **align), thread_counts, args.repeats, torch)
        else:
            rows.append(("RoIAlign avg", load, "torchvision CPU, 1 thread", None, None,
                         "not yet measured (torchvision is not installed)"))
        if size == 7:
            subset = rois[:args.reference_rois]
            reference = median_ms(reference_run(features, subset, size), 1, warm_up=False)
            numba_subset = median_ms(tinymask_run(roi_align, features, subset, size,
                                                  grad[:len(subset)], **align), args.repeats)
            subset_load = f"first {len(subset)} of those RoIs"
            rows.append(("RoIAlign avg", subset_load, "reference loop (Python), 1 run",
                         *reference, ""))
            rows.append(("RoIAlign avg", subset_load, f"tinymask Numba CPU, {args.threads} "
                         "threads", *numba_subset,
                         f"{reference[0] / numba_subset[0]:.0f}x / "
                         f"{reference[1] / numba_subset[1]:.0f}x faster than the loop"))
            ours_max = median_ms(tinymask_run(roi_align, features, rois, size, grad,
                                              aggregation="max", **align), args.repeats)
            rows.append(("RoIAlign max", load, f"tinymask Numba CPU, {args.threads} threads",
                         *ours_max, "torchvision has no max"))
            ours_pool = median_ms(tinymask_run(roi_pool, features, rois, size, grad),
                                  args.repeats)
            rows.append(("RoIPool", load, f"tinymask Numba CPU, {args.threads} threads",
                         *ours_pool, ""))
            if has_torchvision:
                rows += torchvision_rows(
                    "RoIPool", load, tinymask_run(roi_pool, features, rois, size, grad),
                    torchvision_run(torchvision.ops.roi_pool, features, rois, size, grad, "cpu"),
                    thread_counts, args.repeats, torch)
        if cupy is not None:
            sync = cupy.cuda.get_current_stream().synchronize
            gpu = median_ms(gpu_synchronized(tinymask_run(
                roi_align, cupy.asarray(features), cupy.asarray(rois), size, cupy.asarray(grad),
                **align), sync), args.repeats)
            rows.append(("RoIAlign avg", load, "tinymask Numba CUDA", *gpu, ""))
            if has_torchvision and torch.cuda.is_available():
                theirs = median_ms(torchvision_run(torchvision.ops.roi_align, features, rois,
                                                   size, grad, "cuda", **align), args.repeats)
                rows.append(("RoIAlign avg", load, "torchvision CUDA", *theirs,
                             f"tinymask takes {gpu[0] / theirs[0]:.2f}x / "
                             f"{gpu[1] / theirs[1]:.2f}x its time (fwd / bwd)"))
        else:
            rows.append(("RoIAlign avg", load, "tinymask Numba CUDA / torchvision CUDA", None,
                         None, "not yet measured (no GPU on this machine)"))

    print("| op | load | implementation | forward ms | backward ms | note |")
    print("| --- | --- | --- | ---: | ---: | --- |")
    for op, load, implementation, forward, backward, note in rows:
        cells = [f"{value:.1f}" if value is not None else "-" for value in (forward, backward)]
        print(f"| {op} | {load} | {implementation} | {cells[0]} | {cells[1]} | {note} |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
