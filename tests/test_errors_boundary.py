"""One exception boundary: every aio-pika and aiormq exception becomes one of ours.

``errors.translate`` is the only place that maps library exceptions; these tests walk every
exception class aiormq and aio-pika define, check each becomes a specific ``RpcError`` with a
one-line message and the original as ``__cause__``, and check on a real broker that failing
to connect (even to a virtual host that does not exist) is an ``RpcError`` too.
"""

from __future__ import annotations

import asyncio
import inspect
import pathlib
import socket

import aio_pika.exceptions
import aiormq.exceptions
import pytest
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic
from pamqp.header import ContentHeader
from yarl import URL

from fibrpc_helpers import (
    AccessRefusedError,
    BrokerRefusedError,
    ChannelClosedError,
    FibonacciRpcClient,
    FibonacciRpcWorker,
    NotFoundError,
    NoWorkerError,
    PreconditionFailedError,
    RpcConnectionError,
    RpcError,
    RpcTimeout,
)
from fibrpc_helpers.errors import translate
from fibrpc_helpers.pipeline import StageTimeout

DOING = "testing the boundary"


def _library_exceptions() -> list[type[BaseException]]:
    """Every exception class aiormq.exceptions and aio_pika.exceptions define or re-export."""
    found: dict[str, type[BaseException]] = {}
    for module in (aiormq.exceptions, aio_pika.exceptions):
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__.startswith(
                ("aiormq", "aio_pika")
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return [found[name] for name in sorted(found)]


LIBRARY_EXCEPTIONS = _library_exceptions()


def _returned(exchange: str = "") -> aiormq.exceptions.PublishError:
    frame = Basic.Return(reply_code=312, reply_text="NO_ROUTE", exchange=exchange,
                         routing_key="rpc_queue")
    message = DeliveredMessage(delivery=frame, header=ContentHeader(), body=b"10",
                               channel=None)  # type: ignore[arg-type]
    return aiormq.exceptions.PublishError(message, frame)


def instance(kind: type[BaseException]) -> BaseException:
    """The cheapest valid instance of a library exception class."""
    if issubclass(kind, aiormq.exceptions.PublishError):
        return _returned()
    if issubclass(kind, aiormq.exceptions.DeliveryError):
        return kind(None, Basic.Nack(delivery_tag=1))
    if kind in (aiormq.exceptions.ConnectionClosed, aiormq.exceptions.ChannelClosed):
        return kind(320, "CONNECTION_FORCED - broker forced connection closure")
    return kind("PRECONDITION_FAILED - what the broker said")


# (what happened, the class of ours it must become, words its message must have, reply code)
MUST_MAP = {
    aiormq.exceptions.ConnectionClosed: (RpcConnectionError, "connection to the broker was lost",
                                         320),
    aiormq.exceptions.ConnectionInternalError: (RpcConnectionError, "failed internally", 541),
    aiormq.exceptions.ConnectionNotAllowed: (RpcConnectionError, "virtual host", 530),
    aiormq.exceptions.ProbableAuthenticationError: (RpcConnectionError, "credentials", None),
    aiormq.exceptions.AuthenticationError: (RpcConnectionError, "credentials", None),
    aiormq.exceptions.IncompatibleProtocolError: (RpcConnectionError, "port", None),
    aiormq.exceptions.InvalidFrameError: (RpcConnectionError, "virtual host", None),
    aiormq.exceptions.ChannelClosed: (ChannelClosedError, "channel was closed", 320),
    aiormq.exceptions.ChannelInvalidStateError: (ChannelClosedError, "channel was closed", None),
    aiormq.exceptions.ChannelPreconditionFailed: (PreconditionFailedError, "other properties",
                                                  406),
    aiormq.exceptions.ChannelNotFoundEntity: (NotFoundError, "no such queue", 404),
    aiormq.exceptions.ChannelAccessRefused: (AccessRefusedError, "permission", 403),
    aiormq.exceptions.PublishError: (NoWorkerError, "no queue named 'rpc_queue'", 312),
    aiormq.exceptions.DeliveryError: (BrokerRefusedError, "basic.nack", None),
}
GENERIC_ALLOWED = {
    # Neither a connection nor a call fails this way in this package: a plain RpcError.
    aiormq.exceptions.AMQPError, aiormq.exceptions.MethodNotImplemented,
    aio_pika.exceptions.MessageProcessError, aio_pika.exceptions.QueueEmpty,
}


def test_the_walk_finds_every_exception_that_matters():
    assert set(MUST_MAP) <= set(LIBRARY_EXCEPTIONS)
    assert len(LIBRARY_EXCEPTIONS) >= 30


@pytest.mark.parametrize("kind", LIBRARY_EXCEPTIONS, ids=lambda kind: kind.__name__)
def test_every_library_exception_becomes_a_specific_one_of_ours(kind):
    original = instance(kind)
    ours = translate(original, doing=DOING)
    assert isinstance(ours, RpcError), type(ours)
    assert ours.__cause__ is original
    message = str(ours)
    assert message and "\n" not in message and "{" not in message, message
    if type(ours) is RpcError:
        assert kind in GENERIC_ALLOWED, f"{kind.__name__} fell back to a plain RpcError"
        assert DOING in message and kind.__name__ in message
    if kind in MUST_MAP:
        expected, words, code = MUST_MAP[kind]
        assert type(ours) is expected, f"{kind.__name__} -> {type(ours).__name__}"
        assert words in message, message
        assert ours.reply_code == code
    # Everything about the connection is also a ConnectionError, as the built-in's users expect.
    if issubclass(kind, aiormq.exceptions.AMQPConnectionError):
        assert isinstance(ours, ConnectionError)


@pytest.mark.parametrize(
    ("original", "expected", "words"),
    [
        (ConnectionRefusedError(111, "Connect call failed"), RpcConnectionError, "broker ensure"),
        (socket.gaierror(-2, "Name or service not known"), RpcConnectionError, "broker ensure"),
        (ConnectionResetError(104, "reset by peer"), RpcConnectionError, "was lost"),
        (TimeoutError(), RpcTimeout, "did not answer in time"),
        (asyncio.CancelledError(), RpcConnectionError, "closed while testing"),
        (ValueError("a bug of ours"), RpcError, "ValueError while testing"),
    ],
    ids=["refused", "no-such-host", "reset", "timeout", "cancelled-by-aio-pika", "other"],
)
def test_socket_and_asyncio_failures_become_ours(original, expected, words):
    ours = translate(original, doing=DOING)
    assert type(ours) is expected and words in str(ours) and ours.__cause__ is original


def test_aiormq_wrapping_a_refused_connect_says_how_to_get_a_broker():
    refused = ConnectionRefusedError(111, "Connect call failed")
    wrapped = aiormq.exceptions.AMQPConnectionError(*refused.args)
    wrapped.__cause__ = refused  # as aiormq raises it
    assert "broker ensure" in str(translate(wrapped, doing=DOING))


def test_a_message_returned_by_another_exchange_names_the_exchange():
    ours = translate(_returned("fibrpc.direct"), doing=DOING)
    assert isinstance(ours, NoWorkerError) and "exchange" in str(ours)


def test_ours_pass_through_unchanged():
    error = NoWorkerError("already ours")
    assert translate(error, doing=DOING) is error


def test_a_stage_timeout_is_an_rpc_error_and_a_timeout():
    assert issubclass(StageTimeout, RpcTimeout)
    assert issubclass(StageTimeout, RpcError) and issubclass(StageTimeout, TimeoutError)


CORE = ["client.py", "worker.py", "wire.py", "pipeline.py", "request_queue.py"]


@pytest.mark.parametrize("module", CORE)
def test_the_core_catches_no_library_exception_by_name(module):
    """The boundary is one function: the core never names aiormq's or aio-pika's
    exceptions, and never reaches the raw aiormq connection under aio-pika's."""
    source = (pathlib.Path(__file__).parents[1] / "fibrpc_helpers" / module).read_text()
    for forbidden in ("aiormq.exceptions", "aio_pika.exceptions", "transport.connection",
                      "import re\n"):
        assert forbidden not in source, f"{module} has {forbidden!r}"


def _on_vhost(url: str, vhost: str) -> str:
    return str(URL(url).with_path("/" + vhost))


async def test_connecting_to_a_virtual_host_that_does_not_exist_is_an_rpc_error(url):
    """aiormq answers this one with an InvalidFrameError, which no except clause for
    connection errors used to catch."""
    nowhere = _on_vhost(url, "fibrpc-no-such-vhost")
    with pytest.raises(RpcConnectionError, match="virtual host") as client_error:
        await FibonacciRpcClient.connect(nowhere)
    assert isinstance(client_error.value.__cause__, aiormq.exceptions.AMQPError)
    with pytest.raises(RpcConnectionError, match="virtual host"):
        await FibonacciRpcWorker.start(nowhere)


async def test_connecting_where_nothing_listens_chains_the_socket_error():
    with pytest.raises(RpcConnectionError, match="broker ensure") as caught:
        await FibonacciRpcClient.connect("amqp://guest:guest@127.0.0.1:1/")
    assert isinstance(caught.value.__cause__, ConnectionError)
