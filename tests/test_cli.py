"""The command line end to end: data -> train -> eval -> predict, on tiny settings, and
one-line errors with exit status 2 for every mistake a user can make."""

import json
import subprocess
import sys

import pytest

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
    assert "conv2d" in out and "FAILED" not in out


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
    assert "resuming from step 2 of 3" in capsys.readouterr().out
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]


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
