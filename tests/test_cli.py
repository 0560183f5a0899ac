"""The command line end to end: data -> train -> eval -> predict, on tiny settings, and
one-line errors with exit status 2 for every mistake a user can make (and tracebacks for
our own bugs); no finished run overwritten unasked."""

import errno
import json
import shutil
import subprocess
import sys

import numpy
import pytest
from PIL import Image

from tinymask.cli import main

TINY = ["--set", "steps=2", "--set", "batch_size=1", "--set", "min_size=64",
        "--set", "max_size=64", "--set", "log_every=1", "--set", "progress=false",
        "--set", "rpn_pre_nms_top_n_train=100", "--set", "box_batch_size_per_image=32"]


def test_help_lists_the_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in ("info", "gradcheck", "data", "train", "eval", "predict"):
        assert command in out


def test_gradcheck_command_passes(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out
    for name in ("mul", "matmul", "conv2d 3x3 stride 1", "max_pool2d", "group_norm",
                 "roi_align avg", "roi_align max", "roi_warp max", "roi_pool",
                 "mask_loss sigmoid", "mask_loss softmax", "fast_rcnn_losses", "rpn_losses"):
        assert f"{name} " in out, f"tinymask gradcheck does not check {name}"


def test_gradcheck_command_fails_on_a_wrong_backward(capsys, monkeypatch):
    import importlib

    roi_pool_module = importlib.import_module("tinymask.ops.roi_pool")
    original = roi_pool_module.RoIPoolFunction.backward

    def doubled(ctx, grad_output):
        return (2 * original(ctx, grad_output)[0], *original(ctx, grad_output)[1:])

    monkeypatch.setattr(roi_pool_module.RoIPoolFunction, "backward", staticmethod(doubled))
    assert main(["gradcheck"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines if line.endswith("FAILED")] == ["roi_pool"]


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "tinymask.cli", "info"], capture_output=True,
                         text=True, check=True)
    assert "backend: numpy" in out.stdout


@pytest.fixture(scope="module")
def shapes_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    assert main(["data", "shapes", "--out", str(folder), "--train", "3", "--val", "2",
                 "--image-size", "64", "--seed", "1"]) == 0
    return folder


def test_train_eval_predict_on_a_coco_folder(shapes_folder, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--train-ann", str(shapes_folder / "train.json"), "--train-images",
                 str(shapes_folder / "train"), "--val-ann", str(shapes_folder / "val.json"),
                 "--val-images", str(shapes_folder / "val"), "--out", str(run), *TINY]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"bbox", "segm"} and set(metrics["segm"]) >= {"AP", "AP50", "AP75"}
    assert (run / "model.npz").exists() and (run / "log.jsonl").exists()

    out_json = tmp_path / "metrics.json"
    assert main(["eval", "--weights", str(run / "model.npz"), "--ann",
                 str(shapes_folder / "val.json"), "--images", str(shapes_folder / "val"),
                 "--out", str(out_json)]) == 0
    assert json.loads(out_json.read_text()) == metrics  # same weights, same data, same AP

    pictures = tmp_path / "pictures"
    image = sorted((shapes_folder / "val").iterdir())[0]
    assert main(["predict", "--weights", str(run / "model.npz"), str(image), "--out",
                 str(pictures), "--score-threshold", "0.0"]) == 0
    assert (pictures / (image.stem + ".png")).stat().st_size > 1000


def test_train_on_the_built_in_shapes_and_resume(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--out", str(run), "--set", "train=3", "--set", "val=0",
            "--set", "image_size=64", *TINY]
    assert main(args) == 0
    assert main([*args, "--set", "steps=3", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "resuming from step 2 of 3" in out and "steps 2 -> 3" in out
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3]
    # the longer run is a changed setting: logged where it took effect
    assert {"step": 2, "resumed_with_changes": {"steps": [2, 3]}} in records


def _error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err  # one line, no traceback
    return err


def test_unknown_set_key_lists_the_valid_ones(tmp_path, capsys):
    err = _error(capsys, ["train", "--out", str(tmp_path), "--set", "roi_type=align"])
    assert "unknown key 'roi_type'" in err and "roi_op" in err and "steps" in err


def test_bad_config_values_are_explained(tmp_path, capsys):
    err = _error(capsys, ["train", "--out", str(tmp_path), "--set", "roi_op=bilinear"])
    assert "roi_op='bilinear'" in err


def test_missing_and_malformed_json(tmp_path, capsys):
    err = _error(capsys, ["train", "--train-ann", str(tmp_path / "none.json"),
                          "--train-images", str(tmp_path), "--out", str(tmp_path / "r")])
    assert "none.json" in err
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [')
    err = _error(capsys, ["train", "--train-ann", str(broken), "--train-images", str(tmp_path),
                          "--out", str(tmp_path / "r")])
    assert "broken.json" in err and "not valid JSON" in err
    err = _error(capsys, ["eval", "--weights", str(tmp_path / "w.npz"), "--ann", str(broken),
                          "--images", str(tmp_path)])
    assert "w.npz: no such file" in err


def test_annotation_problems_reach_the_user(shapes_folder, tmp_path, capsys):
    data = json.loads((shapes_folder / "train.json").read_text())
    data["annotations"][0]["bbox"][2] = 0  # a box with zero width
    bad = tmp_path / "zero_width.json"
    bad.write_text(json.dumps(data))
    err = _error(capsys, ["train", "--train-ann", str(bad), "--train-images",
                          str(shapes_folder / "train"), "--out", str(tmp_path / "r"), *TINY])
    assert "width" in err
    err = _error(capsys, ["train", "--train-ann", str(shapes_folder / "train.json"),
                          "--train-images", str(tmp_path / "nowhere"), "--out",
                          str(tmp_path / "r"), *TINY])
    assert "not found in image_dir" in err and "nowhere" in err


def test_corrupt_checkpoint(shapes_folder, tmp_path, capsys):
    corrupt = tmp_path / "model.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip file")
    err = _error(capsys, ["eval", "--weights", str(corrupt), "--ann",
                          str(shapes_folder / "val.json"), "--images", str(shapes_folder / "val")])
    assert "corrupt" in err


def test_unreadable_image_for_predict(shapes_folder, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--set", "train=2", "--set", "val=0",
                 "--set", "image_size=64", *TINY]) == 0
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    err = _error(capsys, ["predict", "--weights", str(run / "model.npz"), str(not_an_image),
                          "--out", str(tmp_path / "p")])
    assert "cannot read this image" in err



