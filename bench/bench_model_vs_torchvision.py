"""The whole R50-FPN Mask R-CNN against torchvision's, on the CPU, in one process.

    python bench/bench_model_vs_torchvision.py                  # 2 x 512 px, 3 rounds
    python bench/bench_model_vs_torchvision.py --rounds 5 --size 512 --threads 2

Both sides run the same model with the same weights: torchvision's ``maskrcnn_resnet50_fpn``
as built for its COCO weights (frozen batch norm with eps 0, the stem and res2 frozen, 91
classes), randomly initialised, and tinymask's copy of it (``tinymask.from_torchvision``,
``MaskRCNNConfig.torchvision()``). Random weights are made to behave like trained ones where
it changes the work: random batch-norm statistics with the residual branches scaled down
(so 50 layers do not overflow) and class logits scaled up (so there are detections, and the
mask head runs on 100 of them per image, as with trained weights).

Timed, each side in turn within every round so that a machine shared with other work slows
both alike (the ratios are medians over the rounds of torchvision's time / tinymask's):
* eval: ``model(images)`` with gradients off (tinymask: ``tm.no_grad()``), masks pasted;
* a training step: forward with targets, the summed loss's backward, one SGD step
  (lr 1e-3, momentum 0.9, weight decay 1e-4 on both sides; the samplers draw as usual).
Images and targets come from the built-in shapes at ``--size`` pixels, batch ``--batch``.
Threads: ``torch.set_num_threads(--threads)``; tinymask's BLAS and Numba threads as set by
the environment (all cores by default).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time

import numpy as np
import torch
import torchvision
from torchvision.models.detection import MaskRCNN as TorchvisionMaskRCNN
from torchvision.models.detection._utils import overwrite_eps
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops.misc import FrozenBatchNorm2d

import tinymask as tm
from tinymask.data import ShapesDataset


def torchvision_model(size, seed=0):
    """torchvision's COCO-weights build with random weights that do a trained model's work."""
    torch.manual_seed(seed)
    backbone = resnet_fpn_backbone(backbone_name="resnet50", weights=None,
                                   norm_layer=FrozenBatchNorm2d, trainable_layers=3)
    model = TorchvisionMaskRCNN(backbone, num_classes=91, min_size=size, max_size=size)
    overwrite_eps(model, 0.0)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, FrozenBatchNorm2d):
                count = module.weight.numel()
                module.running_mean.copy_(torch.randn(count, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(count, generator=generator) * 1.5 + 0.5)
                module.weight.copy_(torch.rand(count, generator=generator) * 0.5 + 0.5)
                module.bias.copy_(torch.randn(count, generator=generator) * 0.1)
                if name.endswith(("bn3", "downsample.1")):  # where a residual branch ends
                    module.weight.mul_(0.3)
        model.roi_heads.box_predictor.cls_score.weight.mul_(30.0)
    return model


def machine():
    model = next((line.split(":", 1)[1].strip() for line in
                  subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                  if line.startswith("Model name")), platform.processor())
    return f"{model}, {os.cpu_count()} cores"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds after a warm-up")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    dataset = ShapesDataset(args.batch, image_size=args.size, seed=0)
    images, targets = zip(*(dataset[index] for index in range(args.batch)))
    targets = [{name: target[name] for name in ("boxes", "labels", "masks")}
               for target in targets]
    their_images = [torch.from_numpy(image).permute(2, 0, 1).float() / 255 for image in images]
    their_targets = [{name: torch.from_numpy(np.asarray(value)) for name, value in target.items()}
                     for target in targets]

    theirs = torchvision_model(args.size)
    ours = tm.from_torchvision(theirs.state_dict(), tm.MaskRCNNConfig.torchvision(
        min_size=args.size, max_size=args.size))
    their_sgd = torch.optim.SGD([p for p in theirs.parameters() if p.requires_grad], lr=1e-3,
                                momentum=0.9, weight_decay=1e-4)
    our_sgd = tm.optim.SGD([p for p in ours.parameters() if p.requires_grad], lr=1e-3,
                           momentum=0.9, weight_decay=1e-4)

    def their_eval():
        theirs.eval()
        with torch.no_grad():
            return sum(len(result["boxes"]) for result in theirs(their_images))

    def our_eval():
        ours.eval()
        with tm.no_grad():
            return sum(len(result["boxes"]) for result in ours(list(images)))

    def their_step():
        theirs.train()
        losses = theirs(their_images, their_targets)
        their_sgd.zero_grad()
        sum(losses.values()).backward()
        their_sgd.step()

    def our_step():
        ours.train()
        losses = ours(list(images), targets)
        our_sgd.zero_grad()
        sum(losses.values()).backward()
        our_sgd.step()

    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.2f}")
    print(f"versions: tinymask {tm.__version__}, numpy {np.__version__}, torch "
          f"{torch.__version__} ({args.threads} threads), torchvision {torchvision.__version__}, "
          f"python {platform.python_version()}")
    print(f"R50-FPN, {ours.num_parameters():,} parameters, batch {args.batch} x {args.size} px; "
          f"detections per batch: torchvision {their_eval()}, tinymask {our_eval()} "
          "(warm-up)")
    their_step(), our_step()  # warm-up: Numba compiles here
    rows = []
    for name, (ours_run, theirs_run) in {"eval forward": (our_eval, their_eval),
                                         "training step": (our_step, their_step)}.items():
        rounds = []
        for _ in range(args.rounds):
            times = []
            for run in (ours_run, theirs_run):
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
            rounds.append(times)
        ours_s = statistics.median(t for t, _ in rounds)
        theirs_s = statistics.median(t for _, t in rounds)
        ratio = statistics.median(a / b for a, b in rounds)
        rows.append((name, ours_s, theirs_s, ratio, rounds))
    print("\n| what | tinymask s | torchvision s | tinymask / torchvision "
          "| rounds (ours, theirs) |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name, ours_s, theirs_s, ratio, rounds in rows:
        pairs = ", ".join(f"({a:.1f}, {b:.1f})" for a, b in rounds)
        print(f"| {name} | {ours_s:.2f} | {theirs_s:.2f} | {ratio:.2f} | {pairs} |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
