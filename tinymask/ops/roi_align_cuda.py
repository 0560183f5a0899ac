"""RoIAlign on an NVIDIA GPU: Numba CUDA kernels (REFERENCE.md §1).

Same result as ``roi_align_reference``, which is the version to read first.

Shape letters:
    N, C, H, W   the feature map
    K            RoIs, rows ``[batch_index, x1, y1, x2, y2]`` in image pixels (float64)
    PH, PW       output bins per RoI

One thread per output element ``(roi_index, c, ph, pw)``, K * C * PH * PW threads in all;
each computes its RoI's geometry and its own samples (``iy``, ``ix``). Twin of
``roi_align_cpu``: the same names and loop order; the CPU computes the samples' weights
once per RoI and shares them between channels, a thread here computes its own.

Backward: the thread of an output element adds its gradient into the four cells of each of
its samples. Threads of overlapping RoIs (and neighbouring bins) hit the same cells, so the
additions are atomic (``cuda.atomic.add``). Atomic float additions land in whatever order
the threads arrive, and float addition is not associative: the gradient can differ in the
last bits from run to run (not deterministic, as Chainer's and torchvision's GPU kernels).

Sample positions and sums are computed in float64, as in the reference and the CPU kernel,
so that all three read the same cells; that is cheap on data-centre GPUs, whose float64 runs
at half the float32 rate, but slow on consumer GPUs, where it runs at 1/32 or 1/64.

Under ``NUMBA_ENABLE_CUDASIM=1`` (the tests without a GPU) the kernels run in Numba's
simulator on NumPy arrays; on a GPU they take CuPy arrays in place and run on CuPy's current
stream, with nothing copied to the host.
"""

from __future__ import annotations

import math

import numpy
from numba import cuda

from tinymask.backend import array_module
from tinymask.ops import roi_geometry
from tinymask.ops.cuda_launch import THREADS_PER_BLOCK, blocks_for, kernel_arguments

# the shared geometry, compiled for the GPU from the same source as the reference uses
roi_align_geometry = cuda.jit(device=True)(roi_geometry.roi_align_geometry)
sample_coordinate = cuda.jit(device=True)(roi_geometry.sample_coordinate)
bilinear_weights = cuda.jit(device=True)(roi_geometry.bilinear_weights)


@cuda.jit(device=True)
def read_sample(features, batch_index, c, y, x, height, width):
    """The bilinear read of the sample at ``(y, x)`` in channel ``c`` of image ``batch_index``."""
    (y_low, x_low, y_high, x_high, w_top_left, w_top_right, w_bottom_left,
     w_bottom_right) = bilinear_weights(y, x, height, width)
    if y_low < 0:
        return 0.0  # a sample outside the map reads 0
    return (w_top_left * features[batch_index, c, y_low, x_low]
            + w_top_right * features[batch_index, c, y_low, x_high]
            + w_bottom_left * features[batch_index, c, y_high, x_low]
            + w_bottom_right * features[batch_index, c, y_high, x_high])


@cuda.jit(cache=True)
def roi_align_forward_kernel(features, rois, spatial_scale, sampling_ratio, aligned, take_max,
                             output, argmax_samples):
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

    batch_index = int(rois[roi_index, 0])
    start_y, start_x, bin_h, bin_w, grid_h, grid_w = roi_align_geometry(
        rois[roi_index, 1], rois[roi_index, 2], rois[roi_index, 3], rois[roi_index, 4],
        spatial_scale, aligned, pooled_h, pooled_w, sampling_ratio)
    count = max(grid_h * grid_w, 1)
    if take_max:
        pooled, best_sample = -math.inf, -1
        for iy in range(grid_h):
            y = sample_coordinate(start_y, bin_h, ph, iy, grid_h)
            for ix in range(grid_w):
                x = sample_coordinate(start_x, bin_w, pw, ix, grid_w)
                value = read_sample(features, batch_index, c, y, x, height, width)
                if value > pooled:
                    pooled, best_sample = value, iy * grid_w + ix
        # a bin without samples outputs 0 and passes no gradient
        output[roi_index, c, ph, pw] = pooled if best_sample >= 0 else 0.0
        argmax_samples[roi_index, c, ph, pw] = best_sample
    else:
        total = 0.0
        for iy in range(grid_h):
            y = sample_coordinate(start_y, bin_h, ph, iy, grid_h)
            for ix in range(grid_w):
                x = sample_coordinate(start_x, bin_w, pw, ix, grid_w)
                total += read_sample(features, batch_index, c, y, x, height, width)
        output[roi_index, c, ph, pw] = total / count


