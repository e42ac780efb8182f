"""Command line: ``python -m fibrpc_helpers broker|worker|call|watch|bench ...``; each
command's --help says more. ``worker`` stops on SIGINT/SIGTERM once it has finished what it
holds; ``call N...`` prints ``fib(N) = X`` lines, or a one-line error and exits 1."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable

from .bench.command import add_parser as add_bench
from .client import DEFAULT_QUEUE, DEFAULT_TIMEOUT, FibonacciRpcClient
from .errors import RpcError
from .fib import DEFAULT_MAX_N, RECURSIVE_MAX_N, fib, fib_recursive
from .lab import broker, cluster
from .lab.processes import WorkerProcesses
from .lab.runtime import LOOPS, ChildError, parent_gone, run
from .lab.watch import watch
from .request_queue import QUEUE_TYPES
from .urls import amqp_url, mask_url
from .worker import FibonacciRpcWorker

WORK: dict[str, Callable[[int], int]] = {"fast": fib, "recursive": fib_recursive}
# The signals that stop a worker gracefully (it finishes what it holds); Windows' Ctrl-Break too.
STOP_SIGNALS = [getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGBREAK") if hasattr(signal, n)]


def _error(text: str) -> None:
    # In one write, so that the lines of workers sharing one stderr never run into each other.
    sys.stderr.write(f"error: {text}\n")


def _broker(args: argparse.Namespace) -> int:
    if args.action == "ensure":
        print(cluster.ensure(args.url, args.nodes).describe() if args.nodes > 1
              else broker.describe(broker.ensure(args.url)))
    elif args.action == "status":
        serving = cluster.serving(args.url)
        if serving is not None:  # the cluster's proxy is the broker at that URL
            print(serving.describe())
            return 0 if any(node.up for node in serving.status()) else 1
        info = broker.status(args.url)
        print(broker.describe(info))
        if info.version:
            print(broker.describe_transient_queues(args.url))
        return 0 if info.version else 1
    else:
        single, clustered = broker.stop(), cluster.stop()
        if clustered is None or "nothing stopped" not in single:
            print(single)
        if clustered is not None:
            print(clustered)
    return 0


async def _serve(args: argparse.Namespace) -> int:
    default_max_n = RECURSIVE_MAX_N if args.work == "recursive" else DEFAULT_MAX_N
    worker = await FibonacciRpcWorker.start(
        args.url, queue=args.queue, prefetch=args.prefetch, compute=WORK[args.work],
        max_n=default_max_n if args.max_n is None else args.max_n,
        service_time=args.sleep_ms / 1000, queue_type=args.queue_type)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:  # before saying "serving": a SIGTERM right after it must
        try:  # stop us cleanly
            loop.add_signal_handler(signum, stopping.set)
        except NotImplementedError:  # Windows: no event-loop signal handlers
            signal.signal(signum, lambda *_: loop.call_soon_threadsafe(stopping.set))
    # processes.WorkerProcesses waits for this line: "worker NAME is serving" must stay first.
    queue = f"{args.queue!r} ({worker.request_queue.describe()})"
    print(f"worker {worker.name} is serving queue {queue} at {mask_url(amqp_url(args.url))} "
          f"(prefetch {args.prefetch}, work {args.work}); Ctrl-C stops it", flush=True)
    watchdog = asyncio.create_task(parent_gone()) if args.exit_with_parent else None
    if watchdog:  # the process that started us is gone (a killed Jupyter kernel, say): stop
        watchdog.add_done_callback(lambda _: stopping.set())
    try:
        await stopping.wait()
    finally:
        if watchdog:
            watchdog.cancel()
            await asyncio.wait((watchdog,))
        await worker.stop()  # also when this coroutine is cancelled: finish what we hold
    counts = worker.counts
    logging.getLogger("fibrpc_helpers.worker").info(
        "stopped: %d answered, %d error replies, %d dropped (no reply_to), %d expired "
        "(deadline passed before it was computed)",
        counts.answered, counts.errors, counts.dropped, counts.expired)
    return 0


def _worker(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("aio_pika", "aiormq"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.processes == 1:
        return run(_serve(args), args.loop)
    workers = WorkerProcesses(
        args.processes, url=args.url, queue=args.queue, prefetch=args.prefetch, work=args.work,
        sleep_ms=args.sleep_ms, max_n=args.max_n, queue_type=args.queue_type, loop=args.loop)
    stopping = threading.Event()
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: stopping.set())
    with workers:  # starts them; a ChildError (each worker says why on stderr) ends main
        print(*workers.ready_lines, sep="\n", flush=True)
        while not stopping.wait(0.5):
            if any(process.poll() is not None for process in workers.processes):
                _error("a worker process exited; stopping the others")
                break
    return 0 if all(process.returncode == 0 for process in workers.processes) else 1


async def _call(args: argparse.Namespace) -> int:
    async with await FibonacciRpcClient.connect(args.url, queue=args.queue) as client:
        calls = (client.call(n, timeout=args.timeout) for n in args.n)
        results = await asyncio.gather(*calls, return_exceptions=True)
    status = 0
    for n, result in zip(args.n, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, (RpcError, ValueError)):
                raise result
            _error(f"fib({n}): {result}")
            status = 1
        else:
            print(f"fib({n}) = {result}", flush=True)
    return status


def _watch(args: argparse.Namespace) -> int:
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)  # our error says it, once
    with contextlib.suppress(KeyboardInterrupt):
        run(watch(args.url, namespace=args.namespace, names=args.queue,
                  interval=args.interval, once=args.once))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m fibrpc_helpers", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, handler: Callable[..., int]) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help)
        sub.add_argument("--url", help="AMQP URL (default: $AMQP_URL, else local guest)")
        sub.set_defaults(run=handler)
        return sub

    b = command("broker", "ensure, show or stop the RabbitMQ broker", _broker)
    b.add_argument("action", choices=["ensure", "status", "stop"])
    b.add_argument("--nodes", type=int, default=1,
                   help="ensure: start a cluster of this many nodes on this machine behind "
                   "one haproxy port, the URL's (default 1: a single node); status and stop "
                   "see the cluster by themselves")

    w = command("worker", "serve fib requests from a queue", _worker)
    w.add_argument("--queue", default=DEFAULT_QUEUE)
    w.add_argument("--processes", type=int, default=1, help="worker processes (default 1)")
    w.add_argument("--prefetch", type=int, default=1, help="unacked requests per worker")
    w.add_argument("--work", choices=sorted(WORK), default="fast",
                   help="fast exact fib, or the tutorial's recursive (CPU-bound) one")
    w.add_argument("--sleep-ms", type=float, default=0.0,
                   help="extra I/O-like wait per request, in milliseconds")
    w.add_argument("--queue-type", choices=QUEUE_TYPES, default=None,
                   help="declare the queue as this type if it does not exist (default: "
                   "quorum, durable); an existing queue is served as it is, unless it has "
                   "another type than the one given here (then: an error)")
    w.add_argument("--max-n", type=int, default=None,
                   help=f"largest n accepted (default {DEFAULT_MAX_N}, or {RECURSIVE_MAX_N} "
                   "with --work recursive, so one request cannot hold a worker for hours)")
    w.add_argument("--loop", choices=LOOPS, default="auto",
                   help="event loop (default: uvloop where it is installed, else asyncio's)")
    w.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)

    c = command("call", "call fib(N) on a worker and print it", lambda args: run(_call(args)))
    c.add_argument("--queue", default=DEFAULT_QUEUE)
    c.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per call")
    c.add_argument("n", type=int, nargs="+", metavar="N")

    v = command("watch", "show a namespace's queues live", _watch)
    v.add_argument("--namespace", help="whose queues (default: yours, $FIBRPC_NAMESPACE or "
                   "user@host); '' for bare names like the CLI's default rpc_queue")
    v.add_argument("--queue", action="append", default=[], metavar="NAME",
                   help="another queue name inside the namespace to show (repeatable)")
    v.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    v.add_argument("--once", action="store_true", help="print the table once and exit")

    add_bench(commands)  # its measuring modules load only when `bench` runs
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (RpcError, broker.BrokerError, ChildError) as error:  # one line, not a traceback
        _error(str(error))
        return 1


if __name__ == "__main__":
    sys.exit(main())
