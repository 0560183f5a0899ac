"""Small helpers the lessons share: smoke mode and recorded ablation results.

``TINYMASK_SMOKE=1`` (set by the tests) makes every lesson run with tiny sizes and a few
steps, so CI executes each one top to bottom in seconds; the notebooks are built without
it, from real runs.
"""

from __future__ import annotations

import json
import os

RESULTS_FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              "lessons", "results")


def smoke_mode() -> bool:
    """True when the lessons should run tiny (CI), from ``TINYMASK_SMOKE=1``."""
    return os.environ.get("TINYMASK_SMOKE") == "1"


def recorded_result(name: str):
    """The recorded ``tinymask ablate NAME --record`` result, or None if not recorded yet."""
    path = os.path.join(RESULTS_FOLDER, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as stream:
        return json.load(stream)
