"""The one place where tinymask chooses between NumPy (CPU) and CuPy (GPU).

Everything above this module writes ``xp.`` code. Two ways to get ``xp``:

* ``array_module(*arrays)``: the module that owns the given arrays. Ops use it, so an op
  runs wherever its inputs live and never moves data between host and device.
* ``xp()``: the module of the current backend. Code that *creates* arrays from nothing
  (parameter init, zeros for a buffer) uses it.

The backend is chosen with ``tinymask.set_backend("numpy" | "cupy")`` or the environment
variable ``TINYMASK_BACKEND``; the default is NumPy. CuPy is imported lazily, here only,
so ``import tinymask`` works on a machine without CuPy or a GPU.
"""

from __future__ import annotations

import os
from types import ModuleType

import numpy

BACKENDS = ("numpy", "cupy")

_current_name = "numpy"
_cupy: ModuleType | None = None


def _import_cupy() -> ModuleType:
    global _cupy
    if _cupy is None:
        try:
            import cupy  # the only import of cupy in tinymask
        except ImportError as exc:  # pragma: no cover - depends on the machine
            raise RuntimeError(
                "the 'cupy' backend needs CuPy and an NVIDIA GPU: install the 'gpu' extra "
                "(pip install -e '.[gpu]') or use set_backend('numpy')"
            ) from exc
        _cupy = cupy
    return _cupy


def set_backend(name: str) -> None:
    """Select the array backend for newly created arrays: "numpy" or "cupy"."""
    global _current_name
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")
    if name == "cupy":
        _import_cupy()
    _current_name = name


def get_backend() -> str:
    """The name of the current backend ("numpy" or "cupy")."""
    return _current_name


def xp() -> ModuleType:
    """The array module of the current backend (numpy or cupy)."""
    return _import_cupy() if _current_name == "cupy" else numpy


def is_cupy_array(array) -> bool:
    """True for a CuPy array, without importing CuPy when it was never used."""
    return _cupy is not None and isinstance(array, _cupy.ndarray)


def array_module(*arrays) -> ModuleType:
    """numpy or cupy: the module owning the arrays (numpy for plain Python values)."""
    for array in arrays:
        if is_cupy_array(array):
            return _cupy
    return numpy


def to_numpy(array) -> numpy.ndarray:
    """A NumPy copy of an array from either backend (a no-op view for NumPy arrays)."""
    if is_cupy_array(array):
        return array.get()
    return numpy.asarray(array)


def to_backend(array, name: str | None = None):
    """The array on the given backend (the current one by default)."""
    name = name or _current_name
    if name == "cupy":
        return _import_cupy().asarray(array)
    return to_numpy(array)


_env_choice = os.environ.get("TINYMASK_BACKEND")
if _env_choice:
    set_backend(_env_choice.strip().lower())
