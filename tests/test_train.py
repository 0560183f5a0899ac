"""The trainer: exact resume, seeded batches, logs, divergence messages, clipping; and
nothing lost: no run overwritten unasked, changed settings on resume applied and recorded,
no non-finite weights written, full disks and unwritable folders reported in one line."""

import errno
import json
import os

import numpy as np
import pytest

import tinymask as tm
from tinymask.checkpoint import (
    CheckpointError,
    load_npz,
    non_finite_arrays,
    read_checkpoint,
    save_npz_atomic,
)
from tinymask.config import MaskRCNNConfig
from tinymask.data import ShapesDataset
from tinymask.errors import ConfigError, OutputError, UserError
from tinymask.optim import clip_grad_norm_
from tinymask.train import (
    RunExistsError,
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


# ---- nothing lost, nothing stored that did not run ----------------------------------------

def snapshot(folder):
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def test_a_fresh_start_refuses_a_folder_holding_a_run_and_overwrite_replaces_it(tmp_path):
    model_config, train_config, dataset = setup(tmp_path, steps=2, batch_size=1)
    Trainer(model_config, train_config, dataset, tmp_path).run()
    before = snapshot(tmp_path)
    assert {"checkpoint.npz", "model.npz", "log.jsonl"} <= set(before)
    with pytest.raises(RunExistsError, match="already holds a run .*--resume.*new --out.*"
                                              "--overwrite"):
        Trainer(model_config, train_config, dataset, tmp_path).run()
    assert snapshot(tmp_path) == before  # not a byte changed
    Trainer(model_config, train_config, dataset, tmp_path, overwrite=True).run()
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]  # the new run's log only, not both runs'


def test_resume_applies_changed_settings_logs_them_and_stores_what_ran(tmp_path):
    model_config, train_config, dataset = setup(tmp_path, steps=3, batch_size=1)
    Trainer(model_config, train_config, dataset, tmp_path).run(steps=2)
    lower = TrainConfig(**{**train_config.__dict__, "lr": 0.005, "seed": 4})
    trainer = Trainer(model_config, lower, dataset, tmp_path)
    changes = trainer.resume()
    assert changes == {"lr": [0.02, 0.005], "seed": [0, 4]}
    assert trainer.scheduler.base_lrs == [0.005]
    # the schedule keeps its place: warmup done, divided by 10 at step 2 (0.75 of 3 steps)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.0005)
    trainer.run()
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert {"step": 2, "resumed_with_changes": changes} in records
    assert records[-1]["lr"] == pytest.approx(0.0005)
    for name in ("checkpoint.npz", "model.npz"):
        stored = read_checkpoint(tmp_path / name)["config"]
        assert stored["train"]["lr"] == 0.005 and stored["train"]["seed"] == 4
        assert stored["history"] == [{"step": 2, "changed": changes}]


def test_resume_refuses_another_model_and_trims_the_log_to_the_checkpoint(tmp_path):
    model_config, train_config, dataset = setup(tmp_path, steps=4, batch_size=1)
    Trainer(model_config, train_config, dataset, tmp_path).run(steps=2)
    with (tmp_path / "log.jsonl").open("a") as log:  # a step trained after the checkpoint
        log.write(json.dumps({"step": 3, "loss": 1.0}) + "\n" + '{"step": 4, "lo')
    with pytest.raises(ConfigError, match="roi_op 'align' -> 'pool'.*keeps its model"):
        Trainer(model_config.replace(roi_op="pool"), train_config, dataset, tmp_path).resume()
    trainer = Trainer(model_config, train_config, dataset, tmp_path)
    assert trainer.resume() == {}
    steps = [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text()
             .splitlines()]
    assert steps == [1, 2]  # step 3 is trained again from the checkpoint, logged once
    arrays = load_npz(tmp_path / "checkpoint.npz")  # a checkpoint of a diverged run
    name = next(key for key in arrays if key.startswith("model/"))
    arrays[name] = np.full_like(arrays[name], np.nan)
    save_npz_atomic(tmp_path / "checkpoint.npz", arrays)
    with pytest.raises(CheckpointError, match="not finite .* cannot be continued"):
        Trainer(model_config, train_config, dataset, tmp_path).resume()


