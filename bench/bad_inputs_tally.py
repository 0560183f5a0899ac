"""Replay the bad inputs and faults a new user meets, against the CLI and the Python API,
and print a tally: tried / clear errors / handled / tracebacks / silent / data lost.

    python bench/bad_inputs_tally.py              # about two minutes on 2 cores
    python bench/bad_inputs_tally.py --verbose    # one line per case, with what was said

Each case is a mistake (a bad file, option, value or target) or a fault (a full disk, a
read-only folder, a killed write), with what tinymask must do about it:

* refuse it: the ``tinymask`` command exits with status 2 and one line naming the problem,
  the Python API raises a ``tinymask.errors.UserError`` (outcome "clear error");
* or handle it as documented: a 16-bit PNG is scaled to 8 bits, a resumed run applies a new
  lr and records it, a leftover temporary file is removed (outcome "handled").

Anything else is a failure: "traceback" (another exception: to a user it reads as a crash),
"silent" (accepted without a word, or handled wrongly), "data lost" (a file of a finished
run changed or vanished). The script exits with status 1 if any case failed.

Cases run in this process (the CLI through ``tinymask.cli.main``); faults are simulated by
replacing a function for the duration of one case (a full disk: ``numpy.savez`` raising
ENOSPC; a read-only folder: the OS call raising EROFS), which works the same for root.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy
from PIL import Image

CLEAR, HANDLED, TRACEBACK, SILENT, LOST = ("clear error", "handled", "traceback", "silent",
                                           "data lost")
CASES = []
TINY = ["--set", "steps=2", "--set", "batch_size=1", "--set", "min_size=64",
        "--set", "max_size=64", "--set", "log_every=1", "--set", "progress=false",
        "--set", "rpn_pre_nms_top_n_train=100", "--set", "box_batch_size_per_image=32"]
SHAPES = ["--set", "train=2", "--set", "val=0", "--set", "image_size=64", *TINY]


def case(group: str, name: str):
    def register(function):
        CASES.append((group, name, function))
        return function
    return register


class VerdictError(Exception):
    """Raised by a case that found its own outcome (data lost, a wrong result)."""

    def __init__(self, outcome: str, detail: str):
        super().__init__(detail)
        self.outcome, self.detail = outcome, detail


# ---- running the CLI and the API ---------------------------------------------------------------

def cli(*argv) -> tuple[int, str]:
    """(exit status, stderr) of ``tinymask ARGV`` run in this process; an exception that
    escapes ``main`` is a traceback."""
    from tinymask.cli import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            status = main([str(arg) for arg in argv])
        except SystemExit as exc:  # argparse's own usage errors
            status = exc.code
    return status, err.getvalue().strip()


def refused_by_cli(*argv, must_say: str = "") -> tuple[str, str]:
    status, err = cli(*argv)
    if status == 0:
        raise VerdictError(SILENT, "exit status 0")
    lines = err.splitlines()
    if status == 2 and lines and "error:" in lines[-1] and "Traceback" not in err:
        if must_say and must_say not in err:
            raise VerdictError(SILENT, f"refused, but without saying {must_say!r}: {lines[-1]}")
        return CLEAR, lines[-1]
    return TRACEBACK, err[-300:]


def accepted_by_cli(*argv) -> str:
    status, err = cli(*argv)
    if status != 0:
        raise VerdictError(TRACEBACK if status != 2 else SILENT, f"exit {status}: {err[-200:]}")
    return err


def refused_by_api(function, must_say: str = "") -> tuple[str, str]:
    from tinymask.errors import UserError

    try:
        function()
    except UserError as exc:
        if must_say and must_say not in str(exc):
            raise VerdictError(SILENT, f"refused, but without saying {must_say!r}: {exc}") from exc
        return CLEAR, str(exc)
    except Exception as exc:  # noqa: BLE001 - any other exception is what we count
        return TRACEBACK, f"{type(exc).__name__}: {exc}"
    raise VerdictError(SILENT, "no error")


@contextlib.contextmanager
def replaced(owner, name, value):
    """``owner.name`` is ``value`` inside the block (a module-level name shadows a builtin)."""
    missing = object()
    original = getattr(owner, name, missing)
    setattr(owner, name, value)
    try:
        yield
    finally:
        if original is missing:
            delattr(owner, name)
        else:
            setattr(owner, name, original)


@contextlib.contextmanager
def unchanged(folder: Path):
    """Data lost if a file of ``folder`` changes or vanishes inside the block (a log may
    only grow: records appended after its old content are not a loss)."""
    before = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    yield
    changed = []
    for name, content in before.items():
        path = folder / name
        now = path.read_bytes() if path.is_file() else None
        grown = name.endswith(".jsonl") and now is not None and now.startswith(content)
        if now != content and not grown:
            changed.append(name)
    if changed:
        raise VerdictError(LOST, f"changed or removed: {sorted(changed)}")


def os_error(code):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return fail


# ---- shared material: COCO files, a finished run, a tiny model -------------------------------

class Material:
    def __init__(self, root: Path):
        from tinymask.cli import main

        self.root = root
        self.shapes = root / "shapes"
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["data", "shapes", "--out", str(self.shapes), "--train", "3", "--val",
                         "2", "--image-size", "64", "--seed", "1"]) == 0
            self.run = root / "finished"
            assert main(["train", "--out", str(self.run), *SHAPES]) == 0
        self.counter = 0

    def folder(self) -> Path:
        self.counter += 1
        path = self.root / f"case{self.counter:03d}"
        path.mkdir()
        return path

    def run_copy(self) -> Path:
        copy = self.folder() / "run"
        shutil.copytree(self.run, copy)
        return copy

    def coco(self, change=None, split="train") -> tuple[Path, Path]:
        """A copy of a split's JSON changed by ``change(data)``, and its image folder."""
        data = json.loads((self.shapes / f"{split}.json").read_text())
        if change is not None:
            change(data)
        path = self.folder() / f"{split}.json"
        path.write_text(json.dumps(data))
        return path, self.shapes / split

    def train_on(self, ann, images):
        return ["train", "--train-ann", ann, "--train-images", images, "--out",
                self.folder() / "run", *TINY]

    def eval_on(self, ann, images, *more):
        return ["eval", "--weights", self.run / "model.npz", "--ann", ann, "--images", images,
                *more]


