import pytest
from malformed import MALFORMED, MAX_N

from fibrpc_helpers import RemoteError
from fibrpc_helpers.wire import (
    MAX_REQUEST_BYTES,
    BadRequest,
    decode_reply,
    decode_request,
    encode_request,
)


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_requests_are_refused_with_a_reason(body):
    with pytest.raises(BadRequest) as caught:
        decode_request(body, max_n=MAX_N)
    assert str(caught.value)


@pytest.mark.parametrize("body, n", [(b"30", 30), (b" 30\n", 30), (b"\t0 ", 0), (b"007", 7)])
def test_plain_decimal_with_surrounding_whitespace_is_accepted(body, n):
    assert decode_request(body, max_n=1000) == n


def test_a_long_body_is_refused_by_its_size_before_it_is_read():
    with pytest.raises(BadRequest, match=f"at most {MAX_REQUEST_BYTES} bytes"):
        decode_request(b" " * (MAX_REQUEST_BYTES + 1) + b"5")


def test_n_above_the_maximum_is_refused():
    with pytest.raises(BadRequest, match="at most 1000"):
        decode_request(b"1001", max_n=1000)


def test_requests_and_replies_round_trip():
    assert encode_request(42) == b"42"
    assert decode_reply(b"267914296", None) == 267914296
    with pytest.raises(RemoteError, match="too big") as caught:
        decode_reply(b"too big", "error")
    assert caught.value.reason == "too big"
