"""The student edition of the real series (``make student``), run as a student who wrote
nothing: every check fails with one line of its own that names the missing piece, and every
other cell still runs, once and twice in a row; no solution and no output is left in it.

The edition is built from notebooks/ with the edition builder into a temporary folder, and
each notebook with an exercise runs there in a fresh kernel, in a namespace of its own
(other runs of the same notebook on this machine use the same queue names). The teacher's
solution cells must be the text tests/exercise_cells/teacher.py holds (a last newline
aside), which tests/test_exercises.py shows passing its check.
"""

from __future__ import annotations

import os
import queue
import re
import uuid
from pathlib import Path
from typing import Any

import nbformat
import pytest
from exercise_cells.teacher import CELLS
from jupyter_client.manager import start_new_kernel
from nbclient import NotebookClient

from fibrpc_helpers.exercises import edition
from fibrpc_helpers.exercises.grade import checks_of

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SERIES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))

CELL_TIMEOUT = 300.0
"""Seconds one cell may take (04 times the recursive fib in worker processes)."""


def nbgrader(cell: nbformat.NotebookNode) -> dict:
    return cell.metadata.get("nbgrader", {})


def is_check(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and bool(nbgrader(cell).get("grade"))


def is_solution(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and bool(nbgrader(cell).get("solution"))


def with_exercises(path: Path) -> bool:
    return any(is_check(cell) for cell in nbformat.read(path, as_version=4).cells)


EXERCISED = [path for path in SERIES if with_exercises(path)]


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The student edition of notebooks/, built as `make student` builds it."""
    target = tmp_path_factory.mktemp("edition") / "student"
    written = edition.make_edition(NOTEBOOKS, target)
    assert [path.name for path in written] == [path.name for path in sorted(
        NOTEBOOKS.glob("*.ipynb"))]
    return target


def solution_lines(source: str, *, inside: bool = True) -> list[str]:
    """The lines between nbgrader's markers (or, ``inside=False``, around them), stripped."""
    within, lines = False, []
    for line in source.splitlines():
        if line.strip() == "### BEGIN SOLUTION":
            within = True
        elif line.strip() == "### END SOLUTION":
            within = False
        elif within == inside and line.strip():
            lines.append(line.strip())
    return lines


def test_the_series_has_exercises_in_02_03_and_04():
    assert {path.stem for path in EXERCISED} >= {
        "02_callback_queue", "03_correlation_id", "04_the_worker"}


@pytest.mark.parametrize("path", EXERCISED, ids=[path.stem for path in EXERCISED])
def test_the_teachers_solution_cells_are_the_tested_text(path: Path):
    """Each solution cell is exactly the text the checks were shown passing, and is followed
    by the check cell of the same exercise."""
    cells = nbformat.read(path, as_version=4).cells
    solutions = [(i, cell) for i, cell in enumerate(cells) if is_solution(cell)]
    assert solutions
    for i, cell in solutions:
        exercise = nbgrader(cell)["grade_id"]
        assert cell.source.rstrip("\n") == CELLS[exercise].rstrip("\n"), (
            f"{path.name}: {exercise} differs from tests/exercise_cells/teacher.py")
        check = cells[i + 1]
        assert is_check(check) and nbgrader(check)["grade_id"] == f"check_{exercise}"
        assert nbgrader(check)["locked"] is True and nbgrader(check)["points"] == 1


def test_the_edition_has_no_solution_and_no_output(student: Path):
    for path in SERIES:
        teacher = nbformat.read(path, as_version=4).cells
        cells = nbformat.read(student / path.name, as_version=4).cells
        assert len(cells) == len(teacher), path.name
        for cell in cells:
            assert "BEGIN SOLUTION" not in cell.source and "END SOLUTION" not in cell.source
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name
        # The solution's own lines: those no other cell of the teacher's notebook also has.
        elsewhere = {line.strip() for cell in teacher if not is_solution(cell)
                     for line in cell.source.splitlines()}
        student_lines = {line.strip() for cell in cells for line in cell.source.splitlines()}
        for ours, theirs in zip(teacher, cells, strict=True):
            if not is_solution(ours):
                continue
            own = set(solution_lines(ours.source)) - elsewhere
            assert own, f"{path.name}: a solution with no line of its own"
            assert not own & student_lines, f"{path.name}: {sorted(own & student_lines)}"
            assert theirs.source.count("raise NotImplementedError()") == ours.source.count(
                "### BEGIN SOLUTION")
            scaffold = solution_lines(ours.source, inside=False)  # signatures, docstrings
            assert scaffold and all(line in theirs.source for line in scaffold), path.name


def stub_names(solution_source: str) -> set[str]:
    """What a check's "not written yet" may name: the functions and classes of the cell."""
    return set(re.findall(r"^\s*(?:async def|def|class) (\w+)", solution_source, re.M))


def assert_fails_for_the_stub(error: dict[str, Any], solution: str, stem: str) -> None:
    """A check cell's error: ExerciseFailed, one line, naming what is not written yet."""
    message = error["evalue"]
    assert error["ename"] == "ExerciseFailed", f"{error['ename']}: {message}"
    assert "\n" not in message and "is not written yet" in message, message
    missing = message.split(" is not written yet")[0]
    assert any(name in missing for name in stub_names(solution)), message
    assert message.endswith(f"see {stem}"), message
    assert error["traceback"] == [f"✗ {message}"], "shown as one line, not a traceback"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", EXERCISED, ids=[path.stem for path in EXERCISED])
def test_a_student_who_wrote_nothing_fails_each_check_and_runs_every_other_cell(
        student: Path, path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run All, as the grader runs a submission: every check fails with its own line, and
    every other cell runs (only one tagged raises-exception may raise, as in the teacher's)."""
    monkeypatch.setenv("FIBRPC_NAMESPACE", f"student-{uuid.uuid4().hex[:8]}")
    notebook = nbformat.read(student / path.name, as_version=4)
    NotebookClient(notebook, timeout=int(CELL_TIMEOUT), allow_errors=True,
                   kernel_name="python3",
                   resources={"metadata": {"path": str(student)}}).execute()
    checks = checks_of(notebook)
    assert checks and not any(checks.values()), checks  # as the grader counts them
    solution = ""
    for number, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        assert cell.execution_count is not None, f"cell {number} did not run"
        errors = [o for o in cell.outputs if o.output_type == "error"]
        stderr = [o.text for o in cell.outputs if o.get("name") == "stderr"]
        assert not stderr, f"cell {number} wrote to stderr: {stderr}"
        if is_solution(cell):
            solution = cell.source
            assert not errors, f"the stub of cell {number} must run: {errors}"
        elif is_check(cell):
            assert len(errors) == 1, f"check cell {number}: {errors}"
            assert_fails_for_the_stub(errors[0], solution, path.stem)
        elif "raises-exception" not in cell.metadata.get("tags", []):
            assert not errors, f"cell {number} ({cell.source.splitlines()[0]!r}): " + "; ".join(
                f"{e.ename}: {e.evalue}" for e in errors)


def run(kernel: Any, source: str) -> tuple[list[dict], list[str]]:
    """Run ``source`` once, wait until the kernel is idle; its errors and its stderr."""
    errors: list[dict] = []
    stderr: list[str] = []

    def look(message: dict) -> None:
        kind, content = message["msg_type"], message["content"]
        if kind == "error":
            errors.append(content)
        elif kind == "stream" and content["name"] == "stderr":
            stderr.append(content["text"][:500])

    try:
        kernel.execute_interactive(source, timeout=CELL_TIMEOUT, allow_stdin=False,
                                   output_hook=look)
    except TimeoutError:
        errors.append({"ename": "TimeoutError", "evalue": f"still running after {CELL_TIMEOUT:g} s",
                       "traceback": []})
    return errors, stderr


@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", EXERCISED, ids=[path.stem for path in EXERCISED])
def test_each_student_cell_runs_twice_in_a_row(student: Path, path: Path):
    """A student re-runs cells: in a fresh kernel each code cell runs twice in a row; only
    the check cells (failing with their line, both times) and tagged cells may raise."""
    env = {**os.environ, "FIBRPC_NAMESPACE": f"student-twice-{uuid.uuid4().hex[:8]}"}
    manager, kernel = start_new_kernel(kernel_name="python3", cwd=str(student), env=env)
    try:
        solution = ""
        cells = nbformat.read(student / path.name, as_version=4).cells
        for number, cell in enumerate(c for c in cells if c.cell_type == "code"):
            solution = cell.source if is_solution(cell) else solution
            for attempt in ("first", "second"):
                errors, stderr = run(kernel, cell.source)
                where = f"code cell #{number} ({cell.source.splitlines()[0]!r}), {attempt} run"
                assert not stderr, f"{where} wrote to stderr: {stderr}"
                if is_check(cell):
                    assert len(errors) == 1, f"{where}: {errors}"
                    assert_fails_for_the_stub(errors[0], solution, path.stem)
                elif "raises-exception" not in cell.metadata.get("tags", []):
                    assert not errors, f"{where}: " + "; ".join(
                        f"{e['ename']}: {e['evalue']}" for e in errors)
    finally:
        try:  # the notebook's own clean-up, so that its queues do not outlive the test
            kernel.execute_interactive("if 'nb' in globals():\n    await nb.cleanup(quiet=True)",
                                       timeout=120, allow_stdin=False)
        except (TimeoutError, queue.Empty):
            pass
        kernel.stop_channels()
        manager.shutdown_kernel(now=True)
