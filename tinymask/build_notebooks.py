"""Build notebooks/NN_*.ipynb from lessons/NN_*.py and execute them (real runs, not smoke).

    pip install -e ".[lessons]" && python -m tinymask.build_notebooks [NAME ...]

(from a checkout of the repository: the lessons live beside the package, not in it)

The lesson sources are jupytext "py:percent" files: the reviewed text. Each is converted to
a notebook and executed top to bottom in a fresh kernel, from the lessons/ folder, so the
committed notebooks show the outputs and plots of a real run. Lessons that show an
ablation read its recorded result from lessons/results/ (written by
``tinymask ablate NAME --record``) rather than training for hours inside the notebook.
"""

from __future__ import annotations

import glob
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, "lessons")  # lessons run from their own folder
NOTEBOOKS = os.path.join(ROOT, "notebooks")


def lesson_sources(names=()):
    paths = sorted(glob.glob(os.path.join(HERE, "[0-9][0-9]_*.py")))
    if not paths:
        raise FileNotFoundError(f"no lessons in {HERE}: run this from a checkout of tinymask")
    if names:
        paths = [p for p in paths if any(name in os.path.basename(p) for name in names)]
    return paths


def build(path: str, timeout: int = 3600) -> str:
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    notebook = jupytext.read(path)
    notebook.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python",
                                       "name": "python3"}
    env_smoke = os.environ.pop("TINYMASK_SMOKE", None)  # notebooks show real runs
    try:
        NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": HERE}}).execute()
    finally:
        if env_smoke is not None:
            os.environ["TINYMASK_SMOKE"] = env_smoke
    os.makedirs(NOTEBOOKS, exist_ok=True)
    out = os.path.join(NOTEBOOKS, os.path.basename(path)[:-3] + ".ipynb")
    nbformat.write(notebook, out)
    return out


def main(argv) -> int:
    for path in lesson_sources(argv):
        start = time.perf_counter()
        out = build(path)
        print(f"{os.path.relpath(out)}  ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
