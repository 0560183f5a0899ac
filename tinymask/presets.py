"""Named starting points for ``tinymask train --config NAME``: data, model and training.

* ``starter``: what a student runs first on a laptop CPU (600 steps). The lessons' small
  model (quarter-width ResNet-18 + FPN-64, group norm, from scratch) on 128-px synthetic
  shapes; a few minutes on 2 cores. (Called ``quick`` before; that name still works.)
* ``full``: the same recipe with more data and steps (about half an hour on 2 cores), the
  "small-scale training run" that separates the ablations clearly.
* ``figures``: the stick figures (``tinymask.data.figures``) with the keypoint branch on:
  Keypoint R-CNN with masks (paper §5), at half the starter's learning rate and 1600 steps
  (about 9 minutes on one core).

A preset is plain data: three dicts of field overrides, applied to ``MaskRCNNConfig.small``,
``TrainConfig`` and the built-in shapes data. ``--set key=value`` then changes any field.
A preset file or a value that does not fit raises ``ConfigError`` naming it.
"""

from __future__ import annotations

import copy
import inspect
import json
import numbers
import os

from tinymask.errors import ConfigError, UnknownFieldError

PRESETS = {
    "starter": {
        "data": {"train": 300, "val": 50, "image_size": 128},
        "model": {},
        "train": {"steps": 600, "batch_size": 2, "lr": 0.02, "warmup_iters": 50,
                  "decay_at": (0.8,), "log_every": 10, "checkpoint_every": 200},
    },
    "full": {
        "data": {"train": 1000, "val": 200, "image_size": 128},
        "model": {},
        "train": {"steps": 3000, "batch_size": 4, "lr": 0.02, "warmup_iters": 200,
                  "decay_at": (0.75, 0.92), "log_every": 20, "checkpoint_every": 500},
    },
}
OLD_NAMES = {"quick": "starter"}  # earlier runs and notes name the starter preset "quick"
# Stick figures 48 px tall or more, one or two an image, 128 RoIs an image: with the
# generator's figures (32 px and up, one to three an image) the small model's keypoint AP was
# 0.3 after 1000 steps (box AP 24); with these, 15.3 (AP50 54.9) after 800 (bench/RESULTS.md)
FIGURES_DATA = {"min_height": 48, "max_objects": 2}
PRESETS["figures"] = copy.deepcopy(PRESETS["starter"])
PRESETS["figures"]["data"].update(dataset="figures", **FIGURES_DATA)
PRESETS["figures"]["model"]["box_batch_size_per_image"] = 128
# the keypoint head's 8 plain convs and its softmax over 3136 cells took the small model
# to NaN within 60 steps at lr 0.02 (two figures, batch 2); clipping the gradient norm at
# 10 trained the same run to keypoints within 2.5 pixels in 200 steps. On 300 figures,
# unclipped probes of 1600 steps went to NaN at 0.02 and reached keypoint AP 31.2 at 0.01
# (Table 4's keypoint & mask row, seed 600), where 800 clipped steps at 0.02 reached 4.8.
PRESETS["figures"]["train"].update(grad_clip=10.0, lr=0.01, steps=1600,
                                   checkpoint_every=400)
DATA_FIELDS = ("train", "val", "image_size", "seed", "dataset")
BUILT_IN_DATASETS = ("shapes", "figures")  # data.dataset: which generator (default shapes)
SMALLEST_SHAPES_IMAGE = 16  # pixels a side: the shapes generator needs room for its shapes
SMALLEST_FIGURES_IMAGE = 32  # and the figures for a figure of 32 pixels


def load_preset(name_or_path: str) -> dict:
    """A preset by name, or a JSON file with optional "data", "model", "train" sections."""
    name_or_path = OLD_NAMES.get(name_or_path, name_or_path)
    if name_or_path in PRESETS:
        return copy.deepcopy(PRESETS[name_or_path])
    if not os.path.isfile(name_or_path):
        raise ConfigError(f"--config {name_or_path!r}: not a preset ({', '.join(PRESETS)}) "
                          f"and no such file")
    try:
        with open(name_or_path) as stream:
            values = json.load(stream)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {name_or_path}: not valid JSON ({exc})") from exc
    except OSError as exc:
        raise ConfigError(f"--config {name_or_path}: cannot be read ({exc.strerror})") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"--config {name_or_path}: expected a JSON object with 'data', "
                          f"'model' and 'train' sections, got a {type(values).__name__}")
    unknown = sorted(set(values) - {"data", "model", "train"})
    if unknown:
        raise ConfigError(f"--config {name_or_path}: the top level may hold only 'data', "
                          f"'model' and 'train' sections, got {unknown}")
    for section, fields in values.items():
        if not isinstance(fields, dict):
            raise ConfigError(f"--config {name_or_path}: the {section!r} section must be an "
                              f"object of field: value, got {json.dumps(fields)}")
    return {"data": values.get("data", {}), "model": values.get("model", {}),
            "train": values.get("train", {})}


