"""RoIAlign on the CPU: Numba kernels (REFERENCE.md §1).

Same result as ``roi_align_reference``, which is the version to read first.

Shape letters:
    N, C, H, W   the feature map
    K            RoIs, rows ``[batch_index, x1, y1, x2, y2]`` in image pixels (float64)
    PH, PW       output bins per RoI
    S            samples of one RoI: PH * PW * grid_h * grid_w

Twin of ``roi_align_cuda``: the same names and the same loop order, RoI (``roi_index``),
channel ``c``, bin ``(ph, pw)``, sample ``(iy, ix)``, with two differences, both for speed:
1. where a sample reads, and with which weights, depends on the RoI but not on the channel,
   so it is computed once per RoI into a table (torchvision's "pre_calc") that all channels
   reuse; a GPU thread, which owns one output element, computes its own;
2. the backward wraps those loops in a loop over blocks of channels, one per thread.

Threads (``prange``):
* forward: RoIs in parallel. Each RoI writes only its own rows of the output.
* backward: the gradient flows the other way, and RoIs that overlap send gradient to the
  same cells of ``grad_features``; two threads adding to one cell at the same moment lose
  one of the updates. So the threads split the channels instead: thread t owns a block of
  channels, visits every RoI for those channels only, and writes only their planes. No cell
  is written by two threads, and every run gives the same bits. Each thread builds each
  RoI's table for itself, a small cost next to the work on its channels. (The other
  race-free choices: a private copy of ``grad_features`` per thread, summed at the end,
  costs N*C*H*W floats per thread; one thread per image leaves threads idle when N = 1; a
  parallel loop over channels inside a loop over RoIs starts K parallel regions, and each
  waits for the slowest thread, which is slow when another program shares the cores.)
"""

from __future__ import annotations

import numba
import numpy
from numba import njit, prange

from tinymask.ops import roi_geometry

# the shared geometry, compiled for the CPU from the same source as the reference uses
roi_align_geometry = njit(roi_geometry.roi_align_geometry)
sample_coordinate = njit(roi_geometry.sample_coordinate)
bilinear_weights = njit(roi_geometry.bilinear_weights)


@njit(cache=True)
def bilinear_table(start_y, start_x, bin_h, bin_w, grid_h, grid_w, pooled_h, pooled_w,
                   height, width):
    """Where every sample of one RoI reads: ``cell_offsets`` (S, 4), the flat offsets
    ``y * W + x`` of its four cells, and ``cell_weights`` (S, 4), their bilinear weights.
    Rows follow the loop order (ph, pw, iy, ix)."""
    num_samples = pooled_h * pooled_w * grid_h * grid_w
    # unsigned offsets: Numba then skips its negative-index check on each read of the inner
    # loop, which is most of the work
    cell_offsets = numpy.zeros((num_samples, 4), numpy.uint32)
    cell_weights = numpy.zeros((num_samples, 4), numpy.float64)
    sample = 0
    for ph in range(pooled_h):
        for pw in range(pooled_w):
            for iy in range(grid_h):
                y = sample_coordinate(start_y, bin_h, ph, iy, grid_h)
                for ix in range(grid_w):
                    x = sample_coordinate(start_x, bin_w, pw, ix, grid_w)
                    (y_low, x_low, y_high, x_high, w_top_left, w_top_right, w_bottom_left,
                     w_bottom_right) = bilinear_weights(y, x, height, width)
                    if y_low >= 0:  # a sample outside the map keeps weights 0: it reads 0
                        cell_offsets[sample, 0] = y_low * width + x_low
                        cell_offsets[sample, 1] = y_low * width + x_high
                        cell_offsets[sample, 2] = y_high * width + x_low
                        cell_offsets[sample, 3] = y_high * width + x_high
                        cell_weights[sample, 0] = w_top_left
                        cell_weights[sample, 1] = w_top_right
                        cell_weights[sample, 2] = w_bottom_left
                        cell_weights[sample, 3] = w_bottom_right
                    sample += 1
    return cell_offsets, cell_weights


@njit
def read_sample(feature_plane, cell_offsets, cell_weights, sample):
    """The bilinear read of ``sample``: its four cells of ``feature_plane``, weighted."""
    return (cell_weights[sample, 0] * feature_plane[cell_offsets[sample, 0]]
            + cell_weights[sample, 1] * feature_plane[cell_offsets[sample, 1]]
            + cell_weights[sample, 2] * feature_plane[cell_offsets[sample, 2]]
            + cell_weights[sample, 3] * feature_plane[cell_offsets[sample, 3]])


