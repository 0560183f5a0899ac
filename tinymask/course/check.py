"""Checking tasks: run each task's tests and say passed, failed or not started.

``tinymask course check [TASK ...]`` and the lessons' exercise cells call ``check_tasks``:
one pytest run over ``tests/course`` in the checkout being worked on (the student's copy, or
the repository itself, where every task passes), with a JUnit report read back to give each
task its status and the first failure's one-line message.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

from tinymask.course.blocks import find_blocks, stub_line
from tinymask.course.tasks import TASKS, TASKS_BY_ID, get_task
from tinymask.errors import UserError

STATUS_FILE = ".tinymask-course.json"  # the last check's results, for ``course list``


class CourseError(UserError):
    """A course command that cannot run here (no checkout, an unknown task)."""


class TaskCheckError(AssertionError):
    """A lesson's exercise check: some of its tasks are not solved yet."""


def course_root() -> str:
    """The checkout being worked on: where the imported ``tinymask`` lives (an editable
    install of the repository or of a student copy), else the working directory."""
    import tinymask

    candidates = [os.path.dirname(os.path.dirname(os.path.abspath(tinymask.__file__))),
                  os.getcwd()]
    for root in candidates:
        if os.path.isdir(os.path.join(root, "tests", "course")):
            return root
    raise CourseError("the course needs a checkout of tinymask (a folder with tinymask/ and "
                      "tests/course/): install one with pip install -e DIR, or make a "
                      "student copy with tinymask course init DIR")


def task_of_test_file(path: str) -> str | None:
    """``tests/course/test_task_4_2_iou.py`` -> ``"4.2"``."""
    name = os.path.basename(path)
    if not name.startswith("test_task_"):
        return None
    parts = name[len("test_task_"):].split("_")
    return f"{parts[0]}.{parts[1]}" if len(parts) > 2 and parts[1].isdigit() else None


@dataclass
class TaskResult:
    task_id: str
    status: str  # "passed" | "failed" | "not started" | "waiting for L.N" | "no tests"
    passed: int
    total: int
    message: str = ""  # the first failure, one line


def clear_compiled_kernels(root: str) -> int:
    """Delete Numba's on-disk kernel cache (``*.nbi``, ``*.nbc``) under ``root/tinymask``.

    Numba recompiles a cached kernel when the kernel's own file changes, not when a file it
    calls does: the RoI kernels compile ``ops/roi_geometry.py``, where tasks 6.1-6.3 live,
    so after editing those a stale kernel would still run the old code. Returns how many
    files were removed."""
    removed = 0
    for folder, _, files in os.walk(os.path.join(root, "tinymask")):
        for name in files:
            if name.endswith((".nbi", ".nbc")):
                os.remove(os.path.join(folder, name))
                removed += 1
    return removed


def run_task_tests(task_ids, root: str) -> dict[str, TaskResult]:
    """Run the tests of ``task_ids`` in ``root`` (one pytest process, with freshly compiled
    kernels); results by task."""
    clear_compiled_kernels(root)
    markers = " or ".join(get_task(task_id).marker for task_id in task_ids)
    with tempfile.TemporaryDirectory() as scratch:
        report = os.path.join(scratch, "report.xml")
        env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        subprocess.run([sys.executable, "-m", "pytest", os.path.join("tests", "course"), "-q",
                        "-p", "no:cacheprovider", "-m", markers, f"--junitxml={report}"],
                       cwd=root, env=env, capture_output=True, text=True)
        if not os.path.exists(report):
            raise CourseError(f"pytest wrote no report in {root}: is pytest installed there? "
                              "(pip install -e \".[test]\")")
        cases = ElementTree.parse(report).getroot().iter("testcase")
        outcomes = {task_id: [] for task_id in task_ids}
        for case in cases:
            task_id = task_of_test_file(case.get("file") or
                                        case.get("classname", "").replace(".", "/") + ".py")
            if task_id not in outcomes:
                continue
            failure = case.find("failure")
            if failure is None:
                failure = case.find("error")
            skipped = case.find("skipped") is not None
            message = "" if failure is None else (failure.get("message") or "").split("\n")[0]
            outcomes[task_id].append((failure is None, skipped, message))
    return {task_id: _summarise(task_id, runs) for task_id, runs in outcomes.items()}