def _whole(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _dataset_class(dataset: str):
    from tinymask.data import FiguresDataset, ShapesDataset

    return FiguresDataset if dataset == "figures" else ShapesDataset


def dataset_options(dataset: str) -> tuple:
    """The built-in generator's own arguments a data section may set (``ShapesDataset``'s
    ``min_size``, ``classes``, ...; ``FiguresDataset``'s ``min_height``, ...)."""
    parameters = inspect.signature(_dataset_class(dataset)).parameters
    return tuple(name for name in parameters if name not in ("num_images", "image_size",
                                                               "seed"))


def check_data_fields(data: dict) -> None:
    """The built-in data section: image counts and seed whole numbers (at least one
    training image), image_size a side (or [height, width]) of at least 16 pixels (32 for
    the figures), dataset "shapes" (the default) or "figures", and that generator's own
    options (``dataset_options``) with values it accepts."""
    dataset = data.get("dataset", "shapes")
    if dataset not in BUILT_IN_DATASETS:
        raise ConfigError(f"data.dataset={dataset!r}: choose one of {BUILT_IN_DATASETS}")
    options = dataset_options(dataset)
    unknown = sorted(set(data) - set(DATA_FIELDS) - set(options))
    if unknown:
        raise UnknownFieldError(f"unknown data field(s) {unknown}; valid fields: "
                                f"{', '.join(DATA_FIELDS + options)}")
    smallest = SMALLEST_FIGURES_IMAGE if dataset == "figures" else SMALLEST_SHAPES_IMAGE
    for name, lowest in (("train", 1), ("val", 0), ("seed", 0)):
        if name in data and not (_whole(data[name]) and data[name] >= lowest):
            raise ConfigError(f"data.{name}={data[name]!r}: expected a whole number >= "
                              f"{lowest}")
    if "image_size" in data:
        size = data["image_size"]
        sides = size if isinstance(size, list | tuple) and len(size) == 2 else [size]
        if not all(_whole(side) and side >= smallest for side in sides):
            raise ConfigError(f"data.image_size={size!r}: expected a side (or [height, width]) "
                              f"of at least {smallest} pixels")
    chosen = {key: value for key, value in data.items() if key in options}
    if chosen:  # the generator checks its own options: an empty dataset draws nothing
        try:
            _dataset_class(dataset)(0, image_size=data.get("image_size", 128), **chosen)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"data {chosen}: {exc}") from exc


def built_in_splits(data: dict):
    """(train, val) of the built-in data section: shapes or stick figures, in memory."""
    from tinymask.data import make_figures_splits, make_shapes_splits

    make_splits = make_figures_splits if data.get("dataset") == "figures" \
        else make_shapes_splits
    extra = {key: value for key, value in data.items()
             if key not in ("train", "val", "seed", "dataset")}
    return make_splits(data["train"], data["val"], seed=data.get("seed", 0), **extra)


def model_config_for(train_data, model_fields: dict, image_size: int | None = None):
    """The lessons' small model (``MaskRCNNConfig.small``) made to fit a dataset.

    Its classes come from ``train_data``, with their names and COCO category ids kept in
    ``config.extra`` so a saved model can label its detections; a dataset with keypoints
    (stick figures, a COCO keypoint file) turns the keypoint branch on with its
    ``num_keypoints`` and keeps their names; ``image_size`` (the built-in data's side) sets
    the resize; ``model_fields`` (a preset's "model" section and ``--set`` changes) win
    over all of them."""
    from tinymask.config import MaskRCNNConfig

    fields = {"num_classes": train_data.num_classes,
              "extra": {"class_names": list(train_data.class_names),
                        "label_to_category_id": {str(label): int(category_id) for
                                                 label, category_id in
                                                 train_data.label_to_category_id.items()}}}
    keypoint_names = getattr(train_data, "keypoint_names", None)
    if keypoint_names:
        fields.update(keypoint_branch=True, num_keypoints=len(keypoint_names))
        fields["extra"]["keypoint_names"] = list(keypoint_names)
        fields["extra"]["skeleton"] = [list(bone) for bone in train_data.skeleton]
    if image_size is not None:
        fields.update(min_size=image_size, max_size=image_size)
    fields.update(model_fields)
    return MaskRCNNConfig.small(**fields)
