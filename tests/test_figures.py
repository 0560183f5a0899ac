"""The stick-figure dataset: its keypoints and visibility flags, the OKS sigmas' derivation,
COCO keypoint JSON out and back in, and keypoint AP of the ground truth as predictions."""

import json
import math

import numpy as np
import pytest

from tinymask.cli import main
from tinymask.data import CocoDataset, DataError, FiguresDataset, write_coco
from tinymask.data.figures import (
    JOINT_SIGMA,
    KEYPOINT_NAMES,
    MIN_THICKNESS,
    OKS_SIGMAS,
    SKELETON,
    THICKNESS,
    TORSO_JOINT_SIGMA,
    figure_scale,
)
from tinymask.evaluate import (
    COCO_OKS_SIGMAS,
    coco_evaluate,
    coco_from_dataset,
    detections_to_coco_results,
    oks_sigmas_of,
)


def test_items_are_reproducible_and_well_formed():
    dataset = FiguresDataset(12, seed=3)
    for index in range(len(dataset)):
        image, target = dataset[index]
        again, target_again = FiguresDataset(12, seed=3)[index]
        assert np.array_equal(image, again)
        assert np.array_equal(target["keypoints"], target_again["keypoints"])
        count = len(target["labels"])
        assert count >= 1 and (target["labels"] == 1).all()
        assert target["keypoints"].shape == (count, 14, 3)
        assert target["masks"].shape == (count, 128, 128)
        assert (target["masks"].sum(axis=0) <= 1).all()  # visible parts never overlap


def test_visibility_flags_say_what_the_image_shows():
    """v = 2: the joint's pixel is its own figure's; v = 1: another figure covers it;
    v = 0: outside the image, written as (0, 0, 0)."""
    counts = {0: 0, 1: 0, 2: 0}
    dataset = FiguresDataset(40, seed=0)
    for index in range(len(dataset)):
        _, target = dataset[index]
        covered = target["masks"].sum(axis=0) > 0
        for mask, keypoints in zip(target["masks"], target["keypoints"]):
            for x, y, visibility in keypoints:
                counts[int(visibility)] += 1
                if visibility == 0:
                    assert x == 0 and y == 0
                    continue
                assert 0 <= x < 128 and 0 <= y < 128
                pixel = int(y), int(x)
                assert mask[pixel] == (visibility == 2)
                if visibility == 1:  # hidden under a later figure, not under background
                    assert covered[pixel]
    assert min(counts.values()) > 0  # every case happens


def test_left_is_on_the_image_right_of_an_upright_figure():
    dataset = FiguresDataset(30, seed=1)
    index = {name: i for i, name in enumerate(KEYPOINT_NAMES)}
    for item in range(len(dataset)):
        _, target = dataset[item]
        for keypoints in target["keypoints"]:
            left, right = keypoints[index["left_shoulder"]], keypoints[index["right_shoulder"]]
            if left[2] and right[2]:
                assert left[0] > right[0]
    assert dataset.keypoint_flip[index["left_knee"]] == index["right_knee"]
    assert dataset.keypoint_flip[index["neck"]] == index["neck"]
    assert all(1 <= a <= 14 and 1 <= b <= 14 for a, b in SKELETON)


def test_oks_sigmas_follow_from_the_figure_geometry():
    """sigma = r / (sqrt(2) s): r = t/2 for joints between limbs, t for shoulders and hips
    (the module's derivation), s = sqrt(area) of a standing figure, measured here."""
    scale = figure_scale()
    assert scale == pytest.approx(0.383, abs=0.002)
    assert JOINT_SIGMA == pytest.approx(THICKNESS / 2 / (math.sqrt(2) * scale), rel=0.02)
    assert TORSO_JOINT_SIGMA == pytest.approx(THICKNESS / (math.sqrt(2) * scale), rel=0.02)
    assert len(OKS_SIGMAS) == 14 and MIN_THICKNESS > 0
    assert min(OKS_SIGMAS) >= min(COCO_OKS_SIGMAS) and max(OKS_SIGMAS) <= max(COCO_OKS_SIGMAS)


