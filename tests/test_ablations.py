"""The paper's ablations as config switches: every variant builds, the paper's numbers are
the tables', a smoke run produces the recorded format, and recorded results keep it."""

import glob
import json
import os

import pytest

from tinymask.ablations import ABLATIONS, format_per_seed, format_table, gains, record, run_ablation
from tinymask.ablations.report import plot_result
from tinymask.config import MaskRCNNConfig
from tinymask.model.mask_rcnn import MaskRCNN

RESULTS = os.path.join(os.path.dirname(__file__), "..", "lessons", "results")


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_every_variant_is_a_valid_config_with_the_papers_numbers(name):
    ablation = ABLATIONS[name]
    for variant in ablation.variants:
        config = MaskRCNNConfig.small(**{**ablation.base, **variant.changes})
        MaskRCNN(config)  # builds
        for iou_type in ablation.metrics:
            suffix = "" if iou_type == "segm" else "_bb"
            assert {f"AP{suffix}", f"AP50{suffix}", f"AP75{suffix}"} <= set(variant.paper)


def test_papers_numbers_spot_checks():
    rows = {v.name: v.paper for v in ABLATIONS["roi-align"].variants}
    assert rows["RoIAlign (avg)"] == {"AP": 30.3, "AP50": 51.2, "AP75": 31.5}  # Table 2c
    assert rows["RoIPool (max)"]["AP75"] == 26.4
    stride32 = {v.name: v.paper for v in ABLATIONS["large-stride"].variants}
    assert stride32["RoIAlign"]["AP_bb"] == 34.0 and stride32["RoIPool"]["AP"] == 23.6
    multitask = [v.paper["AP_bb"] for v in ABLATIONS["multitask"].variants]
    assert multitask == [37.3, 38.2]  # Table 3


def check_result_format(result):
    assert {"ablation", "name", "command", "preset", "seeds", "machine", "rows"} <= set(result)
    assert result["ablation"] in {"2a", "2b", "2c", "2d", "2e", "3"}
    ablation = ABLATIONS[result["name"]]
    assert [row["variant"] for row in result["rows"]] == [v.name for v in ablation.variants]
    for row in result["rows"]:
        if not row["measured"]:  # only a row whose every seed diverged may have no numbers
            assert sorted(row["diverged_seeds"]) == sorted(result["seeds"]), row["variant"]
            continue
        for iou_type in ablation.metrics:
            suffix = "" if iou_type == "segm" else "_bb"
            for metric in ("AP", "AP50", "AP75"):
                key = metric + suffix
                assert key in row["paper"] and key in row["measured"], (row["variant"], key)
                assert isinstance(row["measured"][key + "_std"], float)
    if "trainings" in result:  # one record per (variant, seed), in table order
        assert [(t["variant"], t["seed"]) for t in result["trainings"]] == [
            (v.name, seed) for v in ablation.variants for seed in result["seeds"]]


def test_smoke_run_produces_the_recorded_format(tmp_path):
    result = run_ablation("multitask", preset="smoke", progress=False, log=lambda line: None)
    check_result_format(result)
    assert result["seeds"] == [0] and result["preset"] == "smoke"
    table = format_table(result)
    assert "Faster R-CNN, RoIAlign" in table and "37.3" in table
    json_path, png_path = record(result, tmp_path)
    assert json.loads(open(json_path).read()) == result
    assert os.path.getsize(png_path) > 5000


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(RESULTS, "*.json"))))
def test_recorded_results_keep_the_format(path):
    with open(path) as stream:
        result = json.load(stream)
    check_result_format(result)
    assert result["preset"] in {"quick", "standard", "full"}  # recorded from real runs, not smoke
    assert os.path.basename(path) == f"{result['name']}.json"


