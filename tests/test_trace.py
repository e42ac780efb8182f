"""The trace records what really flowed through the broker, and draws it."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest
from matplotlib.figure import Figure

from fibrpc_helpers import FibonacciRpcClient, FibonacciRpcWorker, NoWorkerError
from fibrpc_helpers.lab import trace_hooks
from fibrpc_helpers.lab.processes import WorkerProcesses
from fibrpc_helpers.lab.trace import Event, Trace


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
    axes = trace.draw().axes[0]
    assert f"worker A: app_id {workers.names[0]} (another process)" in texts(axes)
    assert texts(axes).count("(another process)") == 1  # its part is inferred, dashed


async def test_unknown_and_duplicate_replies_show_as_such(worker, client, connection):
    channel = await connection.channel()
    with Trace() as trace:
        assert await client.call(7) == 13
        answered = trace.calls[0].correlation_id
        for correlation_id, app_id in [(answered, None), ("not-a-call-of-ours", None),
                                       ("signed", "elsewhere:42")]:
            await channel.default_exchange.publish(
                aio_pika.Message(b"13", correlation_id=correlation_id, app_id=app_id),
                routing_key=client.callback_queue.name,
            )
        await until(lambda: client.replies.discarded == 3)
    first, stray, signed = trace.calls
    # a stray reply that says who sent it comes from that worker's lane
    assert signed.sent is None and signed.worker == "worker B"
    assert trace.workers["worker B"].app_id == "elsewhere:42"
    assert first.replies == 2  # the duplicate reached the client (which discarded it)
    assert stray.sent is None and stray.correlation_id == "not-a-call-of-ours"
    assert stray.replies == 1 and stray.worker is None  # no app_id: an unknown sender
    assert client.replies.duplicate == 1 and client.replies.unknown == 2
    assert "×2" in trace.table().splitlines()[1]
    axes = trace.draw().axes[0]
    lanes = [text.get_text() for text in axes.texts if text.get_fontweight() == "bold"]
    assert lanes == ["client", worker.queue.name, "worker A", "worker B", "unknown sender",
                     "callback queue"]
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
    requests = await channel.declare_queue(queue_name, durable=True)

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

    await (await doomed.declare_queue(queue_name, durable=True)).consume(take_and_die)
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
    await channel.declare_queue(queue_name, durable=True)
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


def _aio_pikas_own_init() -> bool:
    """IncomingMessage.__init__ is aio-pika's function, not a replacement."""
    init = aio_pika.IncomingMessage.__init__
    return init.__module__ == "aio_pika.message" and init.__qualname__ == (
        "IncomingMessage.__init__"
    )


