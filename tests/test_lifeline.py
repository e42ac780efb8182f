"""One lifeline for every Python child of ours: it ends when its stdin, a pipe from the
process that started it, closes; so it never outlives a killed parent (a Jupyter kernel
shut down with SIGKILL, say), and it lives as long as that parent does.

Each test starts a stand-in parent in a session of its own (as Jupyter starts a kernel),
which starts one child of each kind and prints its pid; the test SIGKILLs the parent (no
atexit, no cleanup: only the lifeline can end the child) and waits for the child to go.
A process started by hand, its stdin a terminal, holds no lifeline.
"""

from __future__ import annotations

import asyncio
import os
import pty
import select
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest

PY = sys.executable

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc, opens a pty")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has exited: it only waits to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pid: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid):
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(0.02)


def stays_alive(pid: int, seconds: float, what: str) -> None:
    """``pid`` still runs after ``seconds`` (checked all along: no fixed sleep could tell
    a process that ends at once from one that stays)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert alive(pid), f"{what} ended"
        time.sleep(0.05)


def read_line(stream: object, timeout: float, what: str) -> str:
    assert hasattr(stream, "readline") and hasattr(stream, "fileno")
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, f"timed out after {timeout:g} s waiting for {what}"
    return str(stream.readline())


async def _queues(url: str, declare: str, delete: list[str]) -> None:
    """Declare request queue ``declare`` (classic, nobody consuming it), or delete ``delete``."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        if declare:
            await channel.declare_queue(declare, durable=True)
        for name in delete:
            await channel.queue_delete(name)


@pytest.fixture
def queue(url: str) -> Iterator[str]:
    """A request queue of the test's own (classic, durable), deleted afterwards with the
    one the benchmark's worker declares beside it (``QUEUE.raw``)."""
    name = f"test.lifeline.{uuid.uuid4().hex[:8]}"
    asyncio.run(_queues(url, name, []))
    yield name
    asyncio.run(_queues(url, "", [name, f"{name}.raw"]))


SCRIPT = "import time\nprint('ready', flush=True)\ntime.sleep(3600)\n"

CHILDREN = {
    "worker process": """
        from fibrpc_helpers.lab.processes import WorkerProcesses
        workers = WorkerProcesses(1, url=URL, queue=QUEUE).start()
        pid = workers.pids[0]
    """,
    "benchmark worker": """
        from fibrpc_helpers.bench import serve
        from fibrpc_helpers.lab.runtime import ProcessGroup
        group = ProcessGroup()
        command = serve.command("raw-aiormq", queue=QUEUE + ".raw")
        child = group.spawn(command, name="worker", env={"AMQP_URL": URL})
        group.wait_ready([child], serve.READY, 60)
        pid = child.pid
    """,
    "idle load generator": """
        from fibrpc_helpers.bench.loadgen import LoadGenerators
        generators = LoadGenerators(1, URL).start()
        pid = generators.pids[0]
    """,
    "load generator in a run": """
        from fibrpc_helpers.bench.loadgen import Load, LoadGenerators
        generators = LoadGenerators(1, URL).start()
        # An hour of calls that each time out after 1 s: nobody consumes the queue.
        generators.send(Load(client="correlation-id", queue=QUEUE, clients=1, loop="closed",
                             n=1, warmup=0.0, duration=3600.0, timeout=1.0))
        pid = generators.pids[0]
    """,
    "notebook's script": """
        from fibrpc_helpers.lab.runtime import ProcessGroup
        group = ProcessGroup()
        child = group.spawn([sys.executable, "-m", "fibrpc_helpers.lab.run_script", SCRIPT])
        group.wait_ready([child], "^ready", 30)
        pid = child.pid
    """,
    "child that does not stop by itself": """
        from fibrpc_helpers.lab.runtime import ProcessGroup
        # It is told, but goes on: it is ended after its grace (here 0.2 s).
        code = (
            "import time\\n"
            "from fibrpc_helpers.lab.runtime import follow_stdin\\n"
            "follow_stdin(on_end=lambda: None, grace=0.2)\\n"
            "print('ready', flush=True)\\n"
            "time.sleep(3600)\\n"
        )
        group = ProcessGroup()
        child = group.spawn([sys.executable, "-c", code])
        group.wait_ready([child], "^ready", 30)
        pid = child.pid
    """,
}


