"""One-line checks for the course's task tests: "what: expected X, got Y".

A student reads these messages in ``tinymask course check``'s table, one line per task, so a
failure names the quantity and both values instead of printing a diff of arrays.
"""

from __future__ import annotations

import numpy as np

from tinymask.backend import to_numpy
from tinymask.tensor import unwrap


def _one_line(value) -> str:
    array = np.asarray(value)
    if array.ndim == 0:
        return repr(array.item())
    text = np.array2string(array, precision=4, threshold=24, max_line_width=10**6,
                           separator=", ")
    return " ".join(text.split())


def _array(value):
    return np.asarray(to_numpy(unwrap(value)))


def expect_close(got, expected, what: str, atol: float = 1e-6, rtol: float = 1e-6) -> None:
    got, expected = _array(got), _array(expected)
    if got.shape != expected.shape:
        raise AssertionError(f"{what}: expected shape {expected.shape}, got shape {got.shape}")
    if not np.allclose(got, expected, atol=atol, rtol=rtol, equal_nan=True):
        raise AssertionError(f"{what}: expected {_one_line(expected)}, got {_one_line(got)}")


def expect_equal(got, expected, what: str) -> None:
    got, expected = _array(got), _array(expected)
    if got.shape != expected.shape or not np.array_equal(got, expected):
        raise AssertionError(f"{what}: expected {_one_line(expected)}, got {_one_line(got)}")


def expect_true(condition, what: str) -> None:
    if not condition:
        raise AssertionError(what)
