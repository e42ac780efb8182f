"""Notebook plumbing against the real broker: the broker check, queue names, cleanup, re-runs."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import uuid
from pathlib import Path

import aio_pika
import pytest

from fibrpc_helpers.lab import broker
from fibrpc_helpers.lab.namespace import namespace
from fibrpc_helpers.lab.notebook import check_broker, short_name, start
from fibrpc_helpers.lab.runtime import ChildError


async def queue_exists(url: str, name: str) -> bool:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        try:
            await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelClosed:  # 404 NOT_FOUND
            return False
        return True


@pytest.fixture
def notebook_name() -> str:
    return f"9{uuid.uuid4().hex[:1]}_test_{uuid.uuid4().hex[:8]}"


async def test_check_broker_says_what_answers(url, capsys):
    assert await check_broker(url) is True
    out = capsys.readouterr().out
    assert re.match(r"RabbitMQ \d+\.\d+", out) and "answers at" in out, out
    assert ":guest@" not in out  # the password is masked


async def test_check_broker_explains_how_to_fix_a_missing_one(capsys):
    assert await check_broker("amqp://guest:secret@localhost:1/") is False
    out = capsys.readouterr().out
    assert "No RabbitMQ broker answers at amqp://guest:****@localhost:1/" in out
    assert "broker ensure" in out and "AMQP_URL" in out and "secret" not in out
    with pytest.raises(broker.BrokerError):
        await start("99_no_broker", "amqp://guest:secret@localhost:1/")


async def test_cleanup_undoes_what_the_notebook_made(url, notebook_name, capsys):
    nb = await start(notebook_name, url)
    name = await nb.queue("rpc_queue")
    assert name == f"{namespace()}.{notebook_name[:2]}.rpc_queue"
    assert short_name(name) == f"{notebook_name[:2]}.rpc_queue"
    connection = nb.track(await aio_pika.connect_robust(nb.url))
    channel = await connection.channel()
    await channel.declare_queue(name, durable=True)
    task = nb.track(asyncio.create_task(asyncio.sleep(3600)))
    workers = await nb.worker_processes(1, url=url, queue=name)
    assert nb.track(connection) is connection and len(nb.things) == 3  # tracked once

    await nb.cleanup()

    assert [process.returncode for process in workers.processes] == [0]  # stopped cleanly
    assert task.cancelled()
    assert connection.is_closed
    assert all(process.poll() is not None for process in workers.processes)
    assert not await queue_exists(url, name)
    out = capsys.readouterr().out.splitlines()
    assert out[-2] == "stopped or closed: 1 worker process, 1 task, 1 connection"
    assert out[-1] == f"deleted queues: {notebook_name[:2]}.rpc_queue"
    assert "stopped: 0 answered" in nb.worker_log.read_text()  # the log went to the file
    assert "stopped" not in capsys.readouterr().err
    nb.worker_log.unlink()


async def test_a_rerun_cleans_up_what_the_first_run_left(url, notebook_name):
    first = await start(notebook_name, url)
    name = await first.queue("rpc_queue")
    connection = first.track(await aio_pika.connect(url))
    await (await connection.channel()).declare_queue(name, durable=True)
    # The first run stops half way, before its cleanup cell; the notebook is run again.
    second = await start(notebook_name, url)
    assert connection.is_closed
    assert not await queue_exists(url, name)
    assert second is not first and second.queues == []
    await second.cleanup(quiet=True)


async def test_queue_deletes_a_leftover_from_a_restarted_kernel(url, notebook_name):
    nb = await start(notebook_name, url)
    full = f"{namespace()}.{notebook_name[:2]}.left"
    connection = await aio_pika.connect(url)
    async with connection:  # an earlier kernel left the queue, with a message in it
        channel = await connection.channel()
        await channel.declare_queue(full, durable=True)
        await channel.default_exchange.publish(aio_pika.Message(b"1"), routing_key=full)
    assert await nb.queue("left") == full
    assert not await queue_exists(url, full)
    await nb.cleanup(quiet=True)


async def test_worker_processes_stop_when_the_kernel_is_killed(url, notebook_name):
    """A kernel that is restarted or shut down (SIGKILL, no cleanup cell) leaves no worker."""
    import os
    import time

    from jupyter_client.manager import start_new_kernel

    outputs: list[dict] = []
    manager, kernel = start_new_kernel(kernel_name="python3")
    try:
        code = (
            "from fibrpc_helpers.lab.notebook import start\n"
            f"nb = await start({notebook_name!r}, {url!r})\n"
            "workers = await nb.worker_processes(2, queue=await nb.queue('rpc_queue'))\n"
            "print('PIDS', *workers.pids)\n"
        )
        reply = kernel.execute_interactive(code, timeout=60, output_hook=outputs.append)
        assert reply["content"]["status"] == "ok"
    finally:
        kernel.stop_channels()
        manager.shutdown_kernel(now=True)  # kill -9: the kernel gets no chance to clean up
    # Stream messages may merge or split lines: read the whole stdout, then the PIDS line.
    stdout = "".join(m["content"]["text"] for m in outputs if m["msg_type"] == "stream")
    pids = [
        int(pid)
        for line in stdout.splitlines()
        if line.startswith("PIDS ")
        for pid in line.split()[1:]
    ]
    assert len(pids) == 2

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return not open(f"/proc/{pid}/stat").read().split()[2] == "Z"  # a zombie has exited

    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in pids), "worker processes outlived their kernel"
    # What the killed kernel could not clean up, the next run's nb.queue() would; do it here.
    nb = await start(notebook_name, url)
    await nb.queue("rpc_queue")
    await nb.cleanup(quiet=True)
    nb.worker_log.unlink(missing_ok=True)



SCRIPT = """\
import asyncio, os, sys
import aio_pika

