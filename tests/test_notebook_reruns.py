"""Notebooks 00-04 survive JupyterLab's Run All twice in one kernel.

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


@pytest.mark.timeout(180)
@pytest.mark.parametrize("path", SERIES_PART_1, ids=[path.stem for path in SERIES_PART_1])
def test_run_all_twice_in_one_kernel(url: str, path: Path) -> None:
    cells = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    # A namespace of its own: other runs of the same notebook on this machine (nbval, a
    # student's JupyterLab) use the same queue names and would serve this run's requests.
    env = {**os.environ, "FIBRPC_NAMESPACE": f"rerun-{uuid.uuid4().hex[:8]}"}
    manager, kernel = start_new_kernel(kernel_name="python3", cwd=str(NOTEBOOKS), env=env)
    problems: list[str] = []
    try:
        sent = {kernel.execute(source, allow_stdin=False): run for run in (1, 2) for source in cells}
        waiting = set(sent)
        while waiting:
            message = kernel.get_iopub_msg(timeout=120)
            parent = message["parent_header"].get("msg_id")
            if parent not in sent:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "error":
                problems.append(f"run {sent[parent]}: {content['ename']}: {content['evalue']}")
            elif kind == "stream" and content["name"] == "stderr":
                problems.append(f"run {sent[parent]}: stderr: {content['text'][:300]}")
            elif kind == "status" and content["execution_state"] == "idle":
                waiting.discard(parent)
    finally:
        kernel.stop_channels()
        manager.shutdown_kernel(now=True)
    assert not problems, "\n".join(problems)
