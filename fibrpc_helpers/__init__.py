"""fibrpc_helpers: the finished RPC client and worker the fibrpc notebooks build live, and
the plumbing (broker, worker processes) that lets a notebook cell show only its idea."""

from .client import DEFAULT_QUEUE, DEFAULT_TIMEOUT, FibonacciRpcClient, ReplyCounts
from .errors import (
    AccessRefusedError,
    BrokerRefusedError,
    ChannelClosedError,
    NotFoundError,
    NoWorkerError,
    PreconditionFailedError,
    QueueMismatchError,
    RemoteError,
    RpcConnectionError,
    RpcError,
    RpcTimeout,
)
from .fib import DEFAULT_MAX_N, check_n, fib, fib_recursive
from .urls import amqp_url, mask_url
from .worker import FibonacciRpcWorker

__all__ = [
    "AccessRefusedError", "BrokerRefusedError", "ChannelClosedError", "DEFAULT_MAX_N",
    "DEFAULT_QUEUE", "DEFAULT_TIMEOUT", "FibonacciRpcClient", "FibonacciRpcWorker",
    "NoWorkerError", "NotFoundError", "PreconditionFailedError", "QueueMismatchError",
    "RemoteError", "ReplyCounts", "RpcConnectionError", "RpcError", "RpcTimeout", "amqp_url",
    "check_n", "fib", "fib_recursive", "mask_url",
]
