"""RoIAlign on the CPU: Numba kernels (REFERENCE.md §1).

Same result as ``roi_align_reference``, which is the version to read first.

Shape letters:
    N, C, H, W   the feature map
    K            RoIs, rows ``[batch_index, x1, y1, x2, y2]`` in image pixels (float64)
    PH, PW       output bins per RoI
    S            samples of one RoI: PH * PW * grid_h * grid_w

Twin of ``roi_align_cuda``: the same names, the same loops over RoI (``roi_index``), bin
``(ph, pw)``, sample ``(iy, ix)`` and channel ``c``, with three differences, all for speed:
1. where a sample reads, and with which weights, depends on the RoI but not on the channel,
   so it is computed once per RoI into a table (torchvision's "pre_calc") that all channels
   reuse; a GPU thread, which owns one output element, computes its own;
2. the channel loop is the innermost one, over a channels-last copy of the map
   (N, H, W, C): a sample's four cells are then four runs of C contiguous values, and one
   bilinear read serves every channel in a few vector instructions. The map is small next
   to the work on it (one copy of it per call; the backward's gradient is copied back);
3. the backward wraps those loops in a loop over blocks of channels, one per thread.
For one channel the arithmetic is the reference's, in the same order: the same bits.

Threads (``prange``):
* forward: RoIs in parallel. Each RoI writes only its own rows of the output.
* backward: the gradient flows the other way, and RoIs that overlap send gradient to the
  same cells of ``grad_features``; two threads adding to one cell at the same moment lose
  one of the updates. So the threads split the channels instead: thread t owns a block of
  channels, visits every RoI for those channels only, and writes only their values. No
  value is written by two threads, and every run gives the same bits. Each thread builds
  each RoI's table for itself, a small cost next to the work on its channels. (The other
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


def channels_last(features):
    """(N, C, H, W) -> (N, H * W, C) C-contiguous: row ``y * W + x`` holds cell (y, x) of
    every channel."""
    num_images, channels, height, width = features.shape
    return numpy.ascontiguousarray(features.transpose(0, 2, 3, 1)).reshape(
        num_images, height * width, channels)


def roi_align_forward_cpu(features, rois, pooled_h, pooled_w, spatial_scale, sampling_ratio,
                          aligned, take_max):
    """features (N, C, H, W), rois (K, 5) float64 ->
    ``(output (K, C, PH, PW), argmax_samples (K, C, PH, PW) int32, or (0, 0, 0, 0) for the
    average)``, as the reference."""
    return roi_align_forward_kernel(channels_last(features), rois, features.shape[2],
                                    features.shape[3], pooled_h, pooled_w, spatial_scale,
                                    sampling_ratio, aligned, take_max)


@njit(cache=True, parallel=True)
def roi_align_forward_kernel(cells, rois, height, width, pooled_h, pooled_w, spatial_scale,
                             sampling_ratio, aligned, take_max):
    """cells: the map channels last, (N, H * W, C); the rest as ``roi_align_forward_cpu``."""
    num_rois, channels = rois.shape[0], cells.shape[2]
    output = numpy.empty((num_rois, channels, pooled_h, pooled_w), cells.dtype)  # all set
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
        image_cells = cells[batch_index]  # (H * W, C)
        pooled = numpy.empty(channels, numpy.float64)  # this bin, every channel
        best_sample = numpy.empty(channels, numpy.int64)  # the width of pooled: vectorises
        for ph in range(pooled_h):
            for pw in range(pooled_w):
                # this bin's samples are rows first_sample + iy * grid_w + ix of the table
                first_sample = (ph * pooled_w + pw) * samples_per_bin
                for c in range(channels):
                    pooled[c] = -numpy.inf if take_max else 0.0
                    best_sample[c] = -1
                for sample in range(samples_per_bin):
                    row = first_sample + sample
                    top_left, top_right = cell_offsets[row, 0], cell_offsets[row, 1]
                    bottom_left, bottom_right = cell_offsets[row, 2], cell_offsets[row, 3]
                    w_top_left, w_top_right = cell_weights[row, 0], cell_weights[row, 1]
                    w_bottom_left, w_bottom_right = cell_weights[row, 2], cell_weights[row, 3]
                    # the bilinear read, every channel at once (two loops: each vectorises)
                    if take_max:
                        for c in range(channels):
                            value = (w_top_left * image_cells[top_left, c]
                                     + w_top_right * image_cells[top_right, c]
                                     + w_bottom_left * image_cells[bottom_left, c]
                                     + w_bottom_right * image_cells[bottom_right, c])
                            larger = value > pooled[c]
                            pooled[c] = value if larger else pooled[c]
                            best_sample[c] = sample if larger else best_sample[c]
                    else:
                        for c in range(channels):
                            pooled[c] += (w_top_left * image_cells[top_left, c]
                                          + w_top_right * image_cells[top_right, c]
                                          + w_bottom_left * image_cells[bottom_left, c]
                                          + w_bottom_right * image_cells[bottom_right, c])
                for c in range(channels):
                    if take_max:
                        # a bin without samples outputs 0 and passes no gradient
                        output[roi_index, c, ph, pw] = pooled[c] if best_sample[c] >= 0 else 0.0
                        argmax_samples[roi_index, c, ph, pw] = best_sample[c]
                    else:
                        output[roi_index, c, ph, pw] = pooled[c] / count
    return output, argmax_samples


def roi_align_backward_cpu(grad_output, rois, argmax_samples, num_images, height, width,
                           spatial_scale, sampling_ratio, aligned, take_max):
    """grad_output (K, C, PH, PW) C-contiguous -> grad_features (N, C, H, W), as the reference."""
    channels = grad_output.shape[1]
    # one block of channels per thread (asked here: Numba cannot cache a kernel that asks)
    num_blocks = min(numba.get_num_threads(), channels)
    grad_cells = roi_align_backward_kernel(grad_output, rois, argmax_samples, num_images,
                                           height, width, spatial_scale, sampling_ratio,
                                           aligned, take_max, num_blocks)  # (N, H * W, C)
    return numpy.ascontiguousarray(
        grad_cells.reshape(num_images, height, width, channels).transpose(0, 3, 1, 2))


@njit(cache=True, parallel=True)
def roi_align_backward_kernel(grad_output, rois, argmax_samples, num_images, height, width,
                              spatial_scale, sampling_ratio, aligned, take_max, num_blocks):
    """-> the gradient channels last, (N, H * W, C)."""
    num_rois, channels, pooled_h, pooled_w = grad_output.shape
    grad_cells = numpy.zeros((num_images, height * width, channels), grad_output.dtype)
    for block in prange(num_blocks):  # a thread owns a block of channels: no value shared
        # unsigned: Numba then skips its negative-index check, and the channel loops vectorise
        first_c = numba.uint64(block * channels // num_blocks)
        end_c = numba.uint64((block + 1) * channels // num_blocks)
        shares = numpy.empty(channels, numpy.float64)  # one bin's gradient per sample
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
            image_grad = grad_cells[batch_index]  # (H * W, C)
            if take_max:  # all of the gradient to the sample that was the max
                for c in range(first_c, end_c):  # per channel: its argmax rows are contiguous
                    for ph in range(pooled_h):
                        for pw in range(pooled_w):
                            best_sample = argmax_samples[roi_index, c, ph, pw]
                            if best_sample >= 0:
                                row = (ph * pooled_w + pw) * samples_per_bin + best_sample
                                grad = grad_output[roi_index, c, ph, pw]
                                for corner in range(4):
                                    image_grad[cell_offsets[row, corner], c] += (
                                        grad * cell_weights[row, corner])
                continue
            for ph in range(pooled_h):
                for pw in range(pooled_w):
                    first_sample = (ph * pooled_w + pw) * samples_per_bin
                    # an equal share to every sample of the average
                    for c in range(first_c, end_c):
                        shares[c] = grad_output[roi_index, c, ph, pw] / count
                    for row in range(first_sample, first_sample + samples_per_bin):
                        for corner in range(4):  # hand each share to the cells it read
                            offset, weight = cell_offsets[row, corner], cell_weights[row, corner]
                            for c in range(first_c, end_c):
                                image_grad[offset, c] += shares[c] * weight
    return grad_cells
