"""Every lesson runs top to bottom in smoke mode (tiny sizes, a few steps) and has the shape
all lessons share; every lesson has its notebook, built from the current source."""

import glob
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LESSONS = sorted(glob.glob(os.path.join(ROOT, "lessons", "[0-9][0-9]_*.py")))
SECTIONS = ("**Goal.**", "## 1. Build it", "Check it", "See it", "## Summary", "## Exercises",
            "exercise checks passed")


def test_there_are_lessons():
    assert len(LESSONS) >= 4


@pytest.mark.parametrize("path", LESSONS, ids=[os.path.basename(p) for p in LESSONS])
def test_lesson_runs_in_smoke_mode(path, tmp_path):
    env = dict(os.environ, TINYMASK_SMOKE="1", MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, path], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "exercise checks passed" in result.stdout


@pytest.mark.parametrize("path", LESSONS, ids=[os.path.basename(p) for p in LESSONS])
def test_lesson_has_the_shared_shape(path):
    text = open(path).read()
    missing = [section for section in SECTIONS if section not in text]
    assert not missing, f"{os.path.basename(path)} lacks {missing}"
    assert "format_name: percent" in text  # a jupytext py:percent source


@pytest.mark.parametrize("path", LESSONS, ids=[os.path.basename(p) for p in LESSONS])
def test_notebook_is_built_with_outputs(path):
    notebook = os.path.join(ROOT, "notebooks", os.path.basename(path)[:-3] + ".ipynb")
    number = os.path.basename(path)[:2]
    assert os.path.exists(notebook), f"build it: python -m tinymask.build_notebooks {number}"
    cells = json.load(open(notebook))["cells"]
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    assert code and all(cell.get("execution_count") for cell in code), "not executed"
    assert any(output.get("output_type") == "display_data" for cell in code
               for output in cell.get("outputs", [])), "no pictures"


def lesson_cells(path):
    """The cells of a py:percent lesson as (kind, text): what jupytext puts in a notebook."""
    cells, kind, lines = [], None, []
    for line in open(path).read().split("\n"):
        if line.startswith("# %%"):
            if kind is not None:
                cells.append((kind, "\n".join(lines).strip()))
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        elif kind == "markdown":
            lines.append(line[2:] if line.startswith("# ") else line.lstrip("#"))
        elif kind == "code":
            lines.append(line)
    cells.append((kind, "\n".join(lines).strip()))
    return cells


@pytest.mark.parametrize("path", LESSONS, ids=[os.path.basename(p) for p in LESSONS])
def test_notebook_is_built_from_the_current_lesson(path):
    """The committed notebook's cells are the lesson's, cell for cell: a lesson edited after
    its notebook was built fails here until the notebook is rebuilt."""
    notebook = os.path.join(ROOT, "notebooks", os.path.basename(path)[:-3] + ".ipynb")
    number = os.path.basename(path)[:2]
    built = [(cell["cell_type"], "".join(cell["source"]).strip())
             for cell in json.load(open(notebook))["cells"]]
    expected = lesson_cells(path)
    stale = [i for i, pair in enumerate(zip(built, expected)) if pair[0] != pair[1]]
    assert len(built) == len(expected) and not stale, (
        f"notebook {number} is older than its lesson (cells {stale}, {len(built)} built, "
        f"{len(expected)} in the lesson); rebuild: python -m tinymask.build_notebooks {number}")


MAX_STREAM_LINES = 60  # a longer log (a progress bar's chunks, every step) drowns the lesson
MAX_NOTEBOOK_BYTES = 600_000


def notebook_of(path):
    return os.path.join(ROOT, "notebooks", os.path.basename(path)[:-3] + ".ipynb")


def stream_lines(output):
    text = "".join(output.get("text", []))
    return text.count("\n") + (not text.endswith("\n") and bool(text))


