"""Shipped trained weights: ``tinymask.pretrained("shapes-small")`` (see ``shipped.py``)."""

from tinymask.weights.shipped import (
    available,
    export_pretrained,
    pretrained,
    pretrained_path,
    pretrained_record,
)

__all__ = ["available", "export_pretrained", "pretrained", "pretrained_path",
           "pretrained_record"]
