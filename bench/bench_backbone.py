"""Forward + backward of a backbone + FPN on the CPU: seconds per step and peak memory.

Default: the lessons' small variant (ResNet-18 at quarter width, group norm, FPN width 64)
on a batch of 2 images of 128x128, float32. ``--name resnet50 --fpn-channels 256 --size 512``
gives the full-size figure. Peak memory is what NumPy allocated during one step, from
tracemalloc (NumPy reports its buffers to it), plus the process's peak resident size.

    python bench/bench_backbone.py [--name resnet18_w16] [--size 128] [--batch 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import time
import tracemalloc

import numpy as np

import tinymask as tm
from tinymask.model import BackboneWithFPN, ResNet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="resnet18_w16")
    parser.add_argument("--norm", default="gn")
    parser.add_argument("--fpn-channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    tm.manual_seed(0)
    model = BackboneWithFPN(ResNet(args.name, norm=args.norm), args.fpn_channels)
    images = np.random.default_rng(0).standard_normal(
        (args.batch, 3, args.size, args.size)).astype(np.float32)

    def step():
        model.zero_grad()
        pyramid = model(tm.Tensor(images))
        sum(level.mean() for level in pyramid.values()).backward()

    step()  # warm-up
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"machine: {platform.machine()}, numpy {np.__version__}")
    print(f"{args.name} + FPN({args.fpn_channels}), norm={args.norm}, "
          f"{model.num_parameters():,} parameters, batch {args.batch} x {args.size}px")
    print(f"seconds per forward+backward: median {statistics.median(times):.3f} "
          f"(min {min(times):.3f}, max {max(times):.3f}, {args.repeats} runs)")
    print(f"peak NumPy memory in one step: {peak / 2**20:.0f} MiB; process peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
