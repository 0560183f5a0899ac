from tinymask.optim.lr_scheduler import WarmupMultiStepLR, warmup_multistep_factor
from tinymask.optim.sgd import SGD, Optimizer

__all__ = ["SGD", "Optimizer", "WarmupMultiStepLR", "warmup_multistep_factor"]
