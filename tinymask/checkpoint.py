"""Checkpoints and saved models as ``.npz``, written atomically, read with allow_pickle=False.

A file is a flat dict of arrays, namespaced by prefix:

    model/<parameter or buffer name>   the state dict (torchvision-style names)
    optimizer/<key>                    SGD momentum buffers and group hyper-parameters
    scheduler/<key>                    the learning-rate schedule's position
    meta/step                          training steps done
    meta/config                        JSON of {"model": MaskRCNNConfig, "train": TrainConfig}

Nothing is pickled: strings are stored as NumPy unicode arrays, so a file from anywhere
can be opened safely. Writes go to a temporary file in the same folder that is then
renamed over the target, so a crash mid-write never leaves a half-written checkpoint; a
write killed outright leaves its ``.tmp-*.npz``, which ``remove_unfinished_writes`` deletes
(the trainer calls it when it starts). A full disk or a read-only folder raises a one-line
``OutputError`` and leaves the file that was there before untouched. Weights that are not
finite (a diverged run) are never written.
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
import zipfile

import numpy

from tinymask.backend import array_module, to_numpy
from tinymask.errors import UserError, writing

TEMPORARY_PREFIX = ".tmp-"  # the name of a file being written, until its rename
ZIP_MAGIC, NPY_MAGIC = b"PK\x03\x04", b"\x93NUMPY"


class CheckpointError(UserError):
    """A checkpoint or weights file that cannot be read, with what is wrong with it, or
    weights that must not be written."""


def save_npz_atomic(path, arrays: dict) -> None:
    """Write ``arrays`` to ``path`` (.npz) via a temporary file and an atomic rename."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    with writing(path, "checkpoint"):
        os.makedirs(folder, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=TEMPORARY_PREFIX, suffix=".npz")
        try:
            with os.fdopen(handle, "wb") as stream:
                numpy.savez(stream, **arrays)
                stream.flush()
                os.fsync(stream.fileno())
            os.chmod(temporary, _new_file_mode())  # mkstemp's 0600 would hide it from others
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.remove(temporary)
            raise


def _new_file_mode() -> int:
    """The permissions ``open()`` gives a new file: 0o666 less the process's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def remove_unfinished_writes(folder) -> list[str]:
    """Delete the temporary files of writes that were killed before their rename (a
    ``save_npz_atomic`` cut short by SIGKILL or a power cut); returns their paths."""
    leftovers = sorted(glob.glob(os.path.join(glob.escape(os.fspath(folder)),
                                              f"{TEMPORARY_PREFIX}*.npz")))
    for leftover in leftovers:
        with writing(leftover, "unfinished temporary file"):
            os.remove(leftover)
    return leftovers


def non_finite_arrays(arrays: dict) -> list[str]:
    """The names of the floating-point arrays (NumPy or CuPy) holding a NaN or an infinity."""
    return [name for name, array in arrays.items()
            if array.dtype.kind == "f" and not bool(array_module(array).isfinite(array).all())]


def load_npz(path) -> dict:
    """Every array of an .npz file, refusing pickled objects, with clear errors."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a folder; pass the file, e.g. {path}/model.npz")
    try:
        with open(path, "rb") as stream:
            magic = stream.read(len(NPY_MAGIC))
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if not magic.startswith(ZIP_MAGIC):
        # numpy.load would take any other bytes for a pickle and say so: misleading here
        kind = "a single .npy array" if magic == NPY_MAGIC else "not an .npz archive"
        raise CheckpointError(f"{path} is not a tinymask checkpoint ({kind}); pass a "
                              f"model.npz or checkpoint.npz written by tinymask")
    try:
        with numpy.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except ValueError as exc:
        if "pickle" in str(exc) or "Object arrays" in str(exc):
            raise CheckpointError(f"{path} is not a readable .npz checkpoint: it holds pickled "
                                  f"Python objects, which tinymask never loads") from exc
        raise CheckpointError(f"{path} is not a readable .npz checkpoint ({exc}); it may be "
                              "truncated or corrupt: use an earlier checkpoint") from exc
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CheckpointError(f"{path} is not a readable .npz checkpoint ({exc}); it may be "
                              "truncated or corrupt: use an earlier checkpoint") from exc


def save_checkpoint(path, model, config: dict, step: int = 0, optimizer=None,
                    scheduler=None) -> None:
    """Model state (+ optimizer and schedule when given) and the config that built it.
    Refuses weights that are not finite (``CheckpointError``): they could only mislead."""
    arrays = {f"model/{name}": to_numpy(array) for name, array in model.state_dict().items()}
    bad = non_finite_arrays(arrays)
    if bad:
        raise CheckpointError(f"not writing {os.fspath(path)}: {bad[0]} holds NaN or "
                              f"infinite values (a diverged training)")
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
    bad = non_finite_arrays(checkpoint["model"])
    if bad:
        raise CheckpointError(f"{path} holds weights that are not finite ({bad[0]}): it comes "
                              f"from a training that diverged and cannot predict anything")
    model = MaskRCNN(config)
    try:
        model.load_state_dict(checkpoint["model"])
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: the weights do not fit the stored config ({exc})") from exc
    return model.eval()