def test_ablate_refuses_zero_seeds_and_jobs(capsys):
    assert "at least one seed" in _error(capsys, ["ablate", "roi-align", "--seeds", "0"])
    assert "jobs=0" in _error(capsys, ["ablate", "roi-align", "--preset", "smoke", "--jobs", "0"])


# ---- nothing lost ------------------------------------------------------------------------------

SHAPES_RUN = ["--set", "train=2", "--set", "val=0", "--set", "image_size=64", *TINY]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", "--out", str(run), *SHAPES_RUN]) == 0
    return run


def copy_of(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def test_training_into_a_finished_run_is_refused_and_nothing_changes(finished_run, tmp_path,
                                                                    capsys):
    run = copy_of(finished_run, tmp_path)
    before = {path.name: path.read_bytes() for path in run.iterdir()}
    err = _error(capsys, ["train", "--out", str(run), *SHAPES_RUN])
    assert "already holds a run" in err
    assert "--resume" in err and "new --out" in err and "--overwrite" in err
    assert {path.name: path.read_bytes() for path in run.iterdir()} == before
    assert main(["train", "--out", str(run), "--overwrite", *SHAPES_RUN]) == 0
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2]  # one run in the log, not two mixed


def test_run_folder_options_that_contradict(finished_run, tmp_path, capsys):
    err = _error(capsys, ["train", "--out", str(tmp_path / "new"), "--resume", *SHAPES_RUN])
    assert "holds no checkpoint.npz to continue from" in err
    err = _error(capsys, ["train", "--out", str(finished_run), "--resume", "--overwrite"])
    assert "choose one" in err
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert "is a file" in _error(capsys, ["train", "--out", str(a_file), *SHAPES_RUN])


def test_resume_with_a_new_lr_applies_it_and_stores_it(finished_run, tmp_path, capsys):
    from tinymask.checkpoint import read_checkpoint

    run = copy_of(finished_run, tmp_path)
    assert main(["train", "--out", str(run), "--resume", *SHAPES_RUN, "--set", "steps=3",
                 "--set", "lr=0.001"]) == 0
    assert "lr 0.02 -> 0.001" in capsys.readouterr().out
    stored = read_checkpoint(run / "model.npz")["config"]
    assert stored["train"]["lr"] == 0.001
    assert stored["history"] == [{"step": 2, "changed": {"steps": [2, 3], "lr": [0.02, 0.001]}}]
    err = _error(capsys, ["train", "--out", str(run), "--resume", *SHAPES_RUN, "--set",
                          "steps=4", "--set", "roi_op=pool"])
    assert "holds a model with other settings (roi_op 'align' -> 'pool')" in err


def test_a_full_disk_during_training_is_one_line(tmp_path, capsys, monkeypatch):
    def no_space(stream, **arrays):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(numpy, "savez", no_space)
    err = _error(capsys, ["train", "--out", str(tmp_path / "run"), *SHAPES_RUN])
    assert "No space left on device; the disk is full" in err
    assert not list((tmp_path / "run").glob(".tmp-*"))


def test_divergence_says_how_to_try_again(finished_run, tmp_path, capsys, monkeypatch):
    from tinymask.train import Trainer, check_finite

    def diverges(trainer):
        check_finite({"loss_mask": float("nan")}, trainer.step, trainer.saved_step)

    monkeypatch.setattr(Trainer, "train_step", diverges)
    err = _error(capsys, ["train", "--out", str(tmp_path / "new"), *SHAPES_RUN])
    assert "no checkpoint was written yet" in err and "start again with --overwrite" in err
    run = copy_of(finished_run, tmp_path)
    err = _error(capsys, ["train", "--out", str(run), "--resume", *SHAPES_RUN,
                          "--set", "steps=3"])
    assert "holds step 2" in err and "continue from it with --resume" in err
    assert "--set lr=" in err


