# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 1 — Autograd and convolution
#
# **Goal.** Every later lesson trains something, so we start with the two pieces that make
# training possible: an *autograd tape* that computes gradients, and *convolution*, the op
# that dominates a Mask R-CNN's time. By the end you can write a new differentiable op,
# prove its gradient right, and explain why a convolution is a sum of matrix products,
# forward and backward.
#
# You write four pieces of the engine yourself, in the very code the model runs (the course
# tasks, listed under Exercises): the backward of multiply and matrix multiply (task 1.1),
# the convolution as shifted matrix products (task 1.2), its gradients (task 1.3) and
# max-pooling (task 1.4). In a student copy (`tinymask course init DIR`) each is a stub,
# and this lesson stops with one line at the first one you have not written yet.
#
# Code: `tinymask/autograd.py`, `tinymask/tensor.py`, `tinymask/functional/conv.py` and
# `tinymask/functional/pooling.py`; open them beside this notebook.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

import tinymask as tm
import tinymask.functional as F
from tinymask.course import check_tasks
from tinymask.functional.conv import (
    Conv2dIm2col,
    conv2d_shifted,
    flat_grid,
    from_grid,
    im2col,
    kernel_matrices,
    to_flat,
)
from tinymask.gradcheck_cases import gradcheck_cases
from tinymask.lesson_utils import smoke_mode, stop_at_unsolved_tasks

stop_at_unsolved_tasks()
SMOKE = smoke_mode()
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Build it: the tape, and the backward of mul and matmul (task 1.1)
#
# A `Tensor` holds an array (`.data`). Every op on tensors that need gradients is a
# `Function` whose `forward` computes the value and remembers what its `backward` will
# need (`ctx.save_for_backward`). `y.backward()` then walks the recorded ops from `y` back
# to the leaves, applying the chain rule once per op: each `backward` receives `grad`, the
# gradient of the final scalar with respect to the op's output (same shape as the output),
# and returns one gradient per input (same shape as that input).
#
# Two ops carry almost every parameter's gradient in this course: the elementwise product
# and the matrix product (a linear layer is one, and §3 shows that a convolution is a sum
# of them). Their backwards are **task 1.1**, in `tinymask/tensor.py`:
#
# - `Mul`: for `out = a * b`, the chain rule gives `grad_a = grad * b` and
#   `grad_b = grad * a`. With *broadcasting* one input was reused: `b` of shape `(3,)`
#   times `a` of shape `(2, 3)` uses every element of `b` twice, so its gradient is the
#   sum over the repeated axis. `_unbroadcast(g, shape)` sums `g` down to `shape`.
# - `MatMul`: for `C = A @ B` with `A (M, K)` and `B (K, N)`, each `C[m, n]` is
#   `sum over k of A[m, k] B[k, n]`, so `grad_A = grad @ B^T` `(M, N) @ (N, K)` and
#   `grad_B = A^T @ grad` `(K, M) @ (M, N)`: the shapes alone nearly dictate the answer.
#   NumPy's matmul also takes stacks of matrices `(..., M, K)`, whose leading axes
#   broadcast (transpose the last two axes with `swapaxes(x, -1, -2)` and unbroadcast),
#   and a 1-D operand, a vector, for which the gradient of the other side is an outer
#   product (`multiply.outer`).
# - `ctx.needs_input_grad[i]` says whether input `i` wants a gradient at all; return
#   `None` for one that does not (a constant, a frozen weight) and skip its work.
#
# With task 1.1 written, the tape differentiates any expression of these ops:

# %%
x = tm.Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
w = tm.Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
y = ((x * w).exp() + x).sum()  # y = sum(exp(x*w) + x)
y.backward()
print("y      =", y.item())
print("dy/dx  =", x.grad, " by hand:", w.data * np.exp(x.data * w.data) + 1)
print("dy/dw  =", w.grad, " by hand:", x.data * np.exp(x.data * w.data))

# %% [markdown]
# A matrix product, against the formulas above. `L = sum(R * (A @ B))` with a fixed random
# `R` makes `grad = R`, so every output element matters:

