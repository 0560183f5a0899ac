"""Learning-rate schedule of the paper: linear warmup, then step decay at milestones.

    lr(it) = base_lr * warmup(it) * gamma ** (number of milestones <= it)
    warmup(it) = warmup_factor * (1 - it / warmup_iters) + it / warmup_iters  (it < warmup_iters)

Detectron2's ``WarmupMultiStepLR``: the paper decays by 10 at 120k of 160k iterations, with
1000 warmup iterations starting from 1/1000 of the rate.
"""

from __future__ import annotations

import bisect


def warmup_multistep_factor(iteration: int, milestones, gamma=0.1, warmup_iters=0,
                            warmup_factor=1e-3, warmup_method="linear") -> float:
    """The multiplier of the base learning rate at ``iteration`` (0-based)."""
    warmup = 1.0
    if iteration < warmup_iters:
        if warmup_method == "constant":
            warmup = warmup_factor
        elif warmup_method == "linear":
            alpha = iteration / warmup_iters
            warmup = warmup_factor * (1 - alpha) + alpha
        else:
            raise ValueError(f"unknown warmup_method {warmup_method!r}; use 'linear' or 'constant'")
    return warmup * gamma ** bisect.bisect_right(sorted(milestones), iteration)


class WarmupMultiStepLR:
    """Sets each param group's lr from its base lr; call ``step()`` once per iteration,
    after ``optimizer.step()`` (as torch's schedulers)."""

    def __init__(self, optimizer, milestones, gamma=0.1, warmup_iters=0, warmup_factor=1e-3,
                 warmup_method="linear"):
        if list(milestones) != sorted(milestones):
            raise ValueError(f"milestones must be increasing, got {list(milestones)}")
        self.optimizer = optimizer
        self.milestones, self.gamma = list(milestones), gamma
        self.warmup_iters, self.warmup_factor = warmup_iters, warmup_factor
        self.warmup_method = warmup_method
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.last_iter = 0
        self._apply()

    def factor(self, iteration: int) -> float:
        return warmup_multistep_factor(iteration, self.milestones, self.gamma, self.warmup_iters,
                                       self.warmup_factor, self.warmup_method)

    def _apply(self) -> None:
        factor = self.factor(self.last_iter)
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base_lr * factor

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def step(self) -> None:
        self.last_iter += 1
        self._apply()

    def state_dict(self) -> dict:
        return {"last_iter": self.last_iter, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        self.last_iter = int(state["last_iter"])
        self.base_lrs = [float(lr) for lr in state["base_lrs"]]
        self._apply()
