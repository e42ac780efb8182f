"""CallbackErrors keeps what escapes a consumer callback for a check to name, and hides
nothing else: a kept error no check named is logged on exit, and every other report of the
loop or of aiormq goes through."""

from __future__ import annotations

import asyncio
import logging

from fibrpc_helpers.exercises.observed import CallbackErrors

AIORMQ = logging.getLogger("aiormq.channel")


async def test_only_what_a_check_named_is_left_unreported(caplog):
    loop = asyncio.get_running_loop()
    reported: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    named, unnamed, other = ValueError("bad body"), KeyError("stranger"), RuntimeError("other")
    try:
        with CallbackErrors() as raised:
            for error in (named, unnamed):  # what aio-pika's consumer task does
                loop.call_exception_handler({"message": "Exception in callback _task_done",
                                             "exception": error})
                AIORMQ.error("Consumer callback failed", exc_info=error)
            loop.call_exception_handler({"message": "Task exception was never retrieved",
                                         "exception": other})
            AIORMQ.error("Unhandled return callback exception", exc_info=other)
            assert raised.errors == [named, unnamed]
            assert raised.first() == "ValueError: bad body"
            assert [r.exc_info[1] for r in caplog.records] == [other]  # nothing kept shows
        assert loop.get_exception_handler() is not None  # the test's own, given back
    finally:
        loop.set_exception_handler(None)
    assert [context["exception"] for context in reported] == [other]
    assert [r.exc_info[1] for r in caplog.records] == [other, unnamed]
    assert not [f for f in AIORMQ.filters if isinstance(f, CallbackErrors)]
