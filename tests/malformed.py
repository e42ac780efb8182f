"""Malformed request bodies: one battery for the wire-format unit tests and for the raw
client that sends them to a real worker (test_bad_input)."""

MAX_N = 1000

MALFORMED: dict[str, bytes] = {
    "letters": b"abc",
    "empty": b"",
    "only whitespace": b" \t\r\n",
    "negative": b"-5",
    "plus sign": b"+5",
    "float": b"3.5",
    "exponent": b"1e3",
    "hex": b"0x10",
    "underscore": b"1_000",
    "inner space": b"1 0",
    "above max n": str(MAX_N + 1).encode(),
    "huge": b"9" * 60,
    "binary": b"\x00\xff\x10\x80",
    "nul in digits": b"1\x002",
    "arabic-indic digits": "١٢".encode(),
    "fullwidth digits": "１２".encode(),
    "superscript two": "²".encode(),
    "json": b'{"n": 5}',
    "pickle of 5": b"\x80\x04K\x05.",
    "10 MB": b"1" * 10_000_000,
}