def test_coco_keypoint_json_round_trip(tmp_path):
    dataset = FiguresDataset(5, seed=2)
    ann_file = write_coco(dataset, tmp_path, "train")
    data = json.load(open(ann_file))
    (category,) = data["categories"]
    assert category["keypoints"] == list(KEYPOINT_NAMES)
    assert category["skeleton"] == [list(bone) for bone in SKELETON]
    annotation = data["annotations"][0]
    assert len(annotation["keypoints"]) == 42
    assert annotation["num_keypoints"] == sum(v > 0 for v in annotation["keypoints"][2::3])

    loaded = CocoDataset(ann_file, tmp_path / "train")
    assert loaded.keypoint_names == KEYPOINT_NAMES and loaded.num_keypoints == 14
    assert np.array_equal(loaded.keypoint_flip, dataset.keypoint_flip)
    assert loaded.skeleton == SKELETON
    assert oks_sigmas_of(loaded) == OKS_SIGMAS  # matched by the keypoint names
    for index in range(len(dataset)):
        image, target = dataset[index]
        image_back, target_back = loaded[index]
        assert np.array_equal(image, image_back)
        np.testing.assert_array_equal(target_back["keypoints"], target["keypoints"])
        np.testing.assert_array_equal(target_back["masks"], target["masks"])
        np.testing.assert_array_equal(target_back["boxes"], target["boxes"])


def write_json(path, data):
    path.write_text(json.dumps(data))
    return path


def test_any_coco_keypoint_file_is_read(tmp_path):
    """Two categories, one with keypoints: an object without them gets unlabelled points;
    an unknown set of keypoints has no OKS sigmas to evaluate with."""
    from PIL import Image

    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    square = [[2, 2, 12, 2, 12, 12, 2, 12]]
    data = {"images": [{"id": 7, "file_name": "a.png", "height": 20, "width": 30}],
            "categories": [{"id": 1, "name": "robot", "keypoints": ["top", "left_foot",
                                                                   "right_foot"],
                            "skeleton": [[1, 2], [1, 3]]},
                           {"id": 5, "name": "ball"}],
            "annotations": [
                {"id": 1, "image_id": 7, "category_id": 1, "bbox": [2, 2, 10, 10],
                 "area": 100, "segmentation": square, "num_keypoints": 2,
                 "keypoints": [5, 3, 2, 3, 11, 1, 0, 0, 0]},
                {"id": 2, "image_id": 7, "category_id": 5, "bbox": [2, 2, 10, 10],
                 "area": 100, "segmentation": square}]}
    loaded = CocoDataset(write_json(tmp_path / "k.json", data), tmp_path / "images")
    assert loaded.keypoint_names == ("top", "left_foot", "right_foot")
    assert loaded.keypoint_flip.tolist() == [0, 2, 1]
    _, target = loaded[0]
    assert target["keypoints"].tolist() == [[[5, 3, 2], [3, 11, 1], [0, 0, 0]],
                                            [[0, 0, 0], [0, 0, 0], [0, 0, 0]]]
    with pytest.raises(Exception, match="no OKS sigmas"):
        oks_sigmas_of(loaded)
    # with sigmas, the ground truth as predictions scores 100; the ball has no keypoints
    # (num_keypoints 0) and is left out of keypoint AP, as COCOeval does with such persons
    loaded.keypoint_oks_sigmas = (0.05, 0.05, 0.05)
    prediction = {"boxes": target["boxes"], "labels": target["labels"],
                  "scores": np.array([0.9, 0.8]), "keypoints": target["keypoints"]}
    results = detections_to_coco_results([prediction], [7], loaded.label_to_category_id)
    metrics = coco_evaluate(loaded.coco, results, iou_types=("keypoints",), verbose=False,
                            oks_sigmas=oks_sigmas_of(loaded))
    assert metrics["keypoints"]["AP"] == pytest.approx(100.0)

    data["annotations"][0]["keypoints"] = [5, 3, 2]
    with pytest.raises(DataError, match="must be 9 numbers"):
        CocoDataset(write_json(tmp_path / "bad.json", data), tmp_path / "images")
    data["annotations"][0]["keypoints"] = [5, 3, 2, 3, 11, 3, 0, 0, 0]
    with pytest.raises(DataError, match="visibilities"):
        CocoDataset(write_json(tmp_path / "bad.json", data), tmp_path / "images")


def ground_truth_as_predictions(dataset):
    predictions, image_ids = [], []
    for index in range(len(dataset)):
        _, target = dataset[index]
        count = len(target["labels"])
        keypoints = target["keypoints"].copy()
        keypoints[..., 2] = 1  # the decoder's visibility
        predictions.append({"boxes": target["boxes"], "labels": target["labels"],
                            "scores": np.linspace(1.0, 0.5, count), "masks": target["masks"],
                            "keypoints": keypoints})
        image_ids.append(target["image_id"])
    return predictions, image_ids


