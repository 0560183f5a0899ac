"""The paper's ablations as config switches: every variant builds, the paper's numbers are
the tables', a smoke run produces the recorded format, and recorded results keep it; the
statistics (sample spread, paired differences), the results file written training by
training, and resuming an interrupted run."""

import glob
import json
import os

import numpy
import pytest

from tinymask.ablations import (
    ABLATIONS,
    AblationRun,
    format_paired,
    format_per_seed,
    format_table,
    gains,
    headline_keys,
    plot_result,
    record,
    run_ablation,
    same_model_elsewhere,
    summarize,
    to_json,
)
from tinymask.ablations import run as run_module
from tinymask.ablations.report import metric_suffix
from tinymask.ablations.table import SEED_BLOCK
from tinymask.cli import main
from tinymask.config import MaskRCNNConfig
from tinymask.errors import ConfigError, UserError
from tinymask.model.mask_rcnn import MaskRCNN

RESULTS = os.path.join(os.path.dirname(__file__), "..", "lessons", "results")


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_every_variant_is_a_valid_config_with_the_papers_numbers(name):
    ablation = ABLATIONS[name]
    for variant in ablation.variants:
        config = MaskRCNNConfig.small(**{**ablation.base, **variant.changes})
        MaskRCNN(config)  # builds
        for iou_type in ablation.metrics:
            suffix = metric_suffix(iou_type)
            assert {f"AP{suffix}", f"AP50{suffix}", f"AP75{suffix}"} <= set(variant.paper)


def test_papers_numbers_spot_checks():
    rows = {v.name: v.paper for v in ABLATIONS["roi-align"].variants}
    assert rows["RoIAlign (avg)"] == {"AP": 30.3, "AP50": 51.2, "AP75": 31.5}  # Table 2c
    assert rows["RoIPool (max)"]["AP75"] == 26.4
    stride32 = {v.name: v.paper for v in ABLATIONS["large-stride"].variants}
    assert stride32["RoIAlign"]["AP_bb"] == 34.0 and stride32["RoIPool"]["AP"] == 23.6
    multitask = [v.paper["AP_bb"] for v in ABLATIONS["multitask"].variants]
    assert multitask == [37.3, 38.2]  # Table 3
    keypoints = [v.paper["AP_kp"] for v in ABLATIONS["keypoints"].variants]
    assert keypoints == [62.7, 63.1]  # Table 4


def check_result_format(result):
    assert {"ablation", "name", "command", "preset", "seeds", "machine", "rows"} <= set(result)
    assert result["ablation"] in {"2a", "2b", "2c", "2d", "2e", "3", "4"}
    ablation = ABLATIONS[result["name"]]
    assert [row["variant"] for row in result["rows"]] == [v.name for v in ablation.variants]
    for row in result["rows"]:
        if not row["measured"]:  # only a row whose every seed diverged may have no numbers
            assert sorted(row["diverged_seeds"]) == sorted(result["seeds"]), row["variant"]
            continue
        for iou_type in ablation.metrics:
            suffix = metric_suffix(iou_type)
            for metric in ("AP", "AP50", "AP75"):
                key = metric + suffix
                assert key in row["paper"] and key in row["measured"], (row["variant"], key)
                std = row["measured"][key + "_std"]  # None: a single seed has no spread
                assert isinstance(std, float) or (std is None and len(
                    row["seeds_measured"]) == 1), (row["variant"], key)
    if "trainings" in result:  # one record per (variant, seed), in table order
        assert [(t["variant"], t["seed"]) for t in result["trainings"]] == [
            (v.name, seed) for v in ablation.variants for seed in result["seeds"]]


def test_smoke_run_produces_the_recorded_format(tmp_path):
    result = run_ablation("multitask", preset="smoke", progress=False, log=lambda line: None)
    check_result_format(result)
    assert result["seeds"] == [500] and result["preset"] == "smoke"  # Table 3's own seeds
    assert result["complete"]
    table = format_table(result)
    assert "Faster R-CNN, RoIAlign" in table and "37.3" in table
    json_path, png_path = record(result, tmp_path)
    assert json.loads(open(json_path).read()) == result
    assert os.path.getsize(png_path) > 5000


