"""The wire format, the same as RabbitMQ tutorial six in every language.

* request body: the ASCII decimal n, surrounding ASCII whitespace allowed (``b"30"``);
* success reply: the ASCII decimal fib(n), with the request's ``correlation_id``;
* error reply: the AMQP ``type`` ``"error"``, the ``correlation_id`` and the reason (UTF-8).

Ours, which other tutorials' clients do not send: the header ``x-deadline`` and the
``message_id``, the idempotency key of every try of one call. Plain text lets a pika client
talk to an aio-pika worker and back, and nothing executable crosses the wire (never pickle).
"""

from __future__ import annotations

from .errors import RemoteError
from .fib import DEFAULT_MAX_N, check_n

DEADLINE_HEADER = "x-deadline"
"""Request header: when the caller stops waiting for this try, in integer milliseconds since
the Unix epoch; a worker drops the request after it (where ``expiration`` cannot reach)."""
ERROR_TYPE = "error"
"""Value of the AMQP ``type`` property that marks an error reply."""
MAX_REQUEST_BYTES = 64
"""Longest request body looked at: a 10 MB body is refused without being scanned."""


class BadRequest(ValueError):
    """A request body that is not a plain ASCII decimal n in range; the message says why."""


def encode_request(n: int) -> bytes:
    """The request body for fib(n)."""
    return str(check_n(n, max_n=None)).encode("ascii")


def decode_request(body: bytes, *, max_n: int = DEFAULT_MAX_N) -> int:
    """Parse a request body into n, or raise BadRequest saying what was wrong. Only ASCII
    digits and whitespace around them: ``int()`` alone would take ``"١٢"`` and ``"1_0"``."""
    if len(body) > MAX_REQUEST_BYTES:
        raise BadRequest(f"request body is {len(body)} bytes; a request is the decimal n, at "
                         f"most {MAX_REQUEST_BYTES} bytes")
    text = body.strip()  # bytes: ASCII whitespace only
    if not text:
        raise BadRequest("request body is empty; send n as ASCII decimal digits, e.g. b'30'")
    if not text.isdigit():  # bytes: ASCII digits only
        shown = repr(text[:20])[1:]  # printable: b'\xd9\xa1' shows as '\xd9\xa1', NUL as '\x00'
        raise BadRequest(f"request body {shown} is not a non-negative decimal integer; "
                         "send n as ASCII digits only, e.g. b'30'")
    try:
        return check_n(int(text), max_n=max_n)
    except ValueError as error:
        raise BadRequest(str(error)) from None


def encode_result(value: int) -> bytes:
    """The success reply body."""
    return str(value).encode("ascii")


def decode_reply(body: bytes, message_type: str | None) -> int:
    """Turn a reply into the result, or raise RemoteError for an error reply."""
    if message_type == ERROR_TYPE:
        raise RemoteError(body.decode("utf-8", errors="replace"))
    try:
        return int(body.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise RemoteError(f"the reply {body[:40]!r} is not a decimal integer; is the worker "
                          "speaking tutorial six's wire format?") from None