def first_annotation(change):
    def apply(data):
        change(data["annotations"][0])
    return apply


def tiny_model():
    import tinymask as tm
    from tinymask.config import MaskRCNNConfig
    from tinymask.model.mask_rcnn import MaskRCNN

    tm.manual_seed(0)
    return MaskRCNN(MaskRCNNConfig.small(min_size=64, max_size=64, rpn_pre_nms_top_n_train=100,
                                         box_batch_size_per_image=32))


def good_target():
    masks = numpy.zeros((1, 64, 64), dtype=numpy.uint8)
    masks[0, 10:20, 10:20] = 1
    return {"boxes": numpy.array([[10, 10, 20, 20]], numpy.float32),
            "labels": numpy.array([1]), "masks": masks}


IMAGE = numpy.zeros((64, 64, 3), dtype=numpy.uint8)


# ---- the run folder: nothing lost ------------------------------------------------------------

@case("run folder", "train --out over a finished run, no --resume")
def _(m):
    run = m.run_copy()
    with unchanged(run):
        return refused_by_cli("train", "--out", run, *SHAPES, must_say="--resume")


@case("run folder", "train --out over a finished run with --overwrite")
def _(m):
    run = m.run_copy()
    accepted_by_cli("train", "--out", run, "--overwrite", *SHAPES)
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    if steps != [1, 2]:
        raise VerdictError(SILENT, f"log mixes runs: steps {steps}")
    return HANDLED, "replaced, one run in the log"


@case("run folder", "--resume and --overwrite together")
def _(m):
    run = m.run_copy()
    with unchanged(run):
        return refused_by_cli("train", "--out", run, "--resume", "--overwrite", *SHAPES)


@case("run folder", "--resume where there is no run")
def _(m):
    return refused_by_cli("train", "--out", m.folder() / "new", "--resume", *SHAPES)


@case("run folder", "--out is a file")
def _(m):
    path = m.folder() / "file"
    path.write_text("x")
    return refused_by_cli("train", "--out", path, *SHAPES)


@case("run folder", "python API: Trainer.run() over a finished run")
def _(m):
    from tinymask.checkpoint import read_checkpoint
    from tinymask.config import MaskRCNNConfig
    from tinymask.data import make_shapes_splits
    from tinymask.train import TrainConfig, Trainer

    run = m.run_copy()
    stored = read_checkpoint(run / "model.npz")["config"]
    train, _ = make_shapes_splits(2, 0, seed=0, image_size=64)
    trainer = Trainer(MaskRCNNConfig.from_dict(stored["model"]),
                      TrainConfig.from_dict(stored["train"]), train, run)
    with unchanged(run):
        return refused_by_api(trainer.run, must_say="--overwrite")


