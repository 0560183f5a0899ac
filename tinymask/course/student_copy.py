"""``tinymask course init DIR``: a copy of the repository with every task's solution removed.

The copy holds the package, the tests, the lessons, the notebooks, pyproject.toml and the
README, exactly as in the repository except for the marked blocks, whose lines are replaced
by one ``raise NotImplementedError("Task L.N, ...")`` each. After ``pip install -e DIR`` the
student's own code is what the lessons, the tests and ``tinymask train`` run; once every
task passes, the whole test suite passes and the model trains on it.
"""

from __future__ import annotations

import os
import shutil

from tinymask.course.blocks import find_blocks, stub_text
from tinymask.course.check import CourseError
from tinymask.course.tasks import TASKS_BY_ID

MARKER = ".tinymask-student-copy"  # a file at the root of every student copy
COPIED = ("tinymask", "tests", "lessons", "notebooks", "pyproject.toml", "README.md",
          ".gitignore")
SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache",
                                 ".ipynb_checkpoints", ".tinymask-course.json")


def source_root() -> str:
    """The repository the solutions come from: the checkout of the imported tinymask."""
    import tinymask

    root = os.path.dirname(os.path.dirname(os.path.abspath(tinymask.__file__)))
    missing = [name for name in COPIED[:5] if not os.path.exists(os.path.join(root, name))]
    if missing:
        raise CourseError(f"{root} is not a checkout of the tinymask repository (no "
                          f"{', '.join(missing)}): clone it and pip install -e it first")
    return root


def init(destination: str, root: str | None = None) -> list:
    """Write the student copy into ``destination`` (new or empty); returns the stubbed blocks."""
    root = root or source_root()
    destination = os.path.abspath(destination)
    if os.path.exists(destination) and (not os.path.isdir(destination) or os.listdir(destination)):
        raise CourseError(f"{destination} already exists and is not an empty folder: give a "
                          "new folder (nothing is overwritten)")
    if destination == os.path.abspath(root) or destination.startswith(
            os.path.abspath(root) + os.sep):
        raise CourseError(f"{destination} is inside the repository {root}: give a folder "
                          "outside it")
    blocks = find_blocks(root)
    os.makedirs(destination, exist_ok=True)
    for name in COPIED:
        source = os.path.join(root, name)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(destination, name), ignore=SKIPPED)
        elif os.path.exists(source):
            shutil.copy2(source, os.path.join(destination, name))
    with open(os.path.join(destination, MARKER), "w") as stream:
        stream.write(f"A tinymask student copy, made from {root} by tinymask course init.\n")
    for path in sorted({block.path for block in blocks}):
        target = os.path.join(destination, path)
        with open(target, encoding="utf-8") as stream:
            text = stream.read()
        with open(target, "w", encoding="utf-8") as stream:
            stream.write(stub_text(text, path, TASKS_BY_ID))
    return blocks
