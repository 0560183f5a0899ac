"""tinymask's training step against torch's on the same model: the main job's small Mask
R-CNN, built a second time from torch and torchvision pieces, one thread each.

    python bench/bench_torch_twin.py                 # 30 timed steps each, 1 thread
    python bench/bench_torch_twin.py --steps 50 --threads 2

torch and torchvision are references here, never dependencies of tinymask.

The twin of ``MaskRCNNConfig.small(box_batch_size_per_image=64)``: a quarter-width ResNet-18
(basic blocks 16-32-64-128 wide, group norm with gcd(32, C) groups, stride in the first 3x3
conv of a stage), torchvision's FeaturePyramidNetwork (64 channels, P6 by a stride-2 max-pool)
and torchvision's MaskRCNN with the small config's sizes: one anchor size per level, 8 to 128
px, three aspect ratios; the RPN samples 128 anchors per image and keeps 300 proposals per
level before NMS and 300 per image after; the RoI heads sample 64 RoIs per image, 25%
positive; 7x7 RoIAlign (2x2 samples per bin) into two 256-wide fc layers, 14x14 into four
64-channel 3x3 convs, a 2x2 deconv and a 1x1 predictor. The script checks that both models
have the same number of parameters.

What differs: torchvision's RoIAlign in MultiScaleRoIAlign uses aligned=False (tinymask's
model aligned=True: the same work); torchvision keeps soft mask targets (tinymask binarises
them); initialisations differ, so the losses do too, but not the work of a step.

How it runs: one process. Each step, tinymask's trainer trains on its batch, then the torch
model on the same images and targets (converted), with the same SGD settings; steps
alternate so both see the same load. The first steps are warm-up (Numba compilation).
Printed: median seconds per step of each and the ratio tinymask / torch over the timed steps,
of wall time and of CPU time (the process's own, which the other jobs of a busy machine do
not add to).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


def build_twin(num_classes: int):
    """The torch model with the architecture and sizes of MaskRCNNConfig.small()."""
    from collections import OrderedDict

    from torch import nn
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    def norm(channels):
        return nn.GroupNorm(math.gcd(32, channels), channels)

    class BasicBlock(nn.Module):
        def __init__(self, in_channels, planes, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, planes, 3, stride, 1, bias=False)
            self.bn1 = norm(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = norm(planes)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = None
            if stride != 1 or in_channels != planes:
                self.downsample = nn.Sequential(
                    nn.Conv2d(in_channels, planes, 1, stride, bias=False), norm(planes))

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + identity)

    class Backbone(nn.Module):
        """ResNet-18 at quarter width (C2..C5) + FPN-64 with P6."""

        def __init__(self, widths=(16, 32, 64, 128), out_channels=64):
            super().__init__()
            self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
            self.bn1 = norm(widths[0])
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            stages, in_channels = [], widths[0]
            for index, width in enumerate(widths):
                stride = 1 if index == 0 else 2
                stages.append(nn.Sequential(BasicBlock(in_channels, width, stride),
                                            BasicBlock(width, width, 1)))
                in_channels = width
            self.layers = nn.ModuleList(stages)
            self.fpn = FeaturePyramidNetwork(list(widths), out_channels, LastLevelMaxPool())
            self.out_channels = out_channels

        def forward(self, images):
            x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
            features = OrderedDict()
            for index, layer in enumerate(self.layers):
                x = layer(x)
                features[str(index)] = x
            return self.fpn(features)

    levels = ["0", "1", "2", "3"]
    anchors = AnchorGenerator(sizes=((8,), (16,), (32,), (64,), (128,)),
                              aspect_ratios=((0.5, 1.0, 2.0),) * 5)
    return MaskRCNN(
        Backbone(), num_classes=None, min_size=128, max_size=128,
        rpn_anchor_generator=anchors, rpn_pre_nms_top_n_train=300,
        rpn_post_nms_top_n_train=300, rpn_pre_nms_top_n_test=200, rpn_post_nms_top_n_test=100,
        rpn_batch_size_per_image=128,
        box_roi_pool=MultiScaleRoIAlign(levels, 7, 2), box_head=TwoMLPHead(64 * 7 * 7, 256),
        box_predictor=FastRCNNPredictor(256, num_classes), box_batch_size_per_image=64,
        mask_roi_pool=MultiScaleRoIAlign(levels, 14, 2),
        mask_head=MaskRCNNHeads(64, [64, 64, 64, 64], 1),
        mask_predictor=MaskRCNNPredictor(64, 64, num_classes), box_detections_per_img=30)


def to_torch(images, targets):
    import torch

    torch_images = [torch.from_numpy(image).permute(2, 0, 1).float() / 255 for image in images]
    torch_targets = [{"boxes": torch.as_tensor(target["boxes"], dtype=torch.float32),
                      "labels": torch.as_tensor(target["labels"], dtype=torch.int64),
                      "masks": torch.as_tensor(target["masks"], dtype=torch.uint8)}
                     for target in targets]
    return torch_images, torch_targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps of each library")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    for name in THREAD_VARIABLES:  # before NumPy, Numba or torch start their thread pools
        os.environ[name] = str(args.threads)

    import numpy as np
    import torch

    sys.path.insert(0, HERE)
    from bench_train_step import build_trainer, cpu_name

    from tinymask.train import make_batch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    total = args.warmup + args.steps
    trainer = build_trainer("small", 128, 2, total)
    twin = build_twin(trainer.model_config.num_classes)
    ours_count, twin_count = trainer.model.num_parameters(), sum(p.numel()
                                                                 for p in twin.parameters())
    if ours_count != twin_count:
        raise SystemExit(f"the twin has {twin_count:,} parameters, tinymask's model "
                         f"{ours_count:,}: the architectures differ")
    config = trainer.config
    optimizer = torch.optim.SGD(twin.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    twin.train()
    times = {"tinymask": [], "torch": []}
    cpu_times = {"tinymask": [], "torch": []}  # process time: what the load does not add
    for step in range(total):
        images, targets = make_batch(trainer.dataset, config, step)
        start, start_cpu = time.perf_counter(), time.process_time()
        trainer.train_step()
        ours, ours_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        torch_images, torch_targets = to_torch(images, targets)
        start, start_cpu = time.perf_counter(), time.process_time()
        losses = twin(torch_images, torch_targets)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
        theirs, theirs_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        if step >= args.warmup:
            times["tinymask"].append(ours)
            times["torch"].append(theirs)
            cpu_times["tinymask"].append(ours_cpu)
            cpu_times["torch"].append(theirs_cpu)
    print(f"machine: {cpu_name()} ({os.cpu_count()} cores), Python "
          f"{platform.python_version()}, NumPy {np.__version__}, torch {torch.__version__}; "
          f"{args.threads} thread(s); {ours_count:,} parameters in both models; batch 2 x "
          f"128 px, {args.warmup} warm-up + {args.steps} timed steps each, alternating")
    for name, values in times.items():
        print(f"{name}: seconds per step median {statistics.median(values):.4f} "
              f"(min {min(values):.4f}); CPU seconds per step median "
              f"{statistics.median(cpu_times[name]):.4f}")
    ratio = sum(times["tinymask"]) / sum(times["torch"])
    cpu_ratio = sum(cpu_times["tinymask"]) / sum(cpu_times["torch"])
    print(f"ratio tinymask / torch (total time of the timed steps): {ratio:.2f} wall, "
          f"{cpu_ratio:.2f} CPU")


if __name__ == "__main__":
    main()
