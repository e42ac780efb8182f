# ruff: noqa: F821  (a cell: the notebook's first cell imported asyncio, aio_pika, fib...)
# notebook 04: the worker without set_qos: the broker hands it every request at once
async def serve_requests(channel, request_queue_name: str) -> None:
    queue = await channel.declare_queue(request_queue_name, durable=True, arguments=quorum)

    async def on_request(request) -> None:
        try:
            reply = aio_pika.Message(
                str(fib(int(request.body))).encode(), correlation_id=request.correlation_id
            )
        except ValueError as error:
            reply = aio_pika.Message(
                str(error).encode(), correlation_id=request.correlation_id, type="error"
            )
        await channel.default_exchange.publish(reply, routing_key=request.reply_to)
        await request.ack()

    await queue.consume(on_request)
