"""Graded exercises: live checks that run a student's code against the real broker.

Each exercise is a function or a small class that a student completes in a notebook cell,
between nbgrader's ``### BEGIN SOLUTION`` and ``### END SOLUTION`` markers; the cell after
it awaits its check. A check runs the student's code on this notebook's broker (its
``AMQP_URL``, queues named in the student's namespace, deleted afterwards) against a
counterpart from :mod:`.awkward` that misbehaves on purpose, the way a real system
sometimes does: a worker that replies out of order, twice, or with a stranger's
correlation id, or dies after replying and before acking; a client that sends bad input,
or the same idempotency key twice. A check prints one line saying what it verified, or
raises :class:`ExerciseFailed`, shown as one line that names the mistake and the notebook
to revisit. Everything a check awaits has a deadline: code that hangs fails in seconds.

The exercises, and the cell a notebook uses to check each one:

* 02_callback_queue: ``OneQueueClient.start`` and ``.call``;
  check: ``await check_callback_queue(OneQueueClient)``
* 03_correlation_id: ``MatchingClient.on_reply`` and ``.call``;
  check: ``await check_correlation_map(MatchingClient)``
* 04_the_worker: ``async def serve_requests(channel, request_queue_name)``;
  check: ``await check_worker(serve_requests)``
* the workers-fail notebook: ``charge`` in a ``%%writefile {charge_file}`` cell (a file named
  after the student's namespace); check: ``await check_idempotency(charge_file)``

This package may use the core and :mod:`fibrpc_helpers.lab`, never the benchmark; the core
never imports it (tests/test_layers.py).
"""

from __future__ import annotations

from .callback_queue import check_callback_queue
from .correlation import check_correlation_map
from .idempotency import check_idempotency
from .verdict import ExerciseFailed
from .worker import check_worker

__all__ = [
    "ExerciseFailed",
    "check_callback_queue",
    "check_correlation_map",
    "check_idempotency",
    "check_worker",
]
