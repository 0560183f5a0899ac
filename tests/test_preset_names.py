"""One name per use: the training presets ``starter``, ``full`` and ``figures``, the
ablation presets ``smoke``, ``standard`` and ``full``; the earlier name ``quick`` of each
still works."""

from tinymask.ablations import ABLATION_PRESETS
from tinymask.ablations.run import OLD_PRESET_NAMES
from tinymask.cli import build_parser
from tinymask.presets import PRESETS, load_preset


def test_the_training_presets_and_the_old_name():
    assert set(PRESETS) == {"starter", "full", "figures"}  # figures: keypoints
    assert load_preset("quick") == load_preset("starter")
    assert load_preset("starter")["train"]["steps"] < load_preset("full")["train"]["steps"]


def test_the_ablation_presets_and_the_old_name():
    assert ABLATION_PRESETS["quick"] is ABLATION_PRESETS["standard"]
    assert OLD_PRESET_NAMES == {"quick": "standard"}
    assert ABLATION_PRESETS["standard"]["preset"] == "starter"


def test_the_command_line_defaults_use_the_new_names():
    parser = build_parser()
    assert parser.parse_args(["train", "--out", "run"]).config == "starter"
    assert parser.parse_args(["ablate", "roi-align"]).preset == "standard"
    assert parser.parse_args(["ablate", "roi-align", "--preset", "quick"]).preset == "quick"