@case("run folder", "resume after a kill continues bit for bit")
def _(m):
    from tinymask.config import MaskRCNNConfig
    from tinymask.data import make_shapes_splits
    from tinymask.train import TrainConfig, Trainer

    train, _ = make_shapes_splits(2, 0, seed=0, image_size=64)
    model = MaskRCNNConfig.small(min_size=64, max_size=64, num_classes=train.num_classes,
                                 rpn_pre_nms_top_n_train=100, box_batch_size_per_image=32)
    config = TrainConfig(steps=3, batch_size=1, log_every=1, checkpoint_every=2, progress=False)
    folder = m.folder()
    whole, cut = [], []
    Trainer(model, config, train, folder / "whole").run(log=lambda r: whole.append(r["loss"]))
    # killed after the checkpoint of step 2: what a later step logged is trained again
    Trainer(model, config, train, folder / "cut").run(steps=2, log=lambda r: cut.append(r["loss"]))
    with open(folder / "cut" / "log.jsonl", "a") as log:
        log.write('{"step": 3, "loss": 0.5}\n{"step": 4, "lo')
    trainer = Trainer(model, config, train, folder / "cut")
    trainer.resume()
    trainer.run(log=lambda r: cut.append(r["loss"]))
    logged = [json.loads(line)["step"] for line in
              (folder / "cut" / "log.jsonl").read_text().splitlines()]
    if cut != whole or logged != [1, 2, 3]:
        raise VerdictError(SILENT, f"losses {cut} vs {whole}, logged steps {logged}")
    return HANDLED, "same losses, each step logged once"


@case("run folder", "leftover .tmp-*.npz of a killed write, then --resume")
def _(m):
    run = m.run_copy()
    (run / ".tmp-k1ll3d.npz").write_bytes(b"half a checkpoint")
    accepted_by_cli("train", "--out", run, "--resume", *SHAPES, "--set", "steps=3")
    if list(run.glob(".tmp-*")):
        raise VerdictError(SILENT, "the temporary file is still there")
    return HANDLED, "removed on start"


# ---- faults while writing ------------------------------------------------------------------

@case("disk", "disk full at a checkpoint write")
def _(m):
    run = m.run_copy()
    with unchanged(run), replaced(numpy, "savez", os_error(errno.ENOSPC)):
        outcome = refused_by_cli("train", "--out", run, "--resume", *SHAPES, "--set", "steps=3",
                                 must_say="disk is full")
    if list(run.glob(".tmp-*")):
        raise VerdictError(SILENT, "a temporary file was left behind")
    return outcome


@case("disk", "read-only run folder (checkpoint)")
def _(m):
    import tinymask.checkpoint

    run = m.run_copy()
    with unchanged(run), replaced(tinymask.checkpoint.tempfile, "mkstemp",
                                  os_error(errno.EROFS)):
        return refused_by_cli("train", "--out", run, "--resume", *SHAPES, "--set", "steps=3",
                              must_say="read-only")


@case("disk", "read-only run folder (training log)")
def _(m):
    import tinymask.train

    run = m.run_copy()
    with unchanged(run), replaced(tinymask.train, "open", os_error(errno.EROFS)):
        return refused_by_cli("train", "--out", run, "--resume", *SHAPES, "--set", "steps=3",
                              must_say="read-only")


@case("disk", "read-only parent of a new --out")
def _(m):
    with replaced(os, "makedirs", os_error(errno.EROFS)):
        return refused_by_cli("train", "--out", m.folder() / "new", *SHAPES)


@case("disk", "a write fails half way: the old checkpoint stays")
def _(m):
    from tinymask.checkpoint import save_npz_atomic

    folder = m.folder()
    save_npz_atomic(folder / "c.npz", {"x": numpy.arange(3)})

    def half(stream, **arrays):
        stream.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")
    with unchanged(folder), replaced(numpy, "savez", half):
        outcome = refused_by_api(lambda: save_npz_atomic(folder / "c.npz", {"x": numpy.ones(5)}))
    if sorted(p.name for p in folder.iterdir()) != ["c.npz"]:
        raise VerdictError(SILENT, "debris left")
    return outcome


@case("disk", "eval --out into a folder that does not exist")
def _(m):
    return refused_by_cli(*m.eval_on(m.shapes / "val.json", m.shapes / "val", "--out",
                                     m.folder() / "no" / "such" / "m.json"))


@case("disk", "predict --out is a file")
def _(m):
    path = m.folder() / "file"
    path.write_text("x")
    image = sorted((m.shapes / "val").iterdir())[0]
    return refused_by_cli("predict", "--weights", m.run / "model.npz", image, "--out", path)


# ---- resuming with changed settings ----------------------------------------------------------

def resumed_with(m, *settings):
    from tinymask.checkpoint import read_checkpoint

    run = m.run_copy()
    accepted_by_cli("train", "--out", run, "--resume", *SHAPES, "--set", "steps=3", *settings)
    stored = read_checkpoint(run / "model.npz")["config"]
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return stored, records


