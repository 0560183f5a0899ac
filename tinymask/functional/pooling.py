"""max_pool2d: the ResNet stem's 3x3/2 pool and FPN's P6 (kernel 1, stride 2).

Shapes: x (N, C, H, W) -> (N, C, OH, OW), OH = (H + 2p - d*(k-1) - 1) // s + 1.
The forward visits the kh*kw window offsets one at a time over the whole map (slices, not
Python loops over pixels), keeping the running max and which offset held it. A strict
``>`` keeps the first maximum in scan order, as torch does, so the backward sends each
gradient to exactly one input position; it adds back with one slice-add per offset.
A 1x1 window (FPN's P6) is plain subsampling.
"""

from __future__ import annotations

from tinymask.autograd import Function
from tinymask.backend import array_module
from tinymask.functional.conv import _pair, conv_output_size


def _window(padded, i, j, stride, dilation, out_size):
    (sh, sw), (dh, dw), (oh, ow) = stride, dilation, out_size
    return (slice(None), slice(None),
            slice(i * dh, i * dh + sh * (oh - 1) + 1, sh),
            slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))


class MaxPool2d(Function):
    @staticmethod
    def forward(ctx, x, kernel, stride, padding, dilation):
        xpm = array_module(x)
        n, c, h, w = x.shape
        (kh, kw), (ph, pw) = kernel, padding
        oh = conv_output_size(h, kh, stride[0], ph, dilation[0])
        ow = conv_output_size(w, kw, stride[1], pw, dilation[1])
        ctx.geometry = (x.shape, kernel, stride, padding, dilation)
        if (kh, kw) == (1, 1):  # a one-pixel window (FPN's P6): plain subsampling
            return x[:, :, :: stride[0], :: stride[1]].copy()
        # padding is -inf so it never wins (torch pads max-pool implicitly the same way)
        # --- task 1.4: max-pooling, forward and backward ---
        padded = xpm.full((n, c, h + 2 * ph, w + 2 * pw), -xpm.inf, dtype=x.dtype)
        padded[:, :, ph : ph + h, pw : pw + w] = x
        best = padded[_window(padded, 0, 0, stride, dilation, (oh, ow))].copy()
        offset_type = xpm.int8 if kh * kw < 128 else xpm.int32
        best_offset = xpm.zeros((n, c, oh, ow), dtype=offset_type)
        better = xpm.empty((n, c, oh, ow), dtype=bool)
        step = xpm.empty((n, c, oh, ow), dtype=offset_type)
        for i in range(kh):
            for j in range(kw):
                if i == 0 and j == 0:
                    continue
                values = padded[_window(padded, i, j, stride, dilation, (oh, ow))]
                xpm.greater(values, best, out=better)
                xpm.maximum(best, values, out=best)
                # best_offset = where(better, offset, best_offset), as arithmetic: NumPy's
                # masked writes are several times slower than three plain passes
                xpm.subtract(i * kw + j, best_offset, out=step)
                step *= better
                best_offset += step
        # --- end task ---
        ctx.save_for_backward(best_offset)
        return best

    @staticmethod
    def backward(ctx, grad):
        (n, c, h, w), (kh, kw), stride, (ph, pw), dilation = ctx.geometry
        xpm = array_module(grad)
        if (kh, kw) == (1, 1):
            grad_x = xpm.zeros((n, c, h, w), dtype=grad.dtype)
            grad_x[:, :, :: stride[0], :: stride[1]] = grad
            return grad_x, None, None, None, None
        (best_offset,) = ctx.saved_tensors
        # --- task 1.4: max-pooling, forward and backward ---
        padded = xpm.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=grad.dtype)
        for i in range(kh):
            for j in range(kw):
                window = _window(padded, i, j, stride, dilation, grad.shape[2:])
                padded[window] += grad * (best_offset == i * kw + j)
        # --- end task ---
        return padded[:, :, ph : ph + h, pw : pw + w], None, None, None, None


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Max pooling, as ``torch.nn.functional.max_pool2d`` (``stride`` defaults to the kernel)."""
    if ceil_mode:
        raise ValueError("max_pool2d: ceil_mode=True is not supported (Mask R-CNN never uses it)")
    if x.ndim != 4:
        raise ValueError(f"max_pool2d expects (N, C, H, W), got shape {tuple(x.shape)}")
    kernel = _pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else _pair(stride, "stride")
    padding = _pair(padding, "padding")
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"max_pool2d: padding {padding} must be at most half the kernel {kernel}")
    return MaxPool2d.apply(x, kernel, stride, padding, _pair(dilation, "dilation"))
