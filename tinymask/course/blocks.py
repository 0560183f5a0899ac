"""The marked solution blocks in the package, and the stubs that replace them in a student copy.

A course task is code that the model runs, marked where it lives (nbgrader-style):

    def box_iou(boxes1, boxes2):
        ...
        # --- task 4.1: the IoU matrix ---
        top_left = xpm.maximum(boxes1[:, None, :2], boxes2[None, :, :2])  # (N, M, 2)
        ...
        return ...
        # --- end task ---

A student copy replaces the lines between the two markers (the markers stay) with one line
at the block's indentation:

        raise NotImplementedError("Task 4.1, the IoU matrix: read lesson 4 §1; check with
                                   tinymask course check 4.1")   (on one line)

A task may have several blocks (the backward of mul and of matmul are one task). This file
only reads and rewrites text: it never imports the code it marks.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

START = re.compile(r"^(?P<indent>[ \t]*)# --- task (?P<id>\d+\.\d+): (?P<title>.+?) ---[ \t]*$")
END = re.compile(r"^[ \t]*# --- end task ---[ \t]*$")


class MarkerError(ValueError):
    """Task markers that do not pair up or disagree (a mistake in the package source)."""


@dataclass(frozen=True)
class Block:
    task_id: str
    title: str
    path: str  # relative to the package root's parent, e.g. "tinymask/boxes.py"
    start: int  # 1-based line number of the start marker
    end: int  # 1-based line number of the end marker
    indent: str
    body: tuple  # the solution's lines, without the markers

    @property
    def num_lines(self) -> int:
        """Solution lines that are not blank and not only a comment."""
        return sum(1 for line in self.body if line.strip() and not line.strip().startswith("#"))


def stub_line(task, indent: str) -> str:
    """The line a student copy puts where the solution was."""
    return f'{indent}raise NotImplementedError("{task_message(task)}")'


def task_message(task) -> str:
    """What an unsolved task says: which task, where to read, how to check."""
    return (f"Task {task.id}, {task.title}: read lesson {task.lesson_number} "
            f"§{task.section}; check with tinymask course check {task.id}")


def find_blocks_in_text(text: str, path: str) -> list[Block]:
    """The marked blocks of one source file, in order."""
    blocks, open_block = [], None
    for number, line in enumerate(text.split("\n"), start=1):
        start = START.match(line)
        if start:
            if open_block is not None:
                raise MarkerError(f"{path}:{number}: task {start['id']} starts inside task "
                                  f"{open_block[0]} (opened at line {open_block[3]})")
            open_block = (start["id"], start["title"], start["indent"], number, [])
        elif END.match(line):
            if open_block is None:
                raise MarkerError(f"{path}:{number}: '# --- end task ---' without a start")
            task_id, title, indent, first, body = open_block
            blocks.append(Block(task_id, title, path, first, number, indent, tuple(body)))
            open_block = None
        elif open_block is not None:
            open_block[4].append(line)
    if open_block is not None:
        raise MarkerError(f"{path}:{open_block[3]}: task {open_block[0]} is never closed")
    return blocks


def find_blocks(root: str, package: str = "tinymask") -> list[Block]:
    """Every marked block under ``root/package``, files in sorted order (the course's own
    files, whose docstrings show the markers, are not scanned)."""
    blocks = []
    for folder, _, files in sorted(os.walk(os.path.join(root, package))):
        if os.path.relpath(folder, root) == os.path.join(package, "course"):
            continue
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8") as stream:
                text = stream.read()
            if "# --- task " in text or "# --- end task ---" in text:
                blocks.extend(find_blocks_in_text(text, os.path.relpath(path, root)))
    return blocks


def stub_text(text: str, path: str, tasks: dict) -> str:
    """``text`` with every marked block's body replaced by its stub line."""
    blocks = find_blocks_in_text(text, path)
    lines = text.split("\n")
    for block in reversed(blocks):  # from the end, so earlier line numbers stay valid
        if block.task_id not in tasks:
            raise MarkerError(f"{path}:{block.start}: task {block.task_id} is not in the "
                              "course's task table (tinymask/course/tasks.py)")
        lines[block.start:block.end - 1] = [stub_line(tasks[block.task_id], block.indent)]
    return "\n".join(lines)