@case("resume", "--resume --set lr=0.001")
def _(m):
    stored, records = resumed_with(m, "--set", "lr=0.001")
    noted = any(r.get("resumed_with_changes", {}).get("lr") == [0.02, 0.001] for r in records)
    ran = records[-1]["lr"] < 0.002  # the rate of the last step: the new one (after decay)
    if not (stored["train"]["lr"] == 0.001 and noted and ran):
        raise VerdictError(SILENT, f"stored {stored['train']['lr']}, logged {noted}, applied {ran}")
    return HANDLED, "applied from the checkpoint's step, logged, stored"


@case("resume", "--resume --set seed=7")
def _(m):
    stored, records = resumed_with(m, "--seed", "7")
    noted = any("seed" in r.get("resumed_with_changes", {}) for r in records)
    if not (stored["train"]["seed"] == 7 and noted and stored["history"]):
        raise VerdictError(SILENT, "the new seed is not recorded")
    return HANDLED, "applied, logged, stored"


@case("resume", "--resume --set batch_size=2")
def _(m):
    stored, records = resumed_with(m, "--set", "batch_size=2")
    noted = any("batch_size" in r.get("resumed_with_changes", {}) for r in records)
    if not (stored["train"]["batch_size"] == 2 and noted):
        raise VerdictError(SILENT, "the new batch size is not recorded")
    return HANDLED, "applied, logged, stored"


@case("resume", "--resume --set roi_op=pool (another model)")
def _(m):
    run = m.run_copy()
    with unchanged(run):
        return refused_by_cli("train", "--out", run, "--resume", *SHAPES, "--set", "steps=3",
                              "--set", "roi_op=pool")


@case("resume", "divergence: the advice works on resume")
def _(m):
    from tinymask.train import Trainer, check_finite

    def diverges(trainer):
        check_finite({"loss_mask": math.nan}, trainer.step, trainer.saved_step)
    with replaced(Trainer, "train_step", diverges):
        return refused_by_cli("train", "--out", m.run_copy(), "--resume", *SHAPES, "--set",
                              "steps=3", must_say="holds step 2, the last good weights. Try a "
                              "lower lr, a longer warmup (warmup_iters) or gradient clipping "
                              "(grad_clip=10): continue from it with --resume and the new "
                              "settings (--set lr=...)")


# ---- non-finite values ------------------------------------------------------------------------

@case("non-finite", "--set lr=NaN")
def _(m):
    return refused_by_cli("train", "--out", m.folder() / "r", *SHAPES, "--set", "lr=NaN")


@case("non-finite", "--set lr=Infinity")
def _(m):
    return refused_by_cli("train", "--out", m.folder() / "r", *SHAPES, "--set", "lr=Infinity")


@case("non-finite", "--set lr=nan (as text)")
def _(m):
    return refused_by_cli("train", "--out", m.folder() / "r", *SHAPES, "--set", "lr=nan")


@case("non-finite", "weights turn NaN: no checkpoint written")
def _(m):
    from tinymask.checkpoint import non_finite_arrays, read_checkpoint
    from tinymask.config import MaskRCNNConfig
    from tinymask.data import make_shapes_splits
    from tinymask.train import TrainConfig, Trainer, TrainingDivergedError

    train, _ = make_shapes_splits(2, 0, seed=0, image_size=64)
    folder = m.folder()
    trainer = Trainer(MaskRCNNConfig.small(min_size=64, max_size=64, num_classes=6,
                                           rpn_pre_nms_top_n_train=100,
                                           box_batch_size_per_image=32),
                      TrainConfig(steps=3, batch_size=1, checkpoint_every=1, progress=False),
                      train, folder)
    step = trainer.optimizer.step

    def poisoned():
        step()
        if trainer.step == 1:
            trainer.optimizer.param_groups[0]["params"][0].data[...] = numpy.nan
    trainer.optimizer.step = poisoned
    try:
        trainer.run()
    except TrainingDivergedError as exc:
        kept = read_checkpoint(folder / "checkpoint.npz")
        if non_finite_arrays(kept["model"]) or "holds step 1" not in str(exc):
            raise VerdictError(LOST, "a checkpoint with NaN weights was written") from exc
        return CLEAR, str(exc)
    raise VerdictError(SILENT, "trained on with NaN weights")


@case("non-finite", "eval with a checkpoint full of NaN weights")
def _(m):
    from tinymask.checkpoint import load_npz, save_npz_atomic

    arrays = load_npz(m.run / "model.npz")
    arrays = {k: (numpy.full_like(v, numpy.nan) if k.startswith("model/") and v.dtype.kind == "f"
                  else v) for k, v in arrays.items()}
    path = m.folder() / "nan.npz"
    save_npz_atomic(path, arrays)
    return refused_by_cli("eval", "--weights", path, "--ann", m.shapes / "val.json", "--images",
                          m.shapes / "val")


