"""One Mask R-CNN training step (forward + backward + SGD) on the CPU: seconds and memory.

    python bench/bench_train_step.py --model small            # the lessons' model, 128 px
    python bench/bench_train_step.py --model r50 --size 512 --steps 2

``small`` is ``MaskRCNNConfig.small()`` (quarter-width ResNet-18 + FPN-64, group norm) at the
lessons' 128 px, batch 2; ``r50`` is torchvision's maskrcnn_resnet50_fpn layout (ResNet-50 +
FPN-256, the same heads and sizes) with group norm and nothing frozen, as one trains from
scratch, at --size px. Images come from the built-in shapes. The first
step is a warm-up (Numba compilation) and is not counted. Peak memory is what NumPy
allocated during one step (tracemalloc) and the process's peak resident size.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import tempfile
import time
import tracemalloc

import numpy as np

from tinymask.config import MaskRCNNConfig
from tinymask.data import ShapesDataset
from tinymask.train import TrainConfig, Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("small", "r50"), default="small")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    dataset = ShapesDataset(max(8, args.batch * 2), image_size=args.size, seed=0)
    common = dict(num_classes=dataset.num_classes, min_size=args.size, max_size=args.size)
    if args.model == "small":
        config = MaskRCNNConfig.small(**common)
    else:
        # from random init: group norm, nothing frozen. Frozen batch norm (torchvision's
        # setting) only makes sense with pretrained weights; with random ones it normalises
        # nothing and 50 layers overflow float32 by the second step.
        config = MaskRCNNConfig(backbone="resnet50", norm="gn", freeze_at=0, **common)
    trainer = Trainer(config, TrainConfig(steps=args.steps + 2, batch_size=args.batch,
                                          warmup_iters=0, progress=False, checkpoint_every=0),
                      dataset, tempfile.mkdtemp())
    trainer.train_step()  # warm-up: Numba compiles its kernels here
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        trainer.train_step()
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    trainer.train_step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"machine: {platform.machine()}, numpy {np.__version__}")
    print(f"{args.model}: {config.backbone} + {'FPN' if config.fpn else 'single map'}, "
          f"{trainer.model.num_parameters():,} parameters, batch {args.batch} x {args.size}px")
    print(f"seconds per training step: median {statistics.median(times):.3f} "
          f"(min {min(times):.3f}, max {max(times):.3f}, {args.steps} steps)")
    print(f"peak NumPy memory in one step: {peak / 2**20:.0f} MiB; "
          f"process peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
