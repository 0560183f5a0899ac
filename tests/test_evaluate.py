"""COCO evaluation through pycocotools: the result format, perfect and imperfect predictions,
empty results, crowd regions, category ids, and the mask-area pitfall (REFERENCE.md §11);
and the refusals: a model on data with other classes, no images, no ground truth."""

import json
from types import SimpleNamespace

import numpy
import pytest
from pycocotools import mask as mask_utils

from tinymask.data import CocoDataset, ShapesDataset, write_coco
from tinymask.data.coco import coco_from_dict, encode_mask
from tinymask.errors import UserError
from tinymask.evaluate import (
    check_model_fits_dataset,
    coco_evaluate,
    coco_from_dataset,
    detections_to_coco_results,
    evaluate_model,
    predict_dataset,
)


def perfect_predictions(dataset):
    """The ground truth dressed up as the model's eval output (scores all 1)."""
    predictions, image_ids = [], []
    for index in range(len(dataset)):
        _, target = dataset[index]
        predictions.append({"boxes": target["boxes"], "labels": target["labels"],
                            "scores": numpy.ones(len(target["labels"]), dtype=numpy.float32),
                            "masks": target["masks"].astype(bool)})
        image_ids.append(target["image_id"])
    return predictions, image_ids


@pytest.fixture(scope="module")
def shapes():
    return ShapesDataset(8, image_size=128, seed=11, min_objects=2, max_objects=4)


def test_result_format_is_coco_and_json_serialisable(shapes):
    predictions, image_ids = perfect_predictions(shapes)
    results = detections_to_coco_results(predictions, image_ids, shapes.label_to_category_id)
    json.dumps(results)
    _, target = shapes[0]
    first = results[0]
    assert set(first) == {"image_id", "category_id", "bbox", "score", "segmentation"}
    x1, y1, x2, y2 = target["boxes"][0]
    assert first["bbox"] == [x1, y1, x2 - x1, y2 - y1]  # xywh
    assert first["image_id"] == target["image_id"] == 1
    assert isinstance(first["segmentation"]["counts"], str)
    numpy.testing.assert_array_equal(mask_utils.decode(first["segmentation"]), target["masks"][0])
    assert len(results) == sum(len(p["labels"]) for p in predictions)


def test_perfect_predictions_score_100(shapes):
    predictions, image_ids = perfect_predictions(shapes)
    results = detections_to_coco_results(predictions, image_ids, shapes.label_to_category_id)
    metrics = coco_evaluate(coco_from_dataset(shapes), results, verbose=False)
    for iou_type in ("bbox", "segm"):
        assert metrics[iou_type]["AP"] == metrics[iou_type]["AP50"] == 100.0
        assert metrics[iou_type]["AP75"] == metrics[iou_type]["APs"] == 100.0
        assert metrics[iou_type]["APl"] == -1.0  # no object that large on 128-pixel images


def test_probability_masks_are_thresholded(shapes):
    predictions, image_ids = perfect_predictions(shapes)
    for prediction in predictions:  # soft masks: 0.8 inside, 0.3 outside
        prediction["masks"] = numpy.where(prediction["masks"], 0.8, 0.3).astype(numpy.float32)
    results = detections_to_coco_results(predictions, image_ids, shapes.label_to_category_id)
    metrics = coco_evaluate(coco_from_dataset(shapes), results, iou_types=("segm",),
                            verbose=False)
    assert metrics["segm"]["AP"] == 100.0


def test_a_wrong_class_lowers_ap(shapes):
    predictions, image_ids = perfect_predictions(shapes)
    labels = predictions[0]["labels"].copy()
    labels[0] = labels[0] % 5 + 1  # another class
    predictions[0]["labels"] = labels
    results = detections_to_coco_results(predictions, image_ids, shapes.label_to_category_id)
    metrics = coco_evaluate(coco_from_dataset(shapes), results, verbose=False)
    for iou_type in ("bbox", "segm"):
        assert 50.0 < metrics[iou_type]["AP"] < 100.0


def test_a_shifted_mask_lowers_mask_ap_only_at_strict_iou(shapes):
    predictions, image_ids = perfect_predictions(shapes)
    predictions[0]["masks"] = numpy.roll(predictions[0]["masks"], 1, axis=2)
    results = detections_to_coco_results(predictions, image_ids, shapes.label_to_category_id)
    metrics = coco_evaluate(coco_from_dataset(shapes), results, verbose=False)
    assert metrics["bbox"]["AP"] == 100.0
    assert metrics["segm"]["AP"] < 100.0


