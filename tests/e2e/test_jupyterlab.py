"""Notebooks 00 and 03 in a real JupyterLab, in a real browser: Run All from the menu, then
the rendered page is checked (every cell ran, in order, with no error) and photographed.

Run with `make e2e` (part of `make test` where the machine allows it).
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from lab_driver import (
    CellResult,
    Lab,
    broken_diagrams,
    code_cells,
    find_browser,
    jupyter_lab,
    launch,
    open_notebook,
    run_all,
    screenshot,
)
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from playwright.sync_api import Browser, Page, sync_playwright

PROJECT = Path(__file__).resolve().parents[2]
NOTEBOOKS = PROJECT / "notebooks"
SCREENSHOTS = PROJECT / "results" / "e2e"
RUN_TIMEOUT = 120  # seconds for one Run All; each notebook is meant to take under 30 s

# Values a student must see on the page after Run All, per notebook (issue 3). Every other
# deterministic output committed in the notebook is compared as well (see below).
EXPECTED = {
    "00_start_here.ipynb": [
        "answers at amqp://",  # the live broker check
        "No RabbitMQ broker answers at",  # ... and what it says when there is none
        "your namespace: ",  # shown once, so a student knows their queues' prefix
        "fib(10) = 55",  # the first remote call
        "deleted queues: 00.rpc_queue",  # the cleanup cell left the broker as it was
    ],
    "03_correlation_id.ipynb": [
        "answers at amqp://",  # the broker check (the password masked: see UNMASKED_URL)
        "fib(10) = 55",  # the first call through the live-built client
        "fib(1) = 1 fib(2) = 1 fib(3) = 2 fib(4) = 3",  # concurrent calls, each matched
        "calls still waiting: 0",  # unknown and duplicate replies discarded
        "FibonacciRpcClient replies: 4 answered, 0 duplicate, 0 late, 0 unknown",
    ],
}
# A URL whose password shows (anything but ****) must never appear on the page.
UNMASKED_URL = re.compile(r"amqps?://[^:/@\s]+:(?!\*\*\*\*@)[^@\s]+@")

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    workdir = tmp_path_factory.mktemp("jupyterlab")
    with jupyter_lab(NOTEBOOKS, workdir) as lab:
        _write_selfcheck_notebook(lab.root / SELFCHECK)
        yield lab


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = find_browser()
    if executable is None:
        pytest.fail("no Chromium found: `make e2e` installs Debian's chromium, or set CHROMIUM",
                    pytrace=False)
    with sync_playwright() as playwright:
        browser = launch(playwright, executable)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, lab: Lab) -> Iterator[Page]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    yield page
    page.close()
    lab.shutdown_kernels()


def run_in_lab(page: Page, lab: Lab, name: str) -> list[CellResult]:
    """Open, Run All, photograph (before any assert, so a failure has its picture)."""
    open_notebook(page, lab, name)
    try:
        run_all(page, RUN_TIMEOUT)
    finally:
        screenshot(page, SCREENSHOTS / f"{Path(name).stem}.png")
    return code_cells(page)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_clean_with_run_all_in_jupyterlab(page, lab, name):
    source = NOTEBOOKS / name
    assert source.exists(), f"{source.relative_to(PROJECT)} is missing (issue 3 writes it)"
    notebook = nbformat.read(source, as_version=4)
    cells = run_in_lab(page, lab, name)

    # every code cell ran once, in order, in the fresh kernel: prompts [1], [2], ... [k]
    assert [cell.prompt for cell in cells] == [f"[{i}]:" for i in range(1, len(cells) + 1)]
    for cell in cells:
        tags = notebook.cells[cell.index].metadata.get("tags", [])
        if "raises-exception" not in tags:
            assert not cell.error_text, f"cell {cell.index} of {name}:\n{cell.error_text}"

    page_text = " ".join("\n".join(cell.output_text for cell in cells).split())
    for value in EXPECTED[name]:
        assert value in page_text, f"{value!r} does not appear in {name}"
    assert not UNMASKED_URL.search(page_text), f"{name} shows a password"
    assert not broken_diagrams(page), f"{name}: a diagram does not render in JupyterLab"
    for cell in cells:
        source_cell = notebook.cells[cell.index]
        # A cell whose output nbval ignores (it depends on the machine, e.g. a cluster being
        # up) need not draw what the committed run drew.
        ignored = {"nbval-ignore-output", "nbval-skip"} & set(source_cell.metadata.get("tags", []))
        pictures = 0 if ignored else sum(
            "image/png" in o.get("data", {}) for o in source_cell.get("outputs", [])
        )
        assert cell.images >= pictures, f"cell {cell.index} of {name}: a plot did not render"
        for expected in committed_text_outputs(source_cell):
            assert sanitize(expected) in sanitize(cell.output_text), (
                f"cell {cell.index} of {name} shows other output than the committed one:\n"
                f"committed: {expected!r}\nin the page: {cell.output_text!r}"
            )


# A throwaway notebook that proves the checks above can fail: JupyterLab's Run All stops at
# an error in a cell not tagged raises-exception, and the page shows it.
SELFCHECK = "e2e_selfcheck.ipynb"


def _write_selfcheck_notebook(path: Path) -> None:
    notebook = new_notebook(metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}})
    notebook.cells = [
        new_markdown_cell("# Self-check of the browser tests"),
        new_code_cell("from fibrpc_helpers import fib\nprint(f'fib(10) = {fib(10)}')"),
        new_code_cell("import asyncio\nawait asyncio.sleep(0.5)  # top-level await\n'awaited'"),
        new_code_cell("1 / 0", metadata={"tags": ["raises-exception"]}),
        new_code_cell("int('not a number')"),
        new_code_cell("print('never runs')"),
    ]
    nbformat.write(notebook, path)


def test_the_checks_see_what_run_all_did_including_an_unexpected_error(page, lab):
    cells = run_in_lab(page, lab, SELFCHECK)
    assert [cell.prompt for cell in cells] == ["[1]:", "[2]:", "[3]:", "[4]:", "[ ]:"]
    assert cells[0].output_text.strip() == "fib(10) = 55"
    assert cells[1].output_text.strip() == "'awaited'"
    assert "ZeroDivisionError" in cells[2].error_text  # tagged: Run All went on past it
    assert "ValueError" in cells[3].error_text  # not tagged: Run All stopped here
    assert not cells[4].output_text


def committed_text_outputs(cell: nbformat.NotebookNode) -> list[str]:
    """The committed text a person reads in a cell whose output nbval compares: stdout and
    plain-text results (HTML and images render differently from their source)."""
    tags = cell.metadata.get("tags", [])
    if cell.cell_type != "code" or {"nbval-ignore-output", "nbval-skip"} & set(tags):
        return []
    texts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream" and output.name == "stdout":
            texts.append(output.text)
        elif output.output_type == "execute_result" and set(output.data) == {"text/plain"}:
            texts.append(output.data["text/plain"])
    return texts


def _sanitizers() -> list[tuple[re.Pattern[str], str]]:
    config = configparser.ConfigParser(interpolation=None)
    config.read(NOTEBOOKS / "nbval_sanitize.cfg")
    return [(re.compile(config[s]["regex"]), config[s]["replace"]) for s in config.sections()]


def sanitize(text: str) -> str:
    """What nbval compares: the sanitize file's replacements, and whitespace made uniform
    (the page wraps and trims lines where the file has newlines)."""
    for pattern, replacement in _sanitizers():
        text = pattern.sub(replacement, text)
    return " ".join(text.split())

