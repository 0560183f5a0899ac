"""Checkpoints and saved models as ``.npz``, written atomically, read with allow_pickle=False.

A file is a flat dict of arrays, namespaced by prefix:

    model/<parameter or buffer name>   the state dict (torchvision-style names)
    optimizer/<key>                    SGD momentum buffers and group hyper-parameters
    scheduler/<key>                    the learning-rate schedule's position
    meta/step                          training steps done
    meta/config                        JSON of {"model": MaskRCNNConfig, "train": TrainConfig}

Nothing is pickled: strings are stored as NumPy unicode arrays, so a file from anywhere
can be opened safely. Writes go to a temporary file in the same folder that is then
renamed over the target, so a crash mid-write never leaves a half-written checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile

import numpy

from tinymask.backend import to_numpy


class CheckpointError(ValueError):
    """A checkpoint or weights file that cannot be read, with what is wrong with it."""


def save_npz_atomic(path, arrays: dict) -> None:
    """Write ``arrays`` to ``path`` (.npz) via a temporary file and an atomic rename."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(handle, "wb") as stream:
            numpy.savez(stream, **arrays)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def load_npz(path) -> dict:
    """Every array of an .npz file, refusing pickled objects, with clear errors."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file")
    try:
        with numpy.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise CheckpointError(f"{path} is not a readable .npz checkpoint ({exc}); it may be "
                              "truncated or corrupt: use an earlier checkpoint") from exc


def save_checkpoint(path, model, config: dict, step: int = 0, optimizer=None,
                    scheduler=None) -> None:
    """Model state (+ optimizer and schedule when given) and the config that built it."""
    arrays = {f"model/{name}": to_numpy(array) for name, array in model.state_dict().items()}
    if optimizer is not None:
        arrays.update({f"optimizer/{k}": numpy.asarray(v)
                       for k, v in optimizer.state_dict().items()})
    if scheduler is not None:
        arrays.update({f"scheduler/{k}": numpy.asarray(v)
                       for k, v in scheduler.state_dict().items()})
    arrays["meta/step"] = numpy.asarray(step)
    arrays["meta/config"] = numpy.asarray(json.dumps(config))
    save_npz_atomic(path, arrays)


def read_checkpoint(path) -> dict:
    """-> {"model": state dict, "optimizer": dict, "scheduler": dict, "step": int,
    "config": dict}, validated."""
    arrays = load_npz(path)
    for key in ("meta/step", "meta/config"):
        if key not in arrays:
            raise CheckpointError(f"{path} is not a tinymask checkpoint: it has no {key!r}")
    try:
        config = json.loads(str(arrays["meta/config"]))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: its stored config is not valid JSON ({exc})") from exc
    parts = {"model": {}, "optimizer": {}, "scheduler": {}}
    for name, value in arrays.items():
        prefix, _, key = name.partition("/")
        if prefix in parts:
            parts[prefix][key] = value
    if not parts["model"]:
        raise CheckpointError(f"{path} holds no model weights")
    scheduler = {}
    if parts["scheduler"]:
        scheduler = {"last_iter": int(parts["scheduler"]["last_iter"]),
                     "base_lrs": [float(v) for v in parts["scheduler"]["base_lrs"]]}
    optimizer = {k: (v.item() if v.ndim == 0 else v) for k, v in parts["optimizer"].items()}
    return {"model": parts["model"], "optimizer": optimizer, "scheduler": scheduler,
            "step": int(arrays["meta/step"]), "config": config}


def load_model(path):
    """A MaskRCNN rebuilt from its saved config, with its saved weights, in eval mode."""
    from tinymask.config import MaskRCNNConfig
    from tinymask.model.mask_rcnn import MaskRCNN

    checkpoint = read_checkpoint(path)
    try:
        config = MaskRCNNConfig.from_dict(checkpoint["config"]["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: the stored model config is invalid ({exc})") from exc
    model = MaskRCNN(config)
    try:
        model.load_state_dict(checkpoint["model"])
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: the weights do not fit the stored config ({exc})") from exc
    return model.eval()
