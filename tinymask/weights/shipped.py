"""Trained models shipped with tinymask: ``tinymask.pretrained("shapes-small")``.

A shipped model is two files in this folder: ``NAME.npz``, the weights (stored as float16 to
keep the package small; they are cast back to float32 when loaded) with the config that
builds the model, and ``NAME.json``, its record: the SHA-256 of the .npz, the command that
trained it, how long that took and on what machine, and its COCO box and mask AP. Loading
checks the SHA-256 first, so a corrupted or truncated file is refused with a message that
says so instead of giving a broken model.

``export_pretrained`` writes both files from a training run's ``model.npz``.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy

from tinymask.checkpoint import CheckpointError, load_model, read_checkpoint, save_npz_atomic

FOLDER = os.path.dirname(os.path.abspath(__file__))


def available(folder: str | None = None) -> list[str]:
    """Names of the shipped models (each a ``NAME.json`` record in the folder)."""
    folder = folder or FOLDER
    return sorted(name[:-5] for name in os.listdir(folder) if name.endswith(".json"))


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pretrained_record(name: str, folder: str | None = None) -> dict:
    """The record of shipped model ``name``: sha256, command, seconds, machine, metrics."""
    folder = folder or FOLDER
    path = os.path.join(folder, f"{name}.json")
    if not os.path.exists(path):
        raise CheckpointError(f"no shipped model named {name!r}; the shipped models are "
                              f"{', '.join(available(folder)) or 'none'}")
    with open(path) as stream:
        return json.load(stream)


def pretrained_path(name: str, folder: str | None = None) -> str:
    """The weights file of ``name``, after checking it against its recorded SHA-256."""
    folder = folder or FOLDER
    record = pretrained_record(name, folder)
    path = os.path.join(folder, f"{name}.npz")
    if not os.path.exists(path):
        raise CheckpointError(f"the weights of {name!r} are missing ({path}); reinstall "
                              f"tinymask, or rebuild them with: {record['command']}")
    found = sha256_of(path)
    if found != record["sha256"]:
        raise CheckpointError(f"{path} is corrupt: its SHA-256 is {found[:16]}..., the record "
                              f"says {record['sha256'][:16]}...; reinstall tinymask, or "
                              f"rebuild it with: {record['command']}")
    return path


def pretrained(name: str = "shapes-small", folder: str | None = None):
    """A shipped trained ``MaskRCNN``, in eval mode, with float32 weights."""
    return load_model(pretrained_path(name, folder))


def export_pretrained(model_npz, name: str, record: dict, folder: str | None = None) -> dict:
    """Write ``folder/NAME.npz`` (the model of a run's ``model.npz``, weights as float16, no
    optimizer state) and ``folder/NAME.json`` (``record`` plus the file's SHA-256).
    Returns the record as written."""
    folder = folder or FOLDER
    checkpoint = read_checkpoint(model_npz)
    arrays = {f"model/{key}": value.astype(numpy.float16) if value.dtype.kind == "f" else value
              for key, value in checkpoint["model"].items()}
    arrays["meta/step"] = numpy.asarray(checkpoint["step"])
    arrays["meta/config"] = numpy.asarray(json.dumps(checkpoint["config"]))
    weights_path = os.path.join(folder, f"{name}.npz")
    save_npz_atomic(weights_path, arrays)
    record = {**record, "sha256": sha256_of(weights_path),
              "bytes": os.path.getsize(weights_path)}
    with open(os.path.join(folder, f"{name}.json"), "w") as stream:
        json.dump(record, stream, indent=2)
        stream.write("\n")
    return record