# ---- options that do not fit ---------------------------------------------------------------

@pytest.mark.parametrize("setting, message", [
    ("steps=abc", "TrainConfig.steps='abc': expected int"),
    ("steps=1.5", "TrainConfig.steps=1.5: expected int"),
    ("batch_size=abc", "TrainConfig.batch_size='abc': expected int"),
    ("lr=nan", "TrainConfig.lr='nan': expected float"),
    ("lr=NaN", "TrainConfig.lr=nan: NaN and infinity are not allowed"),
    ("lr=Infinity", "TrainConfig.lr=inf: NaN and infinity are not allowed"),
    ("decay_at=0.5", r"decay_at=0.5: expected tuple (a list, e.g. [0.5])"),
    ("hflip=maybe", "TrainConfig.hflip='maybe': expected bool"),
    ("train=0", "data.train=0: expected a whole number >= 1"),
    ("image_size=8", "data.image_size=8"),
    ("backbone=resnet19", "unknown backbone 'resnet19'"),
])
def test_set_values_that_do_not_fit_their_field(tmp_path, capsys, setting, message):
    err = _error(capsys, ["train", "--out", str(tmp_path / "run"), "--set", setting])
    assert message in err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_config_files_and_data_options_that_do_not_fit(shapes_folder, tmp_path, capsys):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"train": [1]}))
    assert "the 'train' section must be an object" in _error(
        capsys, ["train", "--out", str(tmp_path / "r"), "--config", str(config)])
    config.write_text(json.dumps([{"train": {}}]))
    assert "expected a JSON object" in _error(
        capsys, ["train", "--out", str(tmp_path / "r"), "--config", str(config)])
    train = ["--train-ann", str(shapes_folder / "train.json"), "--train-images",
             str(shapes_folder / "train")]
    assert "--val-ann and --val-images go together" in _error(
        capsys, ["train", *train, "--val-ann", str(shapes_folder / "val.json"), "--out",
                 str(tmp_path / "r")])
    assert "--train-images needs --train-ann" in _error(
        capsys, ["train", "--train-images", str(shapes_folder / "train"), "--out",
                 str(tmp_path / "r")])
    assert "go with --train-ann" in _error(
        capsys, ["train", "--val-ann", str(shapes_folder / "val.json"), "--val-images",
                 str(shapes_folder / "val"), "--out", str(tmp_path / "r")])


# ---- eval and predict ---------------------------------------------------------------------------

def test_eval_refuses_other_classes_no_images_and_batch_size_zero(finished_run, shapes_folder,
                                                                  tmp_path, capsys):
    weights = str(finished_run / "model.npz")
    data = json.loads((shapes_folder / "val.json").read_text())
    data["categories"][0]["name"] = "renamed"
    renamed = tmp_path / "renamed.json"
    renamed.write_text(json.dumps(data))
    images = str(shapes_folder / "val")
    assert "trained on the classes" in _error(
        capsys, ["eval", "--weights", weights, "--ann", str(renamed), "--images", images])
    data = json.loads((shapes_folder / "val.json").read_text())
    data["images"], data["annotations"] = [], []
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps(data))
    assert "has no images" in _error(
        capsys, ["eval", "--weights", weights, "--ann", str(empty), "--images", images])
    assert "--batch-size 0" in _error(
        capsys, ["eval", "--weights", weights, "--ann", str(shapes_folder / "val.json"),
                 "--images", images, "--batch-size", "0"])


def test_random_bytes_are_not_a_checkpoint(shapes_folder, tmp_path, capsys):
    weights = tmp_path / "model.npz"
    weights.write_bytes(numpy.random.default_rng(1).bytes(2000))
    err = _error(capsys, ["eval", "--weights", str(weights), "--ann",
                          str(shapes_folder / "val.json"), "--images", str(shapes_folder / "val")])
    assert "not a tinymask checkpoint" in err and "pickle" not in err


def test_predict_on_a_folder_and_on_a_long_strip(finished_run, tmp_path, capsys):
    weights = str(finished_run / "model.npz")
    assert "is a folder, not an image" in _error(
        capsys, ["predict", "--weights", weights, str(tmp_path), "--out", str(tmp_path / "p")])
    strip = tmp_path / "strip.png"
    Image.fromarray(numpy.full((5, 500, 3), 128, dtype=numpy.uint8)).save(strip)
    assert main(["predict", "--weights", weights, str(strip), "--out", str(tmp_path / "p")]) == 0
    assert (tmp_path / "p" / "strip.png").exists()


# ---- our own bugs are not dressed up as user errors ------------------------------------------

def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    import tinymask.train

    def buggy(*args, **kwargs):
        raise ValueError("an internal inconsistency")

    monkeypatch.setattr(tinymask.train.Trainer, "run", buggy)
    with pytest.raises(ValueError, match="an internal inconsistency"):
        main(["train", "--out", str(tmp_path / "run"), "--set", "train=2", "--set", "val=0",
              "--set", "image_size=64", *TINY])
