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
# prove its gradient right, and explain why convolution is "just" a matrix multiply.
#
# Everything here is `tinymask`'s own code: open `tinymask/autograd.py`,
# `tinymask/tensor.py` and `tinymask/functional/conv.py` beside this notebook.

# %%
import matplotlib.pyplot as plt
import numpy as np

import tinymask as tm
import tinymask.functional as F
from tinymask.functional.conv import im2col
from tinymask.lesson_utils import smoke_mode

SMOKE = smoke_mode()
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Build it: the tape
#
# A `Tensor` holds an array (`.data`). Every op on tensors that need gradients is a
# `Function` whose `forward` computes the value and remembers what its `backward` will need.
# `y.backward()` then walks the recorded ops from `y` back to the leaves, applying the
# chain rule once per op.

# %%
x = tm.Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
w = tm.Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
y = ((x * w).exp() + x).sum()  # y = sum(exp(x*w) + x)
y.backward()
print("y      =", y.item())
print("dy/dx  =", x.grad, " by hand:", w.data * np.exp(x.data * w.data) + 1)
print("dy/dw  =", w.grad, " by hand:", x.data * np.exp(x.data * w.data))

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
# ## 3. Build it: convolution as one matrix multiply
#
# A 2-D convolution slides a `kh x kw` kernel over the input. The obvious definition is
# four nested loops; here it is, only to check the fast version against:

# %%
def conv2d_loops(x, weight):
    """Stride 1, no padding: the definition, slowly."""
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    out = np.zeros((n, o, h - kh + 1, w - kw + 1))
    for i in range(h - kh + 1):
        for j in range(w - kw + 1):
            window = x[:, :, i : i + kh, j : j + kw]  # (N, C, kh, kw)
            out[:, :, i, j] = np.tensordot(window, weight, axes=([1, 2, 3], [1, 2, 3]))
    return out


x = rng.standard_normal((2, 3, 6, 7))
weight = rng.standard_normal((4, 3, 3, 3))
fast = F.conv2d(tm.Tensor(x), tm.Tensor(weight)).data
print("largest difference from the loops:", np.abs(fast - conv2d_loops(x, weight)).max())

# %% [markdown]
# `tinymask` never runs those loops. **im2col** copies every window into a column, so
# the convolution of the whole batch becomes a single matrix product
# `W (O, C*kh*kw) @ cols (C*kh*kw, N*OH*OW)`: the same arithmetic, done by a BLAS GEMM that
# uses every core and cache level. The copy is made with `kh*kw` strided slices, never a
# Python loop over pixels:

# %%
padded = x.transpose(1, 0, 2, 3)  # (C, N, H, W): the layout im2col reads
cols = im2col(padded, (3, 3), (1, 1), (1, 1), (4, 5))  # (C, kh, kw, N, OH, OW)
matrix = cols.reshape(3 * 3 * 3, -1)
print("columns:", cols.shape, "-> matrix", matrix.shape)
by_gemm = (weight.reshape(4, -1) @ matrix).reshape(4, 2, 4, 5).transpose(1, 0, 2, 3)
print("GEMM equals conv2d:", np.allclose(by_gemm, fast))

# %% [markdown]
# ## 4. See it

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
axes[0].imshow(x[0, 0], cmap="viridis")
axes[0].add_patch(plt.Rectangle((-0.5, -0.5), 3, 3, fill=False, color="red", lw=2))
axes[0].set_title("input channel 0, one 3x3 window (red)")
axes[1].imshow(matrix[:, :40], cmap="viridis", aspect="auto")
axes[1].set_title("im2col: each column is one window (27 values = 3 channels x 3 x 3)")
axes[1].set_xlabel("window (image 0, output positions)")
axes[1].set_ylabel("channel, ky, kx")
fig.tight_layout()
plt.show()

# %% [markdown]
# The backward of a convolution is two more GEMMs (`grad_W = grad_out @ cols^T`,
# `grad_cols = W^T @ grad_out`) and a *col2im* that adds the columns back into the image.
# Every op `tinymask` has is checked the same way; here are their errors:

# %%
from tinymask.cli import main as tinymask_cli  # the `tinymask gradcheck` command

tinymask_cli(["gradcheck"])

# %% [markdown]
# ## 5. What the paper relies on, and what we measured
#
# The paper trains with SGD (momentum 0.9, weight decay $10^{-4}$, lr 0.02) for 160k
# iterations on 8 GPUs: every one of those steps is convolutions forward and backward.
# `tinymask`'s convolution is measured against torch's in `bench/bench_conv.py`. On a 2-core
# CPU at a 512-px input (batch 2, ResNet/FPN layer shapes, forward + backward) the geometric
# mean of the time ratios tinymask / torch was 0.88 (`bench/RESULTS.md`): a GEMM-based
# convolution in NumPy is as fast as a hand-tuned library here, slower only on the 3x3
# layers at high resolution, where im2col copies the input nine times.

# %%
import time

size = 16 if SMOKE else 64
x = tm.Tensor(rng.standard_normal((2, 64, size, size)).astype(np.float32), requires_grad=True)
conv = tm.nn.Conv2d(64, 64, 3, padding=1)
start = time.perf_counter()
F.relu(conv(x)).sum().backward()
print(f"one 3x3 conv, 64 -> 64 channels, 2 x {size} x {size}, forward + backward: "
      f"{(time.perf_counter() - start) * 1e3:.1f} ms")

# %% [markdown]
# ## Summary
#
# - A `Function` is a forward and its backward side by side; `backward()` walks the tape
#   once, in reverse order, adding gradients where paths meet.
# - Central differences in float64 prove a backward right: `tm.gradcheck`.
# - Convolution = im2col (strided copies) + one GEMM; its backward = two GEMMs + col2im.
#
# ## Exercises
#
# 1. Write `Tanh` as a `Function` (its derivative is $1 - \tanh^2$) and check it.
# 2. Show that `F.conv2d(x, w, stride=2)` equals the stride-1 result subsampled: `[:, :, ::2, ::2]`.
# 3. Break `Tanh`'s backward on purpose and watch `tm.gradcheck` catch it.

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
        return grad_out * (1 - y * y)


assert tm.gradcheck(Tanh.apply, [rng.standard_normal(6)]) < 1e-6  # exercise 1
x4 = tm.Tensor(rng.standard_normal((1, 2, 7, 7)))
w4 = tm.Tensor(rng.standard_normal((3, 2, 3, 3)))
assert np.allclose(F.conv2d(x4, w4, stride=2).data, F.conv2d(x4, w4).data[:, :, ::2, ::2])
print("exercise checks passed")
