# ruff: noqa: F821  (a cell: the notebook's first cell imported asyncio, aio_pika, fib...)
# notebook 04: "ack first, so the broker can forget it sooner"
async def serve_requests(channel, request_queue_name: str) -> None:
    await channel.set_qos(prefetch_count=1)
    queue = await channel.declare_queue(request_queue_name, durable=True, arguments=quorum)

    async def on_request(request) -> None:
        await request.ack()  # too early: a worker dying now loses the request
        try:
            reply = aio_pika.Message(
                str(fib(int(request.body))).encode(), correlation_id=request.correlation_id
            )
        except ValueError as error:
            reply = aio_pika.Message(
                str(error).encode(), correlation_id=request.correlation_id, type="error"
            )
        await channel.default_exchange.publish(reply, routing_key=request.reply_to)

    await queue.consume(on_request)
