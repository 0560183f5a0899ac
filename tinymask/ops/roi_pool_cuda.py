"""RoIPool on an NVIDIA GPU: Numba CUDA kernels (REFERENCE.md §1).

Same result as ``roi_pool_reference``, which is the version to read first. The kernels take
RoIs already quantized by ``roi_geometry.quantize_rois``.

Shape letters:
    N, C, H, W   the feature map
    K            RoIs, rows ``[batch_index, start_x, start_y, end_x, end_y]`` in whole cells
    PH, PW       output bins per RoI

One thread per output element ``(roi_index, c, ph, pw)``. Twin of ``roi_pool_cpu``: the same
names and loop order, the outer loops (RoI, channel, bin) becoming the thread index.

Backward: each thread adds its bin's gradient to the cell that held the maximum. Bins of
overlapping RoIs (and neighbouring bins, which may share a cell) can pick the same cell, so
the addition is atomic (``cuda.atomic.add``); atomic float additions land in whatever order
the threads arrive, so the gradient can differ in the last bits from run to run (not
deterministic, as Chainer's and torchvision's GPU kernels).

Under ``NUMBA_ENABLE_CUDASIM=1`` (the tests without a GPU) the kernels run in Numba's
simulator on NumPy arrays; on a GPU they take CuPy arrays in place, on CuPy's current stream.
"""

from __future__ import annotations

import math

import numpy
from numba import cuda

from tinymask.backend import array_module
from tinymask.ops import roi_geometry
from tinymask.ops.cuda_launch import THREADS_PER_BLOCK, blocks_for, kernel_arguments

# the shared geometry, compiled for the GPU from the same source as the reference uses
roi_pool_size = cuda.jit(device=True)(roi_geometry.roi_pool_size)
roi_pool_bin_range = cuda.jit(device=True)(roi_geometry.roi_pool_bin_range)


@cuda.jit(cache=True)
def roi_pool_forward_kernel(features, quantized_rois, in_float32, output, argmax_cells):
    num_rois, channels, pooled_h, pooled_w = output.shape
    height, width = features.shape[2], features.shape[3]
    index = cuda.grid(1)
    if index >= num_rois * channels * pooled_h * pooled_w:
        return
    # (roi_index, c, ph, pw) of this thread's output element, C order
    pw = index % pooled_w
    ph = (index // pooled_w) % pooled_h
    c = (index // (pooled_w * pooled_h)) % channels
    roi_index = index // (pooled_w * pooled_h * channels)

    batch_index = int(quantized_rois[roi_index, 0])
    start_x, start_y = int(quantized_rois[roi_index, 1]), int(quantized_rois[roi_index, 2])
    end_x, end_y = int(quantized_rois[roi_index, 3]), int(quantized_rois[roi_index, 4])
    roi_h, roi_w = roi_pool_size(start_y, end_y), roi_pool_size(start_x, end_x)
    h_start, h_end = roi_pool_bin_range(start_y, roi_h, pooled_h, ph, height, in_float32)
    w_start, w_end = roi_pool_bin_range(start_x, roi_w, pooled_w, pw, width, in_float32)
    best_value = -math.inf
    best_cell = -1
    for y in range(h_start, h_end):
        for x in range(w_start, w_end):
            value = features[batch_index, c, y, x]
            if value > best_value:
                best_value = value
                best_cell = y * width + x
    if best_cell >= 0:  # an empty bin keeps 0 and passes no gradient
        output[roi_index, c, ph, pw] = best_value
        argmax_cells[roi_index, c, ph, pw] = best_cell


@cuda.jit(cache=True)
def roi_pool_backward_kernel(grad_output, quantized_rois, argmax_cells, grad_features):
    num_rois, channels, pooled_h, pooled_w = grad_output.shape
    width = grad_features.shape[3]
    index = cuda.grid(1)
    if index >= num_rois * channels * pooled_h * pooled_w:
        return
    pw = index % pooled_w
    ph = (index // pooled_w) % pooled_h
    c = (index // (pooled_w * pooled_h)) % channels
    roi_index = index // (pooled_w * pooled_h * channels)

    batch_index = int(quantized_rois[roi_index, 0])
    best_cell = argmax_cells[roi_index, c, ph, pw]
    if best_cell >= 0:
        cuda.atomic.add(grad_features, (batch_index, c, best_cell // width, best_cell % width),
                        grad_output[roi_index, c, ph, pw])


def roi_pool_forward_cuda(features, quantized_rois, pooled_h, pooled_w, in_float32=False):
    """features (N, C, H, W) C-contiguous, quantized_rois (K, 5) ->
    ``(output (K, C, PH, PW), argmax_cells (K, C, PH, PW) int32)``, as the reference.
    ``in_float32``: bin edges computed in float32 (``roi_pool_bin_range``)."""
    xpm = array_module(features)
    num_rois, channels = quantized_rois.shape[0], features.shape[1]
    output = xpm.zeros((num_rois, channels, pooled_h, pooled_w), features.dtype)
    argmax_cells = xpm.full(output.shape, -1, numpy.int32)
    if output.size == 0:
        return output, argmax_cells
    stream, (features_view, rois_view, output_view, argmax_view) = kernel_arguments(
        xpm, [features, quantized_rois, output, argmax_cells])
    roi_pool_forward_kernel[blocks_for(output.size), THREADS_PER_BLOCK, stream](
        features_view, rois_view, in_float32, output_view, argmax_view)
    return output, argmax_cells


def roi_pool_backward_cuda(grad_output, quantized_rois, argmax_cells, num_images, height, width):
    """grad_output (K, C, PH, PW) C-contiguous -> grad_features (N, C, H, W), as the reference."""
    xpm = array_module(grad_output)
    channels = grad_output.shape[1]
    grad_features = xpm.zeros((num_images, channels, height, width), grad_output.dtype)
    if grad_output.size == 0:
        return grad_features
    stream, (grad_output_view, rois_view, argmax_view, grad_features_view) = kernel_arguments(
        xpm, [grad_output, quantized_rois, argmax_cells, grad_features])
    roi_pool_backward_kernel[blocks_for(grad_output.size), THREADS_PER_BLOCK, stream](
        grad_output_view, rois_view, argmax_view, grad_features_view)
    return grad_features