def test_keypoint_ablation_smoke_run_trains_on_the_figures(monkeypatch):
    """Table 4's two rows, a few steps each: keypoint AP beside the paper's (narrow heads
    and few detections keep it quick)."""
    import copy

    from tinymask import ablations

    smoke = copy.deepcopy(ablations.ABLATION_PRESETS["smoke"])
    smoke["model"] = {"keypoint_conv_channels": 8, "box_batch_size_per_image": 16,
                      "detections_per_img": 5}
    monkeypatch.setitem(ablations.ABLATION_PRESETS, "smoke", smoke)
    result = run_ablation("keypoints", preset="smoke", progress=False, log=lambda line: None)
    check_result_format(result)
    assert [row["variant"] for row in result["rows"]] == ["keypoint-only", "keypoint & mask"]
    assert "AP_kp" in result["rows"][0]["measured"] and "62.7" in format_table(result)
    assert headline_keys(result) == ("AP_kp", "AP75_kp")


@pytest.mark.parametrize("preset", ["smoke", "standard"])
def test_table_2d_trains_on_images_twice_the_presets_size_with_objects_scaled_alike(preset):
    """256 px at the standard preset (the stride-32 map 8 x 8, not 4 x 4), 32 px the
    smallest shape; the other tables keep the preset's size; every one is data the
    generator accepts."""
    from tinymask.ablations.run import ABLATION_PRESETS, table_settings
    from tinymask.presets import check_data_fields

    settings = ABLATION_PRESETS[preset]
    reference, _ = table_settings(ABLATIONS["roi-align"], settings)
    scaled, _ = table_settings(ABLATIONS["large-stride"], settings)
    assert scaled["image_size"] == 2 * reference["image_size"]
    assert scaled["min_size"] == 2 * reference["min_size"]
    assert {**scaled, "image_size": 0, "min_size": 0} == {**reference, "image_size": 0,
                                                          "min_size": 0}
    if preset == "standard":
        assert (reference["image_size"], scaled["image_size"]) == (128, 256)
    for name, ablation in ABLATIONS.items():
        data, _ = table_settings(ablation, settings)
        check_data_fields(data)
        if name != "large-stride":
            assert data["image_size"] == reference["image_size"]
    # the stick figures scale by their smallest height; a [height, width] size side by side
    import dataclasses

    figures, _ = table_settings(ABLATIONS["keypoints"], settings)
    scaled, _ = table_settings(dataclasses.replace(ABLATIONS["keypoints"], image_scale=2),
                               settings)
    assert scaled["min_height"] == 2 * figures["min_height"]
    check_data_fields(scaled)
    rectangular = {**settings, "data": {**settings["data"], "image_size": [64, 96]}}
    scaled, _ = table_settings(ABLATIONS["large-stride"], rectangular)
    assert scaled["image_size"] == [128, 192]


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(RESULTS, "*.json"))))
def test_recorded_results_keep_the_format(path):
    with open(path) as stream:
        result = json.load(stream)
    check_result_format(result)
    assert result["preset"] in {"quick", "standard", "full"}  # recorded from real runs, not smoke
    assert os.path.basename(path) == f"{result['name']}.json"


def test_parallel_trainings_give_the_serial_numbers(monkeypatch):
    """Two worker processes train what one process trains, seed for seed: equal up to the
    rounding a different BLAS thread count gives (workers run one thread each). One step, so
    the loss compared is that of the seeded weights on the seeded batch and RoI draws: after
    an update, a rounding-level difference can move a proposal across a sampler's threshold
    and part the runs for good (measured: 7e-4 relative at step 2 on the shapes tables'
    data)."""
    smoke = {**run_module.ABLATION_PRESETS["smoke"]}
    smoke["train"] = {**smoke["train"], "steps": 1}
    monkeypatch.setitem(run_module.ABLATION_PRESETS, "smoke", smoke)
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
    assert per_seed[0] == "per seed (AP, AP75), seeds [200]:"
    assert per_seed[2].split()[:2] == ["sigmoid", "(per"] and len(per_seed) == 3


def test_gains_are_paired_differences_from_the_first_row():
    rows = [{"variant": "pool", "paper": {"AP": 26.9}, "measured": {"AP": 5.0, "AP_std": 1.0}},
            {"variant": "align", "paper": {"AP": 30.3}, "measured": {"AP": 7.0, "AP_std": 1.0}}]
    trainings = [{"variant": variant, "seed": seed, "AP": ap} for variant, seed, ap in
                 (("pool", 0, 4.0), ("pool", 1, 6.0), ("align", 0, 6.5), ("align", 1, 7.5))]
    (gain,) = gains({"rows": rows, "trainings": trainings}, "AP")
    assert gain.variant == "align" and gain.paper == pytest.approx(3.4)
    assert gain.mean == pytest.approx(2.0) and gain.per_seed == pytest.approx((2.5, 1.5))
    assert gain.spread == pytest.approx(2 ** -0.5)  # sample sd of 2.5 and 1.5
    (unpaired,) = gains({"rows": rows}, "AP")
    assert unpaired.spread == pytest.approx(2 ** 0.5) and unpaired.per_seed == ()


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
    assert all(row["diverged_seeds"] == [200] and row["measured"] == {}
               for row in result["rows"])
    assert "diverged at seed [200]" in format_table(result)
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
    assert "train_metrics" not in outcome  # only when asked