# %%
A = tm.Tensor(rng.standard_normal((2, 3)), requires_grad=True)
B = tm.Tensor(rng.standard_normal((3, 4)), requires_grad=True)
R = rng.standard_normal((2, 4))
((A @ B) * tm.Tensor(R)).sum().backward()
print("grad_A - R @ B^T: largest difference", np.abs(A.grad - R @ B.data.T).max())
print("grad_B - A^T @ R: largest difference", np.abs(B.grad - A.data.T @ R).max())

# %% [markdown]
# A new op is a `Function` with a forward and, right under it, its backward. Here is
# `softplus(x) = log(1 + exp(x))`, whose derivative is the sigmoid:

# %%
class Softplus(tm.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)  # keep only what backward reads
        return np.logaddexp(0.0, x)  # log(1 + e^x) without overflow

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out / (1.0 + np.exp(-x))  # d softplus / dx = sigmoid(x)


z = Softplus.apply(tm.Tensor(np.array([-2.0, 0.0, 3.0]), requires_grad=True))
print(z)

# %% [markdown]
# ## 2. Check it: gradient checking
#
# How do we know a backward is right? Compare it with the definition of a derivative,
# by central differences in float64:
# $\frac{\partial L}{\partial x_i} \approx \frac{L(x + \epsilon e_i) - L(x - \epsilon e_i)}{2\epsilon}$.
# `tm.gradcheck` does this for every input element and returns the largest relative
# error $|a - n| / \max(|a|, |n|)$: around $10^{-8}$ or below is right; $10^{-2}$ is a bug.

# %%
print("softplus:", tm.gradcheck(Softplus.apply, [rng.standard_normal(5)]))


class WrongSoftplus(Softplus):
    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * np.exp(x)  # a plausible-looking mistake


print("wrong softplus:", tm.gradcheck(WrongSoftplus.apply, [rng.standard_normal(5)],
                                      raise_on_failure=False))

# %% [markdown]
# `tinymask.gradcheck_cases` holds a small float64 case for every differentiable op of the
# package; `tinymask gradcheck` runs them all (including the RoI ops and losses of later
# lessons, once you have written those). Task 1.1's two, with broadcasting and a stack of
# matrices:

# %%
CASES = gradcheck_cases()
for name in ("mul (broadcast)", "matmul (batched)"):
    fn, inputs = CASES[name]
    print(f"{name:18s} max relative error {tm.gradcheck(fn, inputs):.1e}")

# %% [markdown]
# ## 3. Build it: a convolution as shifted matrix products (task 1.2)
#
# A 2-D convolution slides an `O x C x kh x kw` kernel over an `N x C x H x W` input. With
# `xpad` the input zero-padded by `(ph, pw)`, stride 1 (dilation `d` spaces the kernel's
# taps):
#
# $$\text{out}[n, o, y, x] = \text{bias}[o] + \sum_{c, i, j} \text{weight}[o, c, i, j]\;
# \text{xpad}[n, c, y + i d, x + j d]$$
#
# The obvious program is loops over the output pixels; here it is, only as the definition
# to check the fast code against:

# %%
def conv2d_loops(x, weight, padding=0):
    """Stride 1: the definition, one output pixel at a time."""
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = np.zeros((n, o, h + 2 * padding - kh + 1, w + 2 * padding - kw + 1))
    for y in range(out.shape[2]):
        for x_ in range(out.shape[3]):
            window = xpad[:, :, y : y + kh, x_ : x_ + kw]  # (N, C, kh, kw)
            out[:, :, y, x_] = np.tensordot(window, weight, axes=([1, 2, 3], [1, 2, 3]))
    return out