# ---- options ------------------------------------------------------------------------------

for _setting in ("steps=abc", "batch_size=abc", "decay_at=0.5", "steps=1.5", "hflip=maybe",
                 "steps=0", "steps=true", "seed=-1", "momentum=1.5", "min_size=0",
                 "backbone=resnet19", "roi_op=bilinear", "train=0", "image_size=8",
                 "roi_type=align", "steps"):
    @case("options", f"--set {_setting}")
    def _(m, setting=_setting):
        return refused_by_cli("train", "--out", m.folder() / "r", *SHAPES, "--set", setting)


@case("options", "--set fpn=false --set mask_head=mlp")
def _(m):
    return refused_by_cli("train", "--out", m.folder() / "r", *SHAPES, "--set", "fpn=false",
                          "--set", "mask_head=mlp")


@case("options", "--seed -1")
def _(m):
    return refused_by_cli("train", "--out", m.folder() / "r", *SHAPES, "--seed", "-1")


def config_file(m, content: str) -> Path:
    path = m.folder() / "config.json"
    path.write_text(content)
    return path


@case("options", '--config file {"train": [1]}')
def _(m):
    return refused_by_cli("train", "--out", m.folder() / "r", "--config",
                          config_file(m, '{"train": [1]}'))


@case("options", "--config file that is a JSON list")
def _(m):
    return refused_by_cli("train", "--out", m.folder() / "r", "--config",
                          config_file(m, '[{"train": {}}]'))


@case("options", "--config file that is not JSON")
def _(m):
    return refused_by_cli("train", "--out", m.folder() / "r", "--config",
                          config_file(m, '{"train": '))


@case("options", "--config with a data section of the wrong kind")
def _(m):
    return refused_by_cli("train", "--out", m.folder() / "r", "--config",
                          config_file(m, '{"data": {"train": "many"}}'))


@case("options", "--config that names no preset and no file")
def _(m):
    return refused_by_cli("train", "--out", m.folder() / "r", "--config", "quik")


@case("options", "--val-ann without --val-images")
def _(m):
    return refused_by_cli("train", "--train-ann", m.shapes / "train.json", "--train-images",
                          m.shapes / "train", "--val-ann", m.shapes / "val.json", "--out",
                          m.folder() / "r", *TINY)


@case("options", "--val-images without --val-ann")
def _(m):
    return refused_by_cli("train", "--train-ann", m.shapes / "train.json", "--train-images",
                          m.shapes / "train", "--val-images", m.shapes / "val", "--out",
                          m.folder() / "r", *TINY)


@case("options", "--train-images without --train-ann")
def _(m):
    return refused_by_cli("train", "--train-images", m.shapes / "train", "--out",
                          m.folder() / "r", *TINY)


@case("options", "--train-ann without --train-images")
def _(m):
    return refused_by_cli("train", "--train-ann", m.shapes / "train.json", "--out",
                          m.folder() / "r", *TINY)


@case("options", "--val-ann with other categories than --train-ann")
def _(m):
    ann, images = m.coco(lambda data: data["categories"][0].update(name="renamed"), "val")
    return refused_by_cli("train", "--train-ann", m.shapes / "train.json", "--train-images",
                          m.shapes / "train", "--val-ann", ann, "--val-images", images, "--out",
                          m.folder() / "r", *TINY)


@case("options", "data shapes --image-size 8")
def _(m):
    return refused_by_cli("data", "shapes", "--out", m.folder(), "--image-size", "8")


@case("options", "data shapes --train -1")
def _(m):
    return refused_by_cli("data", "shapes", "--out", m.folder(), "--train", "-1")


@case("options", "ablate --seeds 0")
def _(m):
    return refused_by_cli("ablate", "roi-align", "--seeds", "0")


@case("options", "ablate --jobs 0")
def _(m):
    return refused_by_cli("ablate", "roi-align", "--jobs", "0")


@case("options", "python API: TrainConfig(lr=float('nan'))")
def _(m):
    from tinymask.train import TrainConfig

    return refused_by_api(lambda: TrainConfig(lr=math.nan))


@case("options", "python API: MaskRCNNConfig(num_classes='4')")
def _(m):
    from tinymask.config import MaskRCNNConfig

    return refused_by_api(lambda: MaskRCNNConfig(num_classes="4"))


# ---- COCO data ----------------------------------------------------------------------------

def train_refuses(m, change, must_say=""):
    ann, images = m.coco(change)
    return refused_by_cli(*m.train_on(ann, images), must_say=must_say)


@case("data", "compressed RLE string of another pixel total")
def _(m):
    from tinymask.data import encode_mask

    other = encode_mask(numpy.ones((63, 64), numpy.uint8))["counts"]
    return train_refuses(m, first_annotation(
        lambda a: a.update(segmentation={"size": [64, 64], "counts": other})))


