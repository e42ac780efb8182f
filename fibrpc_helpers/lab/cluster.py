"""A RabbitMQ cluster on this machine (README: A cluster of three nodes on one machine): nodes
of ours (:mod:`nodes`) behind haproxy on the URL's port. A proxy, not a list of brokers in
``AMQP_URL``: aio-pika's ``connect_robust`` reconnects to its one address only (its issue #141),
and through the proxy it reaches a node that is up, where aio-pika re-declares what it had."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

import aio_pika

from ..client import FibonacciRpcClient
from ..errors import BrokerRefusedError, RpcConnectionError, RpcError
from ..urls import amqp_url, mask_url, url_host, url_port
from . import broker, nodes
from .namespace import short_name

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DEFAULT_NODES = 3
PROXY_CHECK_INTERVAL_MS = 500  # a dead node gets no new connections within about this long
CTL_TIMEOUT = 120.0  # seconds for one rabbitmqctl, which starts an Erlang VM of its own
# "NAME\t<NODE.1.2.3>": a queue and its process, whose Erlang pid names its node
_QUEUE_NODE = re.compile(r"^(.+)\t *<(.+?)(?:\.\d+)+> *$", re.MULTILINE)
P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Node:
    """One node of the cluster: where it listens and where it keeps its data."""

    index: int  # 1, 2, 3...
    port: int  # AMQP; its Erlang distribution port is port + nodes.DIST_PORT_OFFSET
    state_dir: Path

    @property
    def name(self) -> str:
        return nodes.node_name(self.port)

    @property
    def url(self) -> str:
        """A URL that reaches this node alone, past the proxy."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def environment(self) -> dict[str, str]:
        return nodes.node_environment(self.port, self.state_dir, clustered=True)

    def beam_pid(self) -> int | None:
        """The pid of the node's Erlang VM (beam.smp), from the pid file the node writes."""
        try:
            return int((self.state_dir / "rabbitmq.pid").read_text().strip())
        except (OSError, ValueError):
            return None


@dataclass
class NodeStatus:
    node: Node
    up: bool  # its AMQP port accepts connections
    in_cluster: bool  # a running node of the cluster lists it as running


@dataclass
class QueueLeader:
    """A quorum queue, the node that leads it, and the nodes that hold a replica of it."""

    name: str
    leader: str
    members: list[str]
    online: list[str]


class ClusterError(broker.BrokerError):
    """The cluster could not be started, joined or asked; the message says what to do."""


def default_state_dir(port: int) -> Path:
    """``.broker/cluster-PORT/``: one folder per port, as its nodes' names contain the port."""
    return broker.default_state_dir() / f"cluster-{port}"


def _awaited(plain: Callable[Concatenate[Cluster, P], R]
             ) -> Callable[Concatenate[Cluster, P], Coroutine[None, None, R]]:
    """The awaited twin of a blocking method, which runs (as the instance has it) in a thread."""
    @functools.wraps(plain)
    async def method(self: Cluster, *args: P.args, **kwargs: P.kwargs) -> R:
        return await asyncio.to_thread(getattr(self, plain.__name__), *args, **kwargs)
    return method


def _find_haproxy() -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/usr/local/sbin"])
    return shutil.which("haproxy", path=path)


