"""The backend switch: NumPy by default, CuPy on request, clear errors otherwise."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import tinymask as tm
from tinymask import backend


def test_default_is_numpy():
    assert tm.get_backend() == "numpy"
    assert backend.xp() is np
    assert backend.array_module(np.zeros(2), 3.0) is np


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="unknown backend 'jax'"):
        tm.set_backend("jax")


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="cupy is installed")
def test_cupy_without_cupy_says_how_to_install():
    with pytest.raises(RuntimeError, match=r"gpu"):
        tm.set_backend("cupy")
    assert tm.get_backend() == "numpy"


def test_environment_variable_selects_the_backend():
    env = dict(os.environ, TINYMASK_BACKEND="numpy")
    code = "import tinymask; print(tinymask.get_backend())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "numpy"
