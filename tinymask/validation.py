"""Every config field holds what its annotation says: the check behind ``validate()``.

A config is often built from text (``--set steps=1.5``, a JSON file), where a value of the
wrong kind would otherwise pass unnoticed until it fails far away, or never fails and
silently changes what runs (``hflip="maybe"`` is truthy; ``steps=1.5`` trains 2 steps).
``check_field_types`` compares each field of a dataclass with its annotation (``int``,
``float``, ``bool``, ``str``, ``tuple``, ``dict``, ``X | None``) and refuses NaN and
infinity in every number; annotations it does not know are left alone.
"""

from __future__ import annotations

import math
import numbers
import types
import typing
from dataclasses import fields

from tinymask.errors import ConfigError


def _accepted_types(annotation) -> tuple | None:
    """The plain types a field annotated ``annotation`` takes (None: not checked here)."""
    if annotation in (bool, int, float, str, tuple, list, dict, type(None)):
        return (annotation,)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        parts = [_accepted_types(arg) for arg in typing.get_args(annotation)]
        return None if None in parts else tuple(t for part in parts for t in part)
    if typing.get_origin(annotation) in (tuple, list, dict):
        return (typing.get_origin(annotation),)
    return None


def _fits(value, kind) -> bool:
    # bool is an int to Python, but steps=true or lr=false is a mistake, not a number
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if kind is tuple:
        return isinstance(value, tuple | list)
    if kind is type(None):
        return value is None
    return isinstance(value, kind)


def check_field_types(config) -> None:
    """Refuse a field whose value does not fit its annotation (``steps=1.5``,
    ``hflip="maybe"``, ``decay_at=0.5`` for a tuple) and any NaN or infinite number, with a
    ``ConfigError`` naming the field and what it takes."""
    try:
        hints = typing.get_type_hints(type(config))
    except (NameError, TypeError):  # an annotation this Python cannot evaluate: skip the check
        return
    name_of_class = type(config).__name__
    for f in fields(config):
        value = getattr(config, f.name)
        kinds = _accepted_types(hints.get(f.name))
        if kinds is None:
            continue
        if not any(_fits(value, kind) for kind in kinds):
            wanted = " or ".join("None" if kind is type(None) else kind.__name__
                                 for kind in kinds)
            hint = f" (a list, e.g. [{value!r}])" if tuple in kinds else ""
            raise ConfigError(f"{name_of_class}.{f.name}={value!r}: expected {wanted}{hint}")
        numbers_inside = value if isinstance(value, tuple | list) else [value]
        for number in numbers_inside:
            if isinstance(number, numbers.Real) and not math.isfinite(number):
                raise ConfigError(f"{name_of_class}.{f.name}={value!r}: NaN and infinity are "
                                  f"not allowed")