def test_empty_results_do_not_crash(shapes, capsys):
    metrics = coco_evaluate(coco_from_dataset(shapes), [], verbose=True)
    for iou_type in ("bbox", "segm"):
        assert metrics[iou_type]["AP"] == 0.0  # ground truth there, nothing found
        assert metrics[iou_type]["APl"] == -1.0  # no ground truth in that range
    assert "Average Precision" in capsys.readouterr().out
    empty_predictions = [{"boxes": numpy.zeros((0, 4)), "labels": numpy.zeros(0, numpy.int64),
                          "scores": numpy.zeros(0), "masks": numpy.zeros((0, 128, 128), bool)}]
    assert detections_to_coco_results(empty_predictions, [1], shapes.label_to_category_id) == []


def test_boxes_only_predictions(shapes):
    predictions, image_ids = perfect_predictions(shapes)
    for prediction in predictions:
        del prediction["masks"]
    results = detections_to_coco_results(predictions, image_ids, shapes.label_to_category_id)
    assert "segmentation" not in results[0]
    metrics = coco_evaluate(coco_from_dataset(shapes), results, iou_types=("bbox",),
                            verbose=False)
    assert metrics["bbox"]["AP"] == 100.0
    with pytest.raises(ValueError, match="segm evaluation needs a 'segmentation'"):
        coco_evaluate(coco_from_dataset(shapes), results, iou_types=("segm",), verbose=False)


def test_evaluating_a_subset_of_images(shapes):
    predictions, image_ids = perfect_predictions(shapes)
    results = detections_to_coco_results(predictions[:3], image_ids[:3],
                                         shapes.label_to_category_id)
    coco_gt = coco_from_dataset(shapes)
    assert coco_evaluate(coco_gt, results, image_ids=image_ids[:3],
                         verbose=False)["segm"]["AP"] == 100.0
    # over all images, the other five count as missed
    assert coco_evaluate(coco_gt, results, verbose=False)["segm"]["AP"] < 100.0


def test_non_contiguous_category_ids(tmp_path, shapes):
    # rewrite the shapes file with category ids 3, 7, 12, 20, 41 instead of 1..5
    ann_file = write_coco(shapes, tmp_path, "val")
    data = json.loads(open(ann_file).read())
    file_ids = {1: 3, 2: 7, 3: 12, 4: 20, 5: 41}
    for entry in data["categories"]:
        entry["id"] = file_ids[entry["id"]]
    for entry in data["annotations"]:
        entry["category_id"] = file_ids[entry["category_id"]]
    open(ann_file, "w").write(json.dumps(data))
    dataset = CocoDataset(ann_file, tmp_path / "val")
    predictions, image_ids = perfect_predictions(dataset)
    results = detections_to_coco_results(predictions, image_ids, dataset.label_to_category_id)
    assert {r["category_id"] for r in results} <= set(file_ids.values())
    metrics = coco_evaluate(coco_from_dataset(dataset), results, verbose=False)
    assert metrics["segm"]["AP"] == 100.0
    # labels reported as if they were category ids: most detections get the wrong class
    as_if_ids = detections_to_coco_results(predictions, image_ids,
                                           {label: label for label in range(1, 6)})
    assert coco_evaluate(dataset.coco, as_if_ids, verbose=False)["segm"]["AP"] < 50.0


def one_image_ground_truth(annotations, height=64, width=64):
    return coco_from_dict({
        "images": [{"id": 1, "file_name": "x.png", "height": height, "width": width}],
        "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]})


def test_detection_on_a_crowd_region_is_not_a_false_positive():
    thing = numpy.zeros((64, 64), dtype=numpy.uint8)
    thing[5:15, 5:15] = 1
    crowd = numpy.zeros((64, 64), dtype=numpy.uint8)
    crowd[30:60, 30:60] = 1
    coco_gt = one_image_ground_truth([
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10], "area": 100.0,
         "iscrowd": 0, "segmentation": encode_mask(thing)},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [30, 30, 30, 30], "area": 900.0,
         "iscrowd": 1, "segmentation": encode_mask(crowd)}])
    on_crowd = crowd.copy()
    on_crowd[30:45] = 0  # half of the crowd region, scored above the real detection
    prediction = {"boxes": numpy.array([[5, 5, 15, 15], [30, 45, 60, 60]], numpy.float32),
                  "labels": numpy.array([1, 1]), "scores": numpy.array([0.5, 0.9]),
                  "masks": numpy.stack([thing, on_crowd])}
    results = detections_to_coco_results([prediction], [1], {1: 1})
    metrics = coco_evaluate(coco_gt, results, verbose=False)
    assert metrics["bbox"]["AP"] == pytest.approx(100.0)
    assert metrics["segm"]["AP"] == pytest.approx(100.0)


