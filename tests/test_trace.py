"""The trace records what really flowed through the broker, and draws it."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest
from matplotlib.figure import Figure

from fibrpc_helpers import FibonacciRpcClient, FibonacciRpcWorker, NoWorkerError, WorkerProcesses
from fibrpc_helpers import trace_hooks
from fibrpc_helpers.trace import Trace


def texts(axes) -> list[str]:
    return [text.get_text() for text in axes.texts]


def crosses(axes) -> list:
    """The ✗ markers of the diagram: the lanes of workers that went away."""
    return [line for line in axes.get_lines() if line.get_marker() == "x"]


async def until(condition, timeout: float = 5.0) -> None:
    """Wait until condition() is true: the client counts discards without an event to await."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


async def test_a_call_in_this_process_is_traced_step_by_step(worker, client):
    async with Trace() as trace:  # waits for the ack, which may come after the reply
        assert await client.call(10) == 55

    kinds = [event.kind for event in trace.events]
    # client -> request queue -> worker -> callback queue; then the reply reaches the client
    # and the worker acks, in either order (two connections, no ordering between them).
    assert kinds[:3] == ["publish", "deliver", "publish"]
    assert sorted(kinds[3:]) == ["ack", "deliver"]
    (call,) = trace.calls
    assert call.request == "10" and call.reply == "55" and not call.error
    assert call.worker == "worker A" and call.in_process
    assert call.queue == worker.queue.name and call.reply_to == client.callback_queue.name
    assert 0 <= call.sent < call.delivered < call.replied < call.received
    assert call.replied < call.acked
    assert call.round_trip == pytest.approx(call.received - call.sent)
    (who,) = trace.workers.values()
    assert who.label == "worker A" and who.in_process and who.gone is None
    assert who.consumer_tag == trace.events[1].consumer_tag and who.app_id == worker.name
    lines = trace.table().splitlines()
    assert "fib(10)" in lines[1] and "55" in lines[1] and "worker A" in lines[1]


async def test_concurrent_calls_are_matched_by_correlation_id(worker, client):
    with Trace() as trace:
        results = await asyncio.gather(*(client.call(n) for n in range(8)))
    assert results == [0, 1, 1, 2, 3, 5, 8, 13]
    calls = trace.calls
    assert [call.request for call in calls] == [str(n) for n in range(8)]
    assert [call.reply for call in calls] == [str(r) for r in results]
    assert len({call.correlation_id for call in calls}) == 8


async def test_a_worker_in_another_process_is_named_by_its_app_id(url, queue_name, client):
    with WorkerProcesses(1, url=url, queue=queue_name) as workers:
        with Trace() as trace:
            assert await client.call(20) == 6765
    (call,) = trace.calls
    assert not call.in_process and call.delivered is None
    assert call.worker == "worker A"
    (who,) = trace.workers.values()
    assert who.label == "worker A" and who.app_id == workers.names[0]
    assert not who.in_process and who.consumer_tag is None
    assert call.round_trip is not None and call.round_trip > 0


async def test_unknown_and_duplicate_replies_show_as_such(worker, client, connection):
    channel = await connection.channel()
    with Trace() as trace:
        assert await client.call(7) == 13
        answered = trace.calls[0].correlation_id
        for correlation_id in (answered, "not-a-call-of-ours"):
            await channel.default_exchange.publish(
                aio_pika.Message(b"13", correlation_id=correlation_id),
                routing_key=client.callback_queue.name,
            )
        await until(lambda: client.replies.discarded == 2)
    first, stray = trace.calls
    assert first.replies == 2  # the duplicate reached the client (which discarded it)
    assert stray.sent is None and stray.correlation_id == "not-a-call-of-ours"
    assert stray.replies == 1 and stray.worker is None  # no app_id: an unknown sender
    assert client.replies.duplicate == 1 and client.replies.unknown == 1
    assert "×2" in trace.table().splitlines()[1]
    axes = trace.draw().axes[0]
    lanes = [text.get_text() for text in axes.texts if text.get_fontweight() == "bold"]
    assert lanes[0] == "client" and "unknown sender" in lanes and "someone else" not in lanes
    legend = [text for text in texts(axes) if text.startswith("unknown sender:")]
    assert legend == [
        "unknown sender: a reply with no app_id, to a request no worker here took "
        "(published in this process)"
    ]


async def test_a_returned_request_and_an_error_reply(url, queue_name, worker, connection):
    channel = await connection.channel()
    callback = await channel.declare_queue(exclusive=True)
    replies: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
    await callback.consume(replies.put, no_ack=True)
    async with await FibonacciRpcClient.connect(url, queue=queue_name + ".nobody") as lonely:
        with Trace() as trace:
            with pytest.raises(NoWorkerError):
                await lonely.call(3)
            await channel.default_exchange.publish(
                aio_pika.Message(b"abc", correlation_id="bad", reply_to=callback.name),
                routing_key=queue_name,
            )
            reply = await asyncio.wait_for(replies.get(), 5)
    assert reply.type == "error"
    returned, bad = trace.calls
    assert returned.returned and returned.reply is None
    assert bad.error and bad.request == "abc"
    table = trace.table()
    assert "returned" in table and "error:" in table


async def test_traces_nest_and_stop_recording_when_closed(worker, client):
    with Trace() as outer:
        await client.call(1)
        with Trace() as inner:
            await client.call(2)
    await client.call(3)
    assert not trace_hooks.LISTENERS  # closed traces no longer listen
    assert [call.request for call in outer.calls] == ["1", "2"]
    assert [call.request for call in inner.calls] == ["2"]
    assert inner.duration is not None and inner.duration > 0


