"""The process runtime with real child processes (no broker): start, ready, stop, stdin;
and the task group (orphans: tests/test_lifeline.py)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from fibrpc_helpers.lab.runtime import ChildError, ProcessGroup, run, uvloop_installed

PY = sys.executable


def python(code: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code)]


READY_THEN_SLEEP = "import time\nprint('ready', flush=True)\ntime.sleep(60)"


def test_a_child_that_never_says_ready_fails_the_start_at_the_deadline_and_is_killed() -> None:
    group = ProcessGroup(stderr=subprocess.DEVNULL)
    child = group.spawn(python("import time\nprint('starting', flush=True)\ntime.sleep(60)"))
    started = time.monotonic()
    with pytest.raises(ChildError, match=r"said nothing in time before it was ready"):
        group.wait_ready([child], "^ready", timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 5
    assert child.process.poll() is not None  # stopped with its group, not left behind


def test_a_child_that_exits_before_ready_says_its_exit_code() -> None:
    group = ProcessGroup(stderr=subprocess.DEVNULL)
    child = group.spawn(python("raise SystemExit(3)"))
    with pytest.raises(ChildError, match=r"exited with code 3 before it was ready"):
        group.wait_ready([child], "^ready", timeout=30)


def test_ready_lines_come_back_and_stop_terminates_every_child_at_once() -> None:
    with ProcessGroup() as group:
        children = [group.spawn(python(READY_THEN_SLEEP)) for _ in range(3)]
        assert group.wait_ready(children, "^ready", timeout=30) == ["ready"] * 3
        started = time.monotonic()
        codes = group.stop(timeout=10)
    assert codes == [-signal.SIGTERM] * 3
    assert time.monotonic() - started < 5  # signalled together, not one after another


def test_a_child_that_ignores_sigterm_is_killed_once_the_stop_deadline_passes() -> None:
    stubborn = (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\ntime.sleep(60)"
    )
    group = ProcessGroup()
    children = [group.spawn(python(stubborn)), group.spawn(python(READY_THEN_SLEEP))]
    group.wait_ready(children, "^ready", timeout=30)
    started = time.monotonic()
    codes = group.stop(timeout=3)
    assert codes == [-signal.SIGKILL, -signal.SIGTERM]
    assert 3 <= time.monotonic() - started < 10


def test_lines_are_read_with_a_deadline_and_written_to_stdin() -> None:
    echo = (
        "import sys\nprint('ready', flush=True)\n"
        "for line in sys.stdin: print(line.upper(), end='', flush=True)"
    )
    with ProcessGroup() as group:
        child = group.spawn(python(echo))
        group.wait_ready([child], "^ready", timeout=30)
        child.write("hello")
        assert child.readline(time.monotonic() + 30) == "HELLO"
        with pytest.raises(ChildError, match="said nothing in time"):
            child.readline(time.monotonic() + 0.1)


def test_run_uses_the_event_loop_asked_for() -> None:
    async def kind() -> str:
        return type(asyncio.get_running_loop()).__module__.split(".")[0]

    assert run(kind(), "asyncio") == "asyncio"
    if uvloop_installed():
        assert run(kind(), "uvloop") == "uvloop" == run(kind(), "auto")
    with pytest.raises(ValueError, match="unknown event loop 'trio'"):
        run(kind(), "trio")


def test_every_child_is_told_that_its_stdin_is_a_pipe_from_its_parent() -> None:
    code = (
        "import os, stat\n"
        "print(os.environ['FIBRPC_LIFELINE'], stat.S_ISFIFO(os.fstat(0).st_mode))"
    )
    with ProcessGroup() as group:
        child = group.spawn(python(code))
        assert child.readline(time.monotonic() + 30) == "stdin True"
