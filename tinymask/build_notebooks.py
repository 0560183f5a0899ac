"""A developer tool: build notebooks/NN_*.ipynb from lessons/NN_*.py and execute them.

    pip install -e ".[lessons]" && python -m tinymask.build_notebooks [NAME ...]

Run it from the root of a tinymask checkout: the lessons and the notebooks live there,
beside the package, not in it (a student who installed tinymask reads the notebooks and
never needs this).

The lesson sources are jupytext "py:percent" files: the reviewed text. Each is converted to
a notebook and executed top to bottom in a fresh kernel, from the repository's root (where
a student runs ``python lessons/NN_*.py``), so the committed notebooks show the outputs and
plots of a real run. Lessons that show an ablation read its recorded result from
lessons/results/ (written by ``tinymask ablate NAME --record``) rather than training for
hours inside the notebook.
"""

from __future__ import annotations

import glob
import os
import sys
import time


def lesson_sources(root: str, names=()):
    paths = sorted(glob.glob(os.path.join(root, "lessons", "[0-9][0-9]_*.py")))
    if not paths:
        raise SystemExit(f"no lessons/NN_*.py under {root}: run this from the root of a "
                         "tinymask checkout")
    if names:
        def selects(name, path):
            """A number names one lesson ("2" is lesson 02, not 12 too); other names match
            any part of the file name ("keypoints")."""
            base = os.path.basename(path)
            return int(base[:2]) == int(name) if name.isdigit() else name in base

        for name in names:
            if not any(selects(name, path) for path in paths):
                raise SystemExit(f"no lesson matches {name!r}: give a lesson number or a "
                                 "part of its file name in lessons/")
        paths = [p for p in paths if any(selects(name, p) for name in names)]
    return paths


def build(path: str, root: str, timeout: int = 3600) -> str:
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    notebook = jupytext.read(path)
    notebook.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python",
                                       "name": "python3"}
    env_smoke = os.environ.pop("TINYMASK_SMOKE", None)  # notebooks show real runs
    try:
        NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": root}}).execute()
    finally:
        if env_smoke is not None:
            os.environ["TINYMASK_SMOKE"] = env_smoke
    folder = os.path.join(root, "notebooks")
    os.makedirs(folder, exist_ok=True)
    out = os.path.join(folder, os.path.basename(path)[:-3] + ".ipynb")
    nbformat.write(notebook, out)
    return out


def main(argv) -> int:
    root = os.getcwd()
    for path in lesson_sources(root, argv):
        start = time.perf_counter()
        out = build(path, root)
        print(f"{os.path.relpath(out)}  ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
