"""Convolution and transposed convolution: shifted matrix products, with im2col as the reference.

Shapes: x (N, C, H, W); weight (O, C/groups, kh, kw) for conv2d and (C, O/groups, kh, kw) for
conv_transpose2d (torch's layouts); output (N, O, OH, OW) with
OH = (H + 2*ph - dh*(kh-1) - 1) // sh + 1.

The math. With xpad the input zero-padded by (ph, pw),

    out[n, o, y, x] = bias[o] + sum over c, i, j of
                      weight[o, c, i, j] * xpad[n, c, y*sh + i*dh, x*sw + j*dw]

For one kernel offset (i, j) the sum over c is a matrix product: weight[:, :, i, j] (O, C)
times the input shifted by (i*dh, j*dw). A convolution is kh*kw matrix products added up:

    out = sum over (i, j) of weight[:, :, i, j] @ shift(xpad, i*dh, j*dw)

The fast path, ``conv2d_shifted`` (stride 1, one group: the stride-1 3x3 convs of the
backbone, the FPN, the RPN and the mask head). The padded batch is laid out as one matrix
(C, L + extra) whose columns run over the images, their rows and their pixels, so that
shifting the image by (i*dh, j*dw) pixels is moving i*dh*row_width + j*dw columns along the
matrix. A shifted input is then a view, not a copy, and the loop above runs as written:
kh*kw GEMMs added into one output. The output comes out on the same grid of L positions, a
few of which (past the end of a row or an image) are junk that ``from_grid`` drops.

The flat layout (``FlatGrid``) lets neighbouring rows share their padding: each row is pw
zeros followed by its W pixels, so the zeros that open a row are also the right-hand padding
of the row before; each image is ph zero rows followed by its H rows, and the batch is
followed by zero rows that keep every shifted view inside the matrix. A 14x14 map with
padding 1 takes 15x15 grid positions instead of 16x16. The layout needs the padding to be
at most the kernel's reach, 0 <= ph <= dh*(kh-1), as every convolution of the model has.

The backward of a stride-1 convolution is two more sums of shifted products:
* the input gradient is itself a stride-1 convolution: of the output gradient padded by
  dh*(kh-1) - ph, with the kernel flipped and its input and output channels swapped, so
  ``conv2d_shifted`` computes it too, and its padded gradient lies on the forward's grid;
* the weight gradient is one product per offset: grad_out (O, L) @ shift(xpad, i, j)^T.

The reference, im2col (``Conv2dIm2col``): copy the kh*kw shifted windows of the padded input
into a column matrix (C*kh*kw, N*OH*OW), 9 copies of the input for a 3x3 kernel, so the
convolution is one GEMM ``W (O, C*kh*kw) @ cols``; the backward is two more GEMMs,
``grad_W = grad_out @ cols^T`` and ``grad_cols = W^T @ grad_out``, and col2im adds the
columns back into the padded input. It is the textbook method, it takes any stride,
dilation and group count, and it runs the layers the fast path does not: strided
convolutions (the stem, the first conv of ResNet stages 2-4) and grouped ones (ResNeXt).
The tests hold the fast path to it.

1x1 convolutions without padding (``Conv2dPointwise``: the FPN laterals, the predictors) are
one batched matrix product over the images, with no padding and no transposes.

conv_transpose2d runs im2col backwards: its forward is conv2d's input gradient by col2im,
its backward conv2d's forward. The mask head's 2x2 stride-2 deconvolution has patches that
do not overlap, so there col2im is a single reshuffle.
"""

from __future__ import annotations

from typing import NamedTuple

from tinymask.autograd import Function
from tinymask.backend import array_module


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    value = tuple(value)
    if len(value) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return value


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _check_channels(x_shape, weight_shape, groups):
    c, c_per_group = x_shape[1], weight_shape[1]
    if c != c_per_group * groups:
        raise ValueError(f"conv2d: input has {c} channels but weight {tuple(weight_shape)} with "
                         f"groups={groups} expects {c_per_group * groups}")


