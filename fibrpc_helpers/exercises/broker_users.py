"""A broker user for one graded submission, limited to that submission's namespace.

RabbitMQ grants a user, per virtual host, three regular expressions on resource names:
what it may *configure* (declare, delete), *write* (publish to) and *read* (consume from).
A submission's user may touch only names in its own namespace, the server-named callback
queues (``amq.gen-...``) and the default exchange, so a submission that deletes queues it
does not own is refused by the broker itself, and costs no one else anything.

Two ways to make such a user with the teacher's rights: ``rabbitmqctl`` for the node this
project started (``broker ensure``; its cookie is under ``.broker/``), or RabbitMQ's HTTP
API (the management plugin) for a class broker, given as ``http://admin:pw@host:15672``.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..lab import broker, nodes
from ..urls import mask_url, url_host, url_port

CTL_SECONDS = 60.0


def permissions(namespace: str) -> tuple[str, str, str]:
    """configure, write, read for a user limited to ``namespace``, plus the exclusive
    callback queues a client names at random: the broker's ``amq.gen-...`` and aio-pika's
    ``amq_<hex>`` (a robust channel's, as the reference client declares)."""
    mine = rf"{re.escape(namespace)}\..*|amq\.gen-.*|amq_[0-9a-f]+"
    return f"^({mine})$", rf"^({mine}|amq\.default)$", f"^({mine})$"


class Admin(Protocol):
    def add_user(self, user: str, password: str, namespace: str) -> None: ...
    def delete_user(self, user: str) -> None: ...
    def queues(self) -> list[str]: ...


@dataclass
class Ctl:
    """``rabbitmqctl`` against the node ``broker ensure`` started on ``port``."""

    port: int
    vhost: str = "/"
    state_dir: Path | None = None

    def run(self, *args: str, stdin: str | None = None) -> str:
        server = nodes.find_server()
        if server is None:
            raise broker.BrokerError("rabbitmqctl is not installed here; give the class "
                                     "broker's HTTP API with --admin-api")
        env = nodes.node_environment(self.port, self.state_dir or broker.default_state_dir())
        done = subprocess.run([str(Path(server).with_name("rabbitmqctl")), *args], env=env,
                              input=stdin, capture_output=True, text=True, timeout=CTL_SECONDS)
        if done.returncode != 0:
            raise broker.BrokerError(f"rabbitmqctl {args[0]} failed: {done.stderr.strip()}")
        return done.stdout

    def add_user(self, user: str, password: str, namespace: str) -> None:
        # Without a password argument rabbitmqctl reads it from stdin: never in argv, where
        # every local user could read it (ps, /proc/PID/cmdline). Keep exactly these two
        # arguments: RabbitMQ's rabbitmqctl script lets the command read its stdin only when
        # add_user has two (an added option such as -q makes it refuse the password).
        self.run("add_user", user, stdin=password + "\n")
        self.run("set_permissions", "-p", self.vhost, user, *permissions(namespace))

    def delete_user(self, user: str) -> None:
        self.run("delete_user", user)

    def queues(self) -> list[str]:
        out = self.run("list_queues", "-p", self.vhost, "--quiet", "--no-table-headers", "name")
        return [line.strip() for line in out.splitlines() if line.strip()]


@dataclass
class HttpApi:
    """RabbitMQ's HTTP API (management plugin) at ``http://admin:password@host:15672``."""

    url: str
    vhost: str = "/"

    def _call(self, method: str, path: str, body: dict | None = None) -> object:
        parts = urllib.parse.urlsplit(self.url)
        base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}/api"
        request = urllib.request.Request(base + path, method=method,
                                         data=json.dumps(body).encode() if body else None)
        token = f"{urllib.parse.unquote(parts.username or '')}:" \
                f"{urllib.parse.unquote(parts.password or '')}"
        request.add_header("Authorization", "Basic " + base64.b64encode(token.encode()).decode())
        request.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=CTL_SECONDS) as answer:
                data = answer.read()
        except urllib.error.HTTPError as error:
            said = error.read()[:300].decode(errors="replace").strip()
            advice = ("check the user and password in --admin-api: the user needs the "
                      "administrator tag" if error.code in (401, 403) else error.reason)
            raise broker.BrokerError(f"RabbitMQ's HTTP API at {mask_url(base)} refused "
                                     f"{method} {path} ({error.code}): {advice}"
                                     + (f" (it said: {said})" if said else "")) from None
        except OSError as error:
            raise broker.BrokerError(f"RabbitMQ's HTTP API at {mask_url(base)} did not answer "
                                     f"({error}): is the management plugin enabled, and the "
                                     "URL's port its port (15672 by default)?") from None
        return json.loads(data) if data else None

    def _vhost(self) -> str:
        return urllib.parse.quote(self.vhost, safe="")

    def add_user(self, user: str, password: str, namespace: str) -> None:
        self._call("PUT", f"/users/{urllib.parse.quote(user)}",
                   {"password": password, "tags": ""})
        configure, write, read = permissions(namespace)
        self._call("PUT", f"/permissions/{self._vhost()}/{urllib.parse.quote(user)}",
                   {"configure": configure, "write": write, "read": read})

    def delete_user(self, user: str) -> None:
        self._call("DELETE", f"/users/{urllib.parse.quote(user)}")

    def queues(self) -> list[str]:
        found = self._call("GET", f"/queues/{self._vhost()}")
        return [queue["name"] for queue in found] if isinstance(found, list) else []


def admin_for(teacher_url: str, admin_api: str | None) -> Admin:
    """The way to make users on the broker at ``teacher_url``."""
    vhost = urllib.parse.unquote(urllib.parse.urlsplit(teacher_url).path[1:]) or "/"
    if admin_api:
        return HttpApi(admin_api, vhost)
    if url_host(teacher_url) not in ("localhost", "127.0.0.1", "::1"):
        raise broker.BrokerError(
            "the broker is not on this machine: give its HTTP API (management plugin) with "
            "--admin-api http://admin:password@host:15672")
    return Ctl(url_port(teacher_url), vhost)


def student_url(teacher_url: str, user: str, password: str) -> str:
    """The teacher's URL with the student user's credentials instead."""
    parts = urllib.parse.urlsplit(teacher_url)
    host = parts.hostname or "localhost"
    netloc = f"{urllib.parse.quote(user)}:{urllib.parse.quote(password)}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path or "/", "", ""))


def new_password() -> str:
    """Hex: it goes into an AMQP URL as it is, with nothing to quote."""
    return secrets.token_hex(18)