def test_a_training_reports_its_late_loss_and_if_asked_its_fit_to_its_training_images(
        monkeypatch):
    """late_loss: the mean of the logged losses in the last fifth of the steps (steps 9 and
    10 of 10, logged every step); fit_images: COCO numbers on the first training images."""
    import tinymask.train as train_module
    from tinymask.ablations.run import _train_one, training_record

    logged = []
    task = {"variant": "v", "seed": 0, "model": {}, "fit_images": 2,
            "data": {"train": 4, "val": 2, "image_size": 64},
            "train": {"steps": 10, "batch_size": 1, "warmup_iters": 1, "log_every": 1,
                      "progress": False, "checkpoint_every": 0}}
    append_log = train_module.Trainer._append_log

    def keep(self, record):
        logged.append(record["loss"])
        append_log(self, record)

    monkeypatch.setattr(train_module.Trainer, "_append_log", keep)
    outcome = _train_one(task)
    assert len(logged) == 10 and outcome["final_loss"] == pytest.approx(logged[-1])
    assert outcome["late_loss"] == pytest.approx((logged[8] + logged[9]) / 2)
    assert set(outcome["train_metrics"]) == {"bbox", "segm"}
    assert training_record(task, outcome)["late_loss"] == round(outcome["late_loss"], 4)


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown ablation 'roialign'"):
        run_ablation("roialign")
    with pytest.raises(ValueError, match="unknown preset"):
        run_ablation("roi-align", preset="huge")
    with pytest.raises(ValueError, match="jobs=0"):
        run_ablation("roi-align", preset="smoke", jobs=0)
    with pytest.raises(ValueError, match="at least one seed"):
        run_ablation("roi-align", preset="smoke", seeds=[])


# ---- statistics -------------------------------------------------------------------------------

def hand_trainings(values: dict) -> list:
    """Training records of Table 2c from {variant: [mask AP of seed 0, seed 1, ...]};
    AP75 is AP + 1, AP50 is AP + 2."""
    return [{"variant": variant, "seed": seed, "AP": ap, "AP50": ap + 2, "AP75": ap + 1}
            for variant, aps in values.items() for seed, ap in enumerate(aps)]


ROI_ALIGN_VALUES = {"RoIPool (max)": [20.0, 24.0, 22.0], "RoIWarp (bilinear, max)": [21.0,
                    23.0, 22.0], "RoIAlign (max)": [24.0, 27.0, 26.0],
                    "RoIAlign (avg)": [25.0, 28.0, 25.0]}


def test_spread_is_the_sample_standard_deviation_and_differences_are_paired():
    rows = summarize(ABLATIONS["roi-align"], hand_trainings(ROI_ALIGN_VALUES))
    pool, align = rows[0], rows[3]
    assert pool["measured"]["AP"] == 22.0 and pool["measured"]["AP_std"] == 2.0  # ddof=1
    assert pool["measured"]["AP_std"] != pytest.approx(numpy.std([20, 24, 22]))  # not ddof=0
    assert "paired" not in pool and pool["seeds_measured"] == [0, 1, 2]
    paired = align["paired"]
    assert paired["baseline"] == "RoIPool (max)" and paired["seeds"] == [0, 1, 2]
    assert paired["AP"]["differences"] == [5.0, 4.0, 3.0]
    assert paired["AP"]["mean"] == 4.0 and paired["AP"]["std"] == 1.0
    # the paired spread (1.0) is far below the spread of the difference of two means
    assert align["measured"]["AP_std"] == pytest.approx(1.73, abs=0.01)
    text = format_paired({"name": "roi-align", "rows": rows})
    assert "RoIAlign (avg)" in text and "AP +4.0 +- 1.0 [+5.0 +4.0 +3.0] ahead at 3/3" in text


