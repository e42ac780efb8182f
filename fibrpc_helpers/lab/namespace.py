"""Per-student names on a shared broker: thirty students running one notebook must never get
each other's requests or replies, so each name a notebook declares has the student's prefix."""

from __future__ import annotations

import getpass
import os
import re
import socket

from ..urls import env_file, read_env_file


def namespace() -> str:
    """This student's prefix: ``$FIBRPC_NAMESPACE`` (else in ``.env``), else ``user@host``."""
    value = os.environ.get("FIBRPC_NAMESPACE") or read_env_file(env_file()).get("FIBRPC_NAMESPACE")
    if not value:
        try:
            user = getpass.getuser()
        except Exception:  # no user name in some containers (os.getuid is POSIX-only)
            user = f"uid{os.getuid()}" if hasattr(os, "getuid") else "user"
        value = f"{user}@{socket.gethostname()}"
    return re.sub(r"[^A-Za-z0-9_.@-]", "-", value)[:100]


def namespaced(name: str) -> str:
    """``name`` inside this student's namespace, e.g. ``alice@laptop.rpc_queue``."""
    return f"{namespace()}.{name}"


def short_name(name: str) -> str:
    """A name without this student's namespace prefix, for printing (``03.rpc_queue``)."""
    return name.removeprefix(namespace() + ".")
