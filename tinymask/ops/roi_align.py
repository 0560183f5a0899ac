"""RoIAlign, the public function: check the inputs, pick the kernel, record the gradient.

Mask R-CNN §3 and Table 2c; the exact semantics are REFERENCE.md §1 (torchvision's and
Detectron2's). Shape letters:
    N, C, H, W   the feature map
    K            RoIs, rows ``[batch_index, x1, y1, x2, y2]`` in image pixels
    PH, PW       output bins per RoI

Where each call runs:
    * NumPy features -> ``roi_align_cpu`` (Numba, on the host);
    * CuPy features  -> ``roi_align_cuda`` (Numba CUDA, on the device; the host reads back
      one flag, whether any batch index is out of range: ``roi_inputs.rois_from_boxes``);
``roi_align_reference`` is the readable loop that both are tested against.
"""

from __future__ import annotations

from tinymask.autograd import Function
from tinymask.backend import array_module, is_cupy_array
from tinymask.ops import roi_align_cpu, roi_geometry
from tinymask.ops.roi_inputs import check_aggregation, check_features, pooled_size, rois_from_boxes
from tinymask.tensor import Tensor, unwrap


def roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False,
              aggregation="avg") -> Tensor:
    """Pool every RoI into a fixed PH x PW grid of bilinearly interpolated samples.

    input:          features ``(N, C, H, W)``, a Tensor (gradients flow back to it) or an
                    array; float32 or float64, NumPy or CuPy.
    boxes:          ``(K, 5)`` rows ``[batch_index, x1, y1, x2, y2]`` in image pixels, or a list
                    of ``(Ki, 4)`` arrays ``[x1, y1, x2, y2]``, one per image. No gradient.
    output_size:    ``PH`` (square) or ``(PH, PW)``.
    spatial_scale:  feature cells per image pixel, 1 / stride (0.25 for P2).
    sampling_ratio: samples per bin along each axis; ``<= 0`` adapts to the RoI,
                    ``ceil(roi_h / PH)`` by ``ceil(roi_w / PW)`` (Detectron2's default, 0).
    aligned:        shift the box by -0.5 cell so that samples line up with cell centres
                    (Detectron2's ROIAlignV2). ``False`` is torchvision's default and the
                    paper's original implementation.
    aggregation:    ``"avg"`` (the paper's RoIAlign) or ``"max"`` (Table 2c's "RoIAlign, max").

    Returns a Tensor ``(K, C, PH, PW)`` in the input's dtype, on the input's device.
    """
    features = unwrap(input)
    check_features(features, "roi_align")
    check_aggregation(aggregation, "roi_align")
    rois = rois_from_boxes(boxes, features, "roi_align")
    return roi_align_on_rois(input, rois, pooled_size(output_size, "roi_align"), spatial_scale,
                             sampling_ratio, aligned, aggregation)


def roi_align_on_rois(input, rois, output_size, spatial_scale, sampling_ratio, aligned,
                      aggregation) -> Tensor:
    """``roi_align`` on RoIs that ``rois_from_boxes`` has already checked and converted (a
    C-contiguous ``(K, 5)`` float64 array), with ``output_size`` a pair ``(PH, PW)``: what the
    pooler calls per level, having converted the RoIs of all levels once."""
    pooled_h, pooled_w = output_size
    return RoIAlignFunction.apply(input, rois, pooled_h, pooled_w, float(spatial_scale),
                                  int(sampling_ratio), bool(aligned), aggregation)


def _kernels(array):
    """The module whose kernels run where ``array`` lives."""
    roi_geometry.run_once_in_python("align")  # the shared geometry, before a kernel compiles it
    if is_cupy_array(array):
        # numba.cuda comes with the "gpu" extra and takes a moment to import: only GPU
        # callers pay for it.
        from tinymask.ops import roi_align_cuda  # noqa: PLC0415

        return roi_align_cuda.roi_align_forward_cuda, roi_align_cuda.roi_align_backward_cuda
    return roi_align_cpu.roi_align_forward_cpu, roi_align_cpu.roi_align_backward_cpu


class RoIAlignFunction(Function):
    """RoIAlign as a differentiable op: the gradient flows to the features only.

    RoIWarp reuses it on quantized boxes (``roi_warp``)."""

    @staticmethod
    def forward(ctx, features, rois, pooled_h, pooled_w, spatial_scale, sampling_ratio, aligned,
                aggregation):
        forward_kernel, _ = _kernels(features)
        features = array_module(features).ascontiguousarray(features)
        output, argmax_samples = forward_kernel(features, rois, pooled_h, pooled_w,
                                                spatial_scale, sampling_ratio, aligned,
                                                aggregation == "max")
        ctx.save_for_backward(rois, argmax_samples)
        ctx.features_shape, ctx.features_dtype = features.shape, features.dtype
        ctx.settings = (spatial_scale, sampling_ratio, aligned, aggregation == "max")
        return output

    @staticmethod
    def backward(ctx, grad_output):
        no_grad_for_the_rest = (None,) * 7  # rois, sizes and settings get no gradient
        if not ctx.needs_input_grad[0]:
            return (None, *no_grad_for_the_rest)
        rois, argmax_samples = ctx.saved_tensors
        _, backward_kernel = _kernels(grad_output)
        grad_output = array_module(grad_output).ascontiguousarray(grad_output,
                                                                  dtype=ctx.features_dtype)
        num_images, _, height, width = ctx.features_shape
        grad_features = backward_kernel(grad_output, rois, argmax_samples, num_images, height,
                                        width, *ctx.settings)
        return (grad_features, *no_grad_for_the_rest)
