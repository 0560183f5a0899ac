"""Training: SGD with warmup and step decay over any dataset of (image, target) pairs.

One seed fixes everything, and every random choice of step s is drawn from a generator
seeded by (seed, s): which images form the batch, their flips, and the anchors and RoIs
the samplers pick. So a run resumed from a checkpoint at step s continues with exactly
the losses of an uninterrupted run, without saving any random state.

Outputs in ``out_dir``: ``log.jsonl`` (one JSON record per logged step), ``checkpoint.npz``
(every ``checkpoint_every`` steps, atomic) and ``model.npz`` (final weights + config).

Nothing is lost and nothing stored is false:
* a fresh start refuses a folder that holds a run (``RunExistsError``) unless asked to
  replace it (``overwrite=True``, ``tinymask train --overwrite``);
* resuming with changed training settings (a lower ``lr`` after a divergence, more
  ``steps``) applies them from the checkpoint's step on and says so: the change goes into
  ``log.jsonl`` and into the config stored with every later checkpoint (its ``history``),
  so the stored config is always what ran. A changed model is refused: the weights belong
  to the model they were trained as;
* weights that are not finite are never written: the last good checkpoint stays, and the
  error says which step it holds;
* ``.tmp-*.npz`` files left by a write that was killed are removed when a trainer starts.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields

import numpy

import tinymask as tm
from tinymask.checkpoint import (
    CheckpointError,
    non_finite_arrays,
    read_checkpoint,
    remove_unfinished_writes,
    save_checkpoint,
)
from tinymask.config import MaskRCNNConfig
from tinymask.data.augment import horizontal_flip
from tinymask.errors import ConfigError, UnknownFieldError, UserError, writing
from tinymask.model.mask_rcnn import MaskRCNN
from tinymask.optim import SGD, WarmupMultiStepLR, clip_grad_norm_
from tinymask.validation import check_field_types

# what a run leaves in its folder (metrics.json: written by ``tinymask train`` after training)
RUN_FILES = ("checkpoint.npz", "model.npz", "log.jsonl", "metrics.json")


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
        check_field_types(self)
        limits = {"steps": 1, "batch_size": 1, "warmup_iters": 0, "seed": 0, "log_every": 1,
                  "checkpoint_every": 0, "weight_decay": 0, "grad_clip": 0}
        for name, lowest in limits.items():
            if getattr(self, name) < lowest:
                raise ConfigError(f"TrainConfig.{name}={getattr(self, name)!r} must be >= "
                                  f"{lowest}")
        if self.lr <= 0 or self.gamma <= 0:
            raise ConfigError(f"TrainConfig: lr={self.lr} and gamma={self.gamma} must be > 0")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"TrainConfig.momentum={self.momentum} must be in [0, 1)")
        if not 0 < self.warmup_factor <= 1:
            raise ConfigError(f"TrainConfig.warmup_factor={self.warmup_factor} must be in (0, 1]")
        self.decay_at = tuple(self.decay_at)
        if not self.decay_at or any(isinstance(f, bool) or not isinstance(f, int | float)
                                    or not 0 < f <= 1 for f in self.decay_at):
            raise ConfigError(f"TrainConfig.decay_at={self.decay_at}: fractions of the run, in "
                              f"(0, 1], at least one (e.g. [0.75])")

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise UnknownFieldError(f"unknown TrainConfig field(s) {unknown}; valid fields: "
                                    f"{', '.join(names)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


class TrainingDivergedError(RuntimeError):
    """A loss or a weight became NaN or infinite. ``saved_step``: the step the run's
    checkpoint.npz holds (the last good weights), None when none was written."""

    def __init__(self, message: str, saved_step: int | None = None):
        super().__init__(message)
        self.saved_step = saved_step


class RunExistsError(UserError):
    """A fresh start into a folder that already holds a run."""


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


DIVERGENCE_ADVICE = ("Try a lower lr, a longer warmup (warmup_iters) or gradient clipping "
                     "(grad_clip=10)")


def _last_good(saved_step: int | None) -> str:
    if saved_step is None:
        return "no checkpoint was written yet"
    return f"the run's checkpoint.npz holds step {saved_step}, the last good weights"


def check_finite(losses: dict, step: int, saved_step: int | None = None) -> None:
    """Raise ``TrainingDivergedError`` on a NaN or infinite loss, naming it, the step and
    the step of the last checkpoint (``saved_step``)."""
    for name, loss in losses.items():
        if not math.isfinite(loss):
            raise TrainingDivergedError(
                f"{name} is {loss} at step {step}: training diverged; {_last_good(saved_step)}. "
                f"{DIVERGENCE_ADVICE}", saved_step)


def existing_run(out_dir) -> list[str]:
    """The files of a run already in ``out_dir`` that a fresh start would overwrite."""
    return [name for name in RUN_FILES if os.path.exists(os.path.join(out_dir, name))]


def _changes(stored: dict, current: dict) -> dict:
    """{field: [stored value, current value]} for the fields that differ. Fields a file
    predates are not compared; tuples are compared as the lists JSON keeps."""
    current = json.loads(json.dumps(current))
    return {name: [value, current[name]] for name, value in stored.items()
            if name in current and current[name] != value}


class Trainer:
    """Builds the model, optimizer and schedule from the two configs; ``run`` trains.

    ``overwrite=True`` lets a fresh start replace a run already in ``out_dir`` (its
    checkpoint, model, log and metrics are deleted first); without it such a start is
    refused. ``resume()`` continues the run instead."""

    def __init__(self, model_config: MaskRCNNConfig, train_config: TrainConfig, dataset,
                 out_dir, overwrite: bool = False):
        if len(dataset) == 0:
            raise UserError("the training dataset is empty: give it at least one image")
        self.model_config, self.config = model_config, train_config
        self.dataset, self.out_dir = dataset, os.fspath(out_dir)
        self.overwrite = overwrite
        tm.manual_seed(train_config.seed)  # parameter init
        self.model = MaskRCNN(model_config)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = SGD(trainable, lr=train_config.lr, momentum=train_config.momentum,
                             weight_decay=train_config.weight_decay)
        milestones = sorted({max(1, int(f * train_config.steps)) for f in train_config.decay_at})
        self.scheduler = WarmupMultiStepLR(self.optimizer, milestones, train_config.gamma,
                                           train_config.warmup_iters, train_config.warmup_factor)
        self.step = 0
        self.saved_step = None  # the step checkpoint.npz holds, once there is one
        self.resumed = False
        self.history = []  # settings changed on resume: [{"step": s, "changed": {...}}]
        with writing(self.out_dir, "run folder"):
            os.makedirs(self.out_dir, exist_ok=True)
        remove_unfinished_writes(self.out_dir)

    @property
    def configs(self) -> dict:
        return {"model": self.model_config.to_dict(), "train": asdict(self.config),
                "history": self.history}

    @property
    def checkpoint_path(self) -> str:
        return os.path.join(self.out_dir, "checkpoint.npz")

    @property
    def log_path(self) -> str:
        return os.path.join(self.out_dir, "log.jsonl")

    def resume(self, path=None) -> dict:
        """Continue from a checkpoint (``out_dir/checkpoint.npz`` by default).

        Training settings that differ from the stored ones are applied from here on, logged,
        and returned as {field: [old, new]}; a different model config is refused."""
        path = os.fspath(path or self.checkpoint_path)
        checkpoint = read_checkpoint(path)
        stored = checkpoint["config"]
        model_changes = _changes(stored.get("model", {}), self.model_config.to_dict())
        if model_changes:
            described = ", ".join(f"{name} {old!r} -> {new!r}"
                                  for name, (old, new) in model_changes.items())
            raise ConfigError(f"{path} holds a model with other settings ({described}); a "
                              f"resumed run keeps its model: drop these changes, or train the "
                              f"new model into a new --out")
        bad = non_finite_arrays(checkpoint["model"])
        if bad:
            raise CheckpointError(f"{path} holds weights that are not finite ({bad[0]}): it "
                                  f"cannot be continued; start again with --overwrite and a "
                                  f"lower lr")
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.step = self.saved_step = checkpoint["step"]
        self.resumed = True
        changes = _changes(stored.get("train", {}), asdict(self.config))
        self.history = list(stored.get("history", []))
        self._keep_log_up_to(self.step)
        if changes:
            self._apply_optimizer_settings()
            self.history.append({"step": self.step, "changed": changes})
            self._append_log({"step": self.step, "resumed_with_changes": changes})
        return changes

    def _apply_optimizer_settings(self) -> None:
        """The config's lr, momentum and weight decay in place of the checkpoint's (the
        schedule's position is kept: warmup and decay continue from the stored step)."""
        for group in self.optimizer.param_groups:
            group["momentum"], group["weight_decay"] = self.config.momentum, \
                self.config.weight_decay
        self.scheduler.load_state_dict({"last_iter": self.scheduler.last_iter,
                                        "base_lrs": [self.config.lr] * len(
                                            self.optimizer.param_groups)})

    def _keep_log_up_to(self, step: int) -> None:
        """Drop the log records of steps after ``step``: they are trained again from it."""
        if not os.path.exists(self.log_path):
            return
        with writing(self.log_path, "training log"):
            with open(self.log_path) as stream:
                lines = stream.read().splitlines()
            kept = []
            for line in lines:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:  # the half-written line of an interrupted write
                    continue
                if record.get("step", 0) <= step:
                    kept.append(line)
            if len(kept) != len(lines):
                temporary = self.log_path + ".tmp"
                with open(temporary, "w") as stream:
                    stream.write("".join(line + "\n" for line in kept))
                os.replace(temporary, self.log_path)

    def _append_log(self, record: dict) -> None:
        with writing(self.log_path, "training log"), open(self.log_path, "a") as stream:
            stream.write(json.dumps(record) + "\n")

    def _start_fresh(self) -> None:
        """Refuse to train from step 0 over a run, unless told to replace it."""
        found = existing_run(self.out_dir)
        if not found:
            return
        if not self.overwrite:
            raise RunExistsError(f"{self.out_dir} already holds a run ({', '.join(found)}); "
                                 f"continue it with --resume, train into a new --out, or "
                                 f"replace it with --overwrite")
        for name in found:
            with writing(self.out_dir, "run folder"):
                os.remove(os.path.join(self.out_dir, name))

    def _save(self, path, with_training_state: bool) -> None:
        """Write the model (and the optimizer and schedule) unless a weight is not finite."""
        bad = non_finite_arrays(self.model.state_dict())
        if bad:
            raise TrainingDivergedError(
                f"the weights are not finite after step {self.step} ({bad[0]}"
                f"{' and others' if len(bad) > 1 else ''}): training diverged and nothing was "
                f"saved; {_last_good(self.saved_step)}. {DIVERGENCE_ADVICE}", self.saved_step)
        if with_training_state:
            save_checkpoint(path, self.model, self.configs, self.step, self.optimizer,
                            self.scheduler)
            self.saved_step = self.step
        else:
            save_checkpoint(path, self.model, self.configs, self.step)

    def train_step(self) -> dict:
        """One SGD step on the batch of ``self.step``; returns the losses as floats."""
        self.model.train()
        images, targets = make_batch(self.dataset, self.config, self.step)
        generator = step_generator(self.config.seed, self.step, stream=2)
        losses = self.model(images, targets, generator=generator)
        values = {name: loss.item() for name, loss in losses.items()}
        check_finite(values, self.step, self.saved_step)
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
        if self.config.progress:
            from tqdm.auto import tqdm
        else:  # importing tqdm.auto in a notebook without ipywidgets warns, bar or no bar
            from tqdm import tqdm

        if self.step == 0 and not self.resumed:
            self._start_fresh()
        end = self.config.steps if steps is None else min(steps, self.config.steps)
        bar = tqdm(total=end, initial=self.step, disable=not self.config.progress,
                   desc="train", unit="step", dynamic_ncols=True)
        running, last = {}, {}
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
                self._append_log(record)
                if log is not None:
                    log(record)
            every = self.config.checkpoint_every
            if (every and self.step % every == 0) or self.step == end:
                self._save(self.checkpoint_path, with_training_state=True)
        bar.close()
        if self.step >= self.config.steps:
            self._save(os.path.join(self.out_dir, "model.npz"), with_training_state=False)
        return last
