"""conv2d forward + backward: tinymask (NumPy im2col + one GEMM) vs torch on the CPU.

Shapes are ResNet/FPN layers at a 512-px input, batch 2, float32. Both sides use the same
number of threads (torch.set_num_threads and OpenBLAS's thread count), in one process.
Each row is the median of --repeats timed runs after one warm-up; the last line is the
geometric mean of the time ratios tinymask / torch (the issue's target: <= 1.5, goal 1.2).

    python bench/bench_conv.py [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time

import numpy as np

import tinymask
from tinymask.functional import conv2d

# (name, C_in, C_out, kernel, stride, padding, input H=W) at a 512-px image, batch 2
LAYERS = [
    ("stem 7x7/2", 3, 64, 7, 2, 3, 512),
    ("s4 1x1 64->64", 64, 64, 1, 1, 0, 128),
    ("s4 3x3 64->64", 64, 64, 3, 1, 1, 128),
    ("s4 1x1 64->256", 64, 256, 1, 1, 0, 128),
    ("s8 3x3/2 128->128", 128, 128, 3, 2, 1, 128),
    ("s8 3x3 128->128", 128, 128, 3, 1, 1, 64),
    ("s8 1x1 512->128", 512, 128, 1, 1, 0, 64),
    ("s16 3x3 256->256", 256, 256, 3, 1, 1, 32),
    ("s16 1x1 256->512", 256, 512, 1, 1, 0, 32),
    ("s32 3x3 512->512", 512, 512, 3, 1, 1, 16),
    ("s32 1x1 512->256", 512, 256, 1, 1, 0, 16),
    ("s64 3x3 256->256", 256, 256, 3, 1, 1, 8),
]


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_tinymask(x, weight, bias, stride, padding, grad):
    def step():
        xt = tinymask.Tensor(x, requires_grad=True)
        wt = tinymask.Tensor(weight, requires_grad=True)
        bt = tinymask.Tensor(bias, requires_grad=True)
        conv2d(xt, wt, bt, stride=stride, padding=padding).backward(grad)

    return step


def bench_torch(torch, x, weight, bias, stride, padding, grad):
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(weight).requires_grad_()
    bt = torch.from_numpy(bias).requires_grad_()
    gt = torch.from_numpy(grad)

    def step():
        xt.grad = wt.grad = bt.grad = None
        torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=padding).backward(gt)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args()

    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        pass  # OpenBLAS then uses its default (one thread per core)

    rng = np.random.default_rng(0)
    print(f"machine: {platform.processor() or platform.machine()}, threads={args.threads}, "
          f"numpy {np.__version__}, torch {torch.__version__ if torch else 'absent'}")
    print("| layer | input | tinymask ms | torch ms | ratio |")
    print("|---|---|---|---|---|")
    ratios = []
    for name, c_in, c_out, k, s, p, size in LAYERS:
        x = rng.standard_normal((args.batch, c_in, size, size), dtype=np.float32)
        weight = rng.standard_normal((c_out, c_in, k, k), dtype=np.float32) * 0.05
        bias = rng.standard_normal(c_out, dtype=np.float32)
        out = (size + 2 * p - k) // s + 1
        grad = rng.standard_normal((args.batch, c_out, out, out), dtype=np.float32)
        ours = _median_seconds(bench_tinymask(x, weight, bias, s, p, grad), args.repeats)
        if torch is not None:
            theirs = _median_seconds(bench_torch(torch, x, weight, bias, s, p, grad), args.repeats)
            ratios.append(ours / theirs)
            print(f"| {name} | {args.batch}x{c_in}x{size}x{size} | {ours * 1e3:.1f} | "
                  f"{theirs * 1e3:.1f} | {ours / theirs:.2f} |")
        else:
            print(f"| {name} | {args.batch}x{c_in}x{size}x{size} | {ours * 1e3:.1f} | - | - |")
    if ratios:
        geomean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        print(f"\ngeometric-mean ratio tinymask / torch: {geomean:.2f}")


if __name__ == "__main__":
    main()