@pytest.mark.parametrize("kind", list(CHILDREN))
def test_a_child_lives_with_its_parent_and_ends_when_the_parent_is_killed(
    url: str, queue: str, tmp_path: Path, kind: str
) -> None:
    script = tmp_path / "program.py"
    script.write_text(SCRIPT)
    code = (
        f"import sys, time\nURL, QUEUE, SCRIPT = {url!r}, {queue!r}, {str(script)!r}\n"
        + textwrap.dedent(CHILDREN[kind])
        + "print(pid, flush=True)\ntime.sleep(3600)\n"
    )
    parent = subprocess.Popen(  # a session of its own, as Jupyter starts a kernel
        [PY, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    pid = None
    try:
        line = read_line(parent.stdout, 90, f"the parent to start its {kind}")
        assert line.strip().isdigit(), f"the parent exited with code {parent.wait()}"
        pid = int(line)
        stays_alive(pid, 1.0, f"the {kind}, while its parent lives,")
        parent.kill()  # SIGKILL: no atexit, no cleanup
        parent.wait()
        wait_gone(pid, 30, f"the {kind} to end with its killed parent")
    finally:
        parent.kill()
        parent.wait()
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_process_started_by_hand_holds_no_lifeline() -> None:
    """Its stdin is a terminal, or there is no FIBRPC_LIFELINE: ``hold_lifeline`` does
    nothing, even where the other one is there (a variable inherited by mistake)."""
    code = (
        "from fibrpc_helpers.lab.runtime import hold_lifeline\n"
        "print(hold_lifeline(), flush=True)\n"
    )
    terminal, stdin = pty.openpty()
    try:
        told = subprocess.run(
            [PY, "-c", code], stdin=stdin, capture_output=True, text=True, timeout=60,
            env={**os.environ, "FIBRPC_LIFELINE": "stdin"},
        )
    finally:
        os.close(stdin)
        os.close(terminal)
    assert told.stdout == "False\n", told.stderr
    env = {k: v for k, v in os.environ.items() if k != "FIBRPC_LIFELINE"}
    untold = subprocess.run(
        [PY, "-c", code], input="", capture_output=True, text=True, timeout=60, env=env
    )
    assert untold.stdout == "False\n", untold.stderr


def test_a_lifeline_is_not_handed_down_to_the_childs_own_children() -> None:
    """A child's own child gets a stdin of its own (here none): it must not take the
    variable its grandparent set for its parent as its own lifeline."""
    code = (
        "import os\n"
        "from fibrpc_helpers.lab.runtime import hold_lifeline\n"
        "print(hold_lifeline(), os.environ.get('FIBRPC_LIFELINE'), flush=True)\n"
    )
    from fibrpc_helpers.lab.runtime import ProcessGroup

    with ProcessGroup() as group:
        child = group.spawn([PY, "-c", code])
        assert child.readline(time.monotonic() + 60) == "True None"


def test_a_worker_started_by_hand_from_a_terminal_serves_on(url: str, queue: str) -> None:
    """``--exit-with-parent`` on the command line of a worker started from a terminal: its
    stdin is the terminal, not a lifeline, so it serves until it is stopped."""
    terminal, stdin = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "FIBRPC_LIFELINE"}
    worker = subprocess.Popen(
        [PY, "-m", "fibrpc_helpers", "worker", "--url", url, "--queue", queue,
         "--exit-with-parent"],
        stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )
    os.close(stdin)
    try:
        line = read_line(worker.stdout, 60, "the worker to serve")
        assert line.startswith("worker "), f"the worker exited with code {worker.wait()}"
        stays_alive(worker.pid, 1.0, "the worker started by hand")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    finally:
        worker.kill()
        worker.wait()
        os.close(terminal)