# %% [markdown]
# Now fix one kernel offset `(i, j)` and look at the sum over `c` alone: it is a matrix
# product of `weight[:, :, i, j]`, an `(O, C)` matrix, with the input *shifted* by
# `(i d, j d)` pixels, a `(C, pixels)` matrix. So a convolution is `kh * kw` matrix
# products (GEMMs) added up:
#
# $$\text{out} = \sum_{i, j} \text{weight}[:, :, i, j] \;@\; \text{shift}(\text{xpad}, i d, j d)$$
#
# A GEMM is the operation BLAS libraries tune hardest, so the convolution inherits their
# speed. What is left is to make each shifted input a `(C, pixels)` matrix *without
# copying it*. tinymask lays the padded batch out as one
# matrix `(C, L + extra)` whose columns run over the images, their rows and their pixels
# (`FlatGrid`, `to_flat`): every row is `pw` zeros followed by its `W` pixels (the zeros
# that open a row are also the right-hand padding of the row before), every image is `ph`
# zero rows followed by its `H` rows, and `extra` zero columns close the batch. In this
# layout, moving the image by `(i, j)` pixels is moving `i * row_width + j` columns along
# the matrix, so the shifted input is a *view*, a slice of columns:
# `x_flat[:, shift : shift + L]`.
#
# The output comes out on the same grid of `L` positions. A few of them are junk (those
# past the end of a row or below the last output row of an image, where the window wraps
# into the next row or image); `from_grid` drops them.
#
# Two images of 3 x 4 pixels, one channel, numbered 1..24 so you can follow them, and a
# 3 x 3 kernel with padding 1:

# %%
x_small = (1.0 + np.arange(2 * 3 * 4)).reshape(2, 1, 3, 4)  # (N, C, H, W), pixels 1..24
grid = flat_grid(x_small.shape, (1, 1), (3, 3), (1, 1))
x_flat = to_flat(x_small, grid)
print(grid)
print(f"x_flat: {x_flat.shape} = (C, length + extra) = (1, {grid.length} + {grid.extra})")
for i, j in [(0, 0), (1, 1), (2, 2)]:
    print(f"kernel offset ({i}, {j}) moves {grid.shift(i, j, (1, 1)):2d} columns along the matrix")

# %% [markdown]
# ### See it: the flat grid and its shifted views
#
# Left: the flat matrix of those two images, folded every `row_width` columns so that its
# rows line up (0 is padding). Then the views of three kernel offsets, on the grid of
# output positions: the view of offset `(i, j)` holds, at output position `(y, x)`, the
# pixel that the kernel's tap `(i, j)` multiplies there: the input moved up by `i` and
# left by `j`. Grey cells are junk positions, dropped by `from_grid`.

# %%
def draw_numbers(ax, values, title, junk=None):
    """An integer-valued 2-D array as a grid of numbered cells; junk cells in grey."""
    ax.imshow(values, cmap="viridis", vmin=-8, vmax=26)  # NaN: no cell
    if junk is not None:
        ax.imshow(np.where(junk, 1.0, np.nan), cmap="gray", vmin=0, vmax=1.5)
    for (row, col), value in np.ndenumerate(values):
        if not np.isnan(value):
            ax.text(col, row, f"{value:.0f}", ha="center", va="center", fontsize=8,
                    color="white" if value < 12 or (junk is not None and junk[row, col])
                    else "black")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


