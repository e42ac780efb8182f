"""The previous/next links and the contents of 00 are generated, and fail here when they drift."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from fibrpc_helpers.lab.notebook import reading, reading_minutes

ROOT = Path(__file__).resolve().parent.parent

MAX_WORDS = 2_000
"""Words of prose one notebook may have (markdown, navigation left out): one sitting."""
MAX_CODE_CELLS = 25
MAX_MINUTES = 50
"""The longest sitting, as ``reading_minutes`` counts it."""
_spec = importlib.util.spec_from_file_location("navigation", ROOT / "tools" / "navigation.py")
assert _spec and _spec.loader
navigation = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(navigation)


def test_the_notebooks_navigation_is_up_to_date():
    assert navigation.notebook_paths(), "no notebooks found"
    assert navigation.drifted() == [], "run `.venv/bin/python tools/navigation.py`"


def _notebook(folder: Path, name: str, heading: str, *, contents: bool = False) -> Path:
    cells = [nbformat.v4.new_markdown_cell(f"# {heading}\n\nWhat {heading.lower()} does.")]
    if contents:
        cell = nbformat.v4.new_markdown_cell("")
        cell.metadata["fibrpc"] = {"navigation": "contents"}
        cells.append(cell)
    cells.append(nbformat.v4.new_code_cell("print(1)"))
    path = folder / name
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def _cell(path: Path, role: str) -> str:
    notebook = nbformat.read(path, as_version=4)
    (source,) = [
        c.source for c in notebook.cells if c.metadata.get("fibrpc", {}).get("navigation") == role
    ]
    return source


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    _notebook(tmp_path, "00_start_here.ipynb", "Start", contents=True)
    _notebook(tmp_path, "01_one.ipynb", "One")
    _notebook(tmp_path, "03_three.ipynb", "Three")
    (tmp_path / "notes.ipynb").write_text("not part of the series")
    return tmp_path


def test_links_and_contents_follow_the_notebooks_that_exist(folder: Path):
    assert navigation.drifted(folder) == ["00_start_here.ipynb", "01_one.ipynb", "03_three.ipynb"]
    navigation.rewrite(folder)
    assert navigation.drifted(folder) == []
    assert _cell(folder / "01_one.ipynb", "top") == (
        "[← 00 · Start](00_start_here.ipynb) | [Contents](00_start_here.ipynb) | "
        "[03 · Three →](03_three.ipynb)"
    )
    assert _cell(folder / "03_three.ipynb", "bottom").endswith("[Contents](00_start_here.ipynb)")
    assert _cell(folder / "00_start_here.ipynb", "top") == "[01 · One →](01_one.ipynb)"
    assert _cell(folder / "00_start_here.ipynb", "contents") == (
        "## Contents\n\n- [01 · One](01_one.ipynb): What one does.\n"
        "- [03 · Three](03_three.ipynb): What three does."
    )
    first = nbformat.read(folder / "01_one.ipynb", as_version=4).cells
    assert first[0].metadata["fibrpc"]["navigation"] == "top"  # inserted first and last
    assert first[-1].metadata["fibrpc"]["navigation"] == "bottom"


def test_a_notebook_that_lands_later_is_linked_on_the_next_run(folder: Path):
    navigation.rewrite(folder)
    _notebook(folder, "02_two.ipynb", "Two")
    assert navigation.drifted(folder) == [
        "00_start_here.ipynb", "01_one.ipynb", "02_two.ipynb", "03_three.ipynb"
    ]
    navigation.rewrite(folder)
    assert "[02 · Two →](02_two.ipynb)" in _cell(folder / "01_one.ipynb", "top")
    assert "02_two.ipynb" in _cell(folder / "00_start_here.ipynb", "contents")
    assert navigation.rewrite(folder) == []  # re-runnable: nothing left to change


def test_a_hand_edit_or_a_new_title_is_drift(folder: Path):
    navigation.rewrite(folder)
    path = folder / "03_three.ipynb"
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[0].source = "[somewhere](else.ipynb)"
    nbformat.write(notebook, path)
    assert navigation.drifted(folder) == ["03_three.ipynb"]
    assert navigation.main(["--check", "--folder", str(folder)]) == 1
    navigation.rewrite(folder)
    shutil.copy(path, folder / "01_one.ipynb")  # 01 now titled "Three": 00 and 03 drift
    assert "00_start_here.ipynb" in navigation.drifted(folder)


@pytest.mark.parametrize("path", navigation.notebook_paths(), ids=lambda path: path.name)
def test_each_notebook_states_the_reading_time_its_words_and_cells_give(path: Path):
    """The introduction's "about N minutes to read" is ``reading_minutes`` of the notebook
    as it is now, so an edit that adds prose or cells cannot leave a stale estimate."""
    notebook = nbformat.read(path, as_version=4)
    introduction = " ".join(
        " ".join(cell.source.split()) for cell in notebook.cells[:3] if cell.cell_type == "markdown"
    )
    stated = re.search(r"about (\d+) minutes to read", introduction, re.IGNORECASE)
    assert stated, f"{path.name}: its introduction says nothing like 'about N minutes to read'"
    assert int(stated.group(1)) == reading_minutes(notebook)


@pytest.mark.parametrize("path", navigation.notebook_paths(), ids=lambda path: path.name)
def test_each_notebook_fits_one_sitting(path: Path):
    """At most MAX_WORDS of prose, MAX_CODE_CELLS code cells and MAX_MINUTES by the formula
    that its introduction states: a notebook that grows past them is split by what it
    teaches."""
    counted = reading(nbformat.read(path, as_version=4))
    over = [
        f"{what} {value} > {limit}"
        for what, value, limit in (
            ("words", counted.words, MAX_WORDS),
            ("code cells", counted.code_cells, MAX_CODE_CELLS),
            ("minutes", counted.minutes, MAX_MINUTES),
        )
        if value > limit
    ]
    assert not over, f"{path.name}: " + ", ".join(over)


def _counted(*cells: nbformat.NotebookNode) -> tuple[int, int, int, int]:
    counted = reading(nbformat.v4.new_notebook(cells=list(cells)))
    return counted.words, counted.code_cells, counted.exercises, counted.minutes


def test_the_reading_time_counts_words_cells_and_exercises():
    """130 words a minute, one minute per code cell, five per "Try it" heading, rounded up to
    a multiple of 5; navigation cells and a "Try it" that is not a heading count no extra."""
    prose = nbformat.v4.new_markdown_cell(" ".join(["word"] * 650))  # 5 minutes
    assert _counted(prose) == (650, 0, 0, 5)
    assert _counted(prose, nbformat.v4.new_code_cell("1")) == (650, 1, 0, 10)
    exercise = nbformat.v4.new_markdown_cell("## Try it\n\nTry it with two workers.")
    assert _counted(prose, exercise) == (650 + 8, 0, 1, 15)
    nav = nbformat.v4.new_markdown_cell("## Try it " + "word " * 1000)
    nav.metadata["fibrpc"] = {"navigation": "top"}
    assert _counted(prose, nav) == (650, 0, 0, 5)
    assert _counted() == (0, 0, 0, 5)  # never less than 5


@pytest.mark.parametrize("path", navigation.notebook_paths(), ids=lambda path: path.name)
def test_a_notebook_with_a_graded_exercise_budgets_the_time_to_write_it(path: Path):
    """The formula counts a "Try it" at five minutes, the time to read its solution; a
    student who writes a graded exercise (a cell with nbgrader's solution markers) takes
    longer, and the introduction says so, in the teacher's notebook and the student edition."""
    notebook = nbformat.read(path, as_version=4)
    graded = any(cell.metadata.get("nbgrader", {}).get("solution") for cell in notebook.cells)
    introduction = " ".join(
        " ".join(cell.source.split()) for cell in notebook.cells[:3] if cell.cell_type == "markdown"
    )
    budgeted = "budget 15 to 25 minutes more" in introduction
    assert budgeted == graded, (
        f"{path.name}: {'a' if graded else 'no'} graded exercise, yet its introduction "
        f"{'does not budget' if graded else 'budgets'} the time to write one"
    )
