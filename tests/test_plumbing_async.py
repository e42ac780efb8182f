"""The cluster and the benchmark have an async face: awaited, their blocking work (rabbitmqctl,
process waits, a measurement's windows) runs in a thread, and the event loop that awaits them,
a notebook kernel's, goes on. Measured with a ticker task: the longest gap between its ticks."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from waits import longest_tick_gap

from fibrpc_helpers.bench import grid
from fibrpc_helpers.bench.grid import Bench
from fibrpc_helpers.bench.presets import Preset, Work
from fibrpc_helpers.lab.cluster import Cluster

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
BLOCKS = 1.5  # seconds each blocking call takes
FREE = 1.0  # the longest gap between ticks that counts as a free loop (a loaded machine)


async def test_the_clusters_awaited_methods_leave_the_loop_free(tmp_path: Path) -> None:
    cluster = Cluster("amqp://guest:guest@localhost:5999/", 3, tmp_path)  # never started
    node = cluster.nodes[1]

    def blocking(answer: object) -> Any:
        def method(*args: object) -> object:
            time.sleep(BLOCKS)  # as rabbitmqctl or a wait for a process would
            return (answer, args)
        return method

    for name in ("node_of", "leader_of", "replicas_online", "describe", "kill", "restart"):
        setattr(cluster, name, blocking(name))
    calls = {
        "node_of": cluster.node_of_async("client"),
        "leader_of": cluster.leader_of_async("q"),
        "replicas_online": cluster.replicas_online_async("q"),
        "describe": cluster.describe_async(["q"]),
        "kill": cluster.kill_async(node),
        "restart": cluster.restart_async(node),
    }
    for name, call in calls.items():
        result, gap = await longest_tick_gap(call)
        assert gap < FREE, f"{name}_async held the loop for {gap:.2f} s"
        if name != "restart":
            assert result[0] == name  # the plain method's answer, passed through


def test_the_cluster_notebook_needs_no_to_thread() -> None:
    notebook = json.loads((NOTEBOOKS / "07_when_a_node_fails.ipynb").read_text())
    code = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert not [source for source in code if "to_thread" in source]
    assert any("cluster.kill_async(" in source for source in code)


IO_5MS = Work("io-5ms", n=7, sleep_ms=5)


@pytest.fixture
def bench(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(grid, "RESULTS", tmp_path)
    preset = Preset("test", clients=(2,), workers=(1,), works=(IO_5MS,), warmup=0.1,
                    duration=1.0, open_workers=1, open_work=IO_5MS, open_loads=(0.5,),
                    design_clients=(2,))
    with Bench(preset, url=url, progress=False, verbose=False) as bench:
        yield bench


async def test_an_awaited_measurement_leaves_the_loop_free(bench: Bench) -> None:
    """The measurement's window (1 s) and its process waits run in the bench's thread."""
    started = time.monotonic()
    points, gap = await longest_tick_gap(bench.closed_grid_async())
    took = time.monotonic() - started
    assert took > 1.0 and len(points) == 1 and points[0].records
    assert gap < FREE, f"the loop was held for {gap:.2f} s of a {took:.1f} s measurement"
    (design,), gap = await longest_tick_gap(bench.designs_async(["correlation-id"]))
    assert design.records and gap < FREE


async def test_the_plain_measurement_holds_the_loop_the_awaited_one_frees(bench: Bench) -> None:
    """What the async face is for: the plain method, called from a coroutine, blocks it."""

    async def plain() -> object:
        return bench.closed_grid()

    _, gap = await longest_tick_gap(plain())
    assert gap > 1.0