out_size = (3, 4)  # padding 1 keeps the size
rows_of_grid = grid.num_images * grid.rows
folded = np.full(-(-x_flat.shape[1] // grid.row_width) * grid.row_width, np.nan)
folded[: x_flat.shape[1]] = x_flat[0]
grid_row, grid_col = np.divmod(np.arange(grid.length), grid.row_width)
junk = ((grid_row % grid.rows) >= out_size[0]) | (grid_col >= out_size[1])

fig, axes = plt.subplots(1, 4, figsize=(12, 4.2))
draw_numbers(axes[0], folded.reshape(-1, grid.row_width),
             f"x_flat, folded every {grid.row_width} columns\n(image 0, image 1, extra zeros)")
for ax, (i, j) in zip(axes[1:], [(0, 0), (1, 1), (2, 2)]):
    start = grid.shift(i, j, (1, 1))
    view = x_flat[0, start : start + grid.length]
    draw_numbers(ax, view.reshape(rows_of_grid, grid.row_width),
                 f"offset ({i}, {j}): x_flat[:, {start}:{start + grid.length}]",
                 junk.reshape(rows_of_grid, grid.row_width))
fig.tight_layout()
plt.show()

# %% [markdown]
# **Task 1.2** is `conv2d_shifted(x_flat, kernels, grid, dilation)` in
# `tinymask/functional/conv.py`: for every kernel offset `(i, j)`, take the view of
# `x_flat` that starts `grid.shift(i, j, dilation)` columns in and is `grid.length`
# columns long, multiply `kernels[i, j]` (the `(O, C)` matrix of that offset, made by
# `kernel_matrices`) with it, and add the products into one `(O, length)` output. Use
# `xpm.matmul(..., out=...)` into buffers you allocate once, so that no offset allocates
# a new `(O, length)` array. `Conv2dShifted.forward` wraps it: `to_flat`, your sum,
# `from_grid` (which adds the bias).
#
# `F.conv2d` sends every stride-1, ungrouped convolution of the model down this path
# (the 3x3 convs of the backbone, the FPN, the RPN and the mask head).

# %%
weight_small = rng.standard_normal((2, 1, 3, 3))
on_grid = conv2d_shifted(x_flat, kernel_matrices(weight_small), grid, (1, 1))  # (O, L)
print("on the grid:", on_grid.shape, "-> without the junk:",
      from_grid(on_grid, grid, out_size).shape)
print("largest difference from the loops:",
      np.abs(from_grid(on_grid, grid, out_size) - conv2d_loops(x_small, weight_small, 1)).max())

# %% [markdown]
# ### Check it: against the definition
#
# Random batches, several channels, with and without padding:

# %%
for padding in (0, 1, 2):
    x = rng.standard_normal((2, 3, 6, 7))
    weight = rng.standard_normal((4, 3, 3, 3))
    fast = F.conv2d(tm.Tensor(x), tm.Tensor(weight), padding=padding).data
    print(f"padding {padding}: output {fast.shape}, largest difference from the loops "
          f"{np.abs(fast - conv2d_loops(x, weight, padding)).max():.1e}")

# %% [markdown]
# ### The reference: im2col
#
# The textbook way to turn a convolution into a GEMM is **im2col**: *copy* every window
# into a column of a matrix `cols (C*kh*kw, N*OH*OW)`, then the whole convolution is one
# product `W (O, C*kh*kw) @ cols`. Its row for channel `c` and offset `(i, j)` holds
# exactly the valid positions of the shifted view above: im2col copies what the flat grid
# only points at, `kh * kw` copies of the input for one GEMM.
#
# tinymask keeps im2col (`Conv2dIm2col`) for two reasons. It takes any stride, dilation
# and group count, so it runs the layers the flat grid does not: the strided convs (the
# stem's 7x7/2, the first 3x3/2 of ResNet stages 2-4) and the grouped ones (ResNeXt). And
# it is the reference the shifted path is held to: the tests compare the two on the same
# inputs, forward and backward.

# %%
padded = np.pad(x_small.transpose(1, 0, 2, 3), ((0, 0), (0, 0), (1, 1), (1, 1)))  # (C, N, Hp, Wp)
cols = im2col(padded, (3, 3), (1, 1), (1, 1), out_size)  # (C, kh, kw, N, OH, OW)
print("columns:", cols.shape, "-> matrix", cols.reshape(9, -1).shape)
for i, j in [(0, 0), (1, 1), (2, 2)]:
    start = grid.shift(i, j, (1, 1))
    view_without_junk = from_grid(x_flat[:, start : start + grid.length], grid, out_size)
    print(f"row of offset ({i}, {j}) == its shifted view without the junk:",
          np.array_equal(cols[0, i, j], view_without_junk[:, 0]))

# %% [markdown]
# ### See it: the im2col matrix
#
# The same two numbered images: one row per kernel offset, one column per output pixel.
# Read along a row: the image's pixels in order, moved by the offset, with 0 where the
# window reaches into the padding.

# %%
fig, ax = plt.subplots(figsize=(12, 3.6))
draw_numbers(ax, cols.reshape(9, -1), "im2col of the two numbered images: (C*kh*kw, N*OH*OW)")
ax.set_yticks(range(9), [f"offset ({i}, {j})" for i in range(3) for j in range(3)], fontsize=8)
ax.set_xlabel("output pixel: image 0 (columns 0-11), image 1 (12-23), row by row")
fig.tight_layout()
plt.show()

# %% [markdown]
# The shifted path against the reference, on random inputs, and what each one needs in
# memory for one 3x3 layer of the backbone (batch 2, 64 channels, 128 x 128, float32):

# %%
x = rng.standard_normal((2, 3, 9, 8))
weight = rng.standard_normal((4, 3, 3, 3))
by_im2col = Conv2dIm2col.apply(tm.Tensor(x), tm.Tensor(weight), None, (1, 1), (1, 1), (1, 1), 1)
print("shifted GEMMs vs im2col, largest difference:",
      np.abs(F.conv2d(tm.Tensor(x), tm.Tensor(weight), padding=1).data - by_im2col.data).max())
layer = (2, 64, 128, 128)
layer_grid = flat_grid(layer, (1, 1), (3, 3), (1, 1))
input_mb = np.prod(layer) * 4 / 2**20
print(f"input {input_mb:.0f} MB; im2col's columns {9 * input_mb:.0f} MB; the flat grid "
      f"{layer[1] * (layer_grid.length + layer_grid.extra) * 4 / 2**20:.1f} MB")

# %% [markdown]
# ## 4. Build it: the gradients of a convolution (task 1.3)
#
# Differentiate the definition. Every output element `out[n, o, y, x]` was a sum of
# `weight[o, c, i, j] * xpad[n, c, y + i, x + j]`, so its gradient `G[n, o, y, x]` flows
# back to both factors (stride 1, dilation 1 here; with dilation the shifts are `i d`,
# `j d`).
#
# **The weight gradient** is, for each offset, one more matrix product of the output
# gradient with the same shifted view the forward used:
#
# $$\frac{\partial L}{\partial\, \text{weight}[:, :, i, j]} = G \;(O, L) \;@\;
# \text{shift}(\text{xpad}, i, j)^T \;(L, C)$$
#
# On the grid, `G` must be zero at the junk positions: they were never outputs, so they
# must add nothing.
#
# **The input gradient** collects, at each padded pixel `p`, every output that read it:
# output `y` read pixel `p = y + i` through tap `i`, so
# `grad_xpad[p] = sum over o, i of weight[o, :, i] G[o, p - i]` (one axis shown). Write
# `i' = kh - 1 - i` and this is `sum over i' of weight[o, :, kh-1-i'] G[o, p - (kh-1) + i']`:
# an ordinary convolution (a correlation, like the forward) of `G` zero-padded by `kh - 1`,
# with the kernel **flipped** in both axes and its input and output channels **swapped**
# (`(O, C, kh, kw)` becomes `(C, O, kh, kw)`). Padding `G` by `kh - 1 - ph` instead of
# `kh - 1` gives the gradient of the unpadded input directly. So the same
# `conv2d_shifted` computes it, on a flat grid of `G`.
#
# A picture makes the flip concrete. Let the kernel be the numbers 0..8 and let the
# gradient be 1 at one output pixel only. That pixel read a 3 x 3 window, each input
# weighted by the kernel entry over it, so the input gradient must be *the kernel itself,
# upright*, on that window. Correlating `G` with the kernel unflipped would paint it
# rotated by 180 degrees.
#
# **Task 1.3** is `conv2d_shifted_weight_grad` (the weight gradient, one product per
# offset, written into `grad[i, j]`) and the input gradient in `Conv2dShifted.backward`:
# flip the kernel, swap its channels, make its `kernel_matrices`, run `conv2d_shifted`
# on `grad_flat` (already padded by `kh - 1 - ph` and laid out on `grad_grid` for you),
# and drop the junk with `from_grid`.

# %%
kernel_0_to_8 = np.arange(9.0).reshape(1, 1, 3, 3)
x = tm.Tensor(np.zeros((1, 1, 5, 5)), requires_grad=True)
out = F.conv2d(x, tm.Tensor(kernel_0_to_8), padding=1)
one_pixel = np.zeros(out.shape)
one_pixel[0, 0, 2, 2] = 1.0  # the gradient of output pixel (2, 2) only
(out * tm.Tensor(one_pixel)).sum().backward()
unflipped = F.conv2d(tm.Tensor(one_pixel), tm.Tensor(kernel_0_to_8), padding=1).data
print("input gradient, rows 1-3, columns 1-3:\n", x.grad[0, 0, 1:4, 1:4])

# %% [markdown]
# ### See it: the flipped kernel

# %%
fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
panels = [(kernel_0_to_8[0, 0], "the kernel"),
          (one_pixel[0, 0], "gradient of the output:\n1 at pixel (2, 2)"),
          (x.grad[0, 0], "input gradient (backward):\nthe kernel, upright"),
          (unflipped[0, 0], "correlating with the unflipped\nkernel: rotated (wrong)")]
for ax, (values, title) in zip(axes, panels):
    ax.imshow(values, cmap="viridis", vmin=0, vmax=8)
    for (row, col), value in np.ndenumerate(values):
        ax.text(col, row, f"{value:.0f}", ha="center", va="center", fontsize=9,
                color="white" if value < 5 else "black")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Check it: against the reference
#
# The shifted path's gradients against im2col's (whose backward is two GEMMs,
# `grad_W = grad_out @ cols^T` and `grad_cols = W^T @ grad_out`, and a *col2im* that adds
# the columns back into the image), with padding 0, 1 and 2 and a dilated kernel:

# %%
def conv_gradients(x, weight, upstream, padding, dilation, by_im2col=False):
    """The input and weight gradients of sum(upstream * conv(x, weight)), stride 1."""
    x_tensor, w_tensor = tm.Tensor(x, requires_grad=True), tm.Tensor(weight, requires_grad=True)
    if by_im2col:
        out = Conv2dIm2col.apply(x_tensor, w_tensor, None, (1, 1), (padding, padding),
                                 (dilation, dilation), 1)
    else:  # stride 1: the shifted path
        out = F.conv2d(x_tensor, w_tensor, padding=padding, dilation=dilation)
    (out * tm.Tensor(upstream)).sum().backward()
    return x_tensor.grad, w_tensor.grad


x = rng.standard_normal((2, 3, 7, 6))
weight = rng.standard_normal((4, 3, 3, 3))
for padding, dilation in [(0, 1), (1, 1), (2, 1), (2, 2)]:
    reach = 2 * dilation  # how far a 3x3 kernel's taps spread
    upstream = rng.standard_normal((2, 4, 7 + 2 * padding - reach, 6 + 2 * padding - reach))
    shifted = conv_gradients(x, weight, upstream, padding, dilation)
    reference = conv_gradients(x, weight, upstream, padding, dilation, by_im2col=True)
    print(f"padding {padding}, dilation {dilation}: largest difference of the input gradient "
          f"{np.abs(shifted[0] - reference[0]).max():.1e}, of the weight gradient "
          f"{np.abs(shifted[1] - reference[1]).max():.1e}")


# %% [markdown]
# ## 5. Build it: max-pooling (task 1.4)
#
# The ResNet stem ends with a 3x3 max-pool of stride 2 (lesson 2). Each output is the
# largest input of its window; windows reaching past the border see padding that never
# wins (`-inf`). tinymask's forward visits the `kh * kw` window offsets one at a time over
# the whole map (slices, never a Python loop over pixels), keeps the running maximum, and
# remembers *which offset* held it: a strict `>` keeps the first maximum in scan order,
# as torch does, so each output has exactly one winner.
#
# The backward sends each output's gradient to its winner only: the max is locally the
# identity on the winner and flat in the others. With stride 2 and a 3-wide window,
# windows overlap, so one input can win several windows; its gradient is the sum of
# theirs (one slice-add per offset, `+=`).
#
# **Task 1.4** is `MaxPool2d` in `tinymask/functional/pooling.py`: the forward between the
# markers (the running max `best` and the winning offset `best_offset`, `i * kw + j`, per
# output) and the backward (for each offset, add `grad` where `best_offset` is that
# offset, into the window positions of that offset). `_window` gives the slices of one
# offset.
#
# Here a 7 x 7 map of distinct numbers, pooled 3x3/2 with padding 1, and the gradient of
# the sum of the outputs: the number of windows each input won.

# %%
x = tm.Tensor(rng.permutation(49).reshape(1, 1, 7, 7).astype(np.float64), requires_grad=True)
pooled = F.max_pool2d(x, 3, stride=2, padding=1)
pooled.sum().backward()
print("pooled:", pooled.shape, " windows won by one input, at most:", x.grad.max())
print("every output has one winner:", x.grad.sum() == pooled.data.size)

# %% [markdown]
# ### See it: windows and winners

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3.8))
for ax, values, title in [(axes[0], x.data[0, 0], "input (7 x 7)"),
                          (axes[1], pooled.data[0, 0], "3x3/2 max-pool, padding 1 (4 x 4)"),
                          (axes[2], x.grad[0, 0], "gradient of the sum:\nwindows each input won")]:
    ax.imshow(values, cmap="viridis")
    middle = (values.min() + values.max()) / 2
    for (row, col), value in np.ndenumerate(values):
        ax.text(col, row, f"{value:.0f}", ha="center", va="center", fontsize=8,
                color="white" if value < middle else "black")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
