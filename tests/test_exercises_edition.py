"""The student edition (``make student``), made from a small teacher's notebook: solutions
become nbgrader's stub, outputs go, checks and prose stay, the teacher's file is unchanged;
and a solution region in a cell not marked as a solution cell stops the build instead of
handing the solution out."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nbformat
from exercise_cells.teacher import CELLS

from fibrpc_helpers.exercises import edition

SOLUTION = {"solution": True, "grade": False, "grade_id": "callback_queue", "locked": False,
            "schema_version": 3}
CHECK = {"solution": False, "grade": True, "grade_id": "check_callback_queue", "points": 1,
         "locked": True, "schema_version": 3}


def teacher_notebook(folder: Path, solution_metadata: dict | None = SOLUTION) -> Path:
    solution = nbformat.v4.new_code_cell(CELLS["callback_queue"], execution_count=3)
    if solution_metadata is not None:
        solution.metadata["nbgrader"] = solution_metadata
    solution.outputs = [nbformat.v4.new_output("stream", text="defined\n")]
    check = nbformat.v4.new_code_cell("await check_callback_queue(OneQueueClient)",
                                      metadata={"nbgrader": CHECK}, execution_count=4)
    check.outputs = [nbformat.v4.new_output("stream", text="✓ one callback queue...\n")]
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("## Exercise: one callback queue"), solution, check])
    notebook.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                       "display_name": "Python 3"}
    path = folder / "02_callback_queue.ipynb"
    nbformat.write(notebook, path)
    return path


def test_the_edition_stubs_solutions_clears_outputs_and_keeps_checks(tmp_path, capsys):
    source = tmp_path / "teacher"
    source.mkdir()
    path = teacher_notebook(source)
    before = hashlib.sha256(path.read_bytes()).hexdigest()

    assert edition.main([str(source), str(tmp_path / "student")]) == 0
    said = capsys.readouterr().out
    assert "wrote the student edition of 1 notebooks" in said and "jupyter lab" in said

    student = nbformat.read(tmp_path / "student" / path.name, as_version=4)
    prose, solution, check = student.cells
    assert prose.source == "## Exercise: one callback queue"
    assert "declare_queue(exclusive=True)" not in solution.source
    assert solution.source.count("raise NotImplementedError()") == 2
    assert "def call(self, n: int) -> int:" in solution.source  # the scaffold stays
    assert check.source == "await check_callback_queue(OneQueueClient)"
    assert check.metadata["nbgrader"]["grade"] is True
    for cell in (solution, check):
        assert cell.outputs == [] and cell.execution_count is None
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_a_solution_region_in_an_unmarked_cell_stops_the_build(tmp_path, capsys):
    source = tmp_path / "teacher"
    source.mkdir()
    teacher_notebook(source, solution_metadata=None)
    assert edition.main([str(source), str(tmp_path / "student")]) == 1
    assert "Solution region detected in a non-solution cell" in capsys.readouterr().err
    assert not list((tmp_path / "student").glob("*.ipynb"))


def test_an_edition_with_a_students_answers_is_written_again_only_when_forced(
        tmp_path, capsys):
    source, target = tmp_path / "teacher", tmp_path / "student"
    source.mkdir()
    teacher_notebook(source)
    assert edition.main([str(source), str(target)]) == 0
    answered = target / "02_callback_queue.ipynb"
    answered.write_text(answered.read_text().replace("raise NotImplementedError()", "pass"))
    assert edition.main([str(source), str(target)]) == 1
    assert "make student FORCE=yes" in capsys.readouterr().err
    assert "raise NotImplementedError()" not in answered.read_text()  # the answer is kept
    assert edition.main([str(source), str(target), "--force"]) == 0
    assert "raise NotImplementedError()" in answered.read_text()


def test_the_edition_never_overwrites_the_teachers_folder(tmp_path, capsys):
    teacher_notebook(tmp_path)
    assert edition.main([str(tmp_path), str(tmp_path)]) == 1
    assert "another folder" in capsys.readouterr().err


def test_the_exercises_never_import_the_benchmark():
    from test_layers import PACKAGE, offending

    for path in sorted((PACKAGE / "exercises").glob("*.py")):
        assert offending(path, ("fibrpc_helpers.bench",)) == [], path.name