@pytest.mark.parametrize("path", LESSONS, ids=[os.path.basename(p) for p in LESSONS])
def test_notebook_is_small_and_shows_each_figure_once(path):
    """A committed notebook reads well: no stream output longer than 60 lines, at most
    600 KB, no cell that displays the same picture twice (a figure both returned and
    shown), no stray ``<Figure ...>`` repr."""
    notebook = notebook_of(path)
    size = os.path.getsize(notebook)
    assert size <= MAX_NOTEBOOK_BYTES, f"{os.path.basename(notebook)} is {size:,} bytes"
    cells = json.load(open(notebook))["cells"]
    for number, cell in enumerate(cells):
        outputs = cell.get("outputs", [])
        for output in outputs:
            if output.get("output_type") == "stream":
                lines = stream_lines(output)
                assert lines <= MAX_STREAM_LINES, (
                    f"cell {number}: a stream output of {lines} lines (at most "
                    f"{MAX_STREAM_LINES}; no progress bars or step-by-step logs)")
        pictures = ["".join(output["data"]["image/png"]) for output in outputs
                    if output.get("output_type") in ("display_data", "execute_result")
                    and "image/png" in output.get("data", {})]
        assert len(pictures) == len(set(pictures)), f"cell {number} shows a picture twice"
        stray = [text for output in outputs if output.get("output_type") == "execute_result"
                 and "image/png" not in output.get("data", {})
                 for text in ["".join(output.get("data", {}).get("text/plain", []))]
                 if text.startswith(("<Figure", "<matplotlib", "Text("))]
        assert not stray, f"cell {number} ends in a plotting call's repr {stray[0]!r}: end it " \
            "with show(figure), plt.show() or a ';'"


def test_the_notebook_checks_catch_what_they_look_for(tmp_path, monkeypatch):
    """The check above fails on a long stream, a large file, a picture shown twice and a
    stray figure repr, and passes a notebook with none of them."""
    picture = {"output_type": "display_data", "data": {"image/png": "iVBORw0KGgo="},
               "metadata": {}}
    cases = {
        "long": [{"output_type": "stream", "name": "stdout",
                  "text": [f"step {i}\n" for i in range(61)]}],
        "twice": [picture, dict(picture)],
        "large": [{"output_type": "stream", "name": "stdout", "text": ["x" * 700_000]}],
        "repr": [{"output_type": "execute_result", "execution_count": 1, "metadata": {},
                  "data": {"text/plain": ["<Figure size 640x480 with 1 Axes>"]}}],
    }
    (tmp_path / "notebooks").mkdir()
    monkeypatch.setattr(sys.modules[__name__], "ROOT", str(tmp_path))
    for name, outputs in cases.items():
        notebook = {"cells": [{"cell_type": "code", "source": [], "execution_count": 1,
                               "outputs": outputs}]}
        (tmp_path / "notebooks" / f"99_{name}.ipynb").write_text(json.dumps(notebook))
        with pytest.raises(AssertionError):
            test_notebook_is_small_and_shows_each_figure_once(f"lessons/99_{name}.py")
    fine = {"cells": [{"cell_type": "code", "source": [], "execution_count": 1,
                       "outputs": [picture, {"output_type": "stream", "name": "stdout",
                                             "text": ["one line\n"]}]}]}
    (tmp_path / "notebooks" / "99_fine.ipynb").write_text(json.dumps(fine))
    test_notebook_is_small_and_shows_each_figure_once("lessons/99_fine.py")


def test_build_notebooks_selects_lessons_by_number_or_name():
    from tinymask.build_notebooks import lesson_sources

    def names(*selection):
        return [os.path.basename(p)[:2] for p in lesson_sources(ROOT, selection)]

    assert names("2") == ["02"]  # lesson 2 alone, not lesson 12 as well
    assert names("12", "02") == ["02", "12"]
    assert names("keypoints") == ["12"]
    with pytest.raises(SystemExit, match="no lesson matches '99'"):
        lesson_sources(ROOT, ["99"])