# the window of output (1, 1) covers input rows and columns 1-3
axes[0].add_patch(plt.Rectangle((0.5, 0.5), 3, 3, fill=False, color="red", lw=2))
axes[1].add_patch(plt.Rectangle((0.5, 0.5), 1, 1, fill=False, color="red", lw=2))
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 6. Check it: every op of this lesson, by central differences
#
# The engine's cases of `tinymask.gradcheck_cases` that rest on this lesson's tasks: the
# products of task 1.1, the convolutions of tasks 1.2-1.3 (stride 1 on the shifted path;
# stride 2 and the transposed convolution of the mask head on im2col), max-pooling of
# task 1.4. Around $10^{-8}$ or below is right.

# %%
LESSON_1_OPS = ("mul (broadcast)", "matmul (batched)", "conv2d 3x3 stride 1",
                "conv2d 3x3 stride 2", "conv2d dilated", "conv_transpose2d", "max_pool2d")
for name in LESSON_1_OPS:
    fn, inputs = CASES[name]
    error = tm.gradcheck(fn, inputs, raise_on_failure=False)
    print(f"{name:20s} max relative error {error:.1e}  {'ok' if error < 1e-6 else 'FAILED'}")

# %% [markdown]
# ## 7. What the paper relies on, and what we measured
#
# The paper trains with SGD (momentum 0.9, weight decay $10^{-4}$, lr 0.02) for 160k
# iterations on 8 GPUs: every one of those steps is convolutions forward and backward.
# Here is one 3x3 layer, forward and backward, both ways: the same multiply-adds, arranged
# differently. im2col first writes 9 copies of the input, then runs one GEMM whose inner
# dimension is long (`C * 9`). The shifted path writes no copies, but runs 9 GEMMs whose
# inner dimension is short (`C`): each reads the whole input and adds into the whole
# output for only `C` multiply-adds per element, so it leans harder on memory bandwidth
# and on how well the BLAS library splits small products over threads. Which of the two
# wins depends on the machine (its BLAS, its cores, how busy they are), so the cell says
# what it found here. What does not depend on the machine is the memory printed in §3.
# `bench/bench_conv.py` times every layer shape of the backbone against torch; its records
# are in `bench/RESULTS.md`, with the command and the machine.

