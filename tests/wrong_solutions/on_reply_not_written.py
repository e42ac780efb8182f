# ruff: noqa: F821  (a cell: the notebook's first cell imported asyncio, aio_pika, fib...)
# notebook 03: call written first, on_reply left as the stub
class MatchingClient:
    def __init__(self, channel, callback_queue, request_queue_name: str) -> None:
        self.channel, self.callback_queue = channel, callback_queue
        self.request_queue_name = request_queue_name
        self.pending: dict[str, asyncio.Future] = {}
        self.discarded = 0

    async def on_reply(self, message) -> None:
        raise NotImplementedError()

    async def call(self, n: int, timeout: float = 5.0) -> int:
        correlation_id = uuid4().hex
        future = self.pending[correlation_id] = asyncio.get_running_loop().create_future()
        request = aio_pika.Message(
            str(n).encode(), correlation_id=correlation_id, reply_to=self.callback_queue.name
        )
        await self.channel.default_exchange.publish(request, routing_key=self.request_queue_name)
        return int((await asyncio.wait_for(future, timeout)).body)
