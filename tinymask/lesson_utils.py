"""Small helpers the lessons share: smoke mode and recorded ablation results.

``TINYMASK_SMOKE=1`` (set by the tests) makes every lesson run with tiny sizes and a few
steps, so CI executes each one top to bottom in seconds; the notebooks are built without
it, from real runs.

Recorded results are read from ``lessons/results`` under the working directory (the
lessons and notebooks run from the repository's root), or from the folder given.
"""

from __future__ import annotations

import io
import json
import os
import sys

DEFAULT_RESULTS_FOLDER = os.path.join("lessons", "results")


def smoke_mode() -> bool:
    """True when the lessons should run tiny (CI), from ``TINYMASK_SMOKE=1``."""
    return os.environ.get("TINYMASK_SMOKE") == "1"


def is_unsolved_task(error: BaseException) -> bool:
    """True for what a student copy raises where a course task is still a stub, and for a
    lesson's exercise check that found unsolved tasks."""
    from tinymask.course.check import TaskCheckError

    return isinstance(error, TaskCheckError) or (
        isinstance(error, NotImplementedError) and str(error).startswith("Task "))


def stop_at_unsolved_tasks() -> None:
    """Make a lesson that reaches an unsolved course task stop with one line naming it
    (``Task 6.2, one RoIAlign bin: read lesson 6 §1; check with ...``) instead of a
    traceback; every other error keeps its traceback. Works in a notebook and as a script.
    In a student copy it also drops the compiled kernels, so they are compiled from the
    student's current code (see ``tinymask.course.check.clear_compiled_kernels``)."""
    _refresh_kernels_in_a_student_copy()
    try:
        from IPython import get_ipython
    except ImportError:
        get_ipython = None
    shell = get_ipython() if get_ipython is not None else None
    if shell is not None:
        def handler(shell, kind, error, traceback, tb_offset=None):
            if is_unsolved_task(error):
                print(f"stopped here: {error}", file=sys.stderr)
                return None
            return shell.showtraceback((kind, error, traceback), tb_offset=tb_offset)

        shell.set_custom_exc((NotImplementedError, AssertionError), handler)
        return
    previous = sys.excepthook

    def hook(kind, error, traceback):
        if is_unsolved_task(error):
            print(f"stopped here: {error}", file=sys.stderr)
            return
        previous(kind, error, traceback)

    sys.excepthook = hook


def _refresh_kernels_in_a_student_copy() -> None:
    import tinymask
    from tinymask.course.check import clear_compiled_kernels
    from tinymask.course.student_copy import MARKER

    root = os.path.dirname(os.path.dirname(os.path.abspath(tinymask.__file__)))
    if os.path.exists(os.path.join(root, MARKER)):
        clear_compiled_kernels(root)


def recorded_result(name: str, folder: str = DEFAULT_RESULTS_FOLDER):
    """The recorded ``tinymask ablate NAME --record`` result in ``folder``, or None if it
    is not there (not recorded yet, or the lesson runs outside the repository's root)."""
    path = os.path.join(folder, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as stream:
        return json.load(stream)


def show(figure, colours: int | None = None) -> None:
    """Display a matplotlib Figure in a notebook. Figures made with ``Figure()`` (as
    tinymask's plotting helpers make them, so they never touch pyplot's global state) are
    invisible to ``plt.show()``; IPython displays them. Outside a notebook: nothing.

    ``colours``: store the PNG with a palette of that many colours, at most 256 (a figure
    full of noisy images takes about a third of the bytes, and lines stay sharp)."""
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return
    if get_ipython() is not None:
        # as PNG bytes: shown whatever matplotlib backend the kernel has (or has not) set up
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        if colours is not None:
            from PIL import Image as PillowImage

            buffer.seek(0)
            palette = PillowImage.open(buffer).convert("RGB").quantize(
                colours, method=PillowImage.Quantize.FASTOCTREE)
            buffer = io.BytesIO()
            palette.save(buffer, format="png", optimize=True)
        display(Image(data=buffer.getvalue()))


def show_ablation(name: str, folder: str = DEFAULT_RESULTS_FOLDER):
    """Print our result of ablation ``name`` beside the paper's and draw it.

    In smoke mode the ablation runs at toy size (so CI exercises the whole path; its
    numbers mean nothing). Otherwise the result recorded in ``folder`` is shown, or, if
    there is none, where it was looked for and the command that records it."""
    from tinymask.ablations import (
        format_paired,
        format_per_seed,
        format_table,
        plot_result,
        run_ablation,
    )

    if smoke_mode():
        result = run_ablation(name, preset="smoke", progress=False, log=lambda line: None)
    else:
        result = recorded_result(name, folder)
        if result is None:
            print(f"No {os.path.join(folder, name + '.json')} under {os.getcwd()}: run the "
                  "lesson from the repository's root, or record it there with\n"
                  f"  tinymask ablate {name} --preset standard --seeds 3 --record")
            return None
    print(format_table(result))
    if result.get("trainings"):
        print(format_per_seed(result))
    if format_paired(result):
        print(format_paired(result))
    print(f"recorded by: {result['command']}  ({result['machine']}, {result['seconds']:.0f} s)")
    figure = plot_result(result)
    show(figure)
    return figure