@case("data", "garbage RLE string (names the file and the annotation id)")
def _(m):
    outcome = train_refuses(m, first_annotation(
        lambda a: a.update(segmentation={"size": [64, 64], "counts": "xyz~~~"})),
        must_say="annotation id 1 in")
    if "train.json" not in outcome[1]:
        raise VerdictError(SILENT, "the file is not named")
    return outcome


@case("data", "RLE string of digits only (decodes to garbage in pycocotools)")
def _(m):
    return train_refuses(m, first_annotation(
        lambda a: a.update(segmentation={"size": [64, 64], "counts": "0000"})))


@case("data", "uncompressed RLE counts of the wrong total")
def _(m):
    return train_refuses(m, first_annotation(
        lambda a: a.update(segmentation={"size": [64, 64], "counts": [5, 10]})))


@case("data", "RLE of another image size")
def _(m):
    return train_refuses(m, first_annotation(
        lambda a: a.update(segmentation={"size": [32, 64], "counts": [2048]})))


@case("data", "polygon of two points")
def _(m):
    return train_refuses(m, first_annotation(lambda a: a.update(segmentation=[[1, 2, 3, 4]])))


@case("data", "16-bit PNG")
def _(m):
    from tinymask.data import CocoDataset

    ann, _ = m.coco()
    folder = m.folder()
    data = json.loads(ann.read_text())
    info = data["images"][0]
    deep = (numpy.arange(64 * 64, dtype=numpy.uint32).reshape(64, 64) * 16).astype(numpy.uint16)
    for entry in data["images"]:
        shutil.copy(m.shapes / "train" / entry["file_name"], folder / entry["file_name"])
    Image.fromarray(deep).save(folder / info["file_name"])
    image, _ = CocoDataset(ann, folder)[0]
    expected = numpy.round(deep / 257).astype(numpy.uint8)
    if not numpy.array_equal(image[:, :, 1], expected):
        raise VerdictError(SILENT, f"pixels {image[:2, :2, 1].tolist()}, expected "
                              f"{expected[:2, :2].tolist()}")
    return HANDLED, "scaled to 8 bits"


@case("data", "NaN in a bbox")
def _(m):
    return train_refuses(m, first_annotation(lambda a: a["bbox"].__setitem__(0, math.nan)))


@case("data", "bbox wholly outside the image")
def _(m):
    return train_refuses(m, first_annotation(lambda a: a.update(bbox=[100, 100, 5, 5])))


@case("data", "bbox of zero width")
def _(m):
    return train_refuses(m, first_annotation(lambda a: a["bbox"].__setitem__(2, 0)))


@case("data", "category_id as a string")
def _(m):
    def strings(data):
        data["categories"][0]["id"] = str(data["categories"][0]["id"])
        for annotation in data["annotations"]:
            annotation["category_id"] = str(annotation["category_id"])
    return train_refuses(m, strings)


@case("data", "height as a string")
def _(m):
    return train_refuses(m, lambda data: data["images"][0].update(height="64"))


@case("data", "empty categories list")
def _(m):
    return train_refuses(m, lambda data: data.update(categories=[], annotations=[]))


@case("data", "annotation id 0")
def _(m):
    return train_refuses(m, first_annotation(lambda a: a.update(id=0)))


@case("data", "annotation of an unknown image")
def _(m):
    return train_refuses(m, first_annotation(lambda a: a.update(image_id=999)))


@case("data", "annotation of an unknown category")
def _(m):
    return train_refuses(m, first_annotation(lambda a: a.update(category_id=999)))


@case("data", "entry without a bbox")
def _(m):
    return train_refuses(m, first_annotation(lambda a: a.pop("bbox")))


@case("data", "JSON without 'images'")
def _(m):
    return train_refuses(m, lambda data: data.pop("images"))


@case("data", "annotation file that is not JSON")
def _(m):
    path = m.folder() / "broken.json"
    path.write_text('{"images": [')
    return refused_by_cli(*m.train_on(path, m.shapes / "train"))


@case("data", "annotation file that does not exist")
def _(m):
    return refused_by_cli(*m.train_on(m.folder() / "none.json", m.shapes / "train"))


@case("data", "image folder that does not exist")
def _(m):
    return refused_by_cli(*m.train_on(m.shapes / "train.json", m.folder() / "nowhere"))


@case("data", "image of another size than its entry")
def _(m):
    return train_refuses(m, lambda data: data["images"][0].update(height=65))


