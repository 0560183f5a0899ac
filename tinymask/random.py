"""One seed for everything random in tinymask: parameter init, data, sampling.

``tinymask.manual_seed(seed)`` resets the global ``numpy.random.Generator`` that init
functions and samplers draw from. Draws happen in NumPy on the host and are then moved
to the backend, so the same seed gives the same initial weights on the CPU and the GPU.
"""

from __future__ import annotations

import numpy

_generator = numpy.random.default_rng(0)


def manual_seed(seed: int) -> numpy.random.Generator:
    """Reseed the global generator (and return it)."""
    global _generator
    _generator = numpy.random.default_rng(seed)
    return _generator


def generator() -> numpy.random.Generator:
    """The global generator that init and sampling draw from."""
    return _generator
