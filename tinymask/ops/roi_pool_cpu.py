"""RoIPool on the CPU: Numba kernels (REFERENCE.md §1).

Same result as ``roi_pool_reference``, which is the version to read first. The kernels take
RoIs already quantized by ``roi_geometry.quantize_rois`` (RoIPool's first step, done for all
RoIs at once before the kernel, and shared with RoIWarp).

Shape letters:
    N, C, H, W   the feature map
    K            RoIs, rows ``[batch_index, start_x, start_y, end_x, end_y]`` in whole cells
    PH, PW       output bins per RoI

Twin of ``roi_pool_cuda``: the same names and the same loop order, RoI (``roi_index``),
channel ``c``, bin ``(ph, pw)``, cell ``(y, x)`` (the backward puts the channel loop outside,
see below). The bin edges depend on the RoI, not on the channel, so here they are computed
once per RoI and shared by all channels; a GPU thread computes those of its own bin.

Threads (``prange``), as in ``roi_align_cpu``:
* forward: RoIs in parallel; each RoI writes only its own rows of the output.
* backward: RoIs that overlap send gradient to the same cells, so the threads split the
  channels instead: a thread owns whole channels, visits every RoI for them, and writes only
  their planes. No cell is written by two threads, and every run gives the same bits.
"""

from __future__ import annotations

import numpy
from numba import njit, prange

from tinymask.ops import roi_geometry

# the shared geometry, compiled for the CPU from the same source as the reference uses
roi_pool_size = njit(roi_geometry.roi_pool_size)
roi_pool_bin_range = njit(roi_geometry.roi_pool_bin_range)


@njit(cache=True, parallel=True)
def roi_pool_forward_cpu(features, quantized_rois, pooled_h, pooled_w, in_float32=False):
    """features (N, C, H, W) C-contiguous, quantized_rois (K, 5) ->
    ``(output (K, C, PH, PW), argmax_cells (K, C, PH, PW) int32)``, as the reference.
    ``in_float32``: bin edges computed in float32 (``roi_pool_bin_range``)."""
    num_rois = quantized_rois.shape[0]
    channels, height, width = features.shape[1], features.shape[2], features.shape[3]
    output = numpy.zeros((num_rois, channels, pooled_h, pooled_w), features.dtype)
    argmax_cells = numpy.full((num_rois, channels, pooled_h, pooled_w), -1, numpy.int32)
    for roi_index in prange(num_rois):
        batch_index = int(quantized_rois[roi_index, 0])
        start_x, start_y = int(quantized_rois[roi_index, 1]), int(quantized_rois[roi_index, 2])
        end_x, end_y = int(quantized_rois[roi_index, 3]), int(quantized_rois[roi_index, 4])
        roi_h, roi_w = roi_pool_size(start_y, end_y), roi_pool_size(start_x, end_x)
        # the bins' edges are the same for all channels: computed once per RoI here, while a
        # GPU thread computes those of its own bin
        h_starts, h_ends = numpy.empty(pooled_h, numpy.int64), numpy.empty(pooled_h, numpy.int64)
        w_starts, w_ends = numpy.empty(pooled_w, numpy.int64), numpy.empty(pooled_w, numpy.int64)
        for ph in range(pooled_h):
            h_starts[ph], h_ends[ph] = roi_pool_bin_range(start_y, roi_h, pooled_h, ph, height,
                                                          in_float32)
        for pw in range(pooled_w):
            w_starts[pw], w_ends[pw] = roi_pool_bin_range(start_x, roi_w, pooled_w, pw, width,
                                                          in_float32)
        for c in range(channels):
            feature_map = features[batch_index, c]  # (H, W), a view
            for ph in range(pooled_h):
                for pw in range(pooled_w):
                    best_value = -numpy.inf
                    best_cell = -1
                    for y in range(h_starts[ph], h_ends[ph]):
                        for x in range(w_starts[pw], w_ends[pw]):
                            value = feature_map[y, x]
                            if value > best_value:
                                best_value = value
                                best_cell = y * width + x
                    if best_cell >= 0:  # an empty bin keeps 0 and passes no gradient
                        output[roi_index, c, ph, pw] = best_value
                        argmax_cells[roi_index, c, ph, pw] = best_cell
    return output, argmax_cells


@njit(cache=True, parallel=True)
def roi_pool_backward_cpu(grad_output, quantized_rois, argmax_cells, num_images, height, width):
    """grad_output (K, C, PH, PW) C-contiguous -> grad_features (N, C, H, W), as the reference."""
    num_rois, channels, pooled_h, pooled_w = grad_output.shape
    grad_features = numpy.zeros((num_images, channels, height, width), grad_output.dtype)
    for c in prange(channels):  # a thread owns whole channels: no cell shared
        for roi_index in range(num_rois):
            batch_index = int(quantized_rois[roi_index, 0])
            grad_plane = grad_features[batch_index, c].ravel()  # (H * W,), a view
            for ph in range(pooled_h):
                for pw in range(pooled_w):
                    best_cell = argmax_cells[roi_index, c, ph, pw]
                    if best_cell >= 0:
                        grad_plane[best_cell] += grad_output[roi_index, c, ph, pw]
    return grad_features