def test_one_seed_has_no_spread_and_a_diverged_seed_is_left_out_of_the_pairs():
    trainings = hand_trainings({name: [aps[0]] for name, aps in ROI_ALIGN_VALUES.items()})
    rows = summarize(ABLATIONS["roi-align"], trainings)
    assert rows[0]["measured"]["AP_std"] is None and rows[3]["paired"]["AP"]["std"] is None
    result = {"ablation": "2c", "name": "roi-align", "preset": "quick", "seeds": [0],
              "rows": rows}
    assert "one seed, no spread" in format_table(result)
    assert "20.0 +-" not in format_table(result)
    json.dumps(rows, allow_nan=False)
    trainings = hand_trainings(ROI_ALIGN_VALUES)
    trainings[1] = {"variant": "RoIPool (max)", "seed": 1, "diverged": "loss_mask is nan"}
    rows = summarize(ABLATIONS["roi-align"], trainings)
    assert rows[0]["diverged_seeds"] == [1] and rows[3]["paired"]["seeds"] == [0, 2]
    assert rows[3]["paired"]["AP"]["differences"] == [5.0, 3.0]


def make_result(values=ROI_ALIGN_VALUES, name="roi-align") -> dict:
    ablation = ABLATIONS[name]
    seeds = list(range(len(next(iter(values.values())))))
    return to_json(AblationRun(ablation, "quick", seeds, "by hand",
                               trainings=hand_trainings(values)))


def test_the_figure_shows_each_seed_as_a_dot():
    from matplotlib.collections import PathCollection

    figure = plot_result(make_result())
    for axes in figure.axes:
        dots = [collection.get_offsets() for collection in axes.collections
                if isinstance(collection, PathCollection)]
        assert len(dots) == 3  # one group per variant after the baseline
        assert all(len(points) == 3 for points in dots)  # one dot per seed
    ap_dots = sorted(numpy.round(figure.axes[0].collections[-1].get_offsets()[:, 1], 2))
    assert ap_dots == [3.0, 4.0, 5.0]  # RoIAlign (avg) minus RoIPool at each seed


# ---- each table's own seeds, and rows shared between tables ----------------------------------

def test_each_table_draws_its_own_seeds_and_names_its_shared_rows():
    blocks = [set(ablation.default_seeds(SEED_BLOCK)) for ablation in ABLATIONS.values()]
    assert all(not a & b for i, a in enumerate(blocks) for b in blocks[i + 1:])
    shared = same_model_elsewhere(ABLATIONS["roi-align"])
    assert set(shared) == {"RoIAlign (avg)"}  # the reference model, in three other tables
    # (2a's ResNet-18-FPN samples 32 RoIs an image and clips its gradient: another training)
    assert {other.table for other, _ in shared["RoIAlign (avg)"]} == {"2b", "2e", "3"}
    assert "RoIPool (max)" not in shared
    own = " ".join(format_table(make_result()).split())  # the notes are wrapped
    assert "'RoIAlign (avg)' is the same model as Table 2b" in own
    assert "this table's own seeds, not shared" in own
    result = to_json(AblationRun(ABLATIONS["roi-align"], "quick", [200, 201], "by hand"))
    assert result["shared_rows"][0]["seeds_shared_with"] == ["2b"]  # 2b's default seeds
    assert "the same trainings, not a second result" in " ".join(format_table(result).split())


# ---- the results file, training by training, and resuming -------------------------------------

def fake_training(calls, interrupt_at=None):
    """A stand-in for one training: metrics from the variant and seed, no model."""
    def train_one(task, steps_done=None):
        calls.append((task["variant"], task["seed"]))
        if interrupt_at is not None and len(calls) == interrupt_at:
            raise KeyboardInterrupt
        ap = 10.0 + len(task["variant"]) % 7 + task["seed"]
        metrics = {"AP": ap, "AP50": ap + 10, "AP75": ap - 2}
        return {"metrics": {"bbox": dict(metrics), "segm": dict(metrics)}, "seconds": 1.0,
                "final_loss": 0.5}
    return train_one


