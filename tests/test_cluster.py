"""A three-node RabbitMQ cluster behind haproxy: the node that leads the request queue is
killed (``kill -9`` of its Erlang VM) in the middle of 300 calls, and nothing is lost.

The module starts its own cluster (``cluster.Cluster``) on free ports in a temporary folder,
never the shared broker on 5672, and stops every node and the proxy when it is done, also
when a test fails. Two worker processes and the client reach the cluster through the proxy's
one address, exactly as they reach a single broker: nothing in them knows it is a cluster.

* The client's node survives: every one of the 300 calls is answered, with the right
  answer, each exactly once (a second reply, after a redelivery, is discarded and counted).
  The request queue is a quorum queue, so the requests it had confirmed were already on a
  majority of nodes when the leader died; a survivor takes the lead and hands them out.
* The client's node is the one killed, and it is restarted during the run: the calls that
  were waiting on the lost connection end with a clear RpcConnectionError (and those the
  broker refuses while the queue settles, with BrokerRefusedError), the client
  reconnects through the proxy to a surviving node and re-declares its callback queue
  there, the killed node rejoins the cluster, and calls go on.

Where rabbitmq-server or haproxy is missing (and cannot be installed), the module is skipped
and says why.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aio_pika
import pytest
from ports import free_block
from waits import wait_until

from fibrpc_helpers import BrokerRefusedError, FibonacciRpcClient, RpcConnectionError, RpcError, fib
from fibrpc_helpers.lab import nodes
from fibrpc_helpers.lab.cluster import (
    Cluster,
    ClusterError,
    FailoverRun,
    Node,
    _find_haproxy,
    ensure,
    run_calls,
)
from fibrpc_helpers.lab.processes import WorkerProcesses

CALLS = 300
CONCURRENCY = 16
KILL_AFTER = 100  # answered calls before the leader is killed: the middle of the run
CALL_TIMEOUT = 60.0  # seconds per call: far above a leader election (a few seconds)
CARRY_ON_WITHIN = 60.0
"""Seconds from the kill to the first call that was sent after it and answered: the failover
(the proxy's health check, a new queue leader, the workers' reconnection) fits in it."""
BACKOFF = 0.2
"""Seconds a caller waits after an RpcConnectionError or a BrokerRefusedError before its next
call, as a caller that retries would. When the client's own node dies, the client reconnects
through the proxy at once, but for a moment (a second or two here) the broker refuses the
requests of the new connection with a basic.nack while the request queue settles on its new
leader: a caller that called again at once would use up all its calls in that moment."""
WORK_MS = 20  # each worker holds a request this long, so the run lasts a few seconds

pytestmark = [
    pytest.mark.skipif(
        nodes.find_server() is None,
        reason="rabbitmq-server is not installed here, so no cluster can be started "
        "(install it: apt-get install rabbitmq-server)",
    ),
    pytest.mark.skipif(
        _find_haproxy() is None and not nodes.can_apt_install(),
        reason="haproxy is not installed here and cannot be (not root on Debian): "
        "apt-get install haproxy",
    ),
    pytest.mark.timeout(420),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    failures = []
    for _attempt in range(2):  # a port taken between our check and a node's start: retry
        port = free_block(4)  # the proxy, then one port per node
        # Where `broker status` looks for it when FIBRPC_BROKER_DIR is the parent folder.
        state_dir = tmp_path_factory.mktemp("broker") / f"cluster-{port}"
        started = Cluster(f"amqp://guest:guest@localhost:{port}/", 3, state_dir)
        try:
            started.start()
            break
        except BaseException as error:  # whatever failed, no node or proxy may outlive the test
            started.stop()
            if not isinstance(error, ClusterError):
                raise
            failures.append(f"{error}\n{_log_tails(state_dir)}")
    else:
        pytest.fail("could not start a RabbitMQ cluster:\n" + "\n\n".join(failures))
    try:
        yield started
    finally:
        pids = [pid for pid in (started.proxy_pid(), *map(Node.beam_pid, started.nodes)) if pid]
        started.stop()
        left = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        assert not left, f"processes of the cluster still running after stop: {left}"


def _log_tails(state_dir: Path) -> str:
    logs = [*sorted(state_dir.glob("node-*/log/*.log")), *state_dir.glob("haproxy.log")]
    return "\n".join(f"{log.name}: {log.read_text(errors='replace')[-800:]}" for log in logs)


@pytest.fixture
def revive(cluster: Cluster) -> Iterator[None]:
    """Every node is up and in the cluster before the test and after it (a test kills one:
    two more would leave the quorum queues without a majority)."""

    def all_up() -> None:
        for node in cluster.nodes:
            cluster.restart(node)

    all_up()
    yield
    all_up()


class CountingClient(FibonacciRpcClient):
    """The reference client, also counting every reply that reaches it by correlation id."""

    seen: Counter[str]

    async def _on_reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.seen[message.correlation_id or ""] += 1
        await super()._on_reply(message)


async def _connect(url: str, queue: str) -> CountingClient:
    client = await CountingClient.connect(url, queue=queue)
    assert isinstance(client, CountingClient)
    client.seen = Counter()
    return client


async def _delete_queue(cluster: Cluster, queue: str) -> None:
    connection = await aio_pika.connect(cluster.url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(queue)


def _numbers() -> list[int]:
    return [i % 90 for i in range(CALLS)]


async def _run(client: FibonacciRpcClient, kill: Callable[[], Awaitable[None]]) -> FailoverRun:
    """CALLS calls, CONCURRENCY at a time; ``kill`` runs once KILL_AFTER are answered."""
    return await run_calls(client, _numbers(), concurrency=CONCURRENCY, timeout=CALL_TIMEOUT,
                           kill_after=KILL_AFTER, kill=kill, backoff=BACKOFF)


def _check_answers(run: FailoverRun, client: CountingClient) -> None:
    """No call answered wrongly; every answered call had exactly one reply accepted."""
    assert len(run.calls) == CALLS
    assert run.killed_at is not None
    assert not run.wrong(fib), f"answered wrongly: {run.wrong(fib)}"
    for error in run.errors:
        assert isinstance(error, RpcError), repr(error)
    # Every reply that arrived was counted once: accepted (one per answered call), or
    # discarded as a duplicate of an accepted one, or as late (its call had already failed).
    replies = client.replies
    assert replies.answered == len(run.answered)
    assert sum(client.seen.values()) == replies.answered + replies.discarded
    assert replies.unknown == 0, "a reply came for a call this client never made"
    accepted_twice = [cid for cid, count in client.seen.items() if count > 1]
    assert replies.duplicate + replies.late >= len(accepted_twice)


async def test_killing_the_leader_loses_no_request(cluster, revive, worker_log):
    queue = f"test.cluster.{uuid.uuid4().hex[:8]}"
    client = await _connect(cluster.url, queue)
    try:
        client_node = await asyncio.to_thread(cluster.node_of, client)
        leader = next(node for node in cluster.nodes if node != client_node)
        await cluster.declare_led_by(queue, leader)
        with WorkerProcesses(2, url=cluster.url, queue=queue, sleep_ms=WORK_MS,
                             stderr=worker_log):

            async def kill() -> None:
                await asyncio.to_thread(cluster.kill, leader)

            run = await _run(client, kill)
            _check_answers(run, client)
            # The client's node survived: every request it sent was answered.
            assert not run.errors, f"calls failed though the client's node is up: {run.errors}"
            carried_on = run.carried_on_after()
            assert carried_on is not None, "no call sent after the kill was answered"
            assert carried_on < CARRY_ON_WITHIN
            new_leader = await asyncio.to_thread(cluster.leader_of, queue)
            assert new_leader != leader
            said = await _broker_status(cluster)
            assert f"{leader.name} on port {leader.port}: DOWN" in said, said
            assert f"quorum queue {queue!r}: led by {new_leader.name} (replicas offline: " \
                f"{leader.name})" in said, said

            # The killed node comes back, rejoins, and takes its replica back; calls go on.
            await asyncio.to_thread(cluster.restart, leader)
            await wait_until(lambda: asyncio.to_thread(_online, cluster, queue, leader), 60,
                             f"{leader.name} back among the queue's online replicas")
            assert await asyncio.gather(*(client.call(n, timeout=CALL_TIMEOUT)
                                          for n in range(30))) == [fib(n) for n in range(30)]
        print(f"\nleader {leader.name} killed after {KILL_AFTER} answers; the first call sent "
              f"after the kill was answered {carried_on:.2f} s after it; "
              f"{client.replies.duplicate} duplicate replies discarded")
    finally:
        await client.close()
        await _delete_queue(cluster, queue)


async def test_the_clients_node_killed_and_restarted(cluster, revive, worker_log):
    queue = f"test.cluster.{uuid.uuid4().hex[:8]}"
    client = await _connect(cluster.url, queue)
    try:
        callback_queue = client.callback_queue.name
        leader = await asyncio.to_thread(cluster.node_of, client)  # it leads the queue too
        await cluster.declare_led_by(queue, leader)
        with WorkerProcesses(2, url=cluster.url, queue=queue, sleep_ms=WORK_MS,
                             stderr=worker_log):

            async def kill_and_restart() -> None:
                await asyncio.to_thread(cluster.kill, leader)
                await asyncio.to_thread(cluster.restart, leader)

            run = await _run(client, kill_and_restart)
            _check_answers(run, client)
            # The calls waiting on the lost connection say so, and so do those the broker
            # refused while the queue settled on its new leader; none times out or is wrong.
            for error in run.errors:
                assert isinstance(error, (RpcConnectionError, BrokerRefusedError)), repr(error)
            carried_on = run.carried_on_after()
            assert carried_on is not None, "no call sent after the kill was answered"
            assert carried_on < CARRY_ON_WITHIN

            # The robust connection came back through the proxy to another node and
            # re-declared the callback queue there, under the same name.
            assert client.callback_queue.name == callback_queue
            moved_to = (await asyncio.to_thread(cluster.queue_nodes))[callback_queue]
            assert moved_to != leader.name
            await wait_until(lambda: asyncio.to_thread(_online, cluster, queue, leader), 60,
                             f"{leader.name} back among the queue's online replicas")
            assert await asyncio.gather(*(client.call(n, timeout=CALL_TIMEOUT)
                                          for n in range(30))) == [fib(n) for n in range(30)]
        print(f"\n{leader.name} (the client's node and the leader) killed after {KILL_AFTER} "
              f"answers and restarted: {len(run.errors)} calls ended with "
              f"RpcConnectionError or BrokerRefusedError, {len(run.answered)} answered; the "
              f"first call sent after the kill was answered {carried_on:.2f} s after it; the "
              f"callback queue moved to {moved_to}")
    finally:
        await client.close()
        await _delete_queue(cluster, queue)


async def _broker_status(cluster: Cluster) -> str:
    """What `python -m fibrpc_helpers broker status` says about the cluster."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fibrpc_helpers", "broker", "status", "--url", cluster.url,
        env={**os.environ, "FIBRPC_BROKER_DIR": str(cluster.state_dir.parent)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()
    return output.decode()


def _online(cluster: Cluster, queue: str, node: Node) -> bool:
    return any(found.name == queue and node.name in found.online
               for found in cluster.quorum_queues())


@pytest.fixture
def worker_log(tmp_path: Path) -> Iterator[object]:
    """The worker processes' log, shown when a test fails."""
    path = tmp_path / "workers.log"
    with open(path, "w") as log:
        yield log
    print(path.read_text()[-3000:])


def test_a_cluster_never_starts_over_a_port_another_program_holds(tmp_path):
    with socket.socket() as other:  # a program that is not a broker, on the proxy's port
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        cluster = Cluster(f"amqp://guest:guest@localhost:{port}/", 3, tmp_path / "cluster")
        with pytest.raises(ClusterError, match=f"another program already listens on port {port}"):
            cluster.start()
    assert not (tmp_path / "cluster" / "node-1").exists(), "a node was prepared all the same"


def test_a_cluster_made_with_3_nodes_is_not_silently_grown_to_5(tmp_path):
    state_dir = tmp_path / "cluster-5680"
    state_dir.mkdir()
    (state_dir / "cluster.json").write_text(
        '{"url": "amqp://guest:guest@localhost:5680/", "nodes": 3, "proxy_pid": null}'
    )
    with pytest.raises(ClusterError, match="made with 3 nodes.*broker stop.*delete"):
        ensure("amqp://guest:guest@localhost:5680/", 5, state_dir)


def test_a_lost_consumers_deliveries_wait_only_the_clusters_short_timeout(cluster):
    """From RabbitMQ 4.3 a quorum queue waits ``consumer_disconnected_timeout`` (60 s by
    default) before it hands the deliveries held by a consumer on an unreachable node to
    another; our cluster's nodes set 5 s, so the leader-kill test's calls carry on within
    their deadline. Before 4.3 they are handed on at once, and the key does not exist."""
    version = nodes.server_version(nodes.find_server())
    said = cluster.ctl(
        cluster.nodes[0], "eval", "application:get_env(rabbit, consumer_disconnected_timeout)."
    ).strip()
    if version is not None and version >= (4, 3):
        assert said == f"{{ok,{nodes.CLUSTER_CONSUMER_DISCONNECTED_TIMEOUT_MS}}}", said
    else:
        assert said == "undefined", said
