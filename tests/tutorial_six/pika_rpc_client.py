"""RabbitMQ tutorial six's RPC client in pika, as the tutorial writes it (URL, queue and the
n to ask for as arguments). Prints one result per line."""

import sys
import uuid

import pika


class FibonacciRpcClient:
    def __init__(self, url, queue):
        self.queue = queue
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()
        result = self.channel.queue_declare(queue="", exclusive=True)
        self.callback_queue = result.method.queue
        self.channel.basic_consume(
            queue=self.callback_queue, on_message_callback=self.on_response, auto_ack=True
        )
        self.response = None
        self.corr_id = None

    def on_response(self, ch, method, props, body):
        if self.corr_id == props.correlation_id:
            self.response = body

    def call(self, n):
        self.response = None
        self.corr_id = str(uuid.uuid4())
        self.channel.basic_publish(
            exchange="",
            routing_key=self.queue,
            properties=pika.BasicProperties(
                reply_to=self.callback_queue, correlation_id=self.corr_id
            ),
            body=str(n),
        )
        while self.response is None:
            self.connection.process_data_events(time_limit=10)
        return int(self.response)


client = FibonacciRpcClient(sys.argv[1], sys.argv[2])
for n in sys.argv[3:]:
    print(f" [.] Got {client.call(int(n))}", flush=True)
