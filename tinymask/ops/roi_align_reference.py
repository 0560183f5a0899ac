"""RoIAlign, the slow loop that defines it (Mask R-CNN §3, Figure 3; REFERENCE.md §1).

RoIPool snaps a RoI to the feature grid twice, its corners and its bin edges, so the pooled
features are misaligned with the object. RoIAlign rounds nothing: it cuts the RoI into
PH x PW equal bins, reads a few regularly spaced sample points in each bin by bilinear
interpolation of the four nearest cells, and averages them (or takes the max: Table 2c).

Shape letters:
    N, C, H, W   the feature map ``features``
    K            RoIs, rows ``[batch_index, x1, y1, x2, y2]`` in image pixels
    PH, PW       output bins per RoI

This is the version to read; ``roi_align_cpu`` (Numba) and ``roi_align_cuda`` (Numba CUDA)
compute the same thing fast and the tests hold both to these loops. Where the samples sit
comes from ``roi_geometry``, which all three share.
"""

from __future__ import annotations

import numpy

from tinymask.ops.roi_geometry import bilinear_weights, roi_align_geometry, sample_coordinate


def bilinear_read(feature_map, y, x):
    """The value of one ``(H, W)`` map at the continuous point ``(y, x)``; 0 far outside."""
    height, width = feature_map.shape
    y_low, x_low, y_high, x_high, w_top_left, w_top_right, w_bottom_left, w_bottom_right = (
        bilinear_weights(y, x, height, width))
    if y_low < 0:
        return 0.0
    return float(w_top_left * feature_map[y_low, x_low] + w_top_right * feature_map[y_low, x_high]
                 + w_bottom_left * feature_map[y_high, x_low]
                 + w_bottom_right * feature_map[y_high, x_high])


def roi_align_forward_reference(features, rois, pooled_h, pooled_w, spatial_scale=1.0,
                                sampling_ratio=-1, aligned=False, aggregation="avg"):
    """Pool every RoI of ``rois`` (K, 5) from ``features`` (N, C, H, W) into (PH, PW) bins.

    Returns ``(output, argmax_samples)``: ``output`` (K, C, PH, PW) in the features' dtype,
    and for ``aggregation="max"`` the sample each maximum came from (``iy * grid_w + ix``,
    int32, -1 for a bin without samples), which the backward needs; for "avg", which needs
    none, an empty ``(0, 0, 0, 0)`` array.
    """
    num_rois, channels = len(rois), features.shape[1]
    output = numpy.zeros((num_rois, channels, pooled_h, pooled_w), dtype=features.dtype)
    argmax_samples = numpy.full(output.shape if aggregation == "max" else (0, 0, 0, 0), -1,
                                dtype=numpy.int32)
    for roi_index, (batch_index, x1, y1, x2, y2) in enumerate(numpy.asarray(rois).tolist()):
        start_y, start_x, bin_h, bin_w, grid_h, grid_w = roi_align_geometry(
            x1, y1, x2, y2, spatial_scale, aligned, pooled_h, pooled_w, sampling_ratio)
        for c in range(channels):
            # (H, W), read in float64 whatever the features' dtype, as the kernels do
            feature_map = numpy.asarray(features[int(batch_index), c], dtype=numpy.float64)
            for ph in range(pooled_h):
                for pw in range(pooled_w):
                    samples = [
                        bilinear_read(feature_map,
                                      sample_coordinate(start_y, bin_h, ph, iy, grid_h),
                                      sample_coordinate(start_x, bin_w, pw, ix, grid_w))
                        for iy in range(grid_h) for ix in range(grid_w)
                    ]
                    if not samples:
                        continue  # a RoI of zero size has no samples: its bins output 0
                    if aggregation == "max":
                        best = max(range(len(samples)), key=samples.__getitem__)  # first max
                        output[roi_index, c, ph, pw] = samples[best]
                        argmax_samples[roi_index, c, ph, pw] = best
                    else:
                        # samples outside the map read 0 and still count in the average
                        output[roi_index, c, ph, pw] = sum(samples) / len(samples)
    return output, argmax_samples


def roi_align_backward_reference(grad_output, rois, argmax_samples, features_shape,
                                 spatial_scale=1.0, sampling_ratio=-1, aligned=False,
                                 aggregation="avg"):
    """The gradient of the loss w.r.t. ``features`` (N, C, H, W), given ``grad_output``.

    Every sample hands its share of its bin's gradient (1 / samples for "avg"; all of it
    for the arg-max sample of "max") to the four cells it read, with its bilinear weights.
    The RoIs themselves get no gradient.
    """
    height, width = features_shape[2], features_shape[3]
    grad_features = numpy.zeros(features_shape, dtype=grad_output.dtype)
    channels, pooled_h, pooled_w = grad_output.shape[1:]
    for roi_index, (batch_index, x1, y1, x2, y2) in enumerate(numpy.asarray(rois).tolist()):
        start_y, start_x, bin_h, bin_w, grid_h, grid_w = roi_align_geometry(
            x1, y1, x2, y2, spatial_scale, aligned, pooled_h, pooled_w, sampling_ratio)
        for c in range(channels):
            grad_map = grad_features[int(batch_index), c]  # (H, W), a view
            for ph in range(pooled_h):
                for pw in range(pooled_w):
                    grad = float(grad_output[roi_index, c, ph, pw])
                    for iy in range(grid_h):
                        for ix in range(grid_w):
                            if aggregation == "max":
                                if iy * grid_w + ix != argmax_samples[roi_index, c, ph, pw]:
                                    continue  # only the sample that was the max
                                share = 1.0
                            else:
                                share = 1.0 / (grid_h * grid_w)  # one term of the average
                            y = sample_coordinate(start_y, bin_h, ph, iy, grid_h)
                            x = sample_coordinate(start_x, bin_w, pw, ix, grid_w)
                            (y_low, x_low, y_high, x_high, w_top_left, w_top_right,
                             w_bottom_left, w_bottom_right) = bilinear_weights(y, x, height, width)
                            if y_low < 0:
                                continue  # a sample outside the map read 0: no gradient
                            grad_map[y_low, x_low] += grad * share * w_top_left
                            grad_map[y_low, x_high] += grad * share * w_top_right
                            grad_map[y_high, x_low] += grad * share * w_bottom_left
                            grad_map[y_high, x_high] += grad * share * w_bottom_right
    return grad_features
