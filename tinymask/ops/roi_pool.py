"""RoIPool, the public function: check the inputs, pick the kernel, record the gradient.

Fast R-CNN's RoI pooling, the baseline of Mask R-CNN's Table 2c; the exact semantics are
torchvision's (REFERENCE.md §1). Shape letters:
    N, C, H, W   the feature map
    K            RoIs, rows ``[batch_index, x1, y1, x2, y2]`` in image pixels
    PH, PW       output bins per RoI

Where each call runs:
    * NumPy features -> ``roi_pool_cpu`` (Numba, on the host);
    * CuPy features  -> ``roi_pool_cuda`` (Numba CUDA, on the device; the host reads back
      one flag, whether any batch index is out of range: ``roi_inputs.rois_from_boxes``);
``roi_pool_reference`` is the readable loop that both are tested against.
"""

from __future__ import annotations

import numpy

from tinymask.autograd import Function
from tinymask.backend import array_module, is_cupy_array
from tinymask.ops import roi_geometry, roi_pool_cpu
from tinymask.ops.roi_geometry import quantize_rois
from tinymask.ops.roi_inputs import check_features, pooled_size, rois_from_boxes
from tinymask.tensor import Tensor, unwrap


def roi_pool(input, boxes, output_size, spatial_scale=1.0, bins_in_input_dtype=False) -> Tensor:
    """Max-pool every RoI over a PH x PW grid of bins snapped to whole feature cells.

    input:          features ``(N, C, H, W)``, a Tensor (gradients flow back to it) or an
                    array; float32 or float64, NumPy or CuPy.
    boxes:          ``(K, 5)`` rows ``[batch_index, x1, y1, x2, y2]`` in image pixels, or a list
                    of ``(Ki, 4)`` arrays ``[x1, y1, x2, y2]``, one per image. No gradient.
    output_size:    ``PH`` (square) or ``(PH, PW)``.
    spatial_scale:  feature cells per image pixel, 1 / stride (1/16 for C4).
    bins_in_input_dtype: round the corners and compute the bin edges in the features' dtype,
                    as torchvision does, instead of in float64 (a float32 map then pools a
                    few RoI sizes one cell differently; see ``roi_pool_bin_range``).

    The corners are rounded to cells with C's ``round`` (half away from zero), both ends
    included: ``roi_w = max(round(x2 * scale) - round(x1 * scale) + 1, 1)``; bin edges are
    rounded outwards (floor the start, ceil the end) and clipped to the map; an empty bin
    outputs 0. Returns a Tensor ``(K, C, PH, PW)`` in the input's dtype, on its device.
    """
    features = unwrap(input)
    check_features(features, "roi_pool")
    rois = rois_from_boxes(boxes, features, "roi_pool")
    return roi_pool_on_rois(input, rois, pooled_size(output_size, "roi_pool"), spatial_scale,
                            bins_in_input_dtype)


def roi_pool_on_rois(input, rois, output_size, spatial_scale, bins_in_input_dtype) -> Tensor:
    """``roi_pool`` on RoIs that ``rois_from_boxes`` has already checked and converted, with
    ``output_size`` a pair ``(PH, PW)`` (the pooler's per-level call)."""
    pooled_h, pooled_w = output_size
    in_float32 = bins_in_input_dtype and unwrap(input).dtype == numpy.float32
    if in_float32:  # torchvision multiplies the corners by the scale in float32 too
        rois, spatial_scale = rois.astype(numpy.float32), numpy.float32(spatial_scale)
    # RoIPool's first step, for all RoIs at once: corners to whole cells
    quantized_rois = quantize_rois(rois, spatial_scale).astype(numpy.float64)
    return RoIPoolFunction.apply(input, quantized_rois, pooled_h, pooled_w, in_float32)


def _kernels(array):
    """The module whose kernels run where ``array`` lives."""
    roi_geometry.run_once_in_python("pool")  # the shared geometry, before a kernel compiles it
    if is_cupy_array(array):
        # numba.cuda comes with the "gpu" extra and takes a moment to import: only GPU
        # callers pay for it.
        from tinymask.ops import roi_pool_cuda  # noqa: PLC0415

        return roi_pool_cuda.roi_pool_forward_cuda, roi_pool_cuda.roi_pool_backward_cuda
    return roi_pool_cpu.roi_pool_forward_cpu, roi_pool_cpu.roi_pool_backward_cpu


class RoIPoolFunction(Function):
    """RoIPool as a differentiable op: the gradient flows to the features only."""

    @staticmethod
    def forward(ctx, features, quantized_rois, pooled_h, pooled_w, in_float32):
        forward_kernel, _ = _kernels(features)
        features = array_module(features).ascontiguousarray(features)
        output, argmax_cells = forward_kernel(features, quantized_rois, pooled_h, pooled_w,
                                              in_float32)
        ctx.save_for_backward(quantized_rois, argmax_cells)
        ctx.features_shape, ctx.features_dtype = features.shape, features.dtype
        return output

    @staticmethod
    def backward(ctx, grad_output):
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None
        quantized_rois, argmax_cells = ctx.saved_tensors
        _, backward_kernel = _kernels(grad_output)
        grad_output = array_module(grad_output).ascontiguousarray(grad_output,
                                                                  dtype=ctx.features_dtype)
        num_images, _, height, width = ctx.features_shape
        grad_features = backward_kernel(grad_output, quantized_rois, argmax_cells, num_images,
                                        height, width)
        return grad_features, None, None, None, None
