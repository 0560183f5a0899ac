"""Pictures: instances drawn over an image, prediction beside ground truth, loss curves.
Rendered to PNG files with the Agg canvas, no window."""

import json

import numpy
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from tinymask.data import ShapesDataset
from tinymask.visualize import (
    draw_instances,
    plot_loss_curves,
    show_prediction_and_ground_truth,
)


@pytest.fixture(scope="module")
def sample():
    dataset = ShapesDataset(1, image_size=64, seed=4, min_objects=3, max_objects=3)
    image, target = dataset[0]
    return image, target, dataset.class_names


def render(figure, path):
    figure.savefig(path, dpi=50)
    return numpy.asarray(Image.open(path).convert("RGB")).astype(int)


def test_draw_instances_draws_masks_boxes_and_text(tmp_path, sample):
    image, target, class_names = sample
    count = len(target["labels"])
    scores = numpy.linspace(0.9, 0.2, count)  # the last one below the threshold
    pictures = {}
    for with_masks in (False, True):
        figure = Figure(figsize=(3, 3))
        ax = figure.subplots()
        draw_instances(ax, image, target["boxes"], target["labels"],
                       target["masks"] if with_masks else None, scores, class_names,
                       score_threshold=0.5)
        boxes = [patch for patch in ax.patches if isinstance(patch, Rectangle)]
        assert len(boxes) == int((scores >= 0.5).sum())
        texts = [text.get_text() for text in ax.texts]
        first_name = class_names[int(target["labels"][0])]
        assert texts[0] == f"{first_name} 0.90"
        pictures[with_masks] = render(figure, tmp_path / f"masks_{with_masks}.png")
    picture = pictures[True]
    assert picture.std() > 10  # not a blank canvas
    assert len(numpy.unique(picture.reshape(-1, 3), axis=0)) > 50
    # the translucent masks change the pixels under them
    assert numpy.abs(pictures[True] - pictures[False]).sum(axis=2).astype(bool).mean() > 0.01


def test_prediction_beside_ground_truth(tmp_path, sample):
    image, target, class_names = sample
    prediction = {"boxes": target["boxes"] + 1.0, "labels": target["labels"],
                  "scores": numpy.full(len(target["labels"]), 0.8),
                  "masks": target["masks"].astype(numpy.float32) * 0.9}  # probabilities
    figure = show_prediction_and_ground_truth(image, prediction, target, class_names)
    left, right = figure.axes
    assert left.get_title().startswith("prediction")
    assert right.get_title() == "ground truth (3 instances)"
    assert [t.get_text() for t in right.texts] == [class_names[int(label)]
                                                    for label in target["labels"]]
    picture = render(figure, tmp_path / "side_by_side.png")
    assert picture.std() > 10


def test_loss_curves_from_a_json_lines_log(tmp_path):
    log = tmp_path / "train_log.jsonl"
    records = [{"step": step, "loss": 3.0 / (step + 1), "loss_mask": 1.0 / (step + 1),
                "loss_classifier": 2.0 / (step + 1), "lr": 0.02, "time": 0.1}
               for step in range(0, 50, 10)]
    records.append({"step": 50, "eval": {"segm": {"AP": 12.0}}})  # no loss: skipped
    log.write_text("\n".join(json.dumps(record) for record in records) + "\n")
    figure = plot_loss_curves(log)
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    assert set(lines) == {"loss", "loss_classifier", "loss_mask"}
    numpy.testing.assert_array_equal(lines["loss"].get_xdata(), [0, 10, 20, 30, 40])
    numpy.testing.assert_allclose(lines["loss_mask"].get_ydata(),
                                  [1.0 / (step + 1) for step in range(0, 50, 10)])
    assert render(figure, tmp_path / "loss.png").std() > 10
    # a list of records works too
    assert len(plot_loss_curves(records[:2]).axes[0].get_lines()) == 3


def test_loss_curves_bad_log(tmp_path):
    log = tmp_path / "broken.jsonl"
    log.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss"\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        plot_loss_curves(log)
    with pytest.raises(ValueError, match="no record has both 'step' and 'loss'"):
        plot_loss_curves([{"step": 1}])
