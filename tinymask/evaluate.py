"""COCO evaluation of Mask R-CNN's output with pycocotools' COCOeval (REFERENCE.md §11).

    predictions --detections_to_coco_results--> COCO result dicts
                --coco_evaluate(coco_gt, ...)--> {"bbox": {"AP", "AP50", ...}, "segm": {...}}

A prediction is the model's eval output for one image: ``boxes`` (D, 4) xyxy in the original
image's pixels, ``labels`` (D,) in 1..K, ``scores`` (D,), and ``masks`` (D, H, W) binary or
probabilities at the original size (NumPy or CuPy). A COCO result is
``{image_id, category_id, score, bbox: [x, y, w, h], segmentation: RLE}``.

Numbers are reported in percent, as in the paper's tables. AP is averaged over IoU 0.50:0.95;
AP50/AP75 at one IoU; APs/APm/APl over objects of area < 32^2, 32^2..96^2, > 96^2 pixels
(absolute, whatever the image size: on 128-pixel shapes images "large" objects are rare).
An AP of -1 means "no ground truth in that size range", not a bad model.

Pitfalls handled here:
* ``COCO.loadRes`` fails on an empty list; with no detections we build the empty result set
  ourselves, so COCOeval still runs and gives 0 where there is ground truth (-1 elsewhere).
* ``loadRes`` takes a result's area from its bbox whenever a bbox is present, which would
  sort masks into small/medium/large by box area; for "segm" we drop the bbox so the mask
  area is used (as Detectron2 does).
* ``mask.encode`` wants a Fortran-ordered uint8 array and returns counts as bytes; we decode
  them to str so results can be saved as JSON.
"""

from __future__ import annotations

import contextlib
import copy
import io

import numpy
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tinymask.backend import to_numpy
from tinymask.boxes import box_xyxy_to_xywh
from tinymask.data.coco import coco_dict_from_dataset, coco_from_dict
from tinymask.errors import UserError

METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")  # COCOeval.stats[0:6]


def coco_from_dataset(dataset) -> COCO:
    """The ground truth of a dataset as a pycocotools COCO object, built in memory.

    A ``CocoDataset`` already has one (``dataset.coco``, crowd regions included), which is
    returned as is; any other dataset (``ShapesDataset``) is converted with
    ``coco_dict_from_dataset``: category id = label, image ids from the targets."""
    if isinstance(getattr(dataset, "coco", None), COCO):
        return dataset.coco
    return coco_from_dict(coco_dict_from_dataset(dataset))


def detections_to_coco_results(predictions, image_ids, label_to_category_id,
                               mask_threshold: float = 0.5) -> list[dict]:
    """Model outputs -> a list of COCO result dicts (JSON-serialisable).

    Args:
        predictions: one dict per image (``boxes``, ``labels``, ``scores``, optional
            ``masks``), NumPy or CuPy arrays.
        image_ids: the COCO image id of each prediction (``target["image_id"]``).
        label_to_category_id: maps labels 1..K to the file's category ids
            (``dataset.label_to_category_id``).
        mask_threshold: applied to float masks (probabilities); binary masks are kept.

    Without ``masks`` a result has no ``segmentation`` (box evaluation only).
    """
    image_ids = list(image_ids)
    if len(image_ids) != len(predictions):
        raise ValueError(f"got {len(predictions)} predictions but {len(image_ids)} image ids; "
                         f"pass one image id per prediction")
    results = []
    for prediction, image_id in zip(predictions, image_ids):
        boxes = to_numpy(prediction["boxes"]).astype(numpy.float64).reshape(-1, 4)
        labels = to_numpy(prediction["labels"]).reshape(-1)
        scores = to_numpy(prediction["scores"]).reshape(-1)
        if not len(boxes) == len(labels) == len(scores):
            raise ValueError(f"image {image_id}: {len(boxes)} boxes, {len(labels)} labels and "
                             f"{len(scores)} scores; they must have the same length")
        category_ids = []
        for label in labels:
            if int(label) not in label_to_category_id:
                raise ValueError(f"image {image_id}: label {int(label)} has no category id in "
                                 f"label_to_category_id (labels are 1..K; pass the mapping of "
                                 f"the dataset the model was trained on)")
            category_ids.append(int(label_to_category_id[int(label)]))
        rles = encode_masks(prediction["masks"], len(boxes), image_id, mask_threshold) \
            if "masks" in prediction else None
        for index, box in enumerate(box_xyxy_to_xywh(boxes)):
            result = {"image_id": int(image_id), "category_id": category_ids[index],
                      "bbox": [float(value) for value in box],
                      "score": float(scores[index])}
            if rles is not None:
                result["segmentation"] = rles[index]
            results.append(result)
    return results


