"""A Winograd F(2x2, 3x3) convolution forward against the shifted-GEMM one, on the training
step's 3x3 shapes: measured for issue "training speed", not used by the model.

    python bench/bench_winograd.py

Winograd's minimal filtering computes each 2x2 block of outputs from a 4x4 tile of the
input with 16 multiplies per (input channel, output channel) instead of 36: the input
tiles and the kernels are transformed (``B^T d B``, ``G g G^T``), multiplied as 16 GEMMs
(one per position of the 4x4 tile: (O, C) by (C, tiles)), and transformed back
(``A^T m A``). On a 14x14 map with padding 1, 16 * 49 = 784 products per (O, C) pair and
image against the shifted GEMMs' 9 * 225 = 2025 (their 15x15 flat grid included): 2.6x
fewer FLOPs. The transforms here are Numba loops, one pass each.

Prints, per shape, the largest difference from the shifted convolution (relative to the
output's largest value) and the median CPU time (``time.process_time``: the process's own,
readable on a shared machine) of each version and of each Winograd stage, over alternating
repetitions, one thread.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numba  # noqa: E402
import numpy as np  # noqa: E402

from tinymask.functional import conv  # noqa: E402

G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])


@numba.njit(cache=True)
def input_transform(x, tiles_h, tiles_w):
    """x (N, C, H, W) -> V (16, C, tiles): B^T d B of each 4x4 tile of x padded by 1."""
    n_images, channels, height, width = x.shape
    tiles = n_images * tiles_h * tiles_w
    v = np.empty((16, channels, tiles), dtype=x.dtype)
    d = np.zeros((4, 4), dtype=x.dtype)
    rows = np.empty((4, 4), dtype=x.dtype)
    for n in range(n_images):
        for c in range(channels):
            for ty in range(tiles_h):
                for tx in range(tiles_w):
                    t = (n * tiles_h + ty) * tiles_w + tx
                    for a in range(4):
                        y = 2 * ty + a - 1
                        for b in range(4):
                            xx = 2 * tx + b - 1
                            inside = 0 <= y < height and 0 <= xx < width
                            d[a, b] = x[n, c, y, xx] if inside else 0.0
                    for b in range(4):  # B^T d
                        rows[0, b] = d[0, b] - d[2, b]
                        rows[1, b] = d[1, b] + d[2, b]
                        rows[2, b] = d[2, b] - d[1, b]
                        rows[3, b] = d[1, b] - d[3, b]
                    for a in range(4):  # (B^T d) B
                        v[4 * a, c, t] = rows[a, 0] - rows[a, 2]
                        v[4 * a + 1, c, t] = rows[a, 1] + rows[a, 2]
                        v[4 * a + 2, c, t] = rows[a, 2] - rows[a, 1]
                        v[4 * a + 3, c, t] = rows[a, 1] - rows[a, 3]
    return v


@numba.njit(cache=True)
def output_transform(m, n_images, height, width, tiles_h, tiles_w):
    """M (16, O, tiles) -> y (N, O, H, W): A^T m A of each tile, the 2x2 outputs."""
    outputs = m.shape[1]
    y = np.empty((n_images, outputs, height, width), dtype=m.dtype)
    rows = np.empty((2, 4), dtype=m.dtype)
    for n in range(n_images):
        for o in range(outputs):
            for ty in range(tiles_h):
                for tx in range(tiles_w):
                    t = (n * tiles_h + ty) * tiles_w + tx
                    for b in range(4):  # A^T m
                        rows[0, b] = m[b, o, t] + m[4 + b, o, t] + m[8 + b, o, t]
                        rows[1, b] = m[4 + b, o, t] - m[8 + b, o, t] - m[12 + b, o, t]
                    for a in range(2):  # (A^T m) A
                        if 2 * ty + a < height:
                            y[n, o, 2 * ty + a, 2 * tx] = rows[a, 0] + rows[a, 1] + rows[a, 2]
                            if 2 * tx + 1 < width:
                                y[n, o, 2 * ty + a, 2 * tx + 1] = (rows[a, 1] - rows[a, 2]
                                                                   - rows[a, 3])
    return y


def weight_transform(weight):
    """(O, C, 3, 3) -> U (16, O, C): G g G^T of each kernel."""
    transformed = np.einsum("ai,ocij,bj->aboc", G.astype(weight.dtype), weight,
                            G.astype(weight.dtype), optimize=True)
    return np.ascontiguousarray(transformed.reshape(16, *weight.shape[:2]))


def winograd_stages(x, weight):
    n_images, _, height, width = x.shape
    tiles_h, tiles_w = (height + 1) // 2, (width + 1) // 2
    stages = {}
    start = time.process_time()
    v = input_transform(x, tiles_h, tiles_w)
    stages["input transform"] = time.process_time() - start
    start = time.process_time()
    u = weight_transform(weight)
    stages["kernel transform"] = time.process_time() - start
    start = time.process_time()
    m = np.matmul(u, v)
    stages["16 GEMMs"] = time.process_time() - start
    start = time.process_time()
    y = output_transform(m, n_images, height, width, tiles_h, tiles_w)
    stages["output transform"] = time.process_time() - start
    return y, stages


def shifted(x, weight):
    grid = conv.flat_grid(x.shape, (1, 1), (3, 3), (1, 1))
    values = conv.conv2d_shifted(conv.to_flat(x, grid), conv.kernel_matrices(weight), grid,
                                 (1, 1))
    return conv.from_grid(values, grid, x.shape[2:])


SHAPES = [  # (N, C, H, W), O: the step's stride-1 3x3 convolutions (batch of 2 x 128 px)
    ((32, 64, 14, 14), 64),  # the mask head, 32 positive RoIs
    ((2, 64, 32, 32), 64),  # FPN output and RPN conv on P2
    ((2, 64, 16, 16), 64),  # ... on P3
    ((2, 16, 32, 32), 16),  # ResNet-18 (quarter width) res2
    ((2, 64, 8, 8), 64),  # res4
    ((2, 128, 4, 4), 128),  # res5
]


def main(repetitions=21):
    rng = np.random.default_rng(0)
    print(f"{'shape (N, C, H, W) -> O':28s}{'error':>9s}{'shifted ms':>12s}{'Winograd ms':>13s}"
          f"{'ratio':>7s}   Winograd stages, ms")
    for shape, outputs in SHAPES:
        x = rng.standard_normal(shape).astype(np.float32)
        weight = rng.standard_normal((outputs, shape[1], 3, 3)).astype(np.float32)
        expected = shifted(x, weight)
        error = np.abs(winograd_stages(x, weight)[0] - expected).max() / np.abs(expected).max()
        times = {"shifted": [], "winograd": []}
        stage_times = {}
        for _ in range(repetitions):
            start = time.process_time()
            shifted(x, weight)
            times["shifted"].append(time.process_time() - start)
            start = time.process_time()
            _, stages = winograd_stages(x, weight)
            times["winograd"].append(time.process_time() - start)
            for name, seconds in stages.items():
                stage_times.setdefault(name, []).append(seconds)
        ours, theirs = (np.median(times[key]) * 1e3 for key in ("shifted", "winograd"))
        print(f"{str(shape) + ' -> ' + str(outputs):28s}{error:9.1e}{ours:12.2f}{theirs:13.2f}"
              f"{theirs / ours:7.2f}   " + ", ".join(
                  f"{name} {np.median(seconds) * 1e3:.2f}" for name, seconds in
                  stage_times.items()))


if __name__ == "__main__":
    main()
