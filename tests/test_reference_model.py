"""The shipped reference model, ``tinymask.pretrained("shapes-small")``: its file matches
the SHA-256 of its record, it fits in the package, it loads and detects objects on the
validation images it was evaluated on, and (slow) it reproduces its recorded AP.

A tree without the shipped file (it is built by ``python bench/build_reference_model.py``)
skips these tests instead of failing."""

import math
import os

import numpy as np
import pytest

import tinymask as tm
from tinymask.data import make_shapes_splits
from tinymask.evaluate import evaluate_model
from tinymask.presets import load_preset
from tinymask.weights import available, pretrained_record
from tinymask.weights.shipped import FOLDER, sha256_of

NAME = "shapes-small"
WEIGHTS = os.path.join(FOLDER, f"{NAME}.npz")
MOST_BYTES = 8 * 2**20

pytestmark = pytest.mark.skipif(
    NAME not in available() or not os.path.exists(WEIGHTS),
    reason=f"the shipped reference model ({NAME}.npz and {NAME}.json in tinymask/weights/) "
           "is not in this tree; build it with  python bench/build_reference_model.py")


def validation_images(record, count=None):
    """The validation images the record's metrics were measured on (the first ``count``):
    the preset's data, split with the record's seed, as the build script made them."""
    data = load_preset(record["preset"])["data"]
    options = {k: v for k, v in data.items() if k not in ("train", "val", "seed")}
    _, val_data = make_shapes_splits(1, count or record["val_images"], seed=record["seed"],
                                     **options)
    return val_data


def test_the_shipped_file_matches_its_record():
    record = pretrained_record(NAME)
    assert sha256_of(WEIGHTS) == record["sha256"]
    assert os.path.getsize(WEIGHTS) == record["bytes"] <= MOST_BYTES
    stored = np.load(WEIGHTS, allow_pickle=False)
    assert all(stored[key].dtype == np.float16 for key in stored.files
               if key.startswith("model/") and stored[key].dtype.kind == "f")
    assert record["command"].startswith("python bench/build_reference_model.py")
    for iou_type in ("bbox", "segm"):
        assert 0 <= record["metrics"][iou_type]["AP"] <= 100


def test_it_loads_and_detects_objects_on_a_few_validation_images():
    record = pretrained_record(NAME)
    model = tm.pretrained(NAME)
    assert not model.training
    assert all(value.dtype == np.float32 for value in model.state_dict().values()
               if value.dtype.kind == "f")
    val_data = validation_images(record, count=4)
    metrics = evaluate_model(model, val_data, progress=False)
    assert set(metrics) == {"bbox", "segm"}
    for iou_type, values in metrics.items():
        assert all(math.isfinite(value) for value in values.values()), iou_type
    # a trained model: its detections overlap the objects (an untrained one scores ~0)
    assert metrics["segm"]["AP50"] > 10, metrics


@pytest.mark.slow
def test_it_reproduces_its_recorded_ap():
    record = pretrained_record(NAME)
    metrics = evaluate_model(tm.pretrained(NAME), validation_images(record), progress=False)
    for iou_type in ("bbox", "segm"):
        assert abs(metrics[iou_type]["AP"] - record["metrics"][iou_type]["AP"]) <= 0.5, (
            iou_type, metrics[iou_type]["AP"], record["metrics"][iou_type]["AP"])
