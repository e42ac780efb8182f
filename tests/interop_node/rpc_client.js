#!/usr/bin/env node
// A tutorial-six RPC client shaped like RabbitMQ's official Node.js tutorial today (amqplib).
//
// What it shares with the official client: replies come over direct reply-to. The client
// declares no callback queue; it consumes the pseudo-queue `amq.rabbitmq.reply-to` in no-ack
// mode (the broker refuses acks there) and publishes every request on that same channel with
// `replyTo: 'amq.rabbitmq.reply-to'` and a fresh `correlationId`; the broker rewrites the
// reply-to into a name that routes the reply straight back to this channel. It never declares
// the request queue. Unlike the tutorial's, all the calls share one deadline, so a test that
// finds no server fails instead of hanging.
//
// Usage: node rpc_client.js URL QUEUE TIMEOUT_SECONDS N [N ...]
// Prints `fib(N) = X` per N in order, or `error: fib(N): REASON` for an error reply (AMQP type
// `error`), and exits 1 if any call failed or the deadline passed.
'use strict';

const { randomUUID } = require('crypto');
const amqp = require('amqplib');

const DIRECT_REPLY_TO = 'amq.rabbitmq.reply-to';

async function callAll(channel, queue, numbers) {
  const waiting = new Map(); // correlation id -> resolve(reply)
  // RabbitMQ's direct reply-to guide: consume the pseudo-queue in no-ack mode first, then
  // publish the requests on that same channel.
  await channel.consume(DIRECT_REPLY_TO, (reply) => {
    const resolve = waiting.get(reply.properties.correlationId);
    if (resolve) {
      waiting.delete(reply.properties.correlationId);
      resolve(reply);
    }
  }, { noAck: true });
  return Promise.all(numbers.map((n) => new Promise((resolve) => {
    const correlationId = randomUUID();
    waiting.set(correlationId, resolve);
    channel.sendToQueue(queue, Buffer.from(n), { correlationId, replyTo: DIRECT_REPLY_TO });
  })));
}

async function main(argv) {
  const [url, queue, timeoutSeconds, ...numbers] = argv;
  if (!url || !queue || !(Number(timeoutSeconds) > 0) || numbers.length === 0) {
    console.error('usage: node rpc_client.js URL QUEUE TIMEOUT_SECONDS N [N ...]');
    return 2;
  }
  const connection = await amqp.connect(url);
  let timer;
  try {
    const deadline = new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no reply to every call within ${timeoutSeconds} s`)),
        Number(timeoutSeconds) * 1000,
      );
    });
    deadline.catch(() => {}); // handled by the race below, even if it fires before the race
    const channel = await connection.createChannel();
    const replies = await Promise.race([callAll(channel, queue, numbers), deadline]);
    let status = 0;
    numbers.forEach((n, i) => {
      const body = replies[i].content.toString();
      if (replies[i].properties.type === 'error') {
        console.log(`error: fib(${n}): ${body}`);
        status = 1;
      } else {
        console.log(`fib(${n}) = ${body}`);
      }
    });
    return status;
  } finally {
    clearTimeout(timer);
    await connection.close();
  }
}

main(process.argv.slice(2)).then(
  (status) => { process.exitCode = status; },
  (error) => { console.error(`error: ${error.message}`); process.exitCode = 1; },
);
