"""A tutorial-six RPC client shaped like RabbitMQ's official Python tutorial today (pika).

What it shares with the official client: it declares its own callback queue with an empty
name (the broker names it) and ``exclusive=True``, consumes it with automatic acks, publishes
each request to the default exchange with ``reply_to`` = that queue and a fresh
``correlation_id``, and keeps only the reply whose correlation id is the one it waits for. It
never declares the request queue. Unlike the tutorial's, each call has a deadline, so a test
that finds no server fails instead of hanging.

Usage: ``python official_pika_client.py URL QUEUE TIMEOUT N [N ...]``; prints ``fib(N) = X``
per N, or one error line and exit 1 when a reply does not come in TIMEOUT seconds.
"""

import sys
import time
import uuid

import pika


class FibonacciCaller:
    """One blocking connection, one exclusive callback queue, one call at a time."""

    def __init__(self, url: str, queue: str) -> None:
        self.queue = queue
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()
        declared = self.channel.queue_declare(queue="", exclusive=True)
        self.callback_queue = declared.method.queue
        self.channel.basic_consume(
            queue=self.callback_queue, on_message_callback=self.on_reply, auto_ack=True
        )
        self.waiting_for: str | None = None
        self.reply: bytes | None = None

    def on_reply(self, channel, delivery, properties: pika.BasicProperties, body: bytes) -> None:
        if properties.correlation_id == self.waiting_for:
            self.reply = body

    def call(self, n: int, timeout: float) -> int:
        self.waiting_for = str(uuid.uuid4())
        self.reply = None
        self.channel.basic_publish(
            exchange="",
            routing_key=self.queue,
            properties=pika.BasicProperties(
                reply_to=self.callback_queue, correlation_id=self.waiting_for
            ),
            body=str(n),
        )
        deadline = time.monotonic() + timeout
        while self.reply is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply to fib({n}) within {timeout:g} s")
            self.connection.process_data_events(time_limit=min(left, 1.0))
        return int(self.reply)


def main(url: str, queue: str, timeout: str, *numbers: str) -> int:
    caller = FibonacciCaller(url, queue)
    try:
        for n in numbers:
            print(f"fib({n}) = {caller.call(int(n), float(timeout))}", flush=True)
    except TimeoutError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        caller.connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