def encode_masks(masks, count: int, image_id, mask_threshold: float = 0.5) -> list[dict]:
    """(D, H, W) masks -> D compressed RLEs with str counts, encoded in one call."""
    masks = to_numpy(masks)
    if masks.ndim != 3 or masks.shape[0] != count:
        raise ValueError(f"image {image_id}: masks must be (D, H, W) with D = {count} "
                         f"detections, got shape {masks.shape}")
    binary = masks > mask_threshold if masks.dtype.kind == "f" else masks.astype(bool)
    # pycocotools encodes (H, W, D) column-major: each mask's pixels contiguous down columns
    rles = mask_utils.encode(numpy.asfortranarray(binary.transpose(1, 2, 0).astype(numpy.uint8)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def load_results(coco_gt: COCO, results: list[dict], iou_type: str) -> COCO:
    """The results as a COCO object, like ``coco_gt.loadRes`` but safe for an empty list.

    ``loadRes`` mutates its input (adds id, area, iscrowd), so it gets copies; for "segm" the
    bbox is dropped so a detection's area is its mask area (see the module docstring)."""
    if iou_type == "segm":
        results = [{key: value for key, value in result.items() if key != "bbox"}
                   for result in results]
    else:
        results = [{key: value for key, value in result.items() if key != "segmentation"}
                   for result in results]
    if not results:
        # what loadRes would build if it accepted an empty list
        return coco_from_dict({"images": list(coco_gt.dataset["images"]), "annotations": [],
                               "categories": copy.deepcopy(coco_gt.dataset["categories"])})
    known_images = set(coco_gt.getImgIds())
    unknown = sorted({result["image_id"] for result in results} - known_images)
    if unknown:
        raise ValueError(f"results refer to image ids {unknown[:10]} that are not in the ground "
                         f"truth; pass the image ids from the same dataset's targets")
    with contextlib.redirect_stdout(io.StringIO()):
        return coco_gt.loadRes(results)


def coco_evaluate(coco_gt: COCO, results: list[dict], iou_types=("bbox", "segm"),
                  image_ids=None, verbose: bool = True) -> dict:
    """Run COCOeval; returns ``{iou_type: {"AP", "AP50", "AP75", "APs", "APm", "APl"}}`` in %.

    Args:
        coco_gt: ground truth (``coco_from_dataset(dataset)`` or ``dataset.coco``).
        results: from ``detections_to_coco_results``; may be empty: no detections give AP 0
            wherever there is ground truth and -1 elsewhere, as COCOeval defines it
            (``loadRes`` would crash on the empty list; we do not call it then).
        iou_types: "bbox" and/or "segm" ("segm" needs results with a segmentation).
        image_ids: evaluate only these images (default: every image of ``coco_gt``), e.g.
            when the model ran on the first 50 images of the val set.
        verbose: print COCOeval's twelve-line summary for each IoU type.

    A value of -1 is kept as -1 (no ground truth in that size range), not scaled.
    """
    metrics = {}
    for iou_type in iou_types:
        if iou_type not in ("bbox", "segm"):
            raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
        if iou_type == "segm" and any("segmentation" not in result for result in results):
            raise ValueError("segm evaluation needs a 'segmentation' in every result; the "
                             "predictions had no masks (evaluate iou_types=('bbox',) only)")
        coco_dt = load_results(coco_gt, results, iou_type)
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        if image_ids is not None:
            evaluator.params.imgIds = sorted(int(image_id) for image_id in image_ids)
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        if verbose:
            print(f"COCO {iou_type} evaluation:")
            print("\n".join(line for line in output.getvalue().splitlines()
                            if line.startswith(" Average")))
        metrics[iou_type] = {name: _percent(value)
                             for name, value in zip(METRIC_NAMES, evaluator.stats[:6])}
    return metrics


def _percent(value: float) -> float:
    return float(value) if value == -1 else 100.0 * float(value)


def predict_dataset(model, dataset, batch_size: int = 4, progress: bool = True):
    """Run ``model`` (put in eval mode) over every image of ``dataset``.

    Returns (predictions, image_ids): one eval-output dict per image, in dataset order, and
    the matching ``target["image_id"]`` values."""
    if progress:
        from tqdm.auto import tqdm
    else:  # importing tqdm.auto in a notebook without ipywidgets warns, bar or no bar
        from tqdm import tqdm

    import tinymask

    if not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"batch_size={batch_size!r}: evaluate at least one image at a time")
    model.eval()
    predictions, image_ids = [], []
    with tinymask.no_grad():
        for start in tqdm(range(0, len(dataset), batch_size), disable=not progress,
                          desc="predict", unit="batch", dynamic_ncols=True):
            items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            predictions.extend(model([image for image, _ in items]))
            image_ids.extend(int(target["image_id"]) for _, target in items)
    return predictions, image_ids


def check_model_fits_dataset(config, dataset) -> None:
    """Refuse to evaluate a model on a dataset whose classes are not the ones it predicts.

    Labels are only positions (1..K): a model trained on ["cat", "dog"] scored on a file
    listing ["dog", "cat"], or fewer or more categories, would report a meaningless AP.
    ``config.extra`` holds the training set's ``class_names`` and ``label_to_category_id``
    when ``tinymask train`` made the model; otherwise only the class count is compared."""
    names = config.extra.get("class_names")
    mapping = config.extra.get("label_to_category_id")
    dataset_names = list(getattr(dataset, "class_names", []))
    dataset_mapping = {str(label): int(category_id) for label, category_id in
                       getattr(dataset, "label_to_category_id", {}).items()}
    if config.num_classes != dataset.num_classes:
        trained = f" ({', '.join(names[1:])})" if names else ""
        raise UserError(f"the model predicts {config.num_classes - 1} classes{trained} but the "
                        f"dataset has {dataset.num_classes - 1} ({', '.join(dataset_names[1:])});"
                        f" evaluate it on data with the classes it was trained on")
    if names is not None and dataset_names and list(names) != dataset_names:
        raise UserError(f"the model was trained on the classes {list(names[1:])} but the "
                        f"dataset lists {dataset_names[1:]} (in category id order); evaluate "
                        f"it on data with the same categories")
    if mapping is not None and dataset_mapping and {str(k): int(v) for k, v in
                                                   mapping.items()} != dataset_mapping:
        raise UserError(f"the model's category ids {dict(mapping)} (label: id) differ from the "
                        f"dataset's {dataset_mapping}; evaluate it on data with the same "
                        f"category ids")


def evaluate_model(model, dataset, batch_size: int = 4, progress: bool = True,
                   verbose: bool = False) -> dict:
    """COCO box and mask AP (percent) of ``model`` on ``dataset`` (shapes or COCO files).

    Refuses (``UserError``) an empty dataset, one without a single ground-truth object
    (COCOeval would report -1, "undefined", for every number), and one whose classes are
    not the model's (``check_model_fits_dataset``)."""
    if len(dataset) == 0:
        raise UserError("the evaluation dataset has no images")
    check_model_fits_dataset(model.config, dataset)
    coco_gt = coco_from_dataset(dataset)
    if not any(not annotation.get("iscrowd", 0) for annotation in coco_gt.anns.values()):
        raise UserError("the evaluation dataset has no ground-truth objects (no annotations, "
                        "or only crowd regions): COCO AP is undefined there")
    predictions, image_ids = predict_dataset(model, dataset, batch_size, progress)
    iou_types = ("bbox", "segm") if model.config.mask_branch else ("bbox",)
    results = detections_to_coco_results(predictions, image_ids, dataset.label_to_category_id)
    return coco_evaluate(coco_gt, results, iou_types=iou_types, image_ids=image_ids,
                         verbose=verbose)
