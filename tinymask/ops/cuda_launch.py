"""How every Numba CUDA kernel of tinymask is launched: on CuPy's stream, on CuPy's memory.

The arrays live in CuPy. A Numba kernel takes them as zero-copy device views
(``cuda.as_cuda_array``) and is queued on CuPy's current stream, behind the CuPy work that
produced its inputs, so the host never waits between the two. Under
``NUMBA_ENABLE_CUDASIM=1`` (the tests without a GPU) the kernels run in Numba's simulator
and take NumPy arrays as they are.
"""

from __future__ import annotations

from numba import cuda

from tinymask.backend import is_cupy_array

THREADS_PER_BLOCK = 256  # the element-wise kernels (RoI ops): one thread per output element


def launch_stream(xpm):
    """CuPy's current stream, so the kernels queue behind whatever CuPy launched before."""
    stream_pointer = xpm.cuda.get_current_stream().ptr
    return cuda.external_stream(stream_pointer) if stream_pointer else cuda.default_stream()


def kernel_arguments(xpm, arrays):
    """(stream, arrays as the kernel takes them): CuPy arrays as zero-copy device views."""
    if not any(is_cupy_array(array) for array in arrays):
        return 0, arrays  # the simulator: NumPy arrays as they are
    # sync=False: the kernel runs on CuPy's stream, after the work that produced these
    # arrays, so Numba need not block the host until that stream is idle.
    return launch_stream(xpm), [cuda.as_cuda_array(array, sync=False) for array in arrays]


def blocks_for(num_threads: int, threads_per_block: int = THREADS_PER_BLOCK) -> int:
    """Blocks of ``threads_per_block`` that cover ``num_threads`` threads."""
    return (num_threads + threads_per_block - 1) // threads_per_block
