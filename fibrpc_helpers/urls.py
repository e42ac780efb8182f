"""Where the broker is: the AMQP URL, and how to print it without leaking its password.

A teacher points a whole class at one broker in ONE place, read by every notebook and
command: ``AMQP_URL`` in the environment (it wins) or in the git-ignored ``.env``.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_URL = "amqp://guest:guest@localhost:5672/"
PROJECT_DIR = Path(__file__).resolve().parent.parent


def env_file() -> Path:
    """The ``.env`` file read for ``AMQP_URL``: ``$FIBRPC_ENV_FILE``, else ``.env`` at the root."""
    return Path(os.environ.get("FIBRPC_ENV_FILE") or PROJECT_DIR / ".env")


def read_env_file(path: Path) -> dict[str, str]:
    """The ``KEY=VALUE`` lines of a ``.env`` file ({} if none), with ``#`` comments, optional
    ``export`` and quotes. No variable expansion: a password may contain ``$``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def amqp_url(url: str | None = None) -> str:
    """The URL to use: the one given, else ``$AMQP_URL``, else ``AMQP_URL`` in the ``.env``
    file (see :func:`env_file`), else a local broker as guest."""
    return (url or os.environ.get("AMQP_URL") or read_env_file(env_file()).get("AMQP_URL")
            or DEFAULT_URL)


def mask_url(url: str) -> str:
    """The URL with its password as ``****``. The user info runs to the LAST ``@``: a password
    not percent-encoded may hold ``#/?@``, which a URL parser would take for its end."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    user = userinfo.partition(":")[0]
    return f"{scheme}://{user}:****@{host}"


def url_port(url: str) -> int:
    """The TCP port the URL points at (5672 for amqp, 5671 for amqps by default)."""
    parts = urlsplit(url)
    return parts.port or (5671 if parts.scheme == "amqps" else 5672)


def url_host(url: str) -> str:
    return urlsplit(url).hostname or "localhost"
