"""interpolate: resizing (N, C, H, W) maps, nearest or bilinear, as torch.nn.functional.

FPN's top-down path upsamples by nearest neighbour to the lateral map's exact size (so an
odd-sized input still lines up); the mask head's targets and the pasting of masks use
bilinear. Both are separable: a resize is ``out = R_y @ x @ R_x^T`` along H and W.

* nearest: output index o reads input index ``min(floor(o * scale), in - 1)`` with
  ``scale = in / out`` (or ``1 / scale_factor`` when given), computed in float32 as torch does.
  Forward gathers rows/columns; backward adds them back (indices are sorted, so
  ``add.reduceat`` sums each run of repeats without ``add.at``). When every input pixel is
  repeated f times along an axis (FPN's exact x2), the gather is a broadcast and the
  backward a sum over each f x f block, both as f*f strided slices (NumPy's broadcasts
  and multi-axis sums crawl over axes of length 2).
* bilinear: with align_corners=False the sample of output o is ``(o + 0.5) * scale - 0.5``
  (clamped at 0); with True it is ``o * (in - 1) / (out - 1)``. We build the small (out, in)
  interpolation matrices explicitly; backward multiplies by their transposes.
"""

from __future__ import annotations

import math

import numpy

from tinymask.autograd import Function
from tinymask.backend import array_module


def nearest_source_index(in_size: int, out_size: int, scale_factor=None) -> numpy.ndarray:
    """For each output index, the input index that nearest mode reads (torch's rule)."""
    if scale_factor is not None:
        scale = numpy.float32(1.0 / scale_factor)
    else:
        scale = numpy.float32(in_size) / numpy.float32(out_size)
    out_index = numpy.arange(out_size, dtype=numpy.float32)
    source = numpy.floor(out_index * scale).astype(numpy.int64)
    return numpy.minimum(source, in_size - 1)


def bilinear_matrix(in_size: int, out_size: int, align_corners: bool, scale_factor=None,
                    dtype=numpy.float64) -> numpy.ndarray:
    """(out, in) matrix whose row o holds the two bilinear weights of output index o."""
    out_index = numpy.arange(out_size, dtype=numpy.float64)
    if align_corners:
        scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
        source = out_index * scale
    else:
        scale = 1.0 / scale_factor if scale_factor is not None else in_size / out_size
        source = numpy.maximum((out_index + 0.5) * scale - 0.5, 0.0)
    low = numpy.minimum(numpy.floor(source).astype(numpy.int64), in_size - 1)
    high = numpy.minimum(low + 1, in_size - 1)
    frac = source - low
    matrix = numpy.zeros((out_size, in_size), dtype=dtype)
    rows = numpy.arange(out_size)
    numpy.add.at(matrix, (rows, low), 1.0 - frac)  # setup of a tiny matrix, not a hot path
    numpy.add.at(matrix, (rows, high), frac)
    return matrix


def bicubic_matrix(in_size: int, out_size: int, a: float = -0.75) -> numpy.ndarray:
    """(out, in) matrix of torch's bicubic resize with align_corners=False (inference only:
    the keypoint decoder's heatmap resize). Output o samples ``(o + 0.5) * in / out - 0.5``
    (not clamped, unlike bilinear) with Keys' cubic convolution weights (a = -0.75, torch's)
    on the four nearest inputs, indices clamped to the border."""
    source = (numpy.arange(out_size, dtype=numpy.float64) + 0.5) * (in_size / out_size) - 0.5
    low = numpy.floor(source).astype(numpy.int64)
    t = source - low
    weights = []
    for distance in (1.0 + t, t, 1.0 - t, 2.0 - t):  # to inputs low-1, low, low+1, low+2
        near = ((a + 2) * distance - (a + 3)) * distance * distance + 1  # |d| <= 1
        far = ((a * distance - 5 * a) * distance + 8 * a) * distance - 4 * a  # 1 < |d| < 2
        weights.append(numpy.where(distance <= 1.0, near, far))
    matrix = numpy.zeros((out_size, in_size), dtype=numpy.float64)
    rows = numpy.arange(out_size)
    for offset, weight in zip((-1, 0, 1, 2), weights):
        numpy.add.at(matrix, (rows, numpy.clip(low + offset, 0, in_size - 1)), weight)
    return matrix