# %%
def milliseconds(conv, x, weight):
    x_tensor, w_tensor = tm.Tensor(x, requires_grad=True), tm.Tensor(weight, requires_grad=True)
    start = time.perf_counter()
    conv(x_tensor, w_tensor).sum().backward()
    return 1e3 * (time.perf_counter() - start)


size = 16 if SMOKE else 64
x = rng.standard_normal((2, 64, size, size)).astype(np.float32)
weight = (rng.standard_normal((64, 64, 3, 3)) * 0.05).astype(np.float32)
ways = {"shifted GEMMs": lambda x, w: F.conv2d(x, w, padding=1),
        "im2col": lambda x, w: Conv2dIm2col.apply(x, w, None, (1, 1), (1, 1), (1, 1), 1)}
times = {name: [] for name in ways}
for _ in range(5):  # taking turns, and the fastest of 5: the least disturbed by other work
    for name, conv in ways.items():
        times[name].append(milliseconds(conv, x, weight))
best = {name: min(values) for name, values in times.items()}
print(f"one 3x3 conv, 64 -> 64 channels, 2 x {size} x {size}, float32, forward + backward:")
print(", ".join(f"{name} {ms:.1f} ms" for name, ms in best.items()))
faster, slower = sorted(best, key=best.get)
print(f"here, {faster} took {best[faster] / best[slower]:.2f} of the time of {slower}")