def test_parallel_trainings_give_the_serial_numbers():
    """Two worker processes train what one process trains, seed for seed: equal up to the
    rounding a different BLAS thread count gives (workers run one thread each)."""
    serial = run_ablation("mask-loss", preset="smoke", progress=False, log=lambda line: None,
                          jobs=1)
    parallel = run_ablation("mask-loss", preset="smoke", progress=False,
                            log=lambda line: None, jobs=2)
    assert parallel["jobs"] == 2 and serial["jobs"] == 1
    losses = [[t["final_loss"] for t in r["trainings"]] for r in (serial, parallel)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    assert losses[0][0] != losses[0][1]  # the two variants really differ
    assert [t["variant"] for t in parallel["trainings"]] == [
        v.name for v in ABLATIONS["mask-loss"].variants]
    per_seed = format_per_seed(parallel).splitlines()
    assert per_seed[0] == "per seed (AP, AP75), seeds [0]:"
    assert per_seed[2].split()[:2] == ["sigmoid", "(per"] and len(per_seed) == 3


def test_gains_are_paired_differences_from_the_first_row():
    rows = [{"variant": "pool", "paper": {"AP": 26.9}, "measured": {"AP": 5.0, "AP_std": 1.0}},
            {"variant": "align", "paper": {"AP": 30.3}, "measured": {"AP": 7.0, "AP_std": 1.0}}]
    trainings = [{"variant": variant, "seed": seed, "AP": ap} for variant, seed, ap in
                 (("pool", 0, 4.0), ("pool", 1, 6.0), ("align", 0, 6.5), ("align", 1, 7.5))]
    (name, paper, ours, spread), = gains({"rows": rows, "trainings": trainings}, "AP")
    assert name == "align" and paper == pytest.approx(3.4) and ours == pytest.approx(2.0)
    assert spread == pytest.approx(0.5)  # per-seed gains 2.5 and 1.5
    (_, _, _, unpaired), = gains({"rows": rows}, "AP")
    assert unpaired == pytest.approx(2 ** 0.5)


def test_a_diverged_variant_is_labelled_in_the_figure():
    """A variant whose every seed diverged has no bar; its slot must say so, not stay blank."""
    measured = {"AP": 5.0, "AP_std": 0.5, "AP75": 3.0, "AP75_std": 0.4}
    rows = [{"variant": "pool", "paper": {"AP": 26.9, "AP75": 26.4}, "measured": measured},
            {"variant": "warp", "paper": {"AP": 27.2, "AP75": 27.1}, "measured": {},
             "diverged_seeds": [0, 1]},
            {"variant": "align", "paper": {"AP": 30.3, "AP75": 31.5}, "measured": measured}]
    result = {"name": "roi-align", "ablation": "2c", "question": "?", "rows": rows}
    for axes in plot_result(result).axes:
        labels = [(text.get_text(), text.get_position()[0]) for text in axes.texts]
        assert labels == [("diverged", pytest.approx(0.2))], labels  # warp's slot, ours


def test_a_diverged_training_is_reported_not_dropped(monkeypatch):
    """A NaN loss in one training must not lose the others: it becomes a row note."""
    import copy

    from tinymask import ablations

    boom = copy.deepcopy(ablations.ABLATION_PRESETS["smoke"])
    boom["train"].update(lr=1e12, steps=3, warmup_iters=0)
    monkeypatch.setitem(ablations.ABLATION_PRESETS, "boom", boom)
    result = run_ablation("mask-loss", preset="boom", progress=False, log=lambda line: None)
    assert all("training diverged" in t["diverged"] for t in result["trainings"])
    assert all(row["diverged_seeds"] == [0] and row["measured"] == {}
               for row in result["rows"])
    assert "diverged at seed [0]" in format_table(result)
    assert "diverged" in format_per_seed(result).splitlines()[1]
    json.dumps(result, allow_nan=False)  # still a valid JSON file


def test_one_training_reports_its_steps_for_the_progress_bar():
    from tinymask.ablations.run import _train_one

    task = {"variant": "v", "seed": 0, "model": {},
            "data": {"train": 4, "val": 2, "image_size": 64},
            "train": {"steps": 3, "batch_size": 1, "warmup_iters": 1, "log_every": 2,
                      "progress": False, "checkpoint_every": 0}}
    reported = []
    outcome = _train_one(task, reported.append)
    assert reported == [2, 1]  # at the log steps 2 and 3 (the last step always logs)
    assert set(outcome["metrics"]) == {"bbox", "segm"}


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown ablation 'roialign'"):
        run_ablation("roialign")
    with pytest.raises(ValueError, match="unknown preset"):
        run_ablation("roi-align", preset="huge")
    with pytest.raises(ValueError, match="jobs=0"):
        run_ablation("roi-align", preset="smoke", jobs=0)
    with pytest.raises(ValueError, match="at least one seed"):
        run_ablation("roi-align", preset="smoke", seeds=[])
