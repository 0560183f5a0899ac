"""Checkpoints: round trip, atomic writes, no pickles, clear errors for broken files, no
non-finite weights written or loaded, and no debris from killed writes."""

import errno
import json
import os

import numpy as np
import pytest

import tinymask as tm
from tinymask.checkpoint import (
    CheckpointError,
    load_model,
    read_checkpoint,
    remove_unfinished_writes,
    save_checkpoint,
    save_npz_atomic,
)
from tinymask.config import MaskRCNNConfig
from tinymask.errors import OutputError
from tinymask.model.mask_rcnn import MaskRCNN
from tinymask.optim import SGD


def tiny_model():
    tm.manual_seed(3)
    return MaskRCNN(MaskRCNNConfig.small(min_size=64, max_size=64))


def test_round_trip_rebuilds_the_same_model(tmp_path):
    model = tiny_model()
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    optimizer.step()
    path = tmp_path / "model.npz"
    save_checkpoint(path, model, {"model": model.config.to_dict(), "train": {}}, step=7,
                    optimizer=optimizer)
    checkpoint = read_checkpoint(path)
    assert checkpoint["step"] == 7
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(checkpoint["model"][name], value, err_msg=name)
    assert any(k.endswith("momentum_buffer") for k in checkpoint["optimizer"])
    rebuilt = load_model(path)
    image = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    with tm.no_grad():
        ours, theirs = model.eval()([image])[0], rebuilt([image])[0]
    np.testing.assert_array_equal(ours["boxes"], theirs["boxes"])


def test_files_hold_no_pickles(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, **{"meta/config": np.array([{"a": 1}], dtype=object),
                      "meta/step": np.array(0)})
    with pytest.raises(CheckpointError, match="not a readable .npz"):
        read_checkpoint(path)


def test_corrupt_and_foreign_files_are_explained(tmp_path):
    truncated = tmp_path / "truncated.npz"
    model = tiny_model()
    save_checkpoint(truncated, model, {"model": model.config.to_dict()})
    truncated.write_bytes(truncated.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_checkpoint(truncated)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a tinymask checkpoint"):
        read_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="no such file"):
        read_checkpoint(tmp_path / "missing.npz")


def test_a_failed_write_leaves_the_previous_file_and_no_debris(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    save_npz_atomic(path, {"x": np.arange(3)})
    before = path.read_bytes()

    def broken_savez(stream, **arrays):
        stream.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_npz_atomic(path, {"x": np.arange(5)})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]


def test_config_is_stored_as_json_text(tmp_path):
    model = tiny_model()
    path = tmp_path / "m.npz"
    save_checkpoint(path, model, {"model": model.config.to_dict()})
    with np.load(path, allow_pickle=False) as data:
        assert json.loads(str(data["meta/config"]))["model"]["backbone"] == "resnet18_w16"


def test_files_that_are_not_archives_are_not_called_pickles(tmp_path):
    random_bytes = tmp_path / "random.npz"
    random_bytes.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match="is not a tinymask checkpoint \\(not an .npz "
                                              "archive\\)") as caught:
        read_checkpoint(random_bytes)
    assert "pickle" not in str(caught.value)
    single = tmp_path / "single.npz"
    with open(single, "wb") as stream:
        np.save(stream, np.zeros(3))
    with pytest.raises(CheckpointError, match="a single .npy array"):
        read_checkpoint(single)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a tinymask checkpoint"):
        read_checkpoint(empty)
    with pytest.raises(CheckpointError, match="is a folder"):
        read_checkpoint(tmp_path)


def test_pickled_objects_are_named_as_such(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, **{"meta/config": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(CheckpointError, match="holds pickled Python objects"):
        read_checkpoint(path)


def test_weights_that_are_not_finite_are_neither_written_nor_loaded(tmp_path):
    model = tiny_model()
    next(iter(model.parameters())).data[0] = np.inf
    path = tmp_path / "model.npz"
    with pytest.raises(CheckpointError, match="not writing .*model.npz: .* NaN or infinite"):
        save_checkpoint(path, model, {"model": model.config.to_dict()})
    assert not path.exists()
    arrays = {f"model/{name}": np.asarray(value) for name, value in
              tiny_model().state_dict().items()}
    name = next(iter(arrays))
    arrays[name] = np.full_like(arrays[name], np.nan)
    save_npz_atomic(path, {**arrays, "meta/step": np.asarray(3),
                           "meta/config": np.asarray(json.dumps(
                               {"model": model.config.to_dict()}))})
    with pytest.raises(CheckpointError, match="not finite .*diverged"):
        load_model(path)


def test_a_full_disk_is_an_output_error_with_advice(tmp_path, monkeypatch):
    def no_space(stream, **arrays):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", no_space)
    with pytest.raises(OutputError, match="No space left on device; the disk is full"):
        save_npz_atomic(tmp_path / "c.npz", {"x": np.arange(3)})
    assert list(tmp_path.iterdir()) == []


def test_unfinished_writes_are_removed(tmp_path):
    (tmp_path / ".tmp-abc123.npz").write_bytes(b"cut short")
    (tmp_path / "model.npz").write_bytes(b"kept")
    removed = remove_unfinished_writes(tmp_path)
    assert [os.path.basename(path) for path in removed] == [".tmp-abc123.npz"]
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def test_a_written_file_has_the_usual_permissions(tmp_path):
    """Written through a private temporary file, but readable as any new file would be."""
    path = tmp_path / "weights.npz"
    save_npz_atomic(path, {"a": np.zeros(2)})
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