def test_segm_sorts_detections_by_mask_area_not_box_area():
    """A false positive with a small mask (79 px) in a medium box (40 x 40) must count against
    APs for masks. pycocotools' loadRes would take the box area and ignore it there."""
    thing = numpy.zeros((64, 64), dtype=numpy.uint8)
    thing[5:15, 5:15] = 1
    coco_gt = one_image_ground_truth([
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10], "area": 100.0,
         "iscrowd": 0, "segmentation": encode_mask(thing)}])
    thin = numpy.zeros((64, 64), dtype=numpy.uint8)
    thin[20, 20:60] = 1  # an L: two 1-pixel lines
    thin[20:60, 20] = 1
    prediction = {"boxes": numpy.array([[5, 5, 15, 15], [20, 20, 60, 60]], numpy.float32),
                  "labels": numpy.array([1, 1]), "scores": numpy.array([0.5, 0.9]),
                  "masks": numpy.stack([thing, thin])}
    results = detections_to_coco_results([prediction], [1], {1: 1})
    metrics = coco_evaluate(coco_gt, results, verbose=False)
    assert metrics["segm"]["APs"] < 100.0  # the false positive ranks first
    # as a box it is medium, outside the small range, so box APs ignores it
    assert metrics["bbox"]["APs"] == pytest.approx(100.0)


def test_bad_arguments(shapes):
    predictions, image_ids = perfect_predictions(shapes)
    with pytest.raises(ValueError, match="8 predictions but 7 image ids"):
        detections_to_coco_results(predictions, image_ids[:7], shapes.label_to_category_id)
    with pytest.raises(ValueError, match="label 5 has no category id"):
        detections_to_coco_results(predictions, image_ids, {2: 2})
    bad_masks = [dict(predictions[0], masks=predictions[0]["masks"][:, None])]
    with pytest.raises(ValueError, match="masks must be \\(D, H, W\\)"):
        detections_to_coco_results(bad_masks, image_ids[:1], shapes.label_to_category_id)
    results = detections_to_coco_results(predictions, [i + 100 for i in image_ids],
                                         shapes.label_to_category_id)
    with pytest.raises(ValueError, match="not in the ground truth"):
        coco_evaluate(coco_from_dataset(shapes), results, verbose=False)


@pytest.mark.gpu
def test_cupy_predictions_are_accepted(shapes):
    import cupy

    predictions, image_ids = perfect_predictions(shapes)
    on_gpu = [{key: cupy.asarray(value) for key, value in p.items()} for p in predictions]
    results = detections_to_coco_results(on_gpu, image_ids, shapes.label_to_category_id)
    expected = detections_to_coco_results(predictions, image_ids, shapes.label_to_category_id)
    assert results == expected


# ---- a model is only scored on data with its own classes, and only where AP is defined --------

def a_model_trained_on(dataset):
    """What evaluate_model reads before predicting: the config the CLI stores."""
    from tinymask.config import MaskRCNNConfig

    return SimpleNamespace(config=MaskRCNNConfig.small(
        num_classes=dataset.num_classes,
        extra={"class_names": list(dataset.class_names),
               "label_to_category_id": {str(k): v for k, v in
                                        dataset.label_to_category_id.items()}}))


def rewritten(tmp_path, shapes, change):
    ann_file = write_coco(shapes, tmp_path, "val")
    data = json.loads(open(ann_file).read())
    change(data)
    open(ann_file, "w").write(json.dumps(data))
    return CocoDataset(ann_file, tmp_path / "val")


def test_categories_must_be_the_models(tmp_path, shapes):
    model = a_model_trained_on(shapes)
    check_model_fits_dataset(model.config, rewritten(tmp_path, shapes, lambda data: None))

    def rename(data):
        data["categories"][0]["name"] = "renamed"

    def drop_one(data):
        data["categories"] = data["categories"][:-1]
        data["annotations"] = [a for a in data["annotations"] if a["category_id"] < 5]

    def add_one(data):
        data["categories"].append({"id": 6, "name": "extra"})

    def renumber(data):
        for entry in data["categories"]:
            entry["id"] += 10
        for entry in data["annotations"]:
            entry["category_id"] += 10

    for change, message in ((rename, "trained on the classes .* but the dataset lists"),
                            (drop_one, "predicts 5 classes .* but the dataset has 4"),
                            (add_one, "predicts 5 classes .* but the dataset has 6"),
                            (renumber, "category ids .* differ")):
        with pytest.raises(UserError, match=message):
            evaluate_model(model, rewritten(tmp_path, shapes, change), progress=False)


def test_no_images_or_no_objects_is_not_an_ap(tmp_path, shapes):
    model = a_model_trained_on(shapes)

    def no_images(data):
        data["images"], data["annotations"] = [], []

    def no_objects(data):
        data["annotations"] = []

    with pytest.raises(UserError, match="has no images"):
        evaluate_model(model, rewritten(tmp_path, shapes, no_images), progress=False)
    with pytest.raises(UserError, match="no ground-truth objects"):
        evaluate_model(model, rewritten(tmp_path, shapes, no_objects), progress=False)
    with pytest.raises(UserError, match="batch_size=0"):
        predict_dataset(model, shapes, batch_size=0)