# %% [markdown]
# ## Summary
#
# - A `Function` is a forward and its backward side by side; `backward()` walks the tape
#   once, in reverse order, adding gradients where paths meet. Mul's backward multiplies
#   by the other factor and sums over broadcast axes; matmul's is two more matmuls,
#   `grad @ B^T` and `A^T @ grad`.
# - Central differences in float64 prove a backward right: `tm.gradcheck`.
# - A convolution is a sum over kernel offsets of `(O, C)` matrices times the input
#   shifted; on the flat grid each shifted input is a view, so the forward is `kh * kw`
#   GEMMs with no copies, and a few junk positions are dropped at the end.
# - Its weight gradient is one more GEMM per offset; its input gradient is a convolution
#   of the output gradient with the kernel flipped and its channels swapped.
# - im2col (copies, one GEMM) is the textbook reference: it runs the strided and grouped
#   convs, and the shifted path is tested against it.
# - Max-pooling remembers each window's winner; its backward adds each gradient there.
#
# ## Exercises
#
# The course tasks of this lesson: write each between its `# --- task 1.N: ... ---` markers.
# The solution is what the model runs: every later lesson, and `tinymask train`, run your
# code. Check one with `tinymask course check 1.N`; the last cell checks all four.
#
# 1. **Task 1.1**, the backward of mul and matmul: `Mul.backward` and `MatMul.backward` in
#    `tinymask/tensor.py` (§1).
# 2. **Task 1.2**, a convolution as shifted matrix products: `conv2d_shifted` in
#    `tinymask/functional/conv.py` (§3).
# 3. **Task 1.3**, the gradients of a convolution: `conv2d_shifted_weight_grad` and the
#    input gradient in `Conv2dShifted.backward`, same file (§4). Needs task 1.2.
# 4. **Task 1.4**, max-pooling, forward and backward: `MaxPool2d` in
#    `tinymask/functional/pooling.py` (§5).
#
# Then two to answer here:
#
# 5. Write `Tanh` as a `Function`: its forward is written; complete its backward (the
#    derivative of $\tanh$ is $1 - \tanh^2$, and the forward saved its output). The check
#    gradient-checks it.
# 6. The mask head (lesson 8) runs 3x3 convs with padding 1 on 14 x 14 RoI features.
#    For a batch of 2 such RoIs, work out by hand how many positions the flat grid has,
#    how many of them are junk, and at which column of the matrix the view of kernel
#    offset (2, 2) starts. The check builds the grid and compares.

# %%
class Tanh(tm.Function):
    @staticmethod
    def forward(ctx, x):
        y = np.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_out):
        (y,) = ctx.saved_tensors
        return grad_out * (1 - y * y)  # your answer


tanh_error = tm.gradcheck(Tanh.apply, [rng.standard_normal(6)], raise_on_failure=False)
assert tanh_error < 1e-6, f"Tanh's backward is off: relative error {tanh_error:.1e}"
print(f"exercise 5: correct (relative error {tanh_error:.1e})")

# %%
grid_positions = 2 * 15 * 15  # your answer
junk_positions = 2 * 15 * 15 - 2 * 14 * 14  # your answer
offset_2_2_starts_at = 2 * 15 + 2  # your answer
roi_grid = flat_grid((2, 256, 14, 14), (1, 1), (3, 3), (1, 1))
assert grid_positions == roi_grid.length, "not the number of positions on the grid"
assert junk_positions == roi_grid.length - 2 * 14 * 14, "not the number of junk positions"
assert offset_2_2_starts_at == roi_grid.shift(2, 2, (1, 1)), "not where offset (2, 2) starts"
print("exercise 6: correct")

# %%
check_tasks("1.1", "1.2", "1.3", "1.4")
print("exercise checks passed")
