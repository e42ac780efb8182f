"""``python -m fibrpc_helpers.exercises.edition [SOURCE] [TARGET]``: the student edition.

A teacher's notebook holds each exercise's solution between nbgrader's markers, in a cell
nbgrader's metadata marks as a solution cell (``"nbgrader": {"solution": true, ...}``), and
each check in a cell marked as a graded, locked test cell. The student edition is the same
notebooks with every solution region replaced by nbgrader's stub (``# YOUR CODE HERE`` /
``raise NotImplementedError()``) and every output cleared; checks and prose are kept. It is
made with nbgrader's own preprocessors (ClearSolutions, ClearHiddenTests, ClearOutput),
without nbgrader's course database: ``nbgrader generate_assignment`` wants a course folder
layout this repository does not have, and we need only its stripping. The teacher's
notebooks are read, never written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

from ..urls import PROJECT_DIR

DEFAULT_SOURCE = PROJECT_DIR / "notebooks"
DEFAULT_TARGET = PROJECT_DIR / "student"


def student_notebook(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``notebook`` with solutions stubbed and outputs cleared.

    Raises RuntimeError (nbgrader's) when a cell holds a solution region but is not marked
    as a solution cell, or a region is not closed: a teacher's slip that would otherwise
    hand the solution to the students.
    """
    from nbgrader.preprocessors import ClearHiddenTests, ClearOutput, ClearSolutions

    copy = nbformat.from_dict(notebook)
    resources: dict = {}
    for preprocessor in (ClearSolutions(), ClearHiddenTests(), ClearOutput()):
        copy, resources = preprocessor.preprocess(copy, resources)
    return copy


def student_source(source: str) -> str:
    """One solution cell's source as the student edition shows it (for tests and previews)."""
    cell = nbformat.v4.new_code_cell(source, metadata={"nbgrader": {
        "solution": True, "grade": False, "grade_id": "preview", "locked": False,
        "schema_version": 3}})
    notebook = nbformat.v4.new_notebook(cells=[cell])
    return student_notebook(notebook).cells[0].source


def make_edition(source: Path = DEFAULT_SOURCE, target: Path = DEFAULT_TARGET,
                 force: bool = False) -> list[Path]:
    """Write the student edition of every notebook in ``source`` to ``target``; the paths.

    Notebooks with no exercise are copied too, outputs cleared, so that the edition is the
    whole series and its navigation links work. An edition already there may hold a
    student's answers: it is written again only with ``force``.
    """
    notebooks = sorted(source.glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks in {source}; give the teacher's notebook folder")
    if target.resolve() == source.resolve():
        raise ValueError("the student edition must go to another folder than the teacher's")
    if not force and any((target / path.name).exists() for path in notebooks):
        raise FileExistsError(
            f"{target} already holds the student edition, perhaps with a student's answers: "
            "open it with `make lab-student`, or write it again, every exercise emptied, with "
            "`make student FORCE=yes`")
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        edition = student_notebook(nbformat.read(path, as_version=4))
        out = target / path.name
        nbformat.write(edition, out)
        written.append(out)
    return written


def how_to_open(target: Path) -> str:
    """The command that opens the edition in JupyterLab (the project's venv, its broker)."""
    if target.resolve() == DEFAULT_TARGET.resolve():
        return "make lab-student"
    python = PROJECT_DIR / ".venv" / "bin" / "python"
    return f"cd {target} && {python} -m jupyter lab"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE,
                        help="the teacher's notebooks (default: notebooks/)")
    parser.add_argument("target", nargs="?", type=Path, default=DEFAULT_TARGET,
                        help="where the student edition goes (default: student/, git-ignored)")
    parser.add_argument("--force", action="store_true",
                        help="write over an edition that is there (a student's answers too)")
    options = parser.parse_args(argv)
    try:
        written = make_edition(options.source, options.target, options.force)
    except (OSError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote the student edition of {len(written)} notebooks to {options.target}")
    print(f"open it in JupyterLab: {how_to_open(options.target)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