class Cluster:
    """Node N on the URL's port + N, the proxy on it, recorded in ``cluster.json`` for ``stop``."""

    def __init__(self, url: str | None = None, nodes: int = DEFAULT_NODES,
                 state_dir: Path | None = None) -> None:
        if nodes < 1:
            raise ValueError(f"a cluster needs 1 node or more, got {nodes}")
        self.url = amqp_url(url)
        self.port = url_port(self.url)
        self.state_dir = state_dir or default_state_dir(self.port)
        self.nodes = [Node(i, self.port + i, self.state_dir / f"node-{i}")
                      for i in range(1, nodes + 1)]
        self._processes: dict[int, subprocess.Popen[bytes]] = {}

    @classmethod
    def recorded(cls, state_dir: Path) -> Cluster | None:
        """The cluster that ``start`` recorded under ``state_dir``, if there is one."""
        try:
            record = json.loads((state_dir / "cluster.json").read_text())
            return cls(record["url"], int(record["nodes"]), state_dir)
        except (OSError, ValueError, KeyError):
            return None

    def proxy_pid(self) -> int | None:
        """The pid of the proxy this cluster started, if it still runs."""
        import psutil  # here, not at the top: on Linux its import reads /proc, absent elsewhere
        try:
            pid = int(json.loads((self.state_dir / "cluster.json").read_text())["proxy_pid"])
            command = psutil.Process(pid).cmdline()
        except (OSError, ValueError, KeyError, TypeError, psutil.Error):
            return None
        ours = nodes.process_alive(pid) and str(self.state_dir / "haproxy.cfg") in command
        return pid if ours else None  # not ours: gone, or that pid is another process now

    def node_up(self, node: Node) -> bool:
        return nodes.probe(node.url, timeout=2.0) is not None

    def status(self) -> list[NodeStatus]:
        """Every node: is it up, and does a running node count it as running in the cluster."""
        up = [node for node in self.nodes if self.node_up(node)]
        running: set[str] = set()
        for node in up:
            with contextlib.suppress(ClusterError):  # ask the next node that is up
                running = set(self._cluster_status(node).get("running_nodes", []))
                break
        return [NodeStatus(node, node in up, node.name in running) for node in self.nodes]

    def _cluster_status(self, node: Node) -> dict:
        return json.loads(self.ctl(node, "cluster_status", "--formatter", "json"))

    def _ctl_any(self, *args: str) -> str:
        """``rabbitmqctl ARGS`` on the first node that is up."""
        for node in self.nodes:
            if self.node_up(node):
                return self.ctl(node, *args)
        raise ClusterError("no node of the cluster is up to ask; start it with "
                           "`python -m fibrpc_helpers broker ensure --nodes 3`")

    def quorum_queues(self) -> list[QueueLeader]:
        """Every quorum queue of the cluster's default vhost, with its leader and members."""
        rows = json.loads(self._ctl_any("list_queues", "name", "type", "leader", "members",
                                        "online", "--formatter", "json"))
        return [QueueLeader(row["name"], row["leader"], list(row["members"]), list(row["online"]))
                for row in rows if row.get("type") == "quorum"]

    def replicas_online(self, queue: str) -> bool:
        """Whether every replica of quorum queue ``queue`` is online (its nodes are up)."""
        return any(found.name == queue and set(found.online) == set(found.members)
                   for found in self.quorum_queues())

    def queue_nodes(self) -> dict[str, str]:
        """Every queue's node (a classic queue's home, a quorum queue's leader), read from its
        process: RabbitMQ 3.10 has a ``leader`` column for quorum queues only."""
        output = self._ctl_any("list_queues", "--quiet", "--no-table-headers", "name", "pid")
        return dict(_QUEUE_NODE.findall(output))

    def leader_of(self, queue: str) -> Node:
        """The node that leads ``queue`` (a quorum queue) now."""
        for found in self.quorum_queues():
            if found.name == queue:
                return self.node_named(found.leader)
        raise ClusterError(f"the cluster has no quorum queue named {queue!r}")

    def node_of(self, client: FibonacciRpcClient) -> Node:
        """The node a client is connected to, where its exclusive callback queue lives."""
        return self.node_named(self.queue_nodes()[client.callback_queue.name])

    async def declare_led_by(self, queue: str, node: Node) -> None:
        """Declare ``queue`` (durable quorum, as the workers do) through ``node`` itself, past
        the proxy: a new quorum queue's leader is on the node of the connection declaring it."""
        connection = await aio_pika.connect(node.url)
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
        leader = await self.leader_of_async(queue)
        if leader != node:
            raise ClusterError(f"{queue!r} is led by {leader.name}, not {node.name}: it "
                               "existed already, or the cluster places leaders otherwise")

    def node_named(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise ClusterError(f"{name!r} is not a node of this cluster")

    def ctl(self, node: Node, *args: str, timeout: float = CTL_TIMEOUT) -> str:
        """Run ``rabbitmqctl ARGS`` against ``node`` (its name and cookie); its output."""
        command = [str(Path(self._server()).with_name("rabbitmqctl")), "-n", node.name, *args]
        said = f"`rabbitmqctl {' '.join(args)}` on {node.name}"
        try:
            result = subprocess.run(command, env=node.environment(), capture_output=True,
                                    text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ClusterError(f"{said} took over {timeout:g} s") from None
        if result.returncode != 0:
            raise ClusterError(f"{said} failed: {(result.stderr or result.stdout).strip()[-1500:]}")
        return result.stdout

    def _server(self, install: bool = False) -> str:
        """The rabbitmq-server script, installed first when ``install`` (and apt can)."""
        server = None
        if broker.can_start_nodes():
            server = (nodes.found_or_installed(nodes.find_server, "rabbitmq-server", ClusterError)
                      if install else nodes.find_server())
        if server is None:
            raise ClusterError(broker.how_to_get_one(self.url))
        return server

    def start(self) -> None:
        """Start the nodes not up yet, join them, start the proxy; return when the URL answers."""
        if url_host(self.url) not in ("localhost", "127.0.0.1", "::1"):
            raise ClusterError("a cluster is started on this machine only, and "
                               f"{mask_url(self.url)} points elsewhere: set AMQP_URL (or --url) "
                               "to a localhost URL")
        server = self._server(install=True)
        haproxy = nodes.found_or_installed(_find_haproxy, "haproxy", ClusterError)
        if haproxy is None:
            raise ClusterError("the cluster's nodes are reached through haproxy, which is not "
                               "installed: `sudo apt-get install haproxy` (Debian/Ubuntu), "
                               "`brew install haproxy` (macOS), then run this again")
        self._check_ports()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._record(proxy_pid=self.proxy_pid())
        starting = [node for node in self.nodes if not self.node_up(node)]
        if starting:
            print(f"starting {len(starting)} RabbitMQ node(s) on port(s) "
                  f"{', '.join(str(node.port) for node in starting)} (data in "
                  f"{self.state_dir.parent.name}/{self.state_dir.name}/) ", end="", flush=True)
            self._start_nodes(server, starting)
        self._join()
        self._start_proxy(haproxy)

    def _check_ports(self) -> None:
        """Refuse to start over a broker that is not ours, before starting anything."""
        if self.proxy_pid() is None and not nodes.port_free(self.port):
            answered = nodes.probe(self.url, timeout=2.0)
            what = f"RabbitMQ {answered}" if answered else "another program"
            raise ClusterError(
                f"{what} already listens on port {self.port}, where the cluster's proxy would "
                "listen. Stop it first (`python -m fibrpc_helpers broker stop` stops the single "
                "node this project started), or give the cluster another port: --url "
                "amqp://guest:guest@localhost:PORT/ (its nodes take PORT+1 to "
                f"PORT+{len(self.nodes)})")
        for node in [node for node in self.nodes if not self.node_up(node)]:
            if not nodes.port_free(node.port):
                raise ClusterError(f"port {node.port} (node {node.index}, {node.name}) is taken "
                                   "by another program; give the cluster another port with --url "
                                   "amqp://guest:guest@localhost:PORT/")
            nodes.check_dist_port(node.port, ClusterError)

    def _start_nodes(self, server: str, starting: list[Node], progress: bool = True) -> None:
        """Start the nodes, each with the cluster's one Erlang cookie, and wait for them."""
        files = [node.state_dir / "home" / ".erlang.cookie" for node in self.nodes]
        cookie = next((file.read_text().strip() for file in files if file.exists()),
                      secrets.token_hex(16).upper())
        for file in files:
            if not file.exists():
                file.parent.mkdir(parents=True, exist_ok=True)
                file.write_text(cookie)
                file.chmod(0o400)
        started = nodes.start_nodes(server, {node.url: node.state_dir for node in starting},
                                    clustered=True, progress=progress, error=ClusterError)
        self._processes.update(zip([node.index for node in starting], started, strict=True))

    def _join(self) -> None:
        """Join every node that the first node does not count as a member yet."""
        first = self.nodes[0]
        members = set(self._cluster_status(first).get("disk_nodes", []))
        for node in self.nodes[1:]:
            if node.name not in members:
                print(f"joining {node.name} to {first.name}", flush=True)
                for args in (["stop_app"], ["join_cluster", first.name], ["start_app"]):
                    self.ctl(node, *args)

    def _start_proxy(self, haproxy: str) -> None:
        """``shutdown-sessions``: a node that stops answering loses its connections at once, not
        at the heartbeat; the 3 h timeouts, far above the heartbeat, cut no idle connection."""
        if self.proxy_pid() is not None:
            return
        health = (f"check inter {PROXY_CHECK_INTERVAL_MS}ms fall 1 rise 2 on-marked-down "
                  "shutdown-sessions")
        servers = "".join(f"    server {node.name.partition('@')[0]} 127.0.0.1:{node.port} "
                          f"{health}\n" for node in self.nodes)
        config = self.state_dir / "haproxy.cfg"
        config.write_text(
            "# Written by `python -m fibrpc_helpers broker ensure --nodes N`\n"
            "global\n"
            "    maxconn 4096\n"
            "defaults\n"
            "    mode tcp\n"
            "    timeout connect 2s\n"
            "    timeout client 3h\n"
            "    timeout server 3h\n"
            "    retries 2\n"
            "    option redispatch\n"
            "listen amqp\n"
            f"    bind 127.0.0.1:{self.port}\n"
            "    balance roundrobin\n"
            f"{servers}")
        check = subprocess.run([haproxy, "-c", "-q", "-f", str(config)], capture_output=True,
                               text=True, timeout=30)
        if check.returncode != 0:
            raise ClusterError(f"haproxy refused {config}: {check.stderr.strip()}")
        log = self.state_dir / "haproxy.log"
        with open(log, "ab") as output:
            process = subprocess.Popen([haproxy, "-db", "-f", str(config)], stdout=output,
                                       stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self._processes[0] = process
        self._record(proxy_pid=process.pid)
        deadline = time.monotonic() + 30
        while nodes.probe(self.url, timeout=2.0) is None:
            if process.poll() is not None or time.monotonic() > deadline:
                last = log.read_text(errors="replace").strip().splitlines()[-2:]
                raise ClusterError(f"the proxy did not answer at {mask_url(self.url)}; haproxy "
                                   f"said: {' '.join(last) or '(nothing)'}; see {log}")
            time.sleep(0.2)

    def _record(self, proxy_pid: int | None) -> None:
        record = {"url": self.url, "nodes": len(self.nodes), "proxy_pid": proxy_pid}
        (self.state_dir / "cluster.json").write_text(json.dumps(record))

    def kill(self, node: Node) -> int:
        """``kill -9`` the node's Erlang VM, as a crash or a pulled plug would; its pid."""
        pid = node.beam_pid()
        if pid is None or not nodes.process_alive(pid):
            raise ClusterError(f"{node.name} is not running")
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(KeyError, subprocess.TimeoutExpired):
            self._processes[node.index].wait(30)  # its rabbitmq-server script ends with it
        return pid

    def restart(self, node: Node) -> None:
        """Start a stopped or killed node again; it rejoins the cluster with its replicas."""
        if not self.node_up(node):
            self._start_nodes(self._server(), [node], progress=False)

    def stop(self) -> str:
        """Stop the proxy and every node this cluster started; nothing else."""
        stopped = []
        pid = self.proxy_pid()
        if pid is not None:
            nodes.stop_group(pid, 10)
            stopped.append(f"the proxy (pid {pid})")
        stopped += [node.name for node in self.nodes if nodes.stop_node(node.state_dir)]
        for process in self._processes.values():
            process.kill()  # nothing happens to one that has ended
            process.wait()
        self._processes.clear()
        if not stopped:
            return "no RabbitMQ cluster started by this project is running; nothing stopped"
        return f"stopped the cluster: {', '.join(stopped)}"

    def describe(self, queues: Sequence[str] | None = None) -> str:
        """For people: the address, each node, and who leads each quorum queue in ``queues``."""
        lines = [f"RabbitMQ cluster of {len(self.nodes)} nodes behind haproxy at "
                 f"{mask_url(self.url)}" + ("" if self.proxy_pid() else " (proxy NOT running)")]
        for found in self.status():
            state = "up" if found.up else "DOWN"
            if found.up and not found.in_cluster:
                state += ", not (yet) running in the cluster"
            node = found.node
            lines.append(f"  node {node.index}: {node.name} on port {node.port}: {state}")
        if queues is not None and not queues:
            return "\n".join(lines)
        try:
            found_queues = [q for q in self.quorum_queues() if queues is None or q.name in queues]
        except ClusterError as error:
            lines.append(f"  quorum queues: cannot tell ({error})")
            return "\n".join(lines)
        for queue in found_queues:
            offline = sorted(set(queue.members) - set(queue.online))
            lines.append(f"  quorum queue {short_name(queue.name)!r}: led by {queue.leader}"
                         + (f" (replicas offline: {', '.join(offline)})" if offline else ""))
        if not found_queues:
            lines.append("  no quorum queue yet (a worker declares its request queue)")
        return "\n".join(lines)

    # The same, awaited in a notebook's cells: the kernel's event loop goes on meanwhile.
    node_of_async = _awaited(node_of)
    leader_of_async = _awaited(leader_of)
    replicas_online_async = _awaited(replicas_online)
    describe_async = _awaited(describe)
    kill_async = _awaited(kill)
    restart_async = _awaited(restart)


def ensure(url: str | None = None, nodes: int = DEFAULT_NODES,
           state_dir: Path | None = None) -> Cluster:
    """``broker ensure --nodes N``: start the cluster unless it runs already."""
    cluster = Cluster(url, nodes, state_dir)
    recorded = Cluster.recorded(cluster.state_dir)
    if recorded is not None and len(recorded.nodes) != len(cluster.nodes):
        raise ClusterError(f"the cluster on port {cluster.port} was made with "
                           f"{len(recorded.nodes)} nodes. To start it over with another number: "
                           "`python -m fibrpc_helpers broker stop`, delete "
                           f"{cluster.state_dir} (its data), and run this again")
    cluster.start()
    return cluster


def serving(url: str | None = None) -> Cluster | None:
    """The cluster whose proxy runs on the URL's port, if this project started one."""
    found = Cluster.recorded(default_state_dir(url_port(amqp_url(url))))
    return found if found is not None and found.proxy_pid() is not None else None


async def for_notebook(url: str, *, start: bool = False) -> Cluster | None:
    """The cluster at ``url`` for a notebook's section, started first when ``start``; None, after
    printing how to get one, when no cluster of ours answers there."""
    if start:
        await asyncio.to_thread(ensure, url)
    found = serving(url)
    if found is None or await broker.probe_async(url) is None:
        shown = url if "//guest:guest@" in url else mask_url(url)  # the default is no secret
        print(f"No cluster started by this project answers at {mask_url(url)}, so the cells "
              "of this section do nothing.\nTo run them, start one in a terminal in the "
              f"project folder (about 20 s):\n  python -m fibrpc_helpers broker ensure "
              f"--nodes 3 --url {shown}\nor set START_CLUSTER = True in the cell above, "
              "then run this section again.")
        return None
    print(await found.describe_async([]))
    return found


def stop() -> str | None:
    """``broker stop``: stop every cluster recorded here; None when none was ever started."""
    records = sorted(broker.default_state_dir().glob("cluster-*/cluster.json"))
    said = [cluster.stop() for record in records if (cluster := Cluster.recorded(record.parent))]
    return "\n".join(said) if said else None


@dataclass
class CallRecord:
    """One call of a run: when it was sent and ended (loop seconds), and how it ended."""

    n: int
    sent: float
    ended: float
    result: int | BaseException

    @property
    def answered(self) -> bool:
        return not isinstance(self.result, BaseException)


@dataclass
class FailoverRun:
    """Every call of a run during which a node was killed, and when it was killed."""

    calls: list[CallRecord] = field(default_factory=list)
    killed_at: float | None = None

    @property
    def answered(self) -> list[CallRecord]:
        return [call for call in self.calls if call.answered]

    @property
    def errors(self) -> list[BaseException]:
        return [call.result for call in self.calls if isinstance(call.result, BaseException)]

    def wrong(self, right: Callable[[int], int]) -> list[CallRecord]:
        """The calls answered with something else than ``right(n)``."""
        return [call for call in self.answered if call.result != right(call.n)]

    def carried_on_after(self) -> float | None:
        """Seconds from the kill to the end of the first call sent after it and answered, if any."""
        if self.killed_at is None:
            return None
        after = [c.ended for c in self.answered if c.sent > self.killed_at]
        return min(after) - self.killed_at if after else None

    def draw(self, title: str = "") -> Figure:
        """Each call as a line from its sending to its end, in the order sent, and the kill."""
        import matplotlib.pyplot as plt  # imported here: running calls needs no matplotlib
        t0 = min(call.sent for call in self.calls)
        figure, axes = plt.subplots(figsize=(9, 4))
        ordered = sorted(self.calls, key=lambda call: call.sent)
        for outcome, colour, label in ((True, "tab:blue", "answered"),
                                       (False, "tab:red", "ended with an RpcError")):
            chosen = [(i, c) for i, c in enumerate(ordered) if c.answered == outcome]
            if chosen:
                axes.hlines([i for i, _ in chosen], [c.sent - t0 for _, c in chosen],
                            [c.ended - t0 for _, c in chosen], colors=colour, linewidth=1.2,
                            label=f"{label} ({len(chosen)})")
        if self.killed_at is not None:
            axes.axvline(self.killed_at - t0, color="black", linestyle="--",
                         label="node killed (kill -9)")
            back = self.carried_on_after()
            if back is not None:
                axes.axvspan(self.killed_at - t0, self.killed_at - t0 + back, color="0.85",
                             label=f"until the first call sent after it is answered ({back:.2f} s)")
        axes.set(xlabel="seconds since the first call", ylabel="calls, in the order sent",
                 title=title)
        axes.legend(loc="lower right", fontsize="small")
        figure.tight_layout()
        plt.close(figure)  # Jupyter shows the returned figure once, not twice
        return figure


async def run_calls(
    client: FibonacciRpcClient, numbers: Sequence[int], *, concurrency: int, timeout: float,
    kill_after: int | None = None, kill: Callable[[], Awaitable[object]] | None = None,
    backoff: float = 0.0) -> FailoverRun:
    """Call fib(n) for every n, ``concurrency`` calls at a time, and record how each ends; once
    ``kill_after`` calls are answered, ``kill()`` runs (once). ``backoff``: seconds a caller waits
    after an RpcConnectionError or a BrokerRefusedError, as a caller that retries would."""
    loop = asyncio.get_running_loop()
    run = FailoverRun()
    todo = iter(numbers)
    killing: list[asyncio.Future[object]] = []

    async def caller() -> None:
        for n in todo:
            sent = loop.time()
            result: int | BaseException
            try:
                result = await client.call(n, timeout=timeout)
            except RpcError as error:
                result = error
            run.calls.append(CallRecord(n, sent, loop.time(), result))
            if run.killed_at is None and kill_after is not None and len(run.answered) >= kill_after:
                run.killed_at = loop.time()
                if kill is not None:  # in a task of its own: the callers go on meanwhile
                    killing.append(asyncio.ensure_future(kill()))
            if isinstance(result, (RpcConnectionError, BrokerRefusedError)) and backoff:
                await asyncio.sleep(backoff)

    callers = [asyncio.ensure_future(caller()) for _ in range(concurrency)]
    try:
        await asyncio.gather(*callers)
        await asyncio.gather(*killing)  # the kill finishes before the run is reported
    finally:
        for task in (*callers, *killing):
            task.cancel()
        await asyncio.gather(*callers, *killing, return_exceptions=True)
    return run
