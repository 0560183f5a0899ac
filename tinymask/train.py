"""Training: SGD with warmup and step decay over any dataset of (image, target) pairs.

One seed fixes everything, and every random choice of step s is drawn from a generator
seeded by (seed, s): which images form the batch, their flips, and the anchors and RoIs
the samplers pick. So a run resumed from a checkpoint at step s continues with exactly
the losses of an uninterrupted run, without saving any random state.

Outputs in ``out_dir``: ``log.jsonl`` (one JSON record per logged step), ``checkpoint.npz``
(every ``checkpoint_every`` steps, atomic) and ``model.npz`` (final weights + config).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields

import numpy

import tinymask as tm
from tinymask.checkpoint import read_checkpoint, save_checkpoint
from tinymask.config import MaskRCNNConfig
from tinymask.data.augment import horizontal_flip
from tinymask.model.mask_rcnn import MaskRCNN
from tinymask.optim import SGD, WarmupMultiStepLR, clip_grad_norm_


@dataclass
class TrainConfig:
    steps: int = 1000  # optimizer steps (iterations), each on one batch
    batch_size: int = 2  # images per step (the paper: 2 per GPU, 16 in all)
    lr: float = 0.02  # base learning rate (the paper: 0.02 for 16 images)
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 100  # linear warmup from warmup_factor * lr (Detectron2: 1000)
    warmup_factor: float = 0.001
    decay_at: tuple = (0.75,)  # fractions of ``steps`` where lr is divided by 10 (120k/160k)
    gamma: float = 0.1
    grad_clip: float = 0.0  # max global gradient norm; 0 disables clipping
    hflip: bool = True  # random horizontal flips (probability 0.5)
    seed: int = 0  # fixes init, batch order, flips and sampling
    log_every: int = 10  # steps between log records
    checkpoint_every: int = 200  # steps between checkpoints (0: only at the end)
    progress: bool = True  # a tqdm progress bar with the running losses

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps={self.steps} and batch_size={self.batch_size} must be >= 1")
        if any(not 0 < f <= 1 for f in self.decay_at):
            raise ValueError(f"decay_at={self.decay_at}: fractions of the run, in (0, 1]")

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise KeyError(f"unknown TrainConfig field(s) {unknown}; valid fields: "
                           f"{', '.join(names)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


class TrainingDivergedError(RuntimeError):
    """A loss became NaN or infinite."""


def step_generator(seed: int, step: int, stream: int) -> numpy.random.Generator:
    """The generator for one purpose (``stream``) at one step: independent of all others."""
    return numpy.random.default_rng([seed, stream, step])


def batch_indices(num_items: int, batch_size: int, seed: int, step: int) -> list[int]:
    """The dataset indices of step ``step``: epochs are seeded permutations, consumed in
    order, so every image is seen once per epoch."""
    indices = []
    for position in range(step * batch_size, (step + 1) * batch_size):
        epoch, offset = divmod(position, num_items)
        indices.append(int(_epoch_permutation(num_items, seed, epoch)[offset]))
    return indices


_PERMUTATIONS: dict = {}


def _epoch_permutation(num_items, seed, epoch):
    key = (num_items, seed, epoch)
    if key not in _PERMUTATIONS:
        if len(_PERMUTATIONS) > 8:
            _PERMUTATIONS.clear()
        _PERMUTATIONS[key] = step_generator(seed, epoch, stream=0).permutation(num_items)
    return _PERMUTATIONS[key]


def make_batch(dataset, config: TrainConfig, step: int):
    images, targets = [], []
    flips = step_generator(config.seed, step, stream=1).random(config.batch_size) < 0.5
    for index, flip in zip(batch_indices(len(dataset), config.batch_size, config.seed, step),
                           flips):
        image, target = dataset[index]
        if config.hflip and flip:
            image, target = horizontal_flip(image, target)
        images.append(image)
        targets.append(target)
    return images, targets


def check_finite(losses: dict, step: int) -> None:
    for name, loss in losses.items():
        if not math.isfinite(loss):
            raise TrainingDivergedError(
                f"{name} is {loss} at step {step}: training diverged. Try a lower lr "
                f"(--set lr=...), a longer warmup, or gradient clipping (--set grad_clip=10)")


class Trainer:
    """Builds the model, optimizer and schedule from the two configs; ``run`` trains."""

    def __init__(self, model_config: MaskRCNNConfig, train_config: TrainConfig, dataset,
                 out_dir):
        if len(dataset) == 0:
            raise ValueError("the training dataset is empty")
        self.model_config, self.config = model_config, train_config
        self.dataset, self.out_dir = dataset, os.fspath(out_dir)
        tm.manual_seed(train_config.seed)  # parameter init
        self.model = MaskRCNN(model_config)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = SGD(trainable, lr=train_config.lr, momentum=train_config.momentum,
                             weight_decay=train_config.weight_decay)
        milestones = sorted({max(1, int(f * train_config.steps)) for f in train_config.decay_at})
        self.scheduler = WarmupMultiStepLR(self.optimizer, milestones, train_config.gamma,
                                           train_config.warmup_iters, train_config.warmup_factor)
        self.step = 0
        os.makedirs(self.out_dir, exist_ok=True)

    @property
    def configs(self) -> dict:
        return {"model": self.model_config.to_dict(), "train": asdict(self.config)}

    @property
    def checkpoint_path(self) -> str:
        return os.path.join(self.out_dir, "checkpoint.npz")

    def resume(self, path=None) -> None:
        """Continue from a checkpoint (``out_dir/checkpoint.npz`` by default)."""
        checkpoint = read_checkpoint(path or self.checkpoint_path)
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.step = checkpoint["step"]

    def train_step(self) -> dict:
        """One SGD step on the batch of ``self.step``; returns the losses as floats."""
        self.model.train()
        images, targets = make_batch(self.dataset, self.config, self.step)
        generator = step_generator(self.config.seed, self.step, stream=2)
        losses = self.model(images, targets, generator=generator)
        values = {name: loss.item() for name, loss in losses.items()}
        check_finite(values, self.step)
        self.optimizer.zero_grad()
        sum(losses.values()).backward()
        if self.config.grad_clip > 0:
            values["grad_norm"] = clip_grad_norm_(self.optimizer.param_groups[0]["params"],
                                                  self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return values

    def run(self, steps=None, log=None) -> dict:
        """Train until ``steps`` (default: the config's), logging and checkpointing."""
        from tqdm.auto import tqdm

        end = self.config.steps if steps is None else min(steps, self.config.steps)
        log_path = os.path.join(self.out_dir, "log.jsonl")
        bar = tqdm(total=end, initial=self.step, disable=not self.config.progress,
                   desc="train", unit="step", dynamic_ncols=True)
        running, last = {}, {}
        with open(log_path, "a") as log_file:
            while self.step < end:
                start = time.perf_counter()
                lr = self.scheduler.get_last_lr()[0]
                values = self.train_step()
                seconds = time.perf_counter() - start
                for name, value in values.items():  # exponential moving average for display
                    previous = running.get(name, value)
                    running[name] = 0.9 * previous + 0.1 * value
                last = dict(values, loss=sum(v for k, v in values.items() if k.startswith("loss")))
                bar.update(1)
                bar.set_postfix({k.replace("loss_", ""): f"{v:.3f}" for k, v in running.items()
                                 if k.startswith("loss")})
                if self.step % self.config.log_every == 0 or self.step == end:
                    record = {"step": self.step, **last, "lr": lr, "seconds": seconds}
                    log_file.write(json.dumps(record) + "\n")
                    log_file.flush()
                    if log is not None:
                        log(record)
                every = self.config.checkpoint_every
                if (every and self.step % every == 0) or self.step == end:
                    save_checkpoint(self.checkpoint_path, self.model, self.configs, self.step,
                                    self.optimizer, self.scheduler)
        bar.close()
        if self.step >= self.config.steps:
            save_checkpoint(os.path.join(self.out_dir, "model.npz"), self.model, self.configs,
                            self.step)
        return last