@cuda.jit(device=True)
def add_sample_gradient(grad_features, batch_index, c, y, x, height, width, grad):
    """Hand ``grad`` to the four cells of the sample at ``(y, x)``, with its bilinear weights."""
    (y_low, x_low, y_high, x_high, w_top_left, w_top_right, w_bottom_left,
     w_bottom_right) = bilinear_weights(y, x, height, width)
    if y_low < 0:
        return  # a sample outside the map read 0: no gradient
    cuda.atomic.add(grad_features, (batch_index, c, y_low, x_low), grad * w_top_left)
    cuda.atomic.add(grad_features, (batch_index, c, y_low, x_high), grad * w_top_right)
    cuda.atomic.add(grad_features, (batch_index, c, y_high, x_low), grad * w_bottom_left)
    cuda.atomic.add(grad_features, (batch_index, c, y_high, x_high), grad * w_bottom_right)


@cuda.jit(cache=True)
def roi_align_backward_kernel(grad_output, rois, argmax_samples, spatial_scale, sampling_ratio,
                              aligned, take_max, grad_features):
    num_rois, channels, pooled_h, pooled_w = grad_output.shape
    height, width = grad_features.shape[2], grad_features.shape[3]
    index = cuda.grid(1)
    if index >= num_rois * channels * pooled_h * pooled_w:
        return
    pw = index % pooled_w
    ph = (index // pooled_w) % pooled_h
    c = (index // (pooled_w * pooled_h)) % channels
    roi_index = index // (pooled_w * pooled_h * channels)

    batch_index = int(rois[roi_index, 0])
    start_y, start_x, bin_h, bin_w, grid_h, grid_w = roi_align_geometry(
        rois[roi_index, 1], rois[roi_index, 2], rois[roi_index, 3], rois[roi_index, 4],
        spatial_scale, aligned, pooled_h, pooled_w, sampling_ratio)
    count = max(grid_h * grid_w, 1)
    if take_max:  # all of the gradient to the sample that was the max
        best_sample = argmax_samples[roi_index, c, ph, pw]
        if best_sample < 0:
            return
        iy = best_sample // grid_w
        ix = best_sample % grid_w
        y = sample_coordinate(start_y, bin_h, ph, iy, grid_h)
        x = sample_coordinate(start_x, bin_w, pw, ix, grid_w)
        add_sample_gradient(grad_features, batch_index, c, y, x, height, width,
                            grad_output[roi_index, c, ph, pw])
    else:  # an equal share to every sample of the average
        grad = grad_output[roi_index, c, ph, pw] / count
        for iy in range(grid_h):
            y = sample_coordinate(start_y, bin_h, ph, iy, grid_h)
            for ix in range(grid_w):
                x = sample_coordinate(start_x, bin_w, pw, ix, grid_w)
                add_sample_gradient(grad_features, batch_index, c, y, x, height, width, grad)


def roi_align_forward_cuda(features, rois, pooled_h, pooled_w, spatial_scale, sampling_ratio,
                           aligned, take_max):
    """features (N, C, H, W) C-contiguous, rois (K, 5) float64 ->
    ``(output (K, C, PH, PW), argmax_samples (K, C, PH, PW) int32, or (0, 0, 0, 0) for the
    average)``, as the reference."""
    xpm = array_module(features)
    num_rois, channels = rois.shape[0], features.shape[1]
    output = xpm.zeros((num_rois, channels, pooled_h, pooled_w), features.dtype)
    # only the max needs to remember its sample: the average gets an empty array
    argmax_samples = xpm.full(output.shape if take_max else (0, 0, 0, 0), -1, numpy.int32)
    if output.size == 0:
        return output, argmax_samples
    stream, (features_view, rois_view, output_view, argmax_view) = kernel_arguments(
        xpm, [features, rois, output, argmax_samples])
    roi_align_forward_kernel[blocks_for(output.size), THREADS_PER_BLOCK, stream](
        features_view, rois_view, spatial_scale, sampling_ratio, aligned, take_max, output_view,
        argmax_view)
    return output, argmax_samples


def roi_align_backward_cuda(grad_output, rois, argmax_samples, num_images, height, width,
                            spatial_scale, sampling_ratio, aligned, take_max):
    """grad_output (K, C, PH, PW) C-contiguous -> grad_features (N, C, H, W), as the reference."""
    xpm = array_module(grad_output)
    channels = grad_output.shape[1]
    grad_features = xpm.zeros((num_images, channels, height, width), grad_output.dtype)
    if grad_output.size == 0:
        return grad_features
    stream, (grad_output_view, rois_view, argmax_view, grad_features_view) = kernel_arguments(
        xpm, [grad_output, rois, argmax_samples, grad_features])
    roi_align_backward_kernel[blocks_for(grad_output.size), THREADS_PER_BLOCK, stream](
        grad_output_view, rois_view, argmax_view, spatial_scale, sampling_ratio, aligned,
        take_max, grad_features_view)
    return grad_features
