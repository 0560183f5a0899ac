"""The course: marked blocks, student copies, checks, and tests that catch wrong solutions.

The two checks that matter most run real pytest processes on copies of the repository:
* in a student copy (every block a stub) every task's tests fail, as "not started";
* with a plausible wrong solution planted in a task, that task's tests fail.
On the repository itself every task passes (tests/course runs with the rest of the suite).
"""

from __future__ import annotations

import os
import shutil

import pytest

from tinymask.course.blocks import MarkerError, find_blocks, find_blocks_in_text, stub_text
from tinymask.course.check import CourseError, is_stub, run_task_tests, source_status
from tinymask.course.student_copy import init
from tinymask.course.tasks import TASKS, TASKS_BY_ID, get_task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCKS = find_blocks(ROOT)


def test_there_are_at_least_fourteen_tasks_in_lesson_order():
    assert len(TASKS) >= 14
    order = [tuple(int(part) for part in task.id.split(".")) for task in TASKS]
    assert order == sorted(order), "TASKS must be listed in lesson order"


@pytest.mark.parametrize("task", TASKS, ids=[task.id for task in TASKS])
def test_every_task_has_blocks_tests_and_a_lesson(task):
    blocks = [block for block in BLOCKS if block.task_id == task.id]
    assert blocks, f"task {task.id} has no '# --- task {task.id}: ... ---' block in tinymask/"
    assert all(block.title == task.title for block in blocks), (
        f"task {task.id}: marker titles {[b.title for b in blocks]} != {task.title!r}")
    assert 5 <= sum(block.num_lines for block in blocks) <= 30, "a task is 5-30 lines of code"
    tests = [name for name in os.listdir(os.path.join(ROOT, "tests", "course"))
             if name.startswith(f"test_task_{task.id.replace('.', '_')}_")]
    assert tests, f"task {task.id} has no tests/course/test_task_{task.marker[5:]}_*.py"
    for name in tests:
        text = open(os.path.join(ROOT, "tests", "course", name)).read()
        assert f"pytest.mark.{task.marker}" in text, f"{name} is not marked {task.marker}"
    def number(task_id):
        return tuple(int(part) for part in task_id.split("."))

    assert all(need in TASKS_BY_ID and number(need) < number(task.id) for need in task.needs)
    lesson = os.path.join(ROOT, "lessons", task.lesson + ".py")
    assert os.path.exists(lesson), f"task {task.id} points at a missing lesson {lesson}"
    assert f"{task.id}" in open(lesson).read(), f"lesson {task.lesson} never names task {task.id}"


def test_every_block_belongs_to_a_task():
    unknown = {block.task_id for block in BLOCKS} - set(TASKS_BY_ID)
    assert not unknown, f"blocks of tasks missing from tinymask/course/tasks.py: {unknown}"


def test_markers_must_pair_up():
    with pytest.raises(MarkerError, match="never closed"):
        find_blocks_in_text("# --- task 1.1: x ---\ny = 1\n", "f.py")
    with pytest.raises(MarkerError, match="without a start"):
        find_blocks_in_text("y = 1\n# --- end task ---\n", "f.py")
    with pytest.raises(MarkerError, match="starts inside"):
        find_blocks_in_text("# --- task 1.1: x ---\n# --- task 1.2: y ---\n", "f.py")


def test_a_stub_keeps_the_markers_and_the_indentation():
    source = ("def f(x):\n    y = x\n    # --- task 4.1: the IoU matrix ---\n    a = 1\n"
              "    return a\n    # --- end task ---\n")
    stubbed = stub_text(source, "f.py", TASKS_BY_ID)
    assert stubbed.split("\n")[2:5] == [
        "    # --- task 4.1: the IoU matrix ---",
        '    raise NotImplementedError("Task 4.1, the IoU matrix: read lesson 4 §1; check with '
        'tinymask course check 4.1")',
        "    # --- end task ---"]
    (block,) = find_blocks_in_text(stubbed, "f.py")
    assert is_stub(block.body, get_task("4.1"))
    compile(stubbed, "f.py", "exec")


def test_every_stubbed_file_is_valid_python():
    for path in sorted({block.path for block in BLOCKS}):
        text = open(os.path.join(ROOT, path), encoding="utf-8").read()
        compile(stub_text(text, path, TASKS_BY_ID), path, "exec")


