"""Non-maximum suppression on the GPU: Numba CUDA kernels (REFERENCE.md §6).

Same result as ``nms_reference``. The greedy loop of ``nms_cpu`` is sequential (whether box j
survives depends on which earlier boxes survived), so the GPU splits it in two:

1. ``suppression_mask_kernel``, parallel: for every pair (i, j) with i scored higher than j,
   decide whether box i would suppress box j if i is kept. The N x N answers are packed as
   bits: boxes go in blocks of 64, and for row box i and column block c, one uint64 word has
   bit b set when i suppresses box ``64 * c + b``. One CUDA block of 64 threads handles one
   64 x 64 tile (row block, column block); thread t computes the word of row box
   ``64 * row_block + t``. Tiles below the diagonal are skipped: a box never suppresses a
   higher-scored one.
2. ``gather_keep_kernel``, sequential: walk the boxes in score order, keep box i unless its
   bit is set in ``suppressed_bits``, and if kept OR its mask row into ``suppressed_bits``.
   This is ``nms_cpu``'s loop with the IoUs already computed.

Why the greedy pass runs on the device: the mask has N x ceil(N/64) words (50 MB at 20k
boxes). A host pass would wait for the kernel, copy all of it over the bus, and loop in host
code while the GPU idles. On the device the pass is one block, so it is serial, but each step
is a few ORs in shared memory, and only the kept indices leave the GPU. mmcv moved to this
(open-mmlab/mmcv PR #1824 reports 21.1 ms -> 4.8 ms for 20k random boxes on an RTX 2070
Super) and torchvision PR #8766 proposes the same; torchvision's original kernel copies the
mask back and loops on the host. bench/bench_nms.py times it on a GPU.

Shape letters:
    N   number of boxes
    C   column blocks, ceil(N / 64): uint64 words per mask row

Twin of ``nms_cpu``: the same ``iou_exceeds`` (one source, ``nms_iou``), ``sorted_boxes``,
``i`` (higher-scored box), ``j`` (later box), ``keep``, and the same visiting order in the
greedy pass. Under
``NUMBA_ENABLE_CUDASIM=1`` (the tests without a GPU) these kernels run in Numba's simulator
on NumPy arrays; on a GPU they take CuPy arrays in place.

Rounding: the GPU compiler may fuse a multiply and an add (FMA) in the IoU, so an IoU within
one rounding step of the threshold can be decided differently from the CPU (torchvision's
GPU and CPU kernels differ the same way). Integer-valued coordinates whose areas stay below
2**24 (any box inside a 4096 x 4096 image) are exact either way.
"""

from __future__ import annotations

import math
import warnings

import numpy
from numba import cuda, types
from numba.core.errors import NumbaPerformanceWarning

from tinymask.backend import array_module, is_cupy_array
from tinymask.ops import nms_iou
from tinymask.ops.cuda_launch import launch_stream

THREADS_PER_BLOCK = 64  # one thread per box of a block, one bit per box of a uint64 word
# The greedy pass keeps one uint64 per column block in shared memory, and CUDA gives a block
# 48 KiB without opting in: 6144 words, N <= 393,216 boxes (a 19 GB mask by then anyway).
MAX_COLUMN_BLOCKS = 48 * 1024 // 8


# the shared overlap test, compiled for the GPU from the same source as the CPU's
iou_exceeds = cuda.jit(device=True)(nms_iou.iou_exceeds)


@cuda.jit(cache=True)
def suppression_mask_kernel(sorted_boxes, iou_threshold, mask):
    """Fill ``mask`` (N, C) uint64: bit b of ``mask[i, c]`` = box i suppresses box 64c + b.

    Launch on a (C, C) grid of 64-thread blocks: ``blockIdx.x`` is the column block,
    ``blockIdx.y`` the row block. Words below the diagonal are left unwritten (never read).
    """
    num_boxes = sorted_boxes.shape[0]
    row_block = cuda.blockIdx.y
    col_block = cuda.blockIdx.x
    if row_block > col_block:
        return  # the whole block leaves together, before the barrier below
    row_size = min(num_boxes - row_block * THREADS_PER_BLOCK, THREADS_PER_BLOCK)
    col_size = min(num_boxes - col_block * THREADS_PER_BLOCK, THREADS_PER_BLOCK)
    thread = cuda.threadIdx.x

    # Every thread of the block compares its box with the same 64 column boxes: load them
    # once into shared memory instead of 64 times from global memory.
    block_boxes = cuda.shared.array((THREADS_PER_BLOCK, 4), dtype=sorted_boxes.dtype)
    if thread < col_size:
        for coordinate in range(4):
            block_boxes[thread, coordinate] = sorted_boxes[
                col_block * THREADS_PER_BLOCK + thread, coordinate
            ]
    cuda.syncthreads()

    if thread < row_size:
        i = row_block * THREADS_PER_BLOCK + thread
        # On the diagonal tile only later boxes count: j > i.
        first = thread + 1 if row_block == col_block else 0
        bits = numpy.uint64(0)
        for j_in_block in range(first, col_size):
            if iou_exceeds(sorted_boxes[i], block_boxes[j_in_block], iou_threshold):
                bits |= numpy.uint64(1) << numpy.uint64(j_in_block)
        mask[i, col_block] = bits


