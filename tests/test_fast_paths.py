"""Training with the engine's fast paths gives the losses of training with every op on its
readable reference: shifted-GEMM and 1x1 convolutions vs im2col, the tiling deconvolution
vs col2im, the Numba group norm, ReLU and SGD vs their NumPy code, strided-slice nearest
upsampling vs the general gather, and linear as one op vs its Tensor-op composition.

In float64 the losses of three steps agree to 1e-9. (In float32 a rounding-level difference
flips a proposal across an IoU threshold within a few steps and the sampler draws other
RoIs, so only step 0 is compared there; bench/bench_train_step.py compares 50 steps in
float64 with an older commit.)
"""

import numpy as np
import pytest

import tinymask.functional as F
from tinymask.config import MaskRCNNConfig
from tinymask.data import ShapesDataset
from tinymask.functional import activation, conv, interpolation, normalization
from tinymask.optim import sgd
from tinymask.train import TrainConfig, Trainer


def _reference_conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return conv.Conv2dIm2col.apply(x, weight, bias, conv._pair(stride, "stride"),
                                   conv._pair(padding, "padding"),
                                   conv._pair(dilation, "dilation"), groups)


def _reference_linear(x, weight, bias=None):
    out = x @ weight.T
    return out + bias if bias is not None else out


def use_reference_paths(monkeypatch):
    monkeypatch.setattr(F, "conv2d", _reference_conv2d)
    monkeypatch.setattr(F, "linear", _reference_linear)
    monkeypatch.setattr(conv, "_patches_tile", lambda *args: False)
    monkeypatch.setattr(interpolation, "repeat_factor", lambda *args: None)
    monkeypatch.setattr(normalization, "_group_norm_forward_cpu",
                        normalization.group_norm_reference)
    monkeypatch.setattr(normalization, "_group_norm_backward_cpu",
                        normalization.group_norm_backward_reference)
    monkeypatch.setattr(sgd, "_fits_kernel", lambda *args: False)
    monkeypatch.setattr(activation, "_relu_cpu", activation.relu_reference)
    monkeypatch.setattr(activation, "_relu_backward_cpu", activation.relu_backward_reference)


def losses_of_training(tmp_path, steps, dtype):
    dataset = ShapesDataset(4, image_size=64, seed=0)
    config = MaskRCNNConfig.small(min_size=64, max_size=64, num_classes=dataset.num_classes,
                                  rpn_pre_nms_top_n_train=100, box_batch_size_per_image=32)
    trainer = Trainer(config, TrainConfig(steps=steps, batch_size=2, warmup_iters=1,
                                          progress=False, checkpoint_every=0),
                      dataset, tmp_path)
    for parameter in trainer.model.parameters():
        parameter.data = parameter.data.astype(dtype)
    return [trainer.train_step() for _ in range(steps)]


def _largest_relative_difference(ours, reference):
    return max(abs(step[name] - value) / max(abs(value), 1e-12)
               for step, expected in zip(ours, reference) for name, value in expected.items())


def test_float64_losses_equal_the_reference_paths(tmp_path, monkeypatch):
    ours = losses_of_training(tmp_path / "fast", 3, np.float64)
    use_reference_paths(monkeypatch)
    reference = losses_of_training(tmp_path / "reference", 3, np.float64)
    assert _largest_relative_difference(ours, reference) < 1e-9


def test_float32_first_step_equals_the_reference_paths(tmp_path, monkeypatch):
    ours = losses_of_training(tmp_path / "fast", 1, np.float32)
    use_reference_paths(monkeypatch)
    reference = losses_of_training(tmp_path / "reference", 1, np.float32)
    assert _largest_relative_difference(ours, reference) == pytest.approx(0, abs=1e-5)