def test_each_training_is_written_as_it_finishes_and_an_interrupted_run_resumes(
        monkeypatch, tmp_path):
    path = tmp_path / "roi-align.json"
    calls, lines = [], []
    monkeypatch.setattr(run_module, "_train_one", fake_training(calls, interrupt_at=3))
    with pytest.raises(KeyboardInterrupt):
        run_ablation("roi-align", "smoke", seeds=[0, 1], progress=False, log=lines.append,
                     results_file=path)
    partial = json.loads(path.read_text())
    assert not partial["complete"] and len(partial["trainings"]) == 2
    assert [(t["variant"], t["seed"]) for t in partial["trainings"]] == calls[:2]
    assert "unfinished: 2 of 8 trainings" in format_table(partial)

    calls.clear()
    monkeypatch.setattr(run_module, "_train_one", fake_training(calls))
    result = run_ablation("roi-align", "smoke", seeds=[0, 1], progress=False,
                          log=lines.append, results_file=path, command="again")
    assert len(calls) == 6 and not set(calls) & {(t["variant"], t["seed"])
                                                 for t in partial["trainings"]}
    assert any(line.startswith(f"resuming {path}: 2 of 8 trainings already there")
               for line in lines)
    assert result["complete"] and json.loads(path.read_text()) == result
    assert result["trainings"][:2] == partial["trainings"]  # kept as they were
    assert result["resumed"] == [{"command": "again", "finished_before": 2, "jobs": 1}]
    check_result_format(result)

    calls.clear()
    again = run_ablation("roi-align", "smoke", seeds=[0, 1], progress=False,
                         log=lines.append, results_file=path)
    assert calls == [] and "already holds all 8 trainings" in lines[-1]
    assert again["rows"] == result["rows"]


def test_a_file_of_another_run_is_refused_unless_overwritten(monkeypatch, tmp_path):
    path = tmp_path / "mask-loss.json"
    calls = []
    monkeypatch.setattr(run_module, "_train_one", fake_training(calls, interrupt_at=2))
    with pytest.raises(KeyboardInterrupt):
        run_ablation("mask-loss", "smoke", seeds=[0, 1], progress=False, log=print,
                     results_file=path)
    monkeypatch.setattr(run_module, "_train_one", fake_training(calls))
    with pytest.raises(ConfigError, match=r"other settings \(seeds \[0, 1\] -> \[0, 1, 2\]\)"):
        run_ablation("mask-loss", "smoke", seeds=[0, 1, 2], progress=False, results_file=path)
    with pytest.raises(ConfigError, match=r"preset \"smoke\" -> \"quick\".*--overwrite"):
        run_ablation("mask-loss", "quick", seeds=[0, 1], progress=False, results_file=path)
    with pytest.raises(ConfigError, match="ablation"):
        run_ablation("multitask", "smoke", seeds=[0, 1], progress=False, results_file=path)
    calls.clear()
    result = run_ablation("mask-loss", "smoke", seeds=[0, 1, 2], progress=False,
                          log=print, results_file=path, overwrite=True)
    assert len(calls) == 6 and result["seeds"] == [0, 1, 2] and "resumed" not in result
    path.write_text("{not json")
    with pytest.raises(UserError, match="not a readable results file"):
        run_ablation("mask-loss", "smoke", progress=False, results_file=path)
    path.write_text(json.dumps({"name": "mask-loss", "rows": []}))  # an older file
    with pytest.raises(UserError, match="no resumable ablation results"):
        run_ablation("mask-loss", "smoke", progress=False, results_file=path)


def test_cli_out_writes_the_results_file_that_record_writes(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(run_module, "_train_one", fake_training([]))
    monkeypatch.chdir(tmp_path)
    assert main(["ablate", "multitask", "--preset", "smoke", "--out", "mine",
                 "--no-progress"]) == 0
    assert main(["ablate", "multitask", "--preset", "smoke", "--record", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "paired differences from 'Faster R-CNN, RoIAlign'" in out
    mine = json.loads((tmp_path / "mine" / "multitask.json").read_text())
    recorded = json.loads((tmp_path / "lessons" / "results" / "multitask.json").read_text())
    check_result_format(mine)
    for result in (mine, recorded):
        result.pop("command"), result.pop("seconds")
    assert mine == recorded and (tmp_path / "mine" / "multitask.png").stat().st_size > 5000
    assert main(["ablate", "multitask", "--preset", "smoke", "--seeds", "2", "--out", "mine",
                 "--no-progress"]) == 2
    assert "holds a run with other settings (seeds [500] -> [500, 501])" in \
        capsys.readouterr().err
    assert main(["ablate", "multitask", "--preset", "smoke", "--overwrite"]) == 2
    assert "--overwrite replaces a results file: give --out DIR or --record" in \
        capsys.readouterr().err


def test_cli_says_how_to_resume_after_an_interruption(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(run_module, "_train_one", fake_training([], interrupt_at=2))
    assert main(["ablate", "mask-loss", "--preset", "smoke", "--out", str(tmp_path),
                 "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert f"the finished trainings are in {tmp_path / 'mask-loss.json'}" in err
    assert len(json.loads((tmp_path / "mask-loss.json").read_text())["trainings"]) == 1
