# ruff: noqa: F821  (a cell: the notebook's first cell imported asyncio, aio_pika, fib...)
# notebook 02: tutorial six's first idea, a fresh callback queue for every call
class OneQueueClient:
    def __init__(self, channel, request_queue_name: str) -> None:
        self.channel, self.request_queue_name = channel, request_queue_name
        self.replies: asyncio.Queue = asyncio.Queue()

    async def start(self) -> None:
        pass  # nothing to do until a call

    async def call(self, n: int) -> int:
        callback_queue = await self.channel.declare_queue(exclusive=True)
        await callback_queue.consume(self.replies.put, no_ack=True)
        request = aio_pika.Message(str(n).encode(), reply_to=callback_queue.name)
        await self.channel.default_exchange.publish(request, routing_key=self.request_queue_name)
        reply = await asyncio.wait_for(self.replies.get(), timeout=5)
        return int(reply.body)
