"""Every notebook survives JupyterLab's Run All twice in one kernel, and skipped solutions.

nbval runs each notebook once, cell by cell, in a fresh kernel. A student does more: Run All
queues every cell at once, and runs it again in the same kernel. Here every code cell is
sent twice, all at once, without waiting, as JupyterLab sends them: a cell tagged
`raises-exception` may raise (Run All goes on past it), any other cell must not raise, and
no cell may write to stderr.

08_latency is a benchmark: both runs together take a minute or two on a 2-core machine,
longer when the machine is busy, hence the longer timeout. 07_when_a_node_fails does nothing
without its cluster; with one up, it kills and restarts a node on each run.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import NamedTuple

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SERIES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


class Cell(NamedTuple):
    source: str
    may_raise: bool  # tagged raises-exception: it demonstrates an error


def run_in_one_kernel(cells: list[Cell]) -> list[str]:
    """Send every cell to one new kernel at once; return the errors and stderr it wrote."""
    # A namespace of its own: other runs of the same notebook on this machine (nbval, a
    # student's JupyterLab) use the same queue names and would serve this run's requests.
    env = {**os.environ, "FIBRPC_NAMESPACE": f"rerun-{uuid.uuid4().hex[:8]}"}
    manager, kernel = start_new_kernel(kernel_name="python3", cwd=str(NOTEBOOKS), env=env)
    problems: list[str] = []
    try:
        # JupyterLab's Run All: a cell that may raise does not stop the cells queued after it.
        sent = {
            kernel.execute(cell.source, allow_stdin=False, stop_on_error=not cell.may_raise): i
            for i, cell in enumerate(cells)
        }
        waiting = set(sent)
        while waiting:
            message = kernel.get_iopub_msg(timeout=120)
            parent = message["parent_header"].get("msg_id")
            if parent not in sent:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "error" and not cells[sent[parent]].may_raise:
                problems.append(f"cell #{sent[parent]}: {content['ename']}: {content['evalue']}")
                break  # the kernel aborts every cell queued after it, as Run All stops here
            if kind == "stream" and content["name"] == "stderr":
                problems.append(f"cell #{sent[parent]}: stderr: {content['text'][:300]}")
            elif kind == "status" and content["execution_state"] == "idle":
                waiting.discard(parent)
    finally:
        kernel.stop_channels()
        manager.shutdown_kernel(now=True)
    return problems


def code_cells(path: Path, *, solutions: bool = True) -> list[Cell]:
    return [
        Cell(cell.source, "raises-exception" in cell.metadata.get("tags", []))
        for cell in nbformat.read(path, as_version=4).cells
        if cell.cell_type == "code"
        and (solutions or not cell.metadata.get("jupyter", {}).get("source_hidden"))
    ]


@pytest.mark.timeout(900)  # 08 runs its benchmark twice; a busy machine takes longer
@pytest.mark.parametrize("path", SERIES, ids=[path.stem for path in SERIES])
def test_run_all_twice_in_one_kernel(url: str, path: Path) -> None:
    """First without the hidden solutions (a student who never reveals one, or writes their
    own, can still go on), then every cell; all queued at once, in one kernel."""
    problems = run_in_one_kernel(code_cells(path, solutions=False) + code_cells(path))
    assert not problems, "\n".join(problems)


def test_a_cell_that_raises_untagged_is_caught_and_a_tagged_one_is_not() -> None:
    """The check above can fail: an untagged error is reported, a tagged one is allowed."""
    problems = run_in_one_kernel([
        Cell("1 / 0", may_raise=True),
        Cell("print('went on')", may_raise=False),
        Cell("int('x')", may_raise=False),
        Cell("print('never runs')", may_raise=False),
    ])
    assert len(problems) == 1 and "ValueError" in problems[0], problems