def test_unknown_tasks_are_refused():
    with pytest.raises(KeyError, match="no task '99.9'"):
        get_task("99.9")


def test_init_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(CourseError, match="not an empty folder"):
        init(str(tmp_path), ROOT)
    assert (tmp_path / "keep.txt").read_text() == "mine"
    with pytest.raises(CourseError, match="inside the repository"):
        init(os.path.join(ROOT, "student"), ROOT)


@pytest.fixture(scope="module")
def student_copy(tmp_path_factory):
    destination = str(tmp_path_factory.mktemp("course") / "student")
    blocks = init(destination, ROOT)
    return destination, blocks


def test_a_student_copy_has_every_block_stubbed(student_copy):
    destination, blocks = student_copy
    assert {block.task_id for block in blocks} == set(TASKS_BY_ID)
    for name in ("tinymask", "tests", "lessons", "notebooks", "pyproject.toml", "README.md"):
        assert os.path.exists(os.path.join(destination, name)), name
    assert set(source_status(destination).values()) == {"not started"}
    assert set(source_status(ROOT).values()) <= {"written", "passed"}


def test_every_task_fails_in_a_student_copy(student_copy):
    destination, _ = student_copy
    results = run_task_tests([task.id for task in TASKS], destination)
    # a task fails at its own stub, or at the stub of an earlier task its tests run through
    wrong = {task_id: (result.status, result.message) for task_id, result in results.items()
             if result.status != "not started" and not (
                 result.status.startswith("waiting for ")
                 and set(result.status[len("waiting for "):].split(", "))
                 <= set(TASKS_BY_ID[task_id].needs))}
    assert not wrong, f"tasks that do not fail at a stub in a student copy: {wrong}"


# Plausible wrong answers, one per task: (task, the right line(s), the wrong one(s)).
PLANTED = [
    ("4.1", "width_height = xpm.maximum(bottom_right - top_left, 0)  # (N, M, 2)",
     "width_height = bottom_right - top_left  # (N, M, 2)"),  # no clamp at 0
    ("4.2", 'order = numpy.argsort(-scores, kind="stable")',
     'order = numpy.argsort(scores, kind="stable")[::-1]'),  # ties in reverse order
    ("5.2", "dw = ww * xpm.log(gt_w / proposal_w)", "dw = ww * xpm.log(gt_w / proposal_h)"),
    ("5.3", "self.set_low_quality_matches_(matches, all_matches, match_quality_matrix)",
     "pass"),  # no low-quality matches
    ("6.2", "offset = 0.5 if aligned else 0.0", "offset = 0.0"),  # no half-pixel shift
    ("6.3", "return whole + xpm.sign(values) * (abs(values - whole) >= 0.5)",
     "return xpm.floor(values)"),  # floor instead of round
    ("8.2", "picked = mask_logits[xpm.arange(num_positive), gt_labels]  # (P, m, m)",
     "picked = mask_logits.sum(dim=1)  # every class channel"),
    ("12.1", "column = xpm.floor((x - x1) * scale_x)",
     "column = xpm.round((x - x1) * scale_x)"),  # the nearest cell corner, not the cell
    ("12.2", "rows = xpm.flatnonzero(valid.reshape(-1))",
     "rows = xpm.arange(valid.size)"),  # hidden and outside keypoints trained too
]


def test_planted_wrong_solutions_fail_their_tasks(tmp_path):
    copy = str(tmp_path / "planted")
    for name in ("tinymask", "tests", "pyproject.toml"):
        source = os.path.join(ROOT, name)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(copy, name),
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, os.path.join(copy, name))
    for task_id, right, wrong in PLANTED:
        (block,) = [b for b in find_blocks(copy) if b.task_id == task_id and
                    any(right in line for line in b.body)]
        path = os.path.join(copy, block.path)
        text = open(path).read()
        assert text.count(right) == 1, (task_id, right)
        open(path, "w").write(text.replace(right, wrong))
    results = run_task_tests([task_id for task_id, _, _ in PLANTED], copy)
    passing = [task_id for task_id, result in results.items() if result.status != "failed"]
    assert not passing, f"a planted wrong solution passed the tests of task(s) {passing}"