@njit(cache=True, parallel=True)
def roi_align_forward_cpu(features, rois, pooled_h, pooled_w, spatial_scale, sampling_ratio,
                          aligned, take_max):
    """features (N, C, H, W) C-contiguous, rois (K, 5) float64 ->
    ``(output (K, C, PH, PW), argmax_samples (K, C, PH, PW) int32, or (0, 0, 0, 0) for the
    average)``, as the reference."""
    num_rois = rois.shape[0]
    channels, height, width = features.shape[1], features.shape[2], features.shape[3]
    output = numpy.empty((num_rois, channels, pooled_h, pooled_w), features.dtype)  # all set
    # only the max needs to remember its sample: the average gets an empty array
    argmax_shape = (num_rois, channels, pooled_h, pooled_w) if take_max else (0, 0, 0, 0)
    argmax_samples = numpy.full(argmax_shape, -1, numpy.int32)
    for roi_index in prange(num_rois):
        batch_index = int(rois[roi_index, 0])
        start_y, start_x, bin_h, bin_w, grid_h, grid_w = roi_align_geometry(
            rois[roi_index, 1], rois[roi_index, 2], rois[roi_index, 3], rois[roi_index, 4],
            spatial_scale, aligned, pooled_h, pooled_w, sampling_ratio)
        samples_per_bin = grid_h * grid_w
        count = max(samples_per_bin, 1)
        cell_offsets, cell_weights = bilinear_table(
            start_y, start_x, bin_h, bin_w, grid_h, grid_w, pooled_h, pooled_w, height, width)
        for c in range(channels):
            feature_plane = features[batch_index, c].ravel()  # (H * W,), a view
            for ph in range(pooled_h):
                for pw in range(pooled_w):
                    # this bin's samples are rows first_sample + iy * grid_w + ix of the table
                    first_sample = (ph * pooled_w + pw) * samples_per_bin
                    if take_max:
                        pooled, best_sample = -numpy.inf, -1
                        for sample in range(samples_per_bin):
                            value = read_sample(feature_plane, cell_offsets, cell_weights,
                                                first_sample + sample)
                            if value > pooled:
                                pooled, best_sample = value, sample
                        # a bin without samples outputs 0 and passes no gradient
                        output[roi_index, c, ph, pw] = pooled if best_sample >= 0 else 0.0
                        argmax_samples[roi_index, c, ph, pw] = best_sample
                    else:
                        total = 0.0
                        for sample in range(first_sample, first_sample + samples_per_bin):
                            total += read_sample(feature_plane, cell_offsets, cell_weights,
                                                 sample)
                        output[roi_index, c, ph, pw] = total / count
    return output, argmax_samples


@njit
def add_sample_gradient(grad_plane, cell_offsets, cell_weights, sample, grad):
    """Hand ``grad`` to the four cells that ``sample`` read, with its bilinear weights."""
    for corner in range(4):
        grad_plane[cell_offsets[sample, corner]] += grad * cell_weights[sample, corner]


def roi_align_backward_cpu(grad_output, rois, argmax_samples, num_images, height, width,
                           spatial_scale, sampling_ratio, aligned, take_max):
    """grad_output (K, C, PH, PW) C-contiguous -> grad_features (N, C, H, W), as the reference."""
    # one block of channels per thread (asked here: Numba cannot cache a kernel that asks)
    num_blocks = min(numba.get_num_threads(), grad_output.shape[1])
    return roi_align_backward_kernel(grad_output, rois, argmax_samples, num_images, height,
                                     width, spatial_scale, sampling_ratio, aligned, take_max,
                                     num_blocks)


@njit(cache=True, parallel=True)
def roi_align_backward_kernel(grad_output, rois, argmax_samples, num_images, height, width,
                              spatial_scale, sampling_ratio, aligned, take_max, num_blocks):
    num_rois, channels, pooled_h, pooled_w = grad_output.shape
    grad_features = numpy.zeros((num_images, channels, height, width), grad_output.dtype)
    for block in prange(num_blocks):  # a thread owns a block of channels: no cell shared
        first_c, end_c = block * channels // num_blocks, (block + 1) * channels // num_blocks
        for roi_index in range(num_rois):
            batch_index = int(rois[roi_index, 0])
            start_y, start_x, bin_h, bin_w, grid_h, grid_w = roi_align_geometry(
                rois[roi_index, 1], rois[roi_index, 2], rois[roi_index, 3], rois[roi_index, 4],
                spatial_scale, aligned, pooled_h, pooled_w, sampling_ratio)
            samples_per_bin = grid_h * grid_w
            count = max(samples_per_bin, 1)
            cell_offsets, cell_weights = bilinear_table(
                start_y, start_x, bin_h, bin_w, grid_h, grid_w, pooled_h, pooled_w, height,
                width)
            for c in range(first_c, end_c):
                grad_plane = grad_features[batch_index, c].ravel()  # (H * W,), a view
                for ph in range(pooled_h):
                    for pw in range(pooled_w):
                        first_sample = (ph * pooled_w + pw) * samples_per_bin
                        if take_max:  # all of the gradient to the sample that was the max
                            best_sample = argmax_samples[roi_index, c, ph, pw]
                            if best_sample >= 0:
                                add_sample_gradient(grad_plane, cell_offsets, cell_weights,
                                                    first_sample + best_sample,
                                                    grad_output[roi_index, c, ph, pw])
                        else:  # an equal share to every sample of the average
                            grad = grad_output[roi_index, c, ph, pw] / count
                            for sample in range(first_sample, first_sample + samples_per_bin):
                                add_sample_gradient(grad_plane, cell_offsets, cell_weights,
                                                    sample, grad)
    return grad_features
