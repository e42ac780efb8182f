# ruff: noqa: F821  (a cell: the notebook's first cell imported asyncio, aio_pika, fib...)
# notebook 02: a callback queue with a fixed name, durable "so it survives", shared by every client
# (durable: RabbitMQ 4.3 refuses a transient non-exclusive queue)
class OneQueueClient:
    def __init__(self, channel, request_queue_name: str) -> None:
        self.channel, self.request_queue_name = channel, request_queue_name
        self.replies: asyncio.Queue = asyncio.Queue()

    async def start(self) -> None:
        self.callback_queue = await self.channel.declare_queue("replies", durable=True)
        await self.callback_queue.consume(self.replies.put, no_ack=True)

    async def call(self, n: int) -> int:
        request = aio_pika.Message(str(n).encode(), reply_to=self.callback_queue.name)
        await self.channel.default_exchange.publish(request, routing_key=self.request_queue_name)
        reply = await asyncio.wait_for(self.replies.get(), timeout=5)
        return int(reply.body)
