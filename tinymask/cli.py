"""The ``tinymask`` command line. Subcommands arrive with the parts they drive; today:

    tinymask info        what this machine offers tinymask (backends, kernels, threads)
    tinymask gradcheck   gradient-check every differentiable op of tinymask.functional
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys

import numpy


def _info(_args) -> int:
    import tinymask

    print(f"tinymask {tinymask.__version__} on Python {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPU cores")
    print(f"backend: {tinymask.get_backend()} (set TINYMASK_BACKEND or tinymask.set_backend)")
    print(f"numpy {numpy.__version__}")
    for name in ("numba", "cupy", "torch", "pycocotools", "matplotlib"):
        found = importlib.util.find_spec(name) is not None
        version = ""
        if found:
            module = __import__(name)
            version = getattr(module, "__version__", "")
        print(f"{name}: {version if found else 'not installed'}")
    return 0


def _gradcheck(args) -> int:
    """Check each functional op on tiny float64 inputs and print its relative error."""
    import tinymask as tm
    import tinymask.functional as F

    rng = numpy.random.default_rng(args.seed)

    def randn(*shape):
        return rng.standard_normal(shape)

    def spaced(*shape):  # distinct values: a max has one clear winner
        return rng.permutation(int(numpy.prod(shape))).reshape(shape) * 1e-2

    targets = rng.integers(0, 3, size=4)
    soft_targets = tm.Tensor(rng.uniform(size=(2, 3)))  # drawn once: fn must be deterministic
    checks = {
        "conv2d": (lambda x, w: F.conv2d(x, w, padding=1, stride=2), [randn(1, 2, 5, 5),
                                                                      randn(3, 2, 3, 3)]),
        "conv_transpose2d": (lambda x, w: F.conv_transpose2d(x, w, stride=2),
                             [randn(1, 2, 3, 3), randn(2, 3, 2, 2)]),
        "linear": (F.linear, [randn(3, 4), randn(2, 4), randn(2)]),
        "max_pool2d": (lambda x: F.max_pool2d(x, 3, 2, 1), [spaced(1, 2, 5, 5)]),
        "interpolate": (lambda x: F.interpolate(x, scale_factor=2), [randn(1, 2, 3, 3)]),
        "batch_norm": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                       [randn(3, 2, 2, 2), randn(2), randn(2)]),
        "group_norm": (lambda x: F.group_norm(x, 2), [randn(2, 4, 2, 2)]),
        "sigmoid": (F.sigmoid, [randn(4)]),
        "softmax": (lambda x: F.softmax(x, dim=1), [randn(2, 3)]),
        "binary_cross_entropy_with_logits": (
            lambda x: F.binary_cross_entropy_with_logits(x, soft_targets), [randn(2, 3)]),
        "cross_entropy": (lambda x: F.cross_entropy(x, targets), [randn(4, 3)]),
        "smooth_l1_loss": (lambda x: F.smooth_l1_loss(x, tm.Tensor(numpy.zeros((2, 3))),
                                                       beta=1 / 9), [randn(2, 3)]),
    }
    failed = 0
    for name, (fn, inputs) in checks.items():
        error = tm.gradcheck(fn, inputs, raise_on_failure=False)
        verdict = "ok" if error < 1e-6 else "FAILED"
        failed += verdict != "ok"
        print(f"{name:34s} max relative error {error:.2e}  {verdict}")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinymask", description="Mask R-CNN from scratch in NumPy and CuPy.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser("info", help="what this machine offers tinymask")
    info.set_defaults(run=_info)
    check = commands.add_parser("gradcheck", help="gradient-check the differentiable ops")
    check.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    check.set_defaults(run=_gradcheck)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        import tinymask

        print(tinymask.__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