def _summarise(task_id: str, runs) -> TaskResult:
    counted = [(ok, message) for ok, skipped, message in runs if not skipped]
    passed = sum(ok for ok, _ in counted)
    failures = [message for ok, message in counted if not ok]
    if not counted:
        return TaskResult(task_id, "no tests", 0, 0)
    if not failures:
        return TaskResult(task_id, "passed", passed, len(counted))
    # a failure that is a stub's NotImplementedError names the unsolved task it came from
    stubs = {other for other in TASKS_BY_ID for message in failures
             if f"Task {other}," in message}
    if len(stubs) and all(any(f"Task {other}," in message for other in stubs)
                          for message in failures):
        if task_id in stubs:
            return TaskResult(task_id, "not started", passed, len(counted), failures[0])
        waiting = ", ".join(sorted(stubs, key=lambda other: [int(p) for p in other.split(".")]))
        return TaskResult(task_id, f"waiting for {waiting}", passed, len(counted), failures[0])
    return TaskResult(task_id, "failed", passed, len(counted), failures[0])


def format_results(results: dict) -> str:
    lines = [f"{'task':5s} {'status':17s} {'tests':>7s}  title"]
    for task_id, result in results.items():
        task = TASKS_BY_ID[task_id]
        lines.append(f"{task_id:5s} {result.status:17s} {result.passed:>3d}/{result.total:<3d}  "
                     f"{task.title}")
        if result.status == "failed":
            lines.append(f"      first failure: {result.message[:160]}")
    return "\n".join(lines)


def _blocks_digest(root: str, task_id: str) -> str:
    """A fingerprint of the task's code, so a stored result is shown only while it holds."""
    text = "\n".join("\n".join(block.body) for block in find_blocks(root)
                     if block.task_id == task_id)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_results(root: str, results: dict) -> None:
    path = os.path.join(root, STATUS_FILE)
    stored = {}
    if os.path.exists(path):
        with open(path) as stream:
            stored = json.load(stream)
    for task_id, result in results.items():
        stored[task_id] = {"status": result.status, "digest": _blocks_digest(root, task_id)}
    with open(path, "w") as stream:
        json.dump(stored, stream, indent=1)


def source_status(root: str) -> dict[str, str]:
    """Each task's state from its source alone: "not started" while a block is still the
    stub, else the last check's status if the code has not changed since, else "written"."""
    blocks = find_blocks(root)
    stored = {}
    path = os.path.join(root, STATUS_FILE)
    if os.path.exists(path):
        with open(path) as stream:
            stored = json.load(stream)
    states = {}
    for task in TASKS:
        bodies = [block.body for block in blocks if block.task_id == task.id]
        if not bodies:
            states[task.id] = "missing"
        elif any(is_stub(body, task) for body in bodies):
            states[task.id] = "not started"
        elif task.id in stored and stored[task.id]["digest"] == _blocks_digest(root, task.id):
            states[task.id] = stored[task.id]["status"]
        else:
            states[task.id] = "written"
    return states


def is_stub(body, task) -> bool:
    """True while a block still holds only the student copy's stub line."""
    code = [line.strip() for line in body if line.strip()]
    return code == [stub_line(task, "")]


def check_tasks(*task_ids, root: str | None = None, quiet: bool = False) -> dict:
    """Run the tests of the given tasks (all when none are given), print a table, and raise
    ``TaskCheckError`` unless every one passes. What a lesson's exercise cell calls."""
    root = root or course_root()
    task_ids = list(task_ids) or [task.id for task in TASKS]
    results = run_task_tests(task_ids, root)
    save_results(root, results)
    if not quiet:
        print(format_results(results))
    unsolved = [task_id for task_id, result in results.items() if result.status != "passed"]
    if unsolved:
        raise TaskCheckError(f"not passed yet: task {', '.join(unsolved)} "
                              f"(tinymask course check {' '.join(unsolved)})")
    return results
