"""Named starting points for ``tinymask train --config NAME``: data, model and training.

* ``quick``: what a student runs first on a laptop CPU. The lessons' small model
  (quarter-width ResNet-18 + FPN-64, group norm, from scratch) on 128-px synthetic shapes;
  a few minutes on 2 cores.
* ``full``: the same recipe with more data and steps (about half an hour on 2 cores), the
  "small-scale training run" that separates the ablations clearly.

A preset is plain data: three dicts of field overrides, applied to ``MaskRCNNConfig.small``,
``TrainConfig`` and the built-in shapes data. ``--set key=value`` then changes any field.
"""

from __future__ import annotations

import copy
import json
import os

PRESETS = {
    "quick": {
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
DATA_FIELDS = ("train", "val", "image_size", "seed")


def load_preset(name_or_path: str) -> dict:
    """A preset by name, or a JSON file with optional "data", "model", "train" sections."""
    if name_or_path in PRESETS:
        return copy.deepcopy(PRESETS[name_or_path])
    if not os.path.exists(name_or_path):
        raise ValueError(f"--config {name_or_path!r}: not a preset ({', '.join(PRESETS)}) and "
                         "no such file")
    try:
        with open(name_or_path) as stream:
            values = json.load(stream)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--config {name_or_path}: not valid JSON ({exc})") from exc
    unknown = set(values) - {"data", "model", "train"}
    if not isinstance(values, dict) or unknown:
        raise ValueError(f"--config {name_or_path}: the top level may hold only 'data', "
                         f"'model' and 'train' sections, got {sorted(unknown)}")
    return {"data": values.get("data", {}), "model": values.get("model", {}),
            "train": values.get("train", {})}
