"""Grading a class (``make grade``): each submission runs in its own process, as a broker
user limited to its own namespace, with a time limit; one that hangs, crashes its kernel or
deletes a queue it does not own loses its own marks and costs no one else anything."""

from __future__ import annotations

import csv
import subprocess
import sys
import uuid

import aio_pika
import aiormq.exceptions
import nbformat
import pytest
from exercise_cells.teacher import CELLS

from fibrpc_helpers.exercises.broker_users import Ctl
from fibrpc_helpers.lab import broker
from fibrpc_helpers.urls import url_port

SETUP = ("import asyncio\nfrom uuid import uuid4\nimport aio_pika\n"
         "from fibrpc_helpers import fib\n"
         "from fibrpc_helpers.exercises import check_callback_queue, check_worker\n"
         "quorum = {'x-queue-type': 'quorum'}")


def check(grade_id: str, source: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source, metadata={"nbgrader": {
        "grade": True, "grade_id": grade_id, "points": 1, "solution": False, "locked": True}})


def submission(path, *middle: str, solutions=CELLS, checks=("await check_callback_queue("
               "OneQueueClient)", "await check_worker(serve_requests)")) -> None:
    cells = [nbformat.v4.new_code_cell(SETUP),
             nbformat.v4.new_code_cell(solutions["callback_queue"]),
             check("check_callback_queue", checks[0]),
             *(nbformat.v4.new_code_cell(source) for source in middle),
             nbformat.v4.new_code_cell(solutions["worker"]),
             check("check_worker", checks[1])]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                       "display_name": "Python 3"}
    nbformat.write(notebook, path)


@pytest.fixture
def rabbitmqctl(url):
    if not broker.status(url).started_by_us:
        pytest.skip("not run: grading makes broker users with rabbitmqctl, which needs the node "
                    "`broker ensure` started (this broker was not started by this project)")
    return Ctl(url_port(url))


@pytest.mark.timeout(900)  # five notebooks in turn, one of them hanging to its limit
async def test_a_class_is_graded_and_a_bad_submission_costs_only_its_author(
        url, rabbitmqctl, tmp_path):
    victim = f"someone-else.{uuid.uuid4().hex[:8]}"
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        await channel.declare_queue(victim, durable=True)
    folder = tmp_path / "submissions"
    folder.mkdir()
    submission(folder / "alice.ipynb")
    submission(folder / "bob.ipynb", "import time\ntime.sleep(3600)  # hangs")
    submission(folder / "carol.ipynb",
               "connection = await aio_pika.connect(__import__('os').environ['AMQP_URL'])\n"
               f"await (await connection.channel()).queue_delete({victim!r})")
    submission(folder / "dave.ipynb", "import os\nos._exit(1)  # the kernel dies")
    # nothing written, and both check cells edited to pass: the teacher's checks run instead
    submission(folder / "erin.ipynb", checks=("pass", "pass"), solutions={
        "callback_queue": "class OneQueueClient:\n    pass",
        "worker": "async def serve_requests(channel, request_queue_name):\n    pass"})
    grades = tmp_path / "grades.csv"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "fibrpc_helpers.exercises.grade", str(folder), "--csv",
             str(grades), "--timeout", "100", "--url", url],  # a kernel start and two checks each,
            capture_output=True, text=True, timeout=840)  # on a machine that may be loaded
        assert done.returncode == 0, done.stderr
        rows = {row["student"]: row for row in csv.DictReader(grades.open())}
        assert rows["alice"]["passed"] == "2" and rows["alice"]["note"] == "", rows
        assert rows["bob"]["passed"] == "0" and "timed out" in rows["bob"]["note"]
        assert rows["carol"]["check_callback_queue"] == "1"  # before her deletion
        assert rows["carol"]["check_worker"] == "1"  # the refusal was hers alone
        assert rows["dave"]["check_callback_queue"] == "1" and rows["dave"]["check_worker"] == "0"
        assert "kernel died" in rows["dave"]["note"]
        assert rows["erin"]["passed"] == "0", rows["erin"]
        assert not [u for u in rabbitmqctl.run("list_users", "--quiet").split()
                    if u.startswith("grade-")]
        assert not [q for q in rabbitmqctl.queues() if q.startswith("grade-")]
        async with await aio_pika.connect(url) as connection:  # carol could not delete it
            channel = await connection.channel()
            await channel.declare_queue(victim, passive=True)
    finally:
        async with await aio_pika.connect(url) as connection:
            await (await connection.channel()).queue_delete(victim)


async def test_a_graded_user_may_run_the_reference_client(url, rabbitmqctl):
    """The user grading makes may declare the reference client's callback queue (aio-pika
    names it amq_<hex>) and the queues of its own namespace, and nothing else."""
    from fibrpc_helpers import FibonacciRpcClient
    from fibrpc_helpers.exercises.broker_users import new_password, student_url

    run = uuid.uuid4().hex[:6]
    user = namespace = f"grade-permissions-{run}"
    rabbitmqctl.add_user(user, new_password := new_password(), namespace)
    try:
        as_student = student_url(url, user, new_password)
        async with await FibonacciRpcClient.connect(as_student, queue=f"{namespace}.rpc"):
            pass  # its callback queue was declared and consumed
        async with await aio_pika.connect(as_student) as connection:
            channel = await connection.channel()
            with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
                await channel.declare_queue(f"someone-else.{run}", durable=True)
    finally:
        rabbitmqctl.delete_user(user)


async def test_a_graded_users_password_never_appears_in_a_command_line(
        url, rabbitmqctl, monkeypatch):
    """rabbitmqctl gets the password on stdin: a command line is readable by every local
    user (ps, /proc/PID/cmdline) while grading runs. The user can still log in with it."""
    from fibrpc_helpers.exercises.broker_users import new_password, student_url

    command_lines: list[list[str]] = []
    real_run = subprocess.run

    def recording_run(args, *rest, **options):
        command_lines.append([str(arg) for arg in args])
        return real_run(args, *rest, **options)

    monkeypatch.setattr(subprocess, "run", recording_run)
    user = namespace = f"grade-argv-{uuid.uuid4().hex[:6]}"
    rabbitmqctl.add_user(user, password := new_password(), namespace)
    try:
        assert any("add_user" in line for line in command_lines), command_lines
        assert not [line for line in command_lines if password in " ".join(line)]
        async with await aio_pika.connect(student_url(url, user, password)):
            pass  # the broker took the password that came on stdin
    finally:
        rabbitmqctl.delete_user(user)
