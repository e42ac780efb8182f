"""The aio-pika tutorial's RPC server (tutorial six), with URL and queue as arguments."""

import asyncio
import sys

from aio_pika import Message, connect
from aio_pika.abc import AbstractIncomingMessage


def fibonacci(n: int) -> int:
    if n == 0:
        return 0
    elif n == 1:
        return 1
    else:
        return fibonacci(n - 1) + fibonacci(n - 2)


async def main(url: str, queue_name: str) -> None:
    connection = await connect(url)
    channel = await connection.channel()
    exchange = channel.default_exchange
    queue = await channel.declare_queue(queue_name)
    print(" [x] Awaiting RPC requests", flush=True)
    async with queue.iterator() as qiterator:
        message: AbstractIncomingMessage
        async for message in qiterator:
            try:
                async with message.process(requeue=False):
                    assert message.reply_to is not None
                    n = int(message.body.decode())
                    response = str(fibonacci(n)).encode()
                    await exchange.publish(
                        Message(body=response, correlation_id=message.correlation_id),
                        routing_key=message.reply_to,
                    )
            except Exception:
                pass


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
