"""Notebooks 00-04 survive JupyterLab's Run All twice in one kernel, and skipped solutions.

nbval runs each notebook once, cell by cell, in a fresh kernel. A student does more: Run All
queues every cell at once, and runs it again in the same kernel. Here every code cell is
sent twice, all at once, without waiting, and no cell may fail or write to stderr.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SERIES_PART_1 = sorted(NOTEBOOKS.glob("0[0-4]_*.ipynb"))


def run_in_one_kernel(sources: list[str]) -> list[str]:
    """Send every source to one new kernel at once; return the errors and stderr it wrote."""
    # A namespace of its own: other runs of the same notebook on this machine (nbval, a
    # student's JupyterLab) use the same queue names and would serve this run's requests.
    env = {**os.environ, "FIBRPC_NAMESPACE": f"rerun-{uuid.uuid4().hex[:8]}"}
    manager, kernel = start_new_kernel(kernel_name="python3", cwd=str(NOTEBOOKS), env=env)
    problems: list[str] = []
    try:
        sent = {kernel.execute(source, allow_stdin=False): i for i, source in enumerate(sources)}
        waiting = set(sent)
        while waiting:
            message = kernel.get_iopub_msg(timeout=120)
            parent = message["parent_header"].get("msg_id")
            if parent not in sent:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "error":
                problems.append(f"cell #{sent[parent]}: {content['ename']}: {content['evalue']}")
            elif kind == "stream" and content["name"] == "stderr":
                problems.append(f"cell #{sent[parent]}: stderr: {content['text'][:300]}")
            elif kind == "status" and content["execution_state"] == "idle":
                waiting.discard(parent)
    finally:
        kernel.stop_channels()
        manager.shutdown_kernel(now=True)
    return problems


def code_cells(path: Path, *, solutions: bool = True) -> list[str]:
    cells = nbformat.read(path, as_version=4).cells
    return [
        cell.source
        for cell in cells
        if cell.cell_type == "code"
        and (solutions or not cell.metadata.get("jupyter", {}).get("source_hidden"))
    ]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("path", SERIES_PART_1, ids=[path.stem for path in SERIES_PART_1])
def test_run_all_twice_in_one_kernel(url: str, path: Path) -> None:
    """First without the hidden solutions (a student who never reveals one, or writes their
    own, can still go on), then every cell; all queued at once, in one kernel."""
    problems = run_in_one_kernel(code_cells(path, solutions=False) + code_cells(path))
    assert not problems, "\n".join(problems)