def test_ground_truth_as_predictions_gives_keypoint_ap_100():
    dataset = FiguresDataset(8, seed=4)
    predictions, image_ids = ground_truth_as_predictions(dataset)
    results = detections_to_coco_results(predictions, image_ids, dataset.label_to_category_id)
    metrics = coco_evaluate(coco_from_dataset(dataset), results,
                            iou_types=("bbox", "segm", "keypoints"), verbose=False,
                            oks_sigmas=oks_sigmas_of(dataset))
    assert metrics["keypoints"]["AP"] == pytest.approx(100.0)
    assert metrics["segm"]["AP"] == pytest.approx(100.0)
    assert set(metrics["keypoints"]) == {"AP", "AP50", "AP75", "APm", "APl"}

    # each keypoint a third of a figure's scale off: OKS exp(-1/(2 (2 sigma)^2 * 9)) ~ 0
    for prediction in predictions:
        scale = np.sqrt(prediction["masks"].sum(axis=(1, 2)))[:, None]
        prediction["keypoints"][..., 0] += scale / 3
    results = detections_to_coco_results(predictions, image_ids, dataset.label_to_category_id)
    moved = coco_evaluate(coco_from_dataset(dataset), results, iou_types=("keypoints",),
                          verbose=False, oks_sigmas=oks_sigmas_of(dataset))
    assert moved["keypoints"]["AP"] < 5.0


def test_data_figures_command_writes_a_coco_keypoint_dataset(tmp_path, capsys):
    assert main(["data", "figures", "--out", str(tmp_path), "--train", "3", "--val", "2",
                 "--image-size", "64"]) == 0
    train = CocoDataset(tmp_path / "train.json", tmp_path / "train")
    assert len(train) == 3 and train.num_keypoints == 14
    assert main(["data", "figures", "--out", str(tmp_path / "x"), "--image-size", "20"]) == 2
    assert "--image-size 20" in capsys.readouterr().err


TINY = ["--set", "steps=2", "--set", "batch_size=1", "--set", "log_every=1",
        "--set", "progress=false", "--set", "rpn_pre_nms_top_n_train=100",
        "--set", "box_batch_size_per_image=16", "--set", "keypoint_conv_channels=8",
        "--set", "detections_per_img=5"]


def test_train_keypoints_on_the_figures_from_the_command_line(tmp_path, capsys):
    """``--config figures``: the keypoint branch on (14 keypoints), flips swap left and
    right, and the validation metrics include keypoint AP; ``eval`` reads them back."""
    run = tmp_path / "run"
    assert main(["train", "--config", "figures", "--out", str(run), "--set", "train=2",
                 "--set", "val=2", "--set", "image_size=64", *TINY]) == 0
    out = capsys.readouterr().out
    assert "keypoint AP" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"bbox", "segm", "keypoints"}
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert any("loss_keypoint" in record for record in log)

    assert main(["data", "figures", "--out", str(tmp_path / "data"), "--train", "0",
                 "--val", "2", "--image-size", "64"]) == 0
    assert main(["eval", "--weights", str(run / "model.npz"), "--ann",
                 str(tmp_path / "data" / "val.json"), "--images",
                 str(tmp_path / "data" / "val")]) == 0
    assert "keypoint AP" in capsys.readouterr().out
    assert main(["predict", "--weights", str(run / "model.npz"),
                 str(tmp_path / "data" / "val" / "000001.png"), "--out", str(tmp_path / "pics"),
                 "--score-threshold", "0"]) == 0
    assert (tmp_path / "pics" / "000001.png").stat().st_size > 1000
    assert main(["train", "--out", str(tmp_path / "bad"), "--set", "dataset=people"]) == 2
    assert "data.dataset='people'" in capsys.readouterr().err


def test_draw_keypoints_draws_the_bones_and_labelled_points():
    from matplotlib.figure import Figure

    from tinymask.visualize import draw_keypoints

    keypoints = np.zeros((2, 14, 3), np.float32)
    keypoints[0, :, :2] = np.arange(28).reshape(14, 2)
    keypoints[0, :, 2] = 2
    keypoints[0, 0, 2] = 0  # the head unlabelled: its bone (1, 2) is not drawn
    keypoints[1, :, 2] = 2  # the second instance scores too low to be drawn
    axes = Figure().add_subplot()
    draw_keypoints(axes, keypoints, SKELETON, KEYPOINT_NAMES, scores=np.array([0.9, 0.1]))
    assert len(axes.lines) == (len(SKELETON) - 1) + 13
