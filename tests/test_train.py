"""The trainer: exact resume, seeded batches, logs, divergence messages, clipping."""

import json

import numpy as np
import pytest

import tinymask as tm
from tinymask.config import MaskRCNNConfig
from tinymask.data import ShapesDataset
from tinymask.optim import clip_grad_norm_
from tinymask.train import (
    TrainConfig,
    Trainer,
    TrainingDivergedError,
    batch_indices,
    check_finite,
)


def setup(tmp_path, **train_changes):
    dataset = ShapesDataset(5, image_size=64, seed=0)
    model_config = MaskRCNNConfig.small(min_size=64, max_size=64,
                                        num_classes=dataset.num_classes,
                                        rpn_pre_nms_top_n_train=100, box_batch_size_per_image=32)
    options = dict(steps=4, batch_size=2, warmup_iters=2, log_every=1, checkpoint_every=2,
                   progress=False)
    options.update(train_changes)
    return model_config, TrainConfig(**options), dataset


def test_resume_continues_with_the_same_losses(tmp_path):
    model_config, train_config, dataset = setup(tmp_path)
    uninterrupted = []
    Trainer(model_config, train_config, dataset, tmp_path / "a").run(
        log=lambda record: uninterrupted.append(record["loss"]))
    resumed = []
    Trainer(model_config, train_config, dataset, tmp_path / "b").run(
        steps=2, log=lambda record: resumed.append(record["loss"]))
    trainer = Trainer(model_config, train_config, dataset, tmp_path / "b")
    trainer.resume()
    assert trainer.step == 2
    trainer.run(log=lambda record: resumed.append(record["loss"]))
    assert resumed == uninterrupted  # bit for bit


def test_outputs_of_a_run(tmp_path):
    model_config, train_config, dataset = setup(tmp_path)
    Trainer(model_config, train_config, dataset, tmp_path).run()
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert {"loss", "loss_mask", "lr", "seconds"} <= set(records[0])
    assert records[0]["lr"] < records[-1]["lr"]  # warmup
    assert (tmp_path / "model.npz").exists() and (tmp_path / "checkpoint.npz").exists()


def test_same_seed_same_losses_other_seed_other_losses(tmp_path):
    model_config, train_config, dataset = setup(tmp_path, steps=2)
    runs = []
    for seed, folder in ((0, "a"), (0, "b"), (1, "c")):
        config = TrainConfig(**{**train_config.__dict__, "seed": seed})
        losses = []
        Trainer(model_config, config, dataset, tmp_path / folder).run(
            log=lambda r, losses=losses: losses.append(r["loss"]))
        runs.append(losses)
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_every_image_once_per_epoch():
    seen = [i for step in range(5) for i in batch_indices(10, 2, seed=3, step=step)]
    assert sorted(seen) == list(range(10))


def test_a_nan_loss_names_the_loss_and_the_step(tmp_path):
    with pytest.raises(TrainingDivergedError, match="loss_mask is nan at step 7"):
        check_finite({"loss_classifier": 0.5, "loss_mask": float("nan")}, 7)
    model_config, train_config, dataset = setup(tmp_path)
    trainer = Trainer(model_config, train_config, dataset, tmp_path)
    trainer.model.forward = lambda *args, **kwargs: {
        "loss_box_reg": tm.Tensor(np.array(np.inf), requires_grad=True)}
    with pytest.raises(TrainingDivergedError, match="loss_box_reg is inf at step 0"):
        trainer.train_step()


def test_clip_grad_norm_scales_all_gradients_together():
    a = tm.nn.Parameter(np.zeros(2))
    b = tm.nn.Parameter(np.zeros(1))
    a.grad, b.grad = np.array([3.0, 0.0]), np.array([4.0])  # joint norm 5
    assert clip_grad_norm_([a, b], 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(np.r_[a.grad, b.grad], [0.6, 0.0, 0.8], rtol=1e-5)
    assert clip_grad_norm_([a, b], 10.0) == pytest.approx(1.0, rel=1e-5)  # below: untouched


def test_bad_train_config_is_explained():
    with pytest.raises(KeyError, match="unknown TrainConfig field"):
        TrainConfig.from_dict({"stepz": 3})
    with pytest.raises(ValueError, match="decay_at"):
        TrainConfig(decay_at=(1.5,))
