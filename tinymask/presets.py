"""Named starting points for ``tinymask train --config NAME``: data, model and training.

* ``starter``: what a student runs first on a laptop CPU (600 steps). The lessons' small
  model (quarter-width ResNet-18 + FPN-64, group norm, from scratch) on 128-px synthetic
  shapes; a few minutes on 2 cores. (Called ``quick`` before; that name still works.)
* ``full``: the same recipe with more data and steps (about half an hour on 2 cores), the
  "small-scale training run" that separates the ablations clearly.

A preset is plain data: three dicts of field overrides, applied to ``MaskRCNNConfig.small``,
``TrainConfig`` and the built-in shapes data. ``--set key=value`` then changes any field.
A preset file or a value that does not fit raises ``ConfigError`` naming it.
"""

from __future__ import annotations

import copy
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
DATA_FIELDS = ("train", "val", "image_size", "seed")
SMALLEST_SHAPES_IMAGE = 16  # pixels a side: the shapes generator needs room for its shapes


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


def check_data_fields(data: dict) -> None:
    """The built-in shapes data section: image counts and seed whole numbers (at least one
    training image), image_size a side (or [height, width]) of at least 16 pixels."""
    unknown = sorted(set(data) - set(DATA_FIELDS))
    if unknown:
        raise UnknownFieldError(f"unknown data field(s) {unknown}; valid fields: "
                                f"{', '.join(DATA_FIELDS)}")
    for name, lowest in (("train", 1), ("val", 0), ("seed", 0)):
        if name in data and not (_whole(data[name]) and data[name] >= lowest):
            raise ConfigError(f"data.{name}={data[name]!r}: expected a whole number >= "
                              f"{lowest}")
    if "image_size" in data:
        size = data["image_size"]
        sides = size if isinstance(size, list | tuple) and len(size) == 2 else [size]
        if not all(_whole(side) and side >= SMALLEST_SHAPES_IMAGE for side in sides):
            raise ConfigError(f"data.image_size={size!r}: expected a side (or [height, width]) "
                              f"of at least {SMALLEST_SHAPES_IMAGE} pixels")


def model_config_for(train_data, model_fields: dict, image_size: int | None = None):
    """The lessons' small model (``MaskRCNNConfig.small``) made to fit a dataset.

    Its classes come from ``train_data``, with their names and COCO category ids kept in
    ``config.extra`` so a saved model can label its detections; ``image_size`` (the built-in
    shapes' side) sets the resize; ``model_fields`` (a preset's "model" section and
    ``--set`` changes) win over both."""
    from tinymask.config import MaskRCNNConfig

    fields = {"num_classes": train_data.num_classes,
              "extra": {"class_names": list(train_data.class_names),
                        "label_to_category_id": {str(label): int(category_id) for
                                                 label, category_id in
                                                 train_data.label_to_category_id.items()}}}
    if image_size is not None:
        fields.update(min_size=image_size, max_size=image_size)
    fields.update(model_fields)
    return MaskRCNNConfig.small(**fields)