@cuda.jit(cache=True)
def gather_keep_kernel(mask, keep):
    """Greedy pass over ``mask`` (N, C): set ``keep[i]`` (N,) bool for every kept box.

    Launch as one block of up to 64 threads with ``8 * C`` bytes of dynamic shared memory.
    The threads share the ORs of a kept row into ``suppressed_bits``; every thread walks all
    boxes and reaches the same decisions, since it reads the bits after the barrier that
    follows the last kept box.
    """
    num_boxes = mask.shape[0]
    col_blocks = mask.shape[1]
    thread = cuda.threadIdx.x
    num_threads = cuda.blockDim.x

    # Bit b of word c: box 64c + b is suppressed by some kept box. Dynamic size: C words.
    suppressed_bits = cuda.shared.array(0, dtype=types.uint64)
    for word in range(thread, col_blocks, num_threads):
        suppressed_bits[word] = 0
    cuda.syncthreads()

    for block in range(col_blocks):
        block_bits = suppressed_bits[block]  # this block's flags, in a register
        cuda.syncthreads()
        for i_in_block in range(THREADS_PER_BLOCK):
            i = block * THREADS_PER_BLOCK + i_in_block
            if i >= num_boxes:
                break
            if (block_bits >> numpy.uint64(i_in_block)) & numpy.uint64(1):
                continue  # suppressed by a kept box with a higher score
            if thread == 0:
                keep[i] = True
            # Box i is kept: everything it suppresses is out. Only words from this block on
            # matter, since mask rows have no bits for higher-scored boxes.
            for word in range(block + thread, col_blocks, num_threads):
                suppressed_bits[word] |= mask[i, word]
            cuda.syncthreads()
            block_bits = suppressed_bits[block]


def nms(boxes, scores, iou_threshold: float):
    """Indices of the boxes NMS keeps, in decreasing score order, as int64.

    boxes:   ``(N, 4)`` xyxy, float32 or float64; CuPy arrays on a GPU (or NumPy arrays
             under the Numba CUDA simulator).
    scores:  ``(N,)``, on the same backend.
    Returns an array on the same backend. Inputs are not checked here; ``tinymask.ops.nms``
    checks them and dispatches.
    """
    xpm = array_module(boxes, scores)
    num_boxes = boxes.shape[0]
    if num_boxes == 0:
        return xpm.zeros((0,), dtype=xpm.int64)
    col_blocks = math.ceil(num_boxes / THREADS_PER_BLOCK)
    if col_blocks > MAX_COLUMN_BLOCKS:
        raise ValueError(
            f"GPU NMS handles at most {MAX_COLUMN_BLOCKS * THREADS_PER_BLOCK} boxes, got "
            f"{num_boxes}; keep the top-scoring boxes first (the RPN keeps 2000 per level)"
        )

    order = xpm.argsort(-scores, kind="stable")  # stable: ties keep input order
    sorted_boxes = xpm.ascontiguousarray(boxes[order])
    # The threshold in the boxes' dtype, like the IoU it is compared with (see nms_reference).
    iou_threshold = sorted_boxes.dtype.type(iou_threshold)
    mask = xpm.empty((num_boxes, col_blocks), dtype=xpm.uint64)
    keep = xpm.zeros((num_boxes,), dtype=xpm.bool_)

    if is_cupy_array(boxes):
        stream = launch_stream(xpm)
        # sync=False: the kernels run on CuPy's stream, after the sort, so Numba need not
        # wait on the host for that stream before launching.
        boxes_view, mask_view, keep_view = (
            cuda.as_cuda_array(array, sync=False) for array in (sorted_boxes, mask, keep)
        )
    else:  # NumPy arrays: the simulator
        stream, boxes_view, mask_view, keep_view = 0, sorted_boxes, mask, keep

    greedy_threads = min(col_blocks, THREADS_PER_BLOCK)
    with warnings.catch_warnings():
        # Numba warns about grids under 128 blocks; the greedy pass is one block by design.
        warnings.simplefilter("ignore", NumbaPerformanceWarning)
        build_mask = suppression_mask_kernel[(col_blocks, col_blocks), THREADS_PER_BLOCK, stream]
        gather_keep = gather_keep_kernel[1, greedy_threads, stream, col_blocks * mask.itemsize]
    build_mask(boxes_view, iou_threshold, mask_view)
    gather_keep(mask_view, keep_view)
    return order[keep].astype(xpm.int64, copy=False)
