"""Shared test setup.

* Without a real CUDA GPU, Numba's CUDA kernels run in its simulator
  (``NUMBA_ENABLE_CUDASIM=1``), so every kernel is exercised in CI on tiny inputs. This must
  be decided before ``numba.cuda`` is first imported, hence here.
* ``@pytest.mark.gpu`` tests need a real GPU and are skipped without one.
* ``@pytest.mark.torch`` tests compare with torch and are skipped when it is not installed;
  ``@pytest.mark.torchvision`` tests compare with torchvision and are skipped without it.
* ``@pytest.mark.task_L_N`` marks the tests of course task L.N (``tinymask course check``).
"""

import importlib.util
import os


def _real_gpu_available() -> bool:
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


REAL_GPU = _real_gpu_available()
if not REAL_GPU:
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import pytest  # noqa: E402

TORCH_AVAILABLE = importlib.util.find_spec("torch") is not None
TORCHVISION_AVAILABLE = TORCH_AVAILABLE and importlib.util.find_spec("torchvision") is not None


def pytest_configure(config):
    """One marker per course task, ``task_4_2`` for task 4.2, from the course's task table."""
    from tinymask.course.tasks import TASKS

    for task in TASKS:
        config.addinivalue_line("markers", f"{task.marker}: course task {task.id}, {task.title}")


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a real CUDA GPU (cupy + a device)")
    skip_torch = pytest.mark.skip(reason="torch is not installed (optional test reference)")
    skip_torchvision = pytest.mark.skip(
        reason="torchvision is not installed (optional test reference)")
    for item in items:
        if "gpu" in item.keywords and not REAL_GPU:
            item.add_marker(skip_gpu)
        if "torch" in item.keywords and not TORCH_AVAILABLE:
            item.add_marker(skip_torch)
        if "torchvision" in item.keywords and not TORCHVISION_AVAILABLE:
            item.add_marker(skip_torchvision)