def _output_size(x_shape, weight_shape, stride, padding, dilation):
    oh = conv_output_size(x_shape[2], weight_shape[2], stride[0], padding[0], dilation[0])
    ow = conv_output_size(x_shape[3], weight_shape[3], stride[1], padding[1], dilation[1])
    if oh <= 0 or ow <= 0:
        raise ValueError(f"conv2d: input {tuple(x_shape)} is too small for kernel "
                         f"{tuple(weight_shape[2:])}")
    return oh, ow


# ============================================================ the fast path: shifted GEMMs
class FlatGrid(NamedTuple):
    """Where a zero-padded batch of images sits in one matrix (see the module docstring).

    Pixel (y, x) of image n is column (n*rows + ph + y) * row_width + pw + x of the matrix;
    grid position (n, y, x) is column (n*rows + y) * row_width + x. ``length`` positions
    make the grid; ``extra`` zero columns after them keep every shifted view inside.
    """

    num_images: int
    rows: int  # per image: ph rows of zeros, then its H rows
    row_width: int  # per row: pw zeros, then its W pixels
    padding: tuple[int, int]
    extra: int

    @property
    def length(self) -> int:
        return self.num_images * self.rows * self.row_width

    def shift(self, i: int, j: int, dilation) -> int:
        """How many columns along the matrix a shift by kernel offset (i, j) moves."""
        return i * dilation[0] * self.row_width + j * dilation[1]


def flat_grid(x_shape, padding, kernel, dilation) -> FlatGrid:
    n, _, h, w = x_shape
    (ph, pw), (kh, kw) = padding, kernel
    grid = FlatGrid(n, h + ph, w + pw, (ph, pw), 0)
    return grid._replace(extra=grid.shift(kh - 1, kw - 1, dilation))


def fits_flat_grid(padding, kernel, dilation) -> bool:
    """Whether rows can share their padding: 0 <= padding <= the kernel's reach."""
    return all(0 <= p <= d * (k - 1) for p, k, d in zip(padding, kernel, dilation))


def to_flat(x, grid: FlatGrid, dtype=None):
    """(N, C, H, W) -> (C, length + extra): the zero-padded batch in the flat layout."""
    n, c, h, w = x.shape
    ph, pw = grid.padding
    flat = array_module(x).empty((c, grid.length + grid.extra), dtype=dtype or x.dtype)
    images = flat[:, : grid.length].reshape(c, n, grid.rows, grid.row_width)
    images[:, :, :ph] = 0  # the zero rows above each image
    images[:, :, ph:, :pw] = 0  # the zeros that open each row
    flat[:, grid.length :] = 0
    images[:, :, ph:, pw:] = x.transpose(1, 0, 2, 3)
    return flat


def from_grid(values, grid: FlatGrid, out_size, bias=None):
    """(O, length) values on the grid -> (N, O, OH, OW), the junk positions dropped."""
    o = values.shape[0]
    oh, ow = out_size
    on_grid = values.reshape(o, grid.num_images, grid.rows, grid.row_width)
    wanted = on_grid[:, :, :oh, :ow].transpose(1, 0, 2, 3)
    xpm = array_module(values)
    out = xpm.empty((grid.num_images, o, oh, ow), dtype=values.dtype)
    if bias is None:
        out[...] = wanted
    else:
        xpm.add(wanted, bias.reshape(1, -1, 1, 1), out=out)
    return out


def kernel_matrices(weight):
    """(O, C, kh, kw) -> (kh, kw, O, C): one contiguous (O, C) matrix per kernel offset."""
    return array_module(weight).ascontiguousarray(weight.transpose(2, 3, 0, 1))


