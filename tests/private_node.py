"""A private RabbitMQ node for the tests that must restart, freeze or reconfigure a broker.

The shared broker on 5672 is never touched: ``node`` (a module-scoped fixture: import
``node_fixture`` into the test module) starts a node of its own on a free port with
``broker.ensure(url, state_dir=...)``, also listening for TLS with a throwaway certificate
authority where openssl exists, and stops it when the module's tests are done.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ports import free_block

from fibrpc_helpers.lab import broker


@dataclass
class PrivateNode:
    url: str
    tls_url: str | None  # None where openssl is missing: no certificate, no TLS listener
    state_dir: Path


def _make_certificates(directory: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for localhost / 127.0.0.1, made by openssl."""
    directory.mkdir()
    files = {name: directory / f"{name}.pem" for name in ("ca", "ca_key", "cert", "key")}

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=fibrpc test CA", "-keyout", str(files["ca_key"]),
            # Python 3.13 verifies strictly (VERIFY_X509_STRICT): a CA needs key usage.
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-out", str(files["ca"]))
    request = directory / "server.csr"
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", str(files["key"]), "-out", str(request))
    extensions = directory / "san.ext"
    extensions.write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    openssl("x509", "-req", "-in", str(request), "-CA", str(files["ca"]),
            "-CAkey", str(files["ca_key"]), "-CAcreateserial", "-days", "2",
            "-extfile", str(extensions), "-out", str(files["cert"]))
    return files


def _start_private_node(base: Path, certificates: dict[str, Path] | None) -> PrivateNode:
    port = free_block(2)
    tls_port = port + 1
    state_dir = base / f"node-{port}"
    state_dir.mkdir()
    url = f"amqp://guest:guest@127.0.0.1:{port}/"
    tls_url = None
    if certificates:
        # broker.py writes rabbitmq.conf for the plain listener; a TLS listener is added
        # through the advanced config file it points the node at (and leaves alone).
        (state_dir / "advanced.config").write_text(
            f'[{{rabbit, [{{ssl_listeners, [{{"127.0.0.1", {tls_port}}}]}},\n'
            f'  {{ssl_options, [{{cacertfile, "{certificates["ca"]}"}},\n'
            f'                 {{certfile, "{certificates["cert"]}"}},\n'
            f'                 {{keyfile, "{certificates["key"]}"}},\n'
            "                 {verify, verify_none}, {fail_if_no_peer_cert, false}]}]}].\n"
        )
        tls_url = f"amqps://guest:guest@localhost:{tls_port}/?cafile={certificates['ca']}"
    if not broker.ensure(url, state_dir=state_dir).started_by_us:  # never restart another's
        raise broker.BrokerError(f"another broker took port {port} before our node did")
    if tls_url is not None:
        wait_for_listener(tls_port, state_dir)
    return PrivateNode(url, tls_url, state_dir)


def wait_for_listener(port: int, state_dir: Path, seconds: float = 60.0) -> None:
    """Until a listener of the node (TLS, the HTTP API) takes connections: the node answers
    AMQP (what ``broker.ensure`` waits for) a moment before them, on a busy machine."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise broker.BrokerError(
                    f"the node in {state_dir} answers AMQP, but its listener on port "
                    f"{port} took no connection within {seconds:g} s") from None
            time.sleep(0.1)


@pytest.fixture(scope="module", name="node")
def node_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateNode]:
    base = tmp_path_factory.mktemp("private-broker")
    certificates = _make_certificates(base / "tls") if shutil.which("openssl") else None
    failures = []
    for _attempt in range(2):  # a port taken between our check and the node's start: retry
        try:
            started = _start_private_node(base, certificates)
        except broker.BrokerError as error:
            logs = sorted(base.glob("node-*/log/*.log"), key=lambda path: path.stat().st_mtime)
            tail = logs[-1].read_text(errors="replace")[-1500:] if logs else "(no log)"
            failures.append(f"{error}\n{tail}")
            for state_dir in base.glob("node-*"):
                broker.stop(state_dir)
            continue
        try:
            yield started
        finally:
            broker.stop(started.state_dir)
        return
    pytest.fail("could not start a private RabbitMQ node:\n" + "\n\n".join(failures))