async def main():
    connection = await aio_pika.connect(os.environ["AMQP_URL"])  # the URL comes from here
    async with connection:
        print("not yet", flush=True)
        print("ready on", sys.argv[1], flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


def proc(pid: int, name: str) -> list[str]:
    """A process's command line or environment, from Linux's /proc, NUL-separated."""
    with open(f"/proc/{pid}/{name}", "rb") as file:
        return file.read().decode().split("\0")


@pytest.fixture
async def notebook(url, notebook_name):
    """A Notebook, cleaned up and its log deleted whatever the test's outcome."""
    nb = await start(notebook_name, url)
    try:
        yield nb
    finally:
        await nb.cleanup(quiet=True)
        nb.worker_log.unlink(missing_ok=True)


async def test_script_process_runs_a_program_with_the_url_kept_off_its_command_line(
    notebook, tmp_path, capsys
):
    script = tmp_path / "program.py"
    script.write_text(SCRIPT)
    child = await notebook.script_process(str(script), "an-argument", name="program")
    assert child.running and child.ready_line == "ready on an-argument"
    command_line = proc(child.pid, "cmdline")
    assert not any("amqp://" in part for part in command_line) and "an-argument" in command_line
    assert f"AMQP_URL={notebook.url}" in proc(child.pid, "environ")
    other = await notebook.script_process(str(script), "another", name="program")

    await notebook.cleanup()

    assert not child.running and not other.running
    assert capsys.readouterr().out.splitlines()[-2] == "stopped or closed: 2 processes"


async def test_script_process_that_fails_says_why_with_its_log(notebook, tmp_path):
    script = tmp_path / "broken.py"
    script.write_text("raise SystemExit('no database file given')\n")
    notebook.worker_log.write_text("a line from an earlier process\n")
    with pytest.raises(ChildError, match="exited with code 1") as raised:
        await notebook.script_process(str(script), name="broken", timeout=30)
    # Its own last words, not the earlier process's.
    assert str(raised.value).endswith("its last lines:\nno database file given")


async def test_worker_processes_keep_the_url_off_their_command_line(url, notebook):
    workers = await notebook.worker_processes(1, url=url, queue=await notebook.queue("rpc_queue"))
    command_line = proc(workers.pids[0], "cmdline")
    assert not any("amqp://" in part for part in command_line)
    assert "--exit-with-parent" in command_line
    assert f"AMQP_URL={url}" in proc(workers.pids[0], "environ")


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (a zombie nobody reaps counts as exited)."""
    try:
        return proc(pid, "stat")[0].rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def test_a_script_process_survives_a_kernel_interrupt_and_ends_with_a_killed_kernel(
    url, notebook_name, tmp_path
):
    """Jupyter interrupts a kernel by sending SIGINT to the kernel's process group: the
    notebook's program must not die of it. A kernel killed before its cleanup cell (SIGKILL)
    must leave no program behind."""
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "program.py"
    script.write_text(SCRIPT)
    kernel = subprocess.Popen(  # stands in for the kernel: a session of its own, as Jupyter's
        [sys.executable, "-c", (
            "import asyncio, os, signal\n"
            "from fibrpc_helpers.lab.notebook import start\n"
            # os.write, not print: the signal can land inside print's own write to stdout,
            # and a handler that prints then fails with "reentrant call".
            "signal.signal(signal.SIGINT, lambda *_: os.write(1, b'interrupted\\n'))\n"
            "async def main():\n"
            f"    nb = await start({notebook_name!r}, {url!r})\n"
            f"    child = await nb.script_process({str(script)!r}, 'x', name='program')\n"
            "    print(child.pid, flush=True)\n"
            "    await asyncio.sleep(3600)\n"
            "asyncio.run(main())\n"
        )],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )
    program = None
    try:
        program = next((int(line) for line in kernel.stdout if line.strip().isdigit()), None)
        assert program is not None, f"the stand-in kernel exited with code {kernel.wait()}"
        os.killpg(kernel.pid, signal.SIGINT)  # what Jupyter's "Interrupt the kernel" does
        seen = []
        for line in kernel.stdout:  # the handler's line; anything logged before it is kept
            seen.append(line)
            if line == "interrupted\n":
                break
        assert seen[-1:] == ["interrupted\n"], (
            f"the stand-in kernel printed {seen!r} and exited with {kernel.poll()}"
        )
        deadline = time.monotonic() + 1  # a program that got SIGINT would be gone by then
        while time.monotonic() < deadline:
            assert not _gone(program), "the kernel's interrupt ended the notebook's program"
            time.sleep(0.05)
    finally:
        kernel.kill()
        kernel.wait()
        Path(tempfile.gettempdir(), f"fibrpc-{namespace()}-{notebook_name}-workers.log").unlink(
            missing_ok=True
        )
    deadline = time.monotonic() + 10
    while not _gone(program):
        if time.monotonic() > deadline:
            os.kill(program, signal.SIGKILL)
            raise AssertionError("the program outlived its killed kernel by 10 s")
        time.sleep(0.05)