async def test_live_built_consumers_are_seen_without_patching_incoming_message(
    queue_name, connection
):
    """The three ways the notebooks take requests: consume + process(), get, iterator."""
    channel = await connection.channel()
    requests = await channel.declare_queue(queue_name, durable=True)
    callback = await channel.declare_queue(exclusive=True)
    replies: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
    await callback.consume(replies.put, no_ack=True)

    async def on_request(request: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with request.process():  # acks when the block ends
            reply = aio_pika.Message(request.body, correlation_id=request.correlation_id)
            await channel.default_exchange.publish(reply, routing_key=request.reply_to)

    async def send(correlation_id: str) -> None:
        await channel.default_exchange.publish(
            aio_pika.Message(b"1", correlation_id=correlation_id, reply_to=callback.name),
            routing_key=queue_name,
        )

    async with Trace() as trace:
        assert _aio_pikas_own_init()
        await send("got")
        taken = await requests.get(timeout=5)
        await taken.ack()
        await send("iterated")
        async with requests.iterator() as iterator:
            async for request in iterator:
                await request.ack()
                break
        consumer_tag = await requests.consume(on_request)
        await send("consumed")
        await asyncio.wait_for(replies.get(), 5)
    await requests.cancel(consumer_tag)
    assert _aio_pikas_own_init()
    got, iterated, consumed = trace.calls
    for call in (got, iterated, consumed):
        assert call.delivered is not None and call.acked is not None and call.in_process
    assert consumed.replied is not None and consumed.received is not None
    assert consumed.sent < consumed.delivered < consumed.replied < consumed.acked
    labels = [got.worker, iterated.worker, consumed.worker]
    assert labels == ["worker A", "worker B", "worker C"]  # get, the iterator, the consumer
    assert trace.workers["worker A"].consumer_tag == "basic.get"
    assert all(w.gone is None for w in trace.workers.values())


async def test_the_reference_worker_is_seen_without_patching_incoming_message(worker, client):
    async with Trace() as trace:
        assert _aio_pikas_own_init()
        assert await client.call(12) == 144
    (call,) = trace.calls
    assert call.delivered is not None and call.acked is not None
    assert trace.workers["worker A"].app_id == worker.name


def _rows(axes) -> dict[str, float]:
    """Row label (its time, "12.3 ms") -> its y in the diagram."""
    return {label.get_text(): y for label, y in zip(
        axes.get_yticklabels(), axes.get_yticks(), strict=True)}


async def test_a_long_wait_between_two_rows_is_drawn_as_a_break_with_its_length(
    queue_name, connection, client
):
    channel = await connection.channel()
    requests = await channel.declare_queue(queue_name, durable=True)

    async def slow(request: aio_pika.abc.AbstractIncomingMessage) -> None:
        await asyncio.sleep(0.3)
        reply = aio_pika.Message(b"55", correlation_id=request.correlation_id)
        await channel.default_exchange.publish(reply, routing_key=request.reply_to)
        await request.ack()

    await requests.consume(slow)
    async with Trace() as trace:
        assert await client.call(10) == 55
    (call,) = trace.calls
    waited = call.replied - call.delivered
    assert waited >= 0.3
    axes = trace.draw(gap=0.2).axes[0]
    breaks = [text for text in texts(axes) if text.startswith("⋯")]
    assert f"⋯ {waited * 1000:.1f} ms ⋯" in breaks
    assert all(float(text.split()[1]) > 200 for text in breaks)  # only where more than gap
    rows = _rows(axes)
    after, before = rows[f"{call.replied * 1000:.1f} ms"], rows[f"{call.delivered * 1000:.1f} ms"]
    assert after - before > 1  # the break adds room between the two rows
    calm = trace.draw(gap=10).axes[0]
    assert not [text for text in texts(calm) if text.startswith("⋯")]
    with pytest.raises(ValueError, match="gap"):
        trace.draw(gap=0)


async def test_a_worker_that_settles_or_never_acks_is_not_marked_gone(queue_name, connection,
                                                                      client):
    """A channel that closes holding nothing (acked; or no_ack, nothing to ack) lost nothing."""
    careful, carefree = await connection.channel(), await connection.channel()

    def replier(channel):
        async def on_request(request: aio_pika.abc.AbstractIncomingMessage) -> None:
            reply = aio_pika.Message(b"1", correlation_id=request.correlation_id)
            await channel.default_exchange.publish(reply, routing_key=request.reply_to)
            if channel is careful:
                await request.ack()

        return on_request

    await (await careful.declare_queue(queue_name, durable=True)).consume(replier(careful))
    async with Trace() as trace:
        assert await client.call(1) == 1
        await careful.close()
        carefree_queue = await carefree.declare_queue(queue_name, durable=True)
        await carefree_queue.consume(replier(carefree), no_ack=True)
        assert await client.call(2) == 1
        await carefree.close()
    assert [e.kind for e in trace.events].count("close") == 2  # both closes were seen
    assert [w.gone for w in trace.workers.values()] == [None, None]
    assert not crosses(trace.draw().axes[0])


async def test_a_trace_waits_for_an_ack_that_comes_long_after_the_reply(queue_name, connection,
                                                                      client):
    """On a busy machine the worker's ack can follow its reply by more than the quiet moment
    the trace waits for; the trace still waits for it. Before: it closed without the ack."""
    channel = await connection.channel()

    async def slow_to_ack(request: aio_pika.abc.AbstractIncomingMessage) -> None:
        reply = aio_pika.Message(b"1", correlation_id=request.correlation_id)
        await channel.default_exchange.publish(reply, routing_key=request.reply_to)
        await asyncio.sleep(0.3)  # the stall: six times the trace's quiet moment
        await request.ack()

    await (await channel.declare_queue(queue_name, durable=True)).consume(slow_to_ack)
    try:
        async with Trace() as trace:
            assert await client.call(1) == 1
    finally:
        await channel.close()
    (call,) = trace.calls
    assert call.acked is not None and call.acked > call.received


def test_a_request_redelivered_without_its_first_takers_ack_marks_that_taker_gone():
    """When no close was seen, the redelivery itself says the first taker lost it."""
    trace = Trace()
    request = {"routing_key": "q", "correlation_id": "c1", "reply_to": "amq.gen-1", "body": "5"}
    trace.events = [
        Event(0.000, "publish", **request),
        Event(0.001, "deliver", **request, consumer_tag="t1", delivery_tag=1),
        Event(0.050, "deliver", **request, redelivered=True, consumer_tag="t2", delivery_tag=1),
        Event(0.051, "ack", **request, consumer_tag="t2", delivery_tag=1),
    ]
    first, second = trace.workers.values()
    assert (first.label, first.gone, first.note) == ("worker A", 0.050, "gone before its ack")
    assert second.gone is None and trace.calls[0].acked == 0.051


async def test_a_worker_killed_in_another_process_is_marked_where_we_say(url, queue_name,
                                                                         client):
    with WorkerProcesses(1, url=url, queue=queue_name) as workers:
        async with Trace() as trace:
            assert await client.call(5) == 5
            workers.kill(0)
            trace.mark_killed(workers.names[0])
    (who,) = trace.workers.values()
    assert who.app_id == workers.names[0] and who.note == "killed"
    assert who.gone is not None and who.gone > trace.calls[0].received
    axes = trace.draw().axes[0]
    assert len(crosses(axes)) == 1 and "killed" in texts(axes)
    with pytest.raises(ValueError, match="app_id"):
        trace.mark_killed("")