def conv2d_shifted(x_flat, kernels, grid: FlatGrid, dilation):
    """The convolution as a sum of shifted matrix products, at every grid position.

    x_flat: (C, length + extra) from ``to_flat``; kernels: (kh, kw, O, C), the matrix of
    each kernel offset. Returns (O, length):
    ``sum over (i, j) of kernels[i, j] @ x_flat[:, shift(i, j) : shift(i, j) + length]``.
    """
    xpm = array_module(x_flat)
    # --- task 1.2: a convolution as shifted matrix products ---
    kh, kw, o, _ = kernels.shape
    length = grid.length
    out = xpm.empty((o, length), dtype=x_flat.dtype)
    product = xpm.empty_like(out)  # one buffer for every offset's product
    for i in range(kh):
        for j in range(kw):
            start = grid.shift(i, j, dilation)
            shifted = x_flat[:, start : start + length]  # the input moved by (i*dh, j*dw)
            if i == 0 and j == 0:
                xpm.matmul(kernels[i, j], shifted, out=out)
            else:
                xpm.matmul(kernels[i, j], shifted, out=product)
                out += product
    return out
    # --- end task ---


def conv2d_shifted_weight_grad(grad_on_grid, x_flat, grid: FlatGrid, kernel_size, dilation):
    """grad_weight[:, :, i, j] = grad_on_grid (O, length) @ (x_flat shifted by (i, j))^T.

    ``grad_on_grid`` must be zero at the junk positions: they are not outputs."""
    xpm = array_module(x_flat)
    (kh, kw), o, c = kernel_size, grad_on_grid.shape[0], x_flat.shape[0]
    # --- task 1.3: the gradients of a convolution ---
    grad = xpm.empty((kh, kw, o, c), dtype=x_flat.dtype)
    for i in range(kh):
        for j in range(kw):
            start = grid.shift(i, j, dilation)
            xpm.matmul(grad_on_grid, x_flat[:, start : start + grid.length].T, out=grad[i, j])
    # --- end task ---
    return xpm.ascontiguousarray(grad.transpose(2, 3, 0, 1))  # (O, C, kh, kw)


class Conv2dShifted(Function):
    """Stride 1, one group, 0 <= padding <= dilation*(kernel-1): kh*kw shifted GEMMs."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding, dilation):
        _check_channels(x.shape, weight.shape, 1)
        out_size = _output_size(x.shape, weight.shape, (1, 1), padding, dilation)
        grid = flat_grid(x.shape, padding, weight.shape[2:], dilation)
        x_flat = to_flat(x, grid, array_module(x).result_type(x, weight))
        kernels = kernel_matrices(weight)  # (kh, kw, O, C)
        out = from_grid(conv2d_shifted(x_flat, kernels, grid, dilation), grid, out_size, bias)
        ctx.save_for_backward(x_flat, kernels)
        ctx.geometry = (x.shape, grid, padding, dilation)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x_flat, kernels = ctx.saved_tensors
        x_shape, grid, (ph, pw), dilation = ctx.geometry
        kh, kw = kernels.shape[:2]
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        # the gradient padded by the kernel's reach minus the padding, in the flat layout:
        # it has the forward's rows and row width, and its grid positions are the forward's
        # output positions moved by (ph', pw'), zero wherever the forward's were junk
        grad_padding = (dilation[0] * (kh - 1) - ph, dilation[1] * (kw - 1) - pw)
        grad_grid = flat_grid(grad_out.shape, grad_padding, (kh, kw), dilation)
        grad_flat = to_flat(grad_out, grad_grid)
        grad_x = grad_w = grad_b = None
        if need_w:
            start = grad_padding[0] * grad_grid.row_width + grad_padding[1]
            grad_on_grid = grad_flat[:, start : start + grid.length]
            grad_w = conv2d_shifted_weight_grad(grad_on_grid, x_flat, grid, (kh, kw), dilation)
        if need_b:
            grad_b = grad_out.sum(axis=(0, 2, 3))
        if need_x:
            # --- task 1.3: the gradients of a convolution ---
            # the kernel flipped, input and output channels swapped: (kh, kw, C, O), each
            # matrix a transposed view of the forward's, which BLAS reads without a copy
            flipped = kernels[::-1, ::-1].swapaxes(2, 3)
            values = conv2d_shifted(grad_flat, flipped, grad_grid, dilation)
            grad_x = from_grid(values, grad_grid, x_shape[2:])
            # --- end task ---
        return grad_x, grad_w, grad_b, None, None


# ============================================================ 1x1: one batched matrix product
class Conv2dPointwise(Function):
    """1x1 kernel, no padding, one group: out[n] = W (O, C) @ x[n] (C, H*W); a stride
    subsamples the input first."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride):
        _check_channels(x.shape, weight.shape, 1)
        input_shape = x.shape
        if stride != (1, 1):
            x = x[:, :, :: stride[0], :: stride[1]]
        n, c, h, w = x.shape
        o = weight.shape[0]
        x_rows = x.reshape(n, c, h * w)  # a copy only when x was subsampled
        out = array_module(x).matmul(weight.reshape(o, c), x_rows)  # (N, O, H*W)
        if bias is not None:
            out += bias.reshape(1, -1, 1)
        ctx.save_for_backward(x_rows, weight)
        ctx.geometry = (input_shape, stride)
        return out.reshape(n, o, h, w)

    @staticmethod
    def backward(ctx, grad_out):
        x_rows, weight = ctx.saved_tensors
        input_shape, stride = ctx.geometry
        xpm = array_module(grad_out)
        n, o, h, w = grad_out.shape
        c = x_rows.shape[1]
        grad_rows = grad_out.reshape(n, o, h * w)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_x = grad_w = grad_b = None
        if need_w:  # sum over the images of grad[n] (O, H*W) @ x[n]^T (H*W, C)
            grad_w = xpm.matmul(grad_rows, x_rows.swapaxes(1, 2)).sum(axis=0)
            grad_w = grad_w.reshape(weight.shape)
        if need_b:
            grad_b = grad_out.sum(axis=(0, 2, 3))
        if need_x:
            grad_x = xpm.matmul(weight.reshape(o, c).T, grad_rows).reshape(n, c, h, w)
            if stride != (1, 1):  # only the sampled pixels had an effect
                sampled, grad_x = grad_x, xpm.zeros(input_shape, dtype=grad_x.dtype)
                grad_x[:, :, :: stride[0], :: stride[1]] = sampled
        return grad_x, grad_w, grad_b, None


