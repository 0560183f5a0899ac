"""Shipped weights: exported as float16 with a SHA-256 record, refused when corrupt, loaded
by name (``tinymask.pretrained``) and by the CLI's ``--weights``."""

import json

import numpy as np
import pytest

import tinymask as tm
from tinymask.checkpoint import CheckpointError, save_checkpoint
from tinymask.cli import _load_weights
from tinymask.config import MaskRCNNConfig
from tinymask.model.mask_rcnn import MaskRCNN
from tinymask.weights import shipped as weights_module
from tinymask.weights.shipped import export_pretrained, pretrained, pretrained_record


@pytest.fixture
def shipped(tmp_path):
    """A small model exported as "toy" into its own folder, and the model it came from."""
    tm.manual_seed(5)
    model = MaskRCNN(MaskRCNNConfig.small(min_size=64, max_size=64)).eval()
    run = tmp_path / "model.npz"
    save_checkpoint(run, model, {"model": model.config.to_dict(), "train": {}}, step=12)
    folder = tmp_path / "weights"
    folder.mkdir()
    record = export_pretrained(run, "toy", {"command": "python build.py", "metrics": {}},
                               str(folder))
    return model, folder, record


def test_export_stores_float16_weights_and_their_hash(shipped):
    model, folder, record = shipped
    stored = np.load(folder / "toy.npz", allow_pickle=False)
    floats = [key for key in stored.files if key.startswith("model/")
              and stored[key].dtype.kind == "f"]
    assert floats and all(stored[key].dtype == np.float16 for key in floats)
    assert "optimizer/lr" not in stored.files
    assert json.loads((folder / "toy.json").read_text())["sha256"] == record["sha256"]
    assert record["command"] == "python build.py" and record["bytes"] > 0


def test_loading_gives_the_float16_rounded_model(shipped):
    model, folder, _ = shipped
    loaded = pretrained("toy", str(folder))
    assert not loaded.training
    for (name, original), (_, restored) in zip(model.state_dict().items(),
                                                loaded.state_dict().items()):
        assert restored.dtype == original.dtype, name
        np.testing.assert_array_equal(restored, original.astype(np.float16).astype(
            original.dtype), err_msg=name)
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    with tm.no_grad():
        (prediction,) = loaded([image])
    assert set(prediction) >= {"boxes", "labels", "scores", "masks"}


def test_a_corrupt_file_is_refused_with_its_hash(shipped):
    _, folder, _ = shipped
    data = bytearray((folder / "toy.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "toy.npz").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt: its SHA-256 is .*python build.py"):
        pretrained("toy", str(folder))


def test_a_missing_file_or_name_is_a_clear_error(shipped):
    _, folder, _ = shipped
    with pytest.raises(CheckpointError, match="no shipped model named 'nothing'"):
        pretrained_record("nothing", str(folder))
    (folder / "toy.npz").unlink()
    with pytest.raises(CheckpointError, match="weights of 'toy' are missing"):
        pretrained("toy", str(folder))


def test_the_cli_takes_a_shipped_name_for_weights(shipped, monkeypatch, tmp_path):
    model, folder, _ = shipped
    monkeypatch.setattr(weights_module, "FOLDER", str(folder))
    monkeypatch.chdir(tmp_path)  # no file named "toy" here: the name is a shipped model
    loaded = _load_weights("toy")
    name, original = next(iter(model.state_dict().items()))
    np.testing.assert_array_equal(loaded.state_dict()[name],
                                  original.astype(np.float16).astype(original.dtype))
