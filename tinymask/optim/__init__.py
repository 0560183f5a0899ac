from tinymask.optim.clip import clip_grad_norm_
from tinymask.optim.lr_scheduler import WarmupMultiStepLR, warmup_multistep_factor
from tinymask.optim.sgd import SGD, Optimizer

__all__ = ["SGD", "Optimizer", "WarmupMultiStepLR", "clip_grad_norm_", "warmup_multistep_factor"]
