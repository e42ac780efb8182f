"""One set of node helpers for the single broker and the cluster (``fibrpc_helpers.lab.nodes``):
the environment a node really gets (its crash dump under its state folder, never the user's
working folder), a distribution port held by a stale node said as such, and no module
reaching into another's private functions.

No RabbitMQ node is started here: a stand-in script takes the node's place where one would
start, and a plain listening socket plays the stale node on the distribution port.
"""

from __future__ import annotations

import ast
import json
import os
import socket
import stat
import sys
from pathlib import Path

import pytest
from ports import DIST_OFFSET, free_block

from fibrpc_helpers.lab import broker, cluster, nodes

PACKAGE = Path(nodes.__file__).parent


def _stand_in_server(tmp_path: Path) -> Path:
    """An executable that, started as rabbitmq-server would be, writes down the environment
    and the folder it was started in, then exits."""
    script = tmp_path / "rabbitmq-server"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, pathlib\n"
        "state = pathlib.Path(os.environ['RABBITMQ_MNESIA_BASE']).parent\n"
        "(state / 'seen.json').write_text(json.dumps({'env': dict(os.environ),\n"
        "                                             'cwd': os.getcwd()}))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.mark.skipif(os.name != "posix", reason="nodes of our own start on Linux and macOS only")
def test_a_node_keeps_its_crash_dump_under_its_state_dir_not_in_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Erlang writes erl_crash.dump into the folder it started in unless ERL_CRASH_DUMP says
    where: a node that fails to start must not leave one in the user's folder."""
    users_folder = tmp_path / "where-the-user-ran-make"
    users_folder.mkdir()
    monkeypatch.chdir(users_folder)
    state_dir = tmp_path / ".broker"
    state_dir.mkdir()
    process = nodes.spawn_node(str(_stand_in_server(tmp_path)), 5999, state_dir)
    assert process.wait(30) == 0
    seen = json.loads((state_dir / "seen.json").read_text())
    dump = Path(seen["env"]["ERL_CRASH_DUMP"])
    assert dump.parent == state_dir / "log" and dump.name == "erl_crash.dump"
    assert Path(seen["cwd"]).resolve() == state_dir.resolve()  # nor anything else it writes
    assert seen["env"]["RABBITMQ_NODENAME"] == "fibrpc5999@localhost"
    assert seen["env"]["RABBITMQ_DIST_PORT"] == str(5999 + DIST_OFFSET)
    assert list(users_folder.iterdir()) == []
    # rabbitmqctl, run by the cluster with the node's environment, is pointed there too
    node = cluster.Node(1, 5999, state_dir)
    assert node.environment()["ERL_CRASH_DUMP"] == str(dump)


def _taken_dist_port(port: int) -> socket.socket:
    """A listener on ``port``'s distribution port, as a stale node of that name holds it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", port + DIST_OFFSET))
    listener.listen()
    return listener


def _expected(port: int) -> str:
    return (
        f"the Erlang distribution port {port + DIST_OFFSET} is taken, probably by a node named "
        f"fibrpc{port}@localhost left from an earlier run that does not answer AMQP; stop it "
        "(`python -m fibrpc_helpers broker stop`, or kill the beam.smp process) and retry"
    )


@pytest.mark.skipif(os.name != "posix", reason="nodes of our own start on Linux and macOS only")
def test_a_stale_node_on_the_distribution_port_is_named_in_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_block(1)
    server = _stand_in_server(tmp_path)  # must never be started: the check comes first
    monkeypatch.setattr(nodes, "find_server", lambda: str(server))
    with _taken_dist_port(port):
        with pytest.raises(broker.BrokerError) as raised:
            broker.ensure(f"amqp://guest:guest@localhost:{port}/", state_dir=tmp_path / "b")
    assert str(raised.value) == _expected(port)
    assert not (tmp_path / "b" / "node.json").exists(), "a node was started all the same"


@pytest.mark.skipif(os.name != "posix", reason="nodes of our own start on Linux and macOS only")
def test_a_cluster_says_the_same_of_a_stale_node_on_one_of_its_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = free_block(3)  # the proxy and two nodes
    server = _stand_in_server(tmp_path)
    monkeypatch.setattr(nodes, "find_server", lambda: str(server))
    monkeypatch.setattr(cluster, "_find_haproxy", lambda: "/bin/false")
    two = cluster.Cluster(f"amqp://guest:guest@localhost:{base}/", 2, tmp_path / "c")
    with _taken_dist_port(base + 2):
        with pytest.raises(cluster.ClusterError) as raised:
            two.start()
    assert str(raised.value) == _expected(base + 2)
    assert not any((tmp_path / "c").glob("node-*/node.json")), "a node was started all the same"


def _private_calls_into_siblings(path: Path) -> list[str]:
    """``module._name`` uses in ``path`` where ``module`` is another module of the package."""
    tree = ast.parse(path.read_text())
    siblings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level >= 1 and not node.module:
            siblings |= {alias.asname or alias.name for alias in node.names}
    return [
        f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
        and node.value.id in siblings and node.attr.startswith("_")
        and not node.attr.startswith("__")
    ]


def test_no_module_calls_another_modules_private_functions() -> None:
    found = [hit for path in sorted(PACKAGE.rglob("*.py"))
             for hit in _private_calls_into_siblings(path)]
    assert found == []


def test_installing_and_stopping_nodes_is_written_once() -> None:
    """apt-get, process-group signals and the wait for a node live in nodes.py only."""
    for name in ("broker.py", "cluster.py"):
        source = (PACKAGE / name).read_text()
        for what in ('"apt-get", "install"', "os.killpg", "def _wait_up(self, nodes"):
            assert what not in source, f"{name} does {what} in a way of its own"
