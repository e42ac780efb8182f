# ruff: noqa: F821  (a cell: the notebook's first cell imported asyncio, aio_pika, fib...)
# notebook 04: the worker trusts its input: int(b"ten") raises in the callback, no reply goes
# out, the request is never acked, and its caller waits until it times out
async def serve_requests(channel, request_queue_name: str) -> None:
    await channel.set_qos(prefetch_count=1)
    queue = await channel.declare_queue(request_queue_name, durable=True, arguments=quorum)

    async def on_request(request) -> None:
        reply = aio_pika.Message(
            str(fib(int(request.body))).encode(), correlation_id=request.correlation_id
        )
        await channel.default_exchange.publish(reply, routing_key=request.reply_to)
        await request.ack()

    await queue.consume(on_request)