@case("data", "image file that is not an image")
def _(m):
    ann, _ = m.coco()
    folder = m.folder()
    for entry in json.loads(ann.read_text())["images"]:
        (folder / entry["file_name"]).write_bytes(b"not a png")
    return refused_by_cli(*m.train_on(ann, folder))


@case("data", "13500 x 13500 PNG")
def _(m):
    folder = m.folder()
    Image.new("1", (13500, 13500)).save(folder / "huge.png")
    data = {"images": [{"id": 1, "file_name": "huge.png", "height": 13500, "width": 13500}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 9, 9],
                             "area": 81.0, "iscrowd": 0,
                             "segmentation": [[0, 0, 9, 0, 9, 9, 0, 9]]}],
            "categories": [{"id": 1, "name": "thing"}]}
    (folder / "huge.json").write_text(json.dumps(data))
    return refused_by_cli(*m.train_on(folder / "huge.json", folder))


# ---- evaluation ------------------------------------------------------------------------------

@case("eval", "categories renamed")
def _(m):
    ann, images = m.coco(lambda data: data["categories"][0].update(name="renamed"), "val")
    return refused_by_cli(*m.eval_on(ann, images))


def fewer_categories(data):
    dropped = data["categories"].pop()["id"]
    data["annotations"] = [a for a in data["annotations"] if a["category_id"] != dropped]


@case("eval", "fewer categories")
def _(m):
    return refused_by_cli(*m.eval_on(*m.coco(fewer_categories, "val")))


@case("eval", "more categories")
def _(m):
    ann, images = m.coco(lambda data: data["categories"].append({"id": 99, "name": "x"}), "val")
    return refused_by_cli(*m.eval_on(ann, images))


@case("eval", "empty image set")
def _(m):
    ann, images = m.coco(lambda data: data.update(images=[], annotations=[]), "val")
    return refused_by_cli(*m.eval_on(ann, images))


@case("eval", "no ground-truth objects")
def _(m):
    ann, images = m.coco(lambda data: data.update(annotations=[]), "val")
    return refused_by_cli(*m.eval_on(ann, images))


@case("eval", "--batch-size 0")
def _(m):
    return refused_by_cli(*m.eval_on(m.shapes / "val.json", m.shapes / "val", "--batch-size",
                                     "0"))


@case("checkpoint", "random bytes named .npz")
def _(m):
    path = m.folder() / "model.npz"
    path.write_bytes(numpy.random.default_rng(0).bytes(3000))
    return refused_by_cli("eval", "--weights", path, "--ann", m.shapes / "val.json",
                          "--images", m.shapes / "val", must_say="not a tinymask checkpoint")


@case("checkpoint", "pickled objects in an .npz")
def _(m):
    path = m.folder() / "evil.npz"
    numpy.savez(path, **{"meta/config": numpy.array([{"a": 1}], dtype=object),
                         "meta/step": numpy.array(0)})
    return refused_by_cli("eval", "--weights", path, "--ann", m.shapes / "val.json",
                          "--images", m.shapes / "val", must_say="pickled")


@case("checkpoint", "truncated checkpoint")
def _(m):
    path = m.folder() / "cut.npz"
    path.write_bytes((m.run / "model.npz").read_bytes()[:5000])
    return refused_by_cli("eval", "--weights", path, "--ann", m.shapes / "val.json",
                          "--images", m.shapes / "val")


@case("checkpoint", "an .npz of other arrays")
def _(m):
    path = m.folder() / "foreign.npz"
    numpy.savez(path, weights=numpy.zeros(3))
    return refused_by_cli("eval", "--weights", path, "--ann", m.shapes / "val.json",
                          "--images", m.shapes / "val")


@case("checkpoint", "--weights is a folder")
def _(m):
    return refused_by_cli("eval", "--weights", m.run, "--ann", m.shapes / "val.json",
                          "--images", m.shapes / "val")


@case("checkpoint", "--weights does not exist")
def _(m):
    return refused_by_cli("eval", "--weights", m.folder() / "none.npz", "--ann",
                          m.shapes / "val.json", "--images", m.shapes / "val")


# ---- predict ----------------------------------------------------------------------------------

@case("predict", "a folder as the image")
def _(m):
    return refused_by_cli("predict", "--weights", m.run / "model.npz", m.shapes / "val",
                          "--out", m.folder())


@case("predict", "a 5 x 500 image")
def _(m):
    folder = m.folder()
    Image.fromarray(numpy.full((5, 500, 3), 128, numpy.uint8)).save(folder / "strip.png")
    accepted_by_cli("predict", "--weights", m.run / "model.npz", folder / "strip.png", "--out",
                    folder / "p")
    if not (folder / "p" / "strip.png").exists():
        raise VerdictError(SILENT, "no picture written")
    return HANDLED, "predicted (resized to 1 x 64)"