async def test_draw_makes_a_sequence_diagram(worker, client):
    async with Trace() as trace:
        await asyncio.gather(*(client.call(n) for n in range(12)))
    figure = trace.draw(max_calls=3)
    assert isinstance(figure, Figure)
    (axes,) = figure.axes
    lanes = [text.get_text() for text in axes.texts if text.get_fontweight() == "bold"]
    # the worker's lane is "worker A"; the legend says who it is: the app_id its replies
    # carry (FibonacciRpcWorker: host:pid)
    assert lanes == ["client", worker.queue.name, "worker A", "callback queue"]
    assert f"worker A: app_id {worker.name} (this process)" in texts(axes)
    assert "first 3 of 12 calls" in axes.get_title()
    assert len(axes.get_yticklabels()) == 3 * 5  # request, delivery, reply, received, ack
    assert sum(text.get_text() == "✓ ack" for text in axes.texts) == 3
    empty = Trace()
    assert isinstance(empty.draw(), Figure)  # nothing traced is drawn, not an error


@pytest.fixture(autouse=True)
def _agg_backend():
    import matplotlib

    matplotlib.use("Agg")


async def test_messages_without_correlation_id_are_matched_first_in_first_out(
    queue_name, connection
):
    """Notebook 02 sends requests before correlation ids are introduced."""
    channel = await connection.channel()
    requests = await channel.declare_queue(queue_name)

    async def on_request(request: aio_pika.abc.AbstractIncomingMessage) -> None:
        reply = aio_pika.Message(str(int(request.body) * 2).encode())
        await channel.default_exchange.publish(reply, routing_key=request.reply_to)
        await request.ack()

    await requests.consume(on_request)
    callback = await channel.declare_queue(exclusive=True)
    replies: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
    await callback.consume(replies.put, no_ack=True)
    async with Trace() as trace:
        for n in (1, 2, 3):
            message = aio_pika.Message(str(n).encode(), reply_to=callback.name)
            await channel.default_exchange.publish(message, routing_key=queue_name)
        for _ in range(3):
            await asyncio.wait_for(replies.get(), 5)
    calls = trace.calls
    assert [(c.request, c.reply) for c in calls] == [("1", "2"), ("2", "4"), ("3", "6")]
    assert all(c.sent < c.delivered < c.replied < c.received for c in calls)
    assert all(c.acked is not None and c.worker == "worker A" for c in calls)


async def test_a_request_redelivered_after_a_worker_died_shows_both_deliveries(
    url, queue_name, client, connection
):
    doomed = await connection.channel()
    taken = asyncio.Event()

    async def take_and_die(request: aio_pika.abc.AbstractIncomingMessage) -> None:
        taken.set()  # never replies, never acks

    await (await doomed.declare_queue(queue_name)).consume(take_and_die)
    async with Trace() as trace:
        pending = asyncio.create_task(client.call(12))
        await asyncio.wait_for(taken.wait(), 5)
        await doomed.close()  # dies holding the request: the broker requeues it
        rescuer = await FibonacciRpcWorker.start(url, queue=queue_name, name="rescuer")
        try:
            assert await asyncio.wait_for(pending, 5) == 144
        finally:
            await rescuer.stop()
    (call,) = trace.calls
    assert [(who, again) for _, who, again in call.deliveries] == [
        ("worker A", False),
        ("worker B", True),
    ]
    assert call.worker == "worker B" and call.redelivered and call.app_id == "rescuer"
    assert call.acked is not None and call.acked > call.deliveries[1][0]
    dead, rescuer = trace.workers.values()
    # its channel closed holding the request: gone there, before the redelivery
    assert dead.gone is not None and call.deliveries[0][0] < dead.gone < call.deliveries[1][0]
    assert dead.note == "gone before its ack" and dead.app_id is None
    assert rescuer.gone is None and rescuer.app_id == "rescuer"
    axes = trace.draw().axes[0]
    assert texts(axes).count("redelivered") == 1
    assert texts(axes).count("gone before its ack") == 1
    assert len(crosses(axes)) == 1  # the ✗ that ends worker A's lane
    assert "worker A: no app_id (this process); ✗ gone before its ack at" in " ".join(
        texts(axes))


async def test_a_request_sent_before_the_trace_or_elsewhere_is_still_a_call(
    url, queue_name, connection
):
    channel = await connection.channel()
    await channel.declare_queue(queue_name)
    callback = await channel.declare_queue(exclusive=True)
    await channel.default_exchange.publish(  # sent before the trace, as by another client
        aio_pika.Message(b"5", correlation_id="early", reply_to=callback.name),
        routing_key=queue_name,
    )
    async with Trace() as trace:
        worker = await FibonacciRpcWorker.start(url, queue=queue_name, name="late starter")
        try:  # the reply goes to the other client's queue, which nobody here reads
            await until(lambda: worker.counts.answered == 1)
        finally:
            await worker.stop()
    (call,) = trace.calls
    assert call.sent is None and call.request == "5" and call.correlation_id == "early"
    assert call.worker == "worker A" and call.replied is not None and call.acked is not None
    assert "fib(5)" in trace.table() and "(sent away)" in trace.table()
    trace.draw()  # no arrow from the client, and no error
