"""A tutorial-six RPC server shaped like the aio-pika documentation's version of the tutorial.

What it shares with that server: the request queue is declared with no arguments (a classic
queue, not durable), the channel sets no prefetch limit, fib is the recursive one, each
request is processed inside ``message.process(requeue=False)`` (acked when the reply is out,
dropped on an error), and the reply carries the request's ``correlation_id``.

Usage: ``python aio_pika_docs_server.py URL QUEUE``. It prints ``consuming QUEUE`` once its
consumer is registered, then ``request fib(N)`` per request. A failed declare (a 406 beside a
quorum queue) is aio-pika's own traceback and a non-zero exit, as it would be for a student.
"""

import asyncio
import sys

from aio_pika import Message, connect


def fibonacci(n: int) -> int:
    """fib(n), recursively, as the aio-pika tutorial computes it."""
    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)


async def serve(url: str, queue_name: str) -> None:
    connection = await connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name)
        async with queue.iterator() as requests:
            print(f"consuming {queue_name}", flush=True)
            async for request in requests:
                async with request.process(requeue=False):
                    n = int(request.body)
                    print(f"request fib({n})", flush=True)
                    assert request.reply_to is not None
                    await channel.default_exchange.publish(
                        Message(str(fibonacci(n)).encode(), correlation_id=request.correlation_id),
                        routing_key=request.reply_to,
                    )


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2]))
