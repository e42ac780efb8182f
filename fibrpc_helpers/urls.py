"""Where the broker is: the AMQP URL, and how to print it without leaking its password."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

DEFAULT_URL = "amqp://guest:guest@localhost:5672/"


def amqp_url(url: str | None = None) -> str:
    """The URL to use: the one given, else ``$AMQP_URL``, else a local broker as guest."""
    return url or os.environ.get("AMQP_URL") or DEFAULT_URL


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``****``, safe to print or log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:****@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def url_port(url: str) -> int:
    """The TCP port the URL points at (5672 for amqp, 5671 for amqps by default)."""
    parts = urlsplit(url)
    return parts.port or (5671 if parts.scheme == "amqps" else 5672)


def url_host(url: str) -> str:
    return urlsplit(url).hostname or "localhost"