@case("predict", "a text file as the image")
def _(m):
    path = m.folder() / "notes.png"
    path.write_text("hello")
    return refused_by_cli("predict", "--weights", m.run / "model.npz", path, "--out",
                          m.folder())


@case("predict", "an image that does not exist")
def _(m):
    return refused_by_cli("predict", "--weights", m.run / "model.npz", m.folder() / "no.png",
                          "--out", m.folder())


# ---- the Python API: targets and images as torchvision checks them, and more ------------------

def train_step_refuses(images, targets, must_say=""):
    model = tiny_model().train()
    return refused_by_api(lambda: model(images, targets), must_say=must_say)


for _name, _change in (
        ("box with x2 < x1", {"boxes": numpy.array([[20, 10, 10, 20]], numpy.float32)}),
        ("box of zero size", {"boxes": numpy.array([[10, 10, 10, 10]], numpy.float32)}),
        ("box with a NaN", {"boxes": numpy.array([[10, 10, 20, math.nan]], numpy.float32)}),
        ("boxes of shape (4,)", {"boxes": numpy.array([10, 10, 20, 20], numpy.float32)}),
        ("label 0 (background)", {"labels": numpy.array([0])}),
        ("label -1", {"labels": numpy.array([-1])}),
        ("label outside 1..K", {"labels": numpy.array([7])}),
        ("label 1.5", {"labels": numpy.array([1.5])}),
        ("two labels for one box", {"labels": numpy.array([1, 1])}),
        ("masks (1, 32, 128) for 64 x 64", {"masks": numpy.ones((1, 32, 128), numpy.uint8)}),
        ("masks (4096,) for 64 x 64", {"masks": numpy.ones(4096, numpy.uint8)}),
        ("masks with values 0..255", {"masks": numpy.full((1, 64, 64), 255, numpy.uint8)})):
    @case("api targets", _name)
    def _(m, change=_change):
        return train_step_refuses([IMAGE], [{**good_target(), **change}])


for _name, _image in (
        ("float image in 0..255", numpy.full((3, 64, 64), 200.0, numpy.float32)),
        ("float image with a NaN pixel", numpy.pad(numpy.full((3, 63, 64), 0.5, numpy.float32),
                                                   ((0, 0), (1, 0), (0, 0)),
                                                   constant_values=numpy.nan)),
        ("float image (H, W, 3)", numpy.zeros((64, 64, 3), numpy.float32)),
        ("uint16 image array", numpy.zeros((64, 64, 3), numpy.uint16)),
        ("image with no rows", numpy.zeros((0, 64, 3), numpy.uint8))):
    @case("api images", _name)
    def _(m, image=_image):
        return train_step_refuses([image], [good_target()])


@case("api images", "an empty image list")
def _(m):
    model = tiny_model().eval()
    return refused_by_api(lambda: model([]))


@case("api images", "fewer targets than images")
def _(m):
    return train_step_refuses([IMAGE, IMAGE], [good_target()])


@case("api", "save_checkpoint of NaN weights")
def _(m):
    from tinymask.checkpoint import save_checkpoint

    model = tiny_model()
    next(iter(model.parameters())).data[...] = numpy.nan
    path = m.folder() / "m.npz"
    outcome = refused_by_api(lambda: save_checkpoint(path, model, {"model": {}}))
    if path.exists():
        raise VerdictError(LOST, "written")
    return outcome


# ---- the tally ---------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="one line per case")
    args = parser.parse_args(argv)
    import tinymask

    start = time.perf_counter()
    tally, failures = Counter(), []
    with tempfile.TemporaryDirectory() as root:
        material = Material(Path(root))
        for group, name, function in CASES:
            try:
                outcome, detail = function(material)
            except VerdictError as verdict:
                outcome, detail = verdict.outcome, verdict.detail
            except Exception as exc:  # noqa: BLE001 - an exception from the case is a finding
                outcome, detail = TRACEBACK, f"{type(exc).__name__}: {exc}"
            tally[outcome] += 1
            if outcome not in (CLEAR, HANDLED):
                failures.append((group, name, outcome, detail))
            if args.verbose:
                print(f"{outcome:12s} {group:12s} {name}: {' '.join(str(detail).split())[:150]}")
    seconds = time.perf_counter() - start
    print(f"tinymask {tinymask.__version__}, Python {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPU cores; {seconds:.0f} s")
    print(f"tried {len(CASES)}: {tally[CLEAR]} clear errors, {tally[HANDLED]} handled as "
          f"documented, {tally[TRACEBACK]} tracebacks, {tally[SILENT]} silent, "
          f"{tally[LOST]} data lost")
    for group, name, outcome, detail in failures:
        print(f"  {outcome}: [{group}] {name}: {' '.join(str(detail).split())[:200]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
