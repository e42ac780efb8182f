"""A tutorial-six RPC server shaped like RabbitMQ's official Python tutorial today (pika).

What it shares with the official server, since that is what interop depends on: the request
queue is declared durable and quorum (``x-queue-type: quorum``), the channel takes one
unacked request at a time (prefetch 1), the body is the decimal n and the reply the decimal
fib(n) computed iteratively, the reply goes to ``reply_to`` with the request's
``correlation_id``, and the request is acked after the reply is published.

Usage: ``python official_pika_server.py URL QUEUE``. It prints ``consuming QUEUE`` once the
broker has confirmed its consumer, then ``request fib(N)`` for each request it takes, so a
test can wait for it and count what it served. Any failure (a 406 on the declare, say) is
pika's own traceback and a non-zero exit, as it would be for a student.
"""

import sys

import pika


def fibonacci(n: int) -> int:
    """fib(n), iteratively, as the official tutorial's server computes it."""
    previous, current = 0, 1
    for _ in range(n):
        previous, current = current, previous + current
    return previous


def serve(url: str, queue: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare(queue=queue, durable=True, arguments={"x-queue-type": "quorum"})
    channel.basic_qos(prefetch_count=1)

    def on_request(
        channel: pika.adapters.blocking_connection.BlockingChannel,
        delivery: pika.spec.Basic.Deliver,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        n = int(body)
        print(f"request fib({n})", flush=True)
        channel.basic_publish(
            exchange="",
            routing_key=properties.reply_to,
            properties=pika.BasicProperties(correlation_id=properties.correlation_id),
            body=str(fibonacci(n)),
        )
        channel.basic_ack(delivery_tag=delivery.delivery_tag)

    channel.basic_consume(queue=queue, on_message_callback=on_request)
    print(f"consuming {queue}", flush=True)
    channel.start_consuming()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])
