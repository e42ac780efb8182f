"""The exercises' checks, trusted only once shown failing: every check passes the teacher's
solution, fails nbgrader's stub with a message of its own, and fails each wrong solution
aimed at it (tests/wrong_solutions/, mistakes real students make) with the message that
names that mistake. Everything runs against the real broker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from exercise_cells.teacher import CELLS, run_cell

from fibrpc_helpers.exercises import (
    ExerciseFailed,
    check_callback_queue,
    check_correlation_map,
    check_idempotency,
    check_worker,
)
from fibrpc_helpers.exercises.edition import student_source

WRONG = Path(__file__).parent / "wrong_solutions"

Check = Callable[..., Awaitable[str]]


def _solution(exercise: str, source: str, folder: Path) -> Any:
    """What the check cell passes to its check, after the solution cell ran."""
    namespace = run_cell(source, folder=folder)
    return {
        "callback_queue": lambda: namespace["OneQueueClient"],
        "correlation_map": lambda: namespace["MatchingClient"],
        "worker": lambda: namespace["serve_requests"],
        "charge": lambda: folder / "charge_once.py",
    }[exercise]()


CHECKS: dict[str, Check] = {
    "callback_queue": check_callback_queue,
    "correlation_map": check_correlation_map,
    "worker": check_worker,
    "charge": check_idempotency,
}

STUB_MESSAGES = {
    "callback_queue": "start() of the first client is not written yet",
    "correlation_map": "call is not written yet",
    "worker": "serve_requests(channel, request_queue_name) is not written yet",
    "charge": "charge is not written yet",
}


async def _fails(check: Check, solution: Any, url: str) -> str:
    with pytest.raises(ExerciseFailed) as failed:
        await check(solution, url=url)
    message = str(failed.value)
    assert "\n" not in message, "a check's failure is one line"
    assert failed.value._render_traceback_() == [f"✗ {message}"]
    return message


@pytest.mark.parametrize("exercise", CHECKS)
async def test_the_teachers_solution_passes(exercise, url, tmp_path, capsys):
    line = await CHECKS[exercise](_solution(exercise, CELLS[exercise], tmp_path), url=url)
    assert line.startswith("✓ ") and capsys.readouterr().out == line + "\n"


@pytest.mark.parametrize("exercise", CHECKS)
async def test_the_stub_fails_with_its_own_message(exercise, url, tmp_path):
    stub = student_source(CELLS[exercise])
    assert "raise NotImplementedError()" in stub and "BEGIN SOLUTION" not in stub
    message = await _fails(CHECKS[exercise], _solution(exercise, stub, tmp_path), url)
    assert message.startswith(STUB_MESSAGES[exercise]), message
    assert "see " in message


WRONG_SOLUTIONS = [
    # (file, exercise, what the message must say)
    ("queue_per_call.py", "callback_queue", "calls named 2 different callback queues"),
    ("shared_named_queue.py", "callback_queue", "the two clients shared one callback queue"),
    ("raises_on_unknown.py", "correlation_map",
     "a reply with an unknown correlation_id raised KeyError: discard it"),
    ("on_reply_not_written.py", "correlation_map", "on_reply is not written yet"),
    ("ack_before_reply.py", "worker", "acked the request for fib(1) before publishing its reply"),
    ("no_prefetch.py", "worker", "requests at once: with no prefetch limit"),
    ("no_error_reply.py", "worker", "the bad request b'ten' got no reply: the callback "
     "raised ValueError: invalid literal for int()"),
    ("charge_per_process_dict.py", "charge", "order-1 was charged twice"),
    ("charge_replies_todays_total.py", "charge",
     "order-1 asked again after order-2 got 1200, not its first reply 500"),
    ("charge_select_then_insert.py", "charge", "order-3 was charged twice: its retry "
     "reached worker D while worker C, between looking the key up and inserting"),
    ("charge_create_table_first.py", "charge", "order-3 was charged twice"),
    ("charge_deferred_transaction.py", "charge",
     "worker C's charge of order-3 failed with 'database is locked'"),
]


@pytest.mark.parametrize(("file", "exercise", "expected"), WRONG_SOLUTIONS,
                         ids=[w[0].removesuffix(".py") for w in WRONG_SOLUTIONS])
async def test_a_wrong_solution_fails_with_the_message_for_its_mistake(
        file, exercise, expected, url, tmp_path):
    source = (WRONG / file).read_text()
    if exercise == "charge":
        source = "%%writefile {charge_file}\n" + source
    try:
        message = await _fails(CHECKS[exercise], _solution(exercise, source, tmp_path), url)
    finally:
        if file == "shared_named_queue.py":  # outside the namespace: the check leaves it
            async with await aio_pika.connect(url) as connection:
                await (await connection.channel()).queue_delete("replies")
    assert expected in message, message
    assert f"see {NOTEBOOKS[exercise]}" in message


NOTEBOOKS = {"callback_queue": "02_callback_queue", "correlation_map": "03_correlation_id",
             "worker": "04_the_worker", "charge": "06_when_workers_fail"}


async def test_a_callback_that_raises_is_named_in_the_line_not_shown_as_tracebacks(
        url, tmp_path, caplog):
    """aio-pika only logs what escapes a consumer callback: the check names it in its one
    line, and neither aiormq's log record nor asyncio's report of it reaches the student."""
    source = (WRONG / "no_error_reply.py").read_text()
    message = await _fails(CHECKS["worker"], _solution("worker", source, tmp_path), url)
    assert "ValueError" in message, message
    assert not [r for r in caplog.records if r.exc_info or "callback" in r.getMessage()], [
        r.getMessage() for r in caplog.records]


async def test_a_right_charge_other_than_the_teachers_passes(url, tmp_path):
    """A check must not fail right code written another way: the lookup and the insert in
    one write transaction (BEGIN IMMEDIATE), where the teacher's uses one statement. Worker
    D then waits for C's lock, and the check lets C go on."""
    source = (WRONG.parent / "right_solutions" / "charge_begin_immediate.py").read_text()
    module = _solution("charge", "%%writefile {charge_file}\n" + source, tmp_path)
    line = await CHECKS["charge"](module, url=url)
    assert line.startswith("✓ ") and "order-3 charged once" in line
