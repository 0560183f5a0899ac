"""RoIPool, the slow loop that defines it (Fast R-CNN §2.1; REFERENCE.md §1).

The baseline of Mask R-CNN's Table 2c. RoIPool quantizes twice: it rounds the RoI's corners
to feature cells, then splits the rounded box into PH x PW bins whose edges are rounded
outwards to whole cells, and max-pools each bin. Each rounding moves the pooled features by
up to half a cell (a stride of 16 makes that 8 image pixels): harmless for classification,
costly for pixel-accurate masks, which is what RoIAlign fixes.

Shape letters:
    N, C, H, W   the feature map ``features``
    K            RoIs, rows ``[batch_index, x1, y1, x2, y2]`` in image pixels
    PH, PW       output bins per RoI

This is the version to read; ``roi_pool_cpu`` (Numba) and ``roi_pool_cuda`` (Numba CUDA)
compute the same thing fast and the tests hold both to these loops. The rounding and the bin
edges come from ``roi_geometry``, which all three share.
"""

from __future__ import annotations

import numpy

from tinymask.ops.roi_geometry import quantize_rois, roi_pool_bin_range, roi_pool_size


def roi_pool_forward_reference(features, rois, pooled_h, pooled_w, spatial_scale=1.0,
                               bins_in_input_dtype=False):
    """Max-pool every RoI of ``rois`` (K, 5) from ``features`` (N, C, H, W) into (PH, PW) bins.

    ``bins_in_input_dtype``: round the corners and compute the bin edges in the features'
    dtype, as torchvision does, instead of float64 (see ``roi_pool_bin_range``).

    Returns ``(output, argmax_cells)``: ``output`` (K, C, PH, PW) in the features' dtype and
    ``argmax_cells`` (K, C, PH, PW) int32, the flat index ``y * W + x`` of each maximum
    within its feature map (-1 for an empty bin), which the backward needs.
    """
    num_rois, channels, height, width = len(rois), *features.shape[1:]
    output = numpy.zeros((num_rois, channels, pooled_h, pooled_w), dtype=features.dtype)
    argmax_cells = numpy.full(output.shape, -1, dtype=numpy.int32)
    in_float32 = bins_in_input_dtype and features.dtype == numpy.float32
    rois = numpy.asarray(rois, dtype=numpy.float32 if in_float32 else numpy.float64)
    scale = numpy.float32(spatial_scale) if in_float32 else spatial_scale
    # step 1: round the corners to whole cells (C's round: half away from zero)
    quantized = quantize_rois(rois, scale).tolist()
    for roi_index, (batch_index, start_x, start_y, end_x, end_y) in enumerate(quantized):
        start_x, start_y, end_x, end_y = int(start_x), int(start_y), int(end_x), int(end_y)
        roi_h, roi_w = roi_pool_size(start_y, end_y), roi_pool_size(start_x, end_x)
        for c in range(channels):
            feature_map = features[int(batch_index), c]  # (H, W)
            for ph in range(pooled_h):
                # step 2: the bin's rows and columns, its edges rounded outwards
                h_start, h_end = roi_pool_bin_range(start_y, roi_h, pooled_h, ph, height,
                                                    in_float32)
                for pw in range(pooled_w):
                    w_start, w_end = roi_pool_bin_range(start_x, roi_w, pooled_w, pw, width,
                                                        in_float32)
                    cells = [(feature_map[y, x], y * width + x)
                             for y in range(h_start, h_end) for x in range(w_start, w_end)]
                    if not cells:
                        continue  # a bin clipped away by the map's edge outputs 0
                    # step 3: the max of the bin (the first one, if several are equal)
                    value, cell = max(cells, key=lambda value_and_cell: value_and_cell[0])
                    output[roi_index, c, ph, pw] = value
                    argmax_cells[roi_index, c, ph, pw] = cell
    return output, argmax_cells


def roi_pool_backward_reference(grad_output, rois, argmax_cells, features_shape):
    """The gradient w.r.t. ``features`` (N, C, H, W): each bin's gradient goes, whole, to the
    cell that held its maximum (nowhere for an empty bin). The RoIs get no gradient."""
    grad_features = numpy.zeros(features_shape, dtype=grad_output.dtype)
    channels, pooled_h, pooled_w = grad_output.shape[1:]
    for roi_index, batch_index in enumerate(numpy.asarray(rois)[:, 0].tolist()):
        for c in range(channels):
            grad_map = grad_features[int(batch_index), c].reshape(-1)  # (H * W,), a view
            for ph in range(pooled_h):
                for pw in range(pooled_w):
                    cell = argmax_cells[roi_index, c, ph, pw]
                    if cell >= 0:
                        grad_map[cell] += grad_output[roi_index, c, ph, pw]
    return grad_features