def test_weights_that_are_not_finite_are_never_written(tmp_path):
    model_config, train_config, dataset = setup(tmp_path, steps=3, batch_size=1,
                                                checkpoint_every=1)
    trainer = Trainer(model_config, train_config, dataset, tmp_path)
    step = trainer.optimizer.step

    def poisoned_step():  # the second update turns a weight into NaN, the loss still finite
        step()
        if trainer.step == 1:
            trainer.optimizer.param_groups[0]["params"][0].data[...] = np.nan

    trainer.optimizer.step = poisoned_step
    with pytest.raises(TrainingDivergedError, match="not finite after step 2 .*nothing was "
                                                    "saved.*checkpoint.npz holds step 1"):
        trainer.run()
    kept = read_checkpoint(tmp_path / "checkpoint.npz")
    assert kept["step"] == 1 and not non_finite_arrays(kept["model"])
    assert not (tmp_path / "model.npz").exists()


def test_divergence_names_the_last_good_checkpoint(tmp_path):
    model_config, train_config, dataset = setup(tmp_path, steps=3, batch_size=1)
    trainer = Trainer(model_config, train_config, dataset, tmp_path)
    trainer.run(steps=2)
    trainer.model.forward = lambda *args, **kwargs: {
        "loss_mask": tm.Tensor(np.array(np.nan), requires_grad=True)}
    with pytest.raises(TrainingDivergedError, match="checkpoint.npz holds step 2, the last "
                                                    "good weights. Try a lower lr") as caught:
        trainer.train_step()
    assert caught.value.saved_step == 2
    fresh = Trainer(model_config, train_config, dataset, tmp_path / "b")
    fresh.model.forward = trainer.model.forward
    with pytest.raises(TrainingDivergedError, match="no checkpoint was written yet") as caught:
        fresh.train_step()
    assert caught.value.saved_step is None


def test_a_full_disk_is_one_clear_error_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    model_config, train_config, dataset = setup(tmp_path, steps=2, batch_size=1,
                                                checkpoint_every=1)
    savez = np.savez
    calls = []

    def disk_fills_up(stream, **arrays):
        calls.append(1)
        if len(calls) > 1:
            stream.write(b"the first bytes")
            raise OSError(errno.ENOSPC, "No space left on device")
        savez(stream, **arrays)

    monkeypatch.setattr(np, "savez", disk_fills_up)
    with pytest.raises(OutputError, match="cannot write the checkpoint .*checkpoint.npz': No "
                                          "space left on device; the disk is full"):
        Trainer(model_config, train_config, dataset, tmp_path).run()
    monkeypatch.undo()
    assert read_checkpoint(tmp_path / "checkpoint.npz")["step"] == 1
    assert not list(tmp_path.glob(".tmp-*"))


def test_unwritable_run_folders(tmp_path, monkeypatch):
    model_config, train_config, dataset = setup(tmp_path)
    a_file = tmp_path / "run"
    a_file.write_text("not a folder")
    with pytest.raises(OutputError, match="a file stands where a folder is needed"):
        Trainer(model_config, train_config, dataset, a_file)

    def read_only(path, exist_ok=False):  # chmod would not stop root: refuse as the OS would
        raise OSError(errno.EROFS, "Read-only file system", path)

    monkeypatch.setattr(os, "makedirs", read_only)
    with pytest.raises(OutputError, match="Read-only file system; the file system is "
                                          "read-only"):
        Trainer(model_config, train_config, dataset, tmp_path / "elsewhere")


def test_temporary_files_of_a_killed_write_are_removed_on_start(tmp_path):
    model_config, train_config, dataset = setup(tmp_path)
    (tmp_path / ".tmp-k1ll3d.npz").write_bytes(b"half a checkpoint")
    (tmp_path / "notes.npz").write_bytes(b"someone else's")
    Trainer(model_config, train_config, dataset, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.npz"]


def test_an_empty_dataset_is_refused(tmp_path):
    model_config, train_config, _ = setup(tmp_path)
    with pytest.raises(UserError, match="training dataset is empty"):
        Trainer(model_config, train_config, [], tmp_path)
