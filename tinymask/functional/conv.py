"""Convolution and transposed convolution by im2col + one matrix multiply.

Shapes: x (N, C, H, W); weight (O, C/groups, kh, kw) for conv2d and
(C, O/groups, kh, kw) for conv_transpose2d (torch's layouts); output (N, O, OH, OW) with
OH = (H + 2*ph - dh*(kh-1) - 1) // sh + 1.

How it runs. im2col copies the kh*kw shifted, strided windows of the padded input into a
preallocated column buffer laid out (C, kh, kw, N, OH, OW). Viewed as a matrix
(C*kh*kw, N*OH*OW), the whole convolution of the batch is then one GEMM per group:
``out = W (O, C*kh*kw) @ cols``. The backward needs two more GEMMs, ``grad_W = grad_out @
cols^T`` and ``grad_cols = W^T @ grad_out``, and col2im adds the columns back into the
padded input with kh*kw slice-adds (each slice touches distinct pixels, so no ``np.add.at``).

Why this layout: putting the batch inside the column matrix makes one large GEMM instead
of N small ones, and making the input (C, N, H, W) first turns each window copy into long
contiguous runs. conv_transpose2d is the same machinery run backwards: its forward is
conv2d's input-gradient and its backward is conv2d's forward.
"""

from __future__ import annotations

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


class Conv2d(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        n, c, h, w = x.shape
        out_channels, c_per_group, kh, kw = weight.shape
        if c != c_per_group * groups:
            raise ValueError(
                f"conv2d: input has {c} channels but weight {weight.shape} with groups={groups} "
                f"expects {c_per_group * groups}"
            )
        oh = conv_output_size(h, kh, stride[0], padding[0], dilation[0])
        ow = conv_output_size(w, kw, stride[1], padding[1], dilation[1])
        if oh <= 0 or ow <= 0:
            raise ValueError(f"conv2d: input {x.shape} is too small for kernel {(kh, kw)}")
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
        padded_shape = (out_channels, n, oh + 2 * padding[0], ow + 2 * padding[1])
        out = _crop_to_nchw(col2im(cols, padded_shape, stride, dilation), padding, (oh, ow))
        if bias is not None:
            out = out + bias.reshape(1, -1, 1, 1)
        ctx.save_for_backward(x_mat, weight)
        ctx.geometry = (x.shape, stride, padding, dilation, groups)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x_mat, weight = ctx.saved_tensors
        x_shape, stride, padding, dilation, groups = ctx.geometry
        n, c, h, w = x_shape
        in_channels, o_per_group, kh, kw = weight.shape
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        # the backward of a transposed conv is an ordinary conv of grad_out
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


def _check_4d(x, name):
    if x.ndim != 4:
        raise ValueError(f"{name} expects a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation), as ``torch.nn.functional.conv2d``.

    x: (N, C, H, W); weight: (O, C/groups, kh, kw); bias: (O,) or None.
    Returns (N, O, OH, OW) with OH = (H + 2*padding - dilation*(kh-1) - 1) // stride + 1.
    """
    _check_4d(x, "conv2d")
    return Conv2d.apply(x, weight, bias, _pair(stride, "stride"), _pair(padding, "padding"),
                        _pair(dilation, "dilation"), groups)


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