def _sum_back(grad, index, in_size, axis):
    """Backward of ``take(x, index, axis)`` for a sorted ``index``: add repeats together."""
    xpm = array_module(grad)
    starts = numpy.flatnonzero(numpy.r_[True, index[1:] != index[:-1]])
    summed = xpm.add.reduceat(grad, xpm.asarray(starts), axis=axis)
    shape = list(grad.shape)
    shape[axis] = in_size
    out = xpm.zeros(shape, dtype=grad.dtype)
    where = [slice(None)] * grad.ndim
    where[axis] = xpm.asarray(index[starts])
    out[tuple(where)] = summed
    return out


def repeat_factor(index, in_size: int):
    """f when ``index`` reads every input index f times in order (0,..,0, 1,..,1, ...)."""
    out_size = len(index)
    if out_size % in_size:
        return None
    factor = out_size // in_size
    return factor if numpy.array_equal(index, numpy.arange(out_size) // factor) else None


class NearestResize(Function):
    @staticmethod
    def forward(ctx, x, rows, cols):
        xpm = array_module(x)
        n, c, h, w = x.shape
        ctx.in_size = (h, w)
        ctx.rows, ctx.cols = rows, cols
        ctx.factors = (repeat_factor(rows, h), repeat_factor(cols, w))
        if None not in ctx.factors:  # each pixel becomes an fh x fw block
            fh, fw = ctx.factors
            out = xpm.empty((n, c, h * fh, w * fw), dtype=x.dtype)
            for i in range(fh):
                for j in range(fw):
                    out[:, :, i::fh, j::fw] = x
            return out
        return xpm.take(xpm.take(x, xpm.asarray(rows), axis=2), xpm.asarray(cols), axis=3)

    @staticmethod
    def backward(ctx, grad):
        h, w = ctx.in_size
        if None not in ctx.factors:
            fh, fw = ctx.factors
            grad_x = grad[:, :, ::fh, ::fw].copy()
            for i in range(fh):
                for j in range(fw):
                    if i or j:
                        grad_x += grad[:, :, i::fh, j::fw]
            return grad_x, None, None
        grad = _sum_back(grad, ctx.cols, w, axis=3)
        return _sum_back(grad, ctx.rows, h, axis=2), None, None


class BilinearResize(Function):
    @staticmethod
    def forward(ctx, x, row_matrix, col_matrix):
        xpm = array_module(x)
        ry = xpm.asarray(row_matrix, dtype=x.dtype)
        rx = xpm.asarray(col_matrix, dtype=x.dtype)
        ctx.save_for_backward(ry, rx)
        return ry @ x @ rx.T  # (OH, H) @ (N, C, H, W) @ (W, OW)

    @staticmethod
    def backward(ctx, grad):
        ry, rx = ctx.saved_tensors
        return ry.T @ grad @ rx, None, None


def _output_size(in_size, size, scale_factor):
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give exactly one of size and scale_factor")
    if size is not None:
        return (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
    factors = (scale_factor, scale_factor) if numpy.isscalar(scale_factor) else scale_factor
    return tuple(int(math.floor(s * f)) for s, f in zip(in_size, factors))


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """Resize (N, C, H, W) to ``size`` or by ``scale_factor``, as torch's ``interpolate``.

    mode: "nearest" (FPN's top-down path) or "bilinear" (``align_corners`` False by default).
    """
    if x.ndim != 4:
        raise ValueError(f"interpolate expects (N, C, H, W), got shape {tuple(x.shape)}")
    in_h, in_w = x.shape[2:]
    out_h, out_w = _output_size((in_h, in_w), size, scale_factor)
    if scale_factor is not None and not numpy.isscalar(scale_factor):
        factor_h, factor_w = scale_factor
    else:
        factor_h = factor_w = scale_factor
    if mode == "nearest":
        if align_corners is not None:
            raise ValueError("interpolate: align_corners only applies to mode='bilinear'")
        rows = nearest_source_index(in_h, out_h, factor_h)
        cols = nearest_source_index(in_w, out_w, factor_w)
        return NearestResize.apply(x, rows, cols)
    if mode == "bilinear":
        align = bool(align_corners)
        # torch ignores scale_factor for the sample positions when align_corners=True
        row_matrix = bilinear_matrix(in_h, out_h, align, None if align else factor_h)
        col_matrix = bilinear_matrix(in_w, out_w, align, None if align else factor_w)
        return BilinearResize.apply(x, row_matrix, col_matrix)
    raise ValueError(f"interpolate: unknown mode {mode!r}; choose 'nearest' or 'bilinear'")