# ============================================================ the reference: im2col
def _to_padded_cnhw(x, padding):
    """(N, C, H, W) -> zero-padded (C, N, H + 2ph, W + 2pw), one copy."""
    n, c, h, w = x.shape
    ph, pw = padding
    xpm = array_module(x)
    padded = xpm.zeros((c, n, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    padded[:, :, ph : ph + h, pw : pw + w] = x.transpose(1, 0, 2, 3)
    return padded


def im2col(padded, kernel, stride, dilation, out_size):
    """Padded (C, N, Hp, Wp) -> columns (C, kh, kw, N, OH, OW): the windows, by copies."""
    c, n = padded.shape[:2]
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_size
    if (kh, kw, sh, sw) == (1, 1, 1, 1):
        return padded.reshape(c, 1, 1, n, oh, ow)  # a 1x1 conv reads the input as is
    cols = array_module(padded).empty((c, kh, kw, n, oh, ow), dtype=padded.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = padded[:, :, i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                                   j * dw : j * dw + sw * (ow - 1) + 1 : sw]
    return cols


def col2im(cols, padded_shape, stride, dilation):
    """Columns (C, kh, kw, N, OH, OW) -> padded (C, N, Hp, Wp), adding overlapping windows."""
    c, kh, kw, n, oh, ow = cols.shape
    (sh, sw), (dh, dw) = stride, dilation
    padded = array_module(cols).zeros(padded_shape, dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            padded[:, :, i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                   j * dw : j * dw + sw * (ow - 1) + 1 : sw] += cols[:, i, j]
    return padded


def _crop_to_nchw(padded, padding, size):
    """Padded (C, N, Hp, Wp) -> (N, C, H, W) without the border (a view)."""
    (ph, pw), (h, w) = padding, size
    return padded[:, :, ph : ph + h, pw : pw + w].transpose(1, 0, 2, 3)


def _grouped_matmul(a, b):
    """(g, M, K) @ (g, K, L), with a plain 2-D GEMM when there is a single group."""
    if a.shape[0] == 1:
        return (a[0] @ b[0])[None]
    return a @ b


class Conv2dIm2col(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        n = x.shape[0]
        out_channels, c_per_group, kh, kw = weight.shape
        _check_channels(x.shape, weight.shape, groups)
        oh, ow = _output_size(x.shape, weight.shape, stride, padding, dilation)
        cols = im2col(_to_padded_cnhw(x, padding), (kh, kw), stride, dilation, (oh, ow))
        cols = cols.reshape(groups, c_per_group * kh * kw, n * oh * ow)
        w_mat = weight.reshape(groups, out_channels // groups, c_per_group * kh * kw)
        out = _grouped_matmul(w_mat, cols)  # (g, O/g, N*OH*OW)
        out = out.reshape(out_channels, n, oh, ow).transpose(1, 0, 2, 3)
        if bias is not None:
            out += bias.reshape(1, -1, 1, 1)
        ctx.save_for_backward(cols, weight)
        ctx.geometry = (x.shape, stride, padding, dilation, groups)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        cols, weight = ctx.saved_tensors
        x_shape, stride, padding, dilation, groups = ctx.geometry
        n, c, h, w = x_shape
        out_channels, c_per_group, kh, kw = weight.shape
        oh, ow = grad_out.shape[2:]
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        # (N, O, OH, OW) -> (g, O/g, N*OH*OW), the layout of the forward's GEMM output
        grad_mat = grad_out.transpose(1, 0, 2, 3).reshape(groups, out_channels // groups, -1)
        grad_x = grad_w = grad_b = None
        if need_w:
            grad_w = _grouped_matmul(grad_mat, cols.transpose(0, 2, 1)).reshape(weight.shape)
        if need_b:
            grad_b = grad_out.sum(axis=(0, 2, 3))
        if need_x:
            w_mat = weight.reshape(groups, out_channels // groups, c_per_group * kh * kw)
            grad_cols = _grouped_matmul(w_mat.transpose(0, 2, 1), grad_mat)
            grad_cols = grad_cols.reshape(c, kh, kw, n, oh, ow)
            padded_shape = (c, n, h + 2 * padding[0], w + 2 * padding[1])
            grad_padded = col2im(grad_cols, padded_shape, stride, dilation)
            grad_x = _crop_to_nchw(grad_padded, padding, (h, w))
        return grad_x, grad_w, grad_b, None, None, None, None


class ConvTranspose2d(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, output_padding, groups, dilation):
        n, c, h, w = x.shape
        in_channels, o_per_group, kh, kw = weight.shape
        if c != in_channels:
            raise ValueError(f"conv_transpose2d: input has {c} channels, weight {weight.shape} "
                             f"expects {in_channels}")
        out_channels = o_per_group * groups
        oh = (h - 1) * stride[0] - 2 * padding[0] + dilation[0] * (kh - 1) + output_padding[0] + 1
        ow = (w - 1) * stride[1] - 2 * padding[1] + dilation[1] * (kw - 1) + output_padding[1] + 1
        # x plays the role of conv2d's output gradient: (g, C/g, N*H*W)
        x_mat = x.transpose(1, 0, 2, 3).reshape(groups, c // groups, n * h * w)
        w_mat = weight.reshape(groups, c // groups, o_per_group * kh * kw)
        cols = _grouped_matmul(w_mat.transpose(0, 2, 1), x_mat)
        cols = cols.reshape(out_channels, kh, kw, n, h, w)
        if _patches_tile(weight.shape, stride, padding, output_padding, dilation):
            # each input pixel paints its own kh x kw patch, so col2im's sum is a plain
            # write: entry (i, j) of every patch lands on out[:, :, i::kh, j::kw]
            xpm = array_module(cols)
            out = xpm.empty((n, out_channels, oh, ow), dtype=cols.dtype)
            for i in range(kh):
                for j in range(kw):
                    patch_entries = cols[:, i, j].transpose(1, 0, 2, 3)  # (N, O, H, W)
                    if bias is None:
                        out[:, :, i::kh, j::kw] = patch_entries
                    else:
                        xpm.add(patch_entries, bias.reshape(1, -1, 1, 1),
                                out=out[:, :, i::kh, j::kw])
        else:
            padded_shape = (out_channels, n, oh + 2 * padding[0], ow + 2 * padding[1])
            out = _crop_to_nchw(col2im(cols, padded_shape, stride, dilation), padding, (oh, ow))
            if bias is not None:
                out = out + bias.reshape(1, -1, 1, 1)
        ctx.save_for_backward(x_mat, weight)
        ctx.geometry = (x.shape, stride, padding, output_padding, dilation, groups)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x_mat, weight = ctx.saved_tensors
        x_shape, stride, padding, output_padding, dilation, groups = ctx.geometry
        n, c, h, w = x_shape
        in_channels, o_per_group, kh, kw = weight.shape
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        # the backward of a transposed conv is an ordinary conv of grad_out
        if _patches_tile(weight.shape, stride, padding, output_padding, dilation):
            # im2col without padding or overlap: gather each patch entry (i, j)
            cols = array_module(grad_out).empty((o_per_group * groups, kh, kw, n, h, w),
                                                dtype=grad_out.dtype)
            for i in range(kh):
                for j in range(kw):
                    cols[:, i, j] = grad_out[:, :, i::kh, j::kw].transpose(1, 0, 2, 3)
        else:
            cols = im2col(_to_padded_cnhw(grad_out, padding), (kh, kw), stride, dilation, (h, w))
        cols = cols.reshape(groups, o_per_group * kh * kw, n * h * w)
        grad_x = grad_w = grad_b = None
        if need_x:
            w_mat = weight.reshape(groups, c // groups, o_per_group * kh * kw)
            grad_x = _grouped_matmul(w_mat, cols).reshape(c, n, h, w).transpose(1, 0, 2, 3)
        if need_w:
            grad_w = _grouped_matmul(x_mat, cols.transpose(0, 2, 1)).reshape(weight.shape)
        if need_b:
            grad_b = grad_out.sum(axis=(0, 2, 3))
        return grad_x, grad_w, grad_b, None, None, None, None, None


def _patches_tile(weight_shape, stride, padding, output_padding, dilation) -> bool:
    """True when a transposed conv's output patches tile the output without overlapping."""
    return (tuple(weight_shape[2:]) == tuple(stride) and padding == (0, 0)
            and output_padding == (0, 0) and dilation == (1, 1))


def _check_4d(x, name):
    if x.ndim != 4:
        raise ValueError(f"{name} expects a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation), as ``torch.nn.functional.conv2d``.

    x: (N, C, H, W); weight: (O, C/groups, kh, kw); bias: (O,) or None.
    Returns (N, O, OH, OW) with OH = (H + 2*padding - dilation*(kh-1) - 1) // stride + 1.
    Runs as shifted GEMMs where it can, else by im2col (see the module docstring).
    """
    _check_4d(x, "conv2d")
    stride, padding = _pair(stride, "stride"), _pair(padding, "padding")
    dilation = _pair(dilation, "dilation")
    kernel = tuple(weight.shape[2:])
    if groups == 1 and kernel == (1, 1) and padding == (0, 0):
        return Conv2dPointwise.apply(x, weight, bias, stride)
    if groups == 1 and stride == (1, 1) and fits_flat_grid(padding, kernel, dilation):
        return Conv2dShifted.apply(x, weight, bias, padding, dilation)
    return Conv2dIm2col.apply(x, weight, bias, stride, padding, dilation, groups)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed convolution, as ``torch.nn.functional.conv_transpose2d``.

    x: (N, C, H, W); weight: (C, O/groups, kh, kw); returns (N, O, OH, OW) with
    OH = (H-1)*stride - 2*padding + dilation*(kh-1) + output_padding + 1.
    The mask head's 2x2 stride-2 "deconv" doubles 14x14 to 28x28 with it.
    """
    _check_4d(x, "conv_transpose2d")
    return ConvTranspose2d.apply(x, weight, bias, _pair(stride, "stride"),
                                 _pair(padding, "padding"),
                                 _pair(output_padding, "output_padding"), groups,
                                 _pair(dilation, "dilation"))
