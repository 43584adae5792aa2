"""Flows and flow tokens (RFC 5626 §3.3, §5.2): the text form, which messages came over a
flow, and tokens that round-trip but cannot be forged or edited."""

from __future__ import annotations

import base64

import pytest

from sipstack.flow import MAC_SIZE, Flow, FlowTokenError, FlowTokens
from sipstack.message import parse_uri
from sipstack.net import Address

SECRET = b"0123456789abcdef0123456789abcdef"
TCP = Flow("TCP", "192.0.2.7", 40123, "198.51.100.1", 5060, 42, "a1b2c3d4")
UDP6 = Flow("UDP", "2001:db8::7", 5062, "2001:db8::1", 5060)


@pytest.mark.parametrize("flow", [TCP, UDP6, Flow("WSS", "192.0.2.8", 443)], ids=["tcp", "udp6", "bare"])
def test_text_form_round_trips(flow: Flow) -> None:
    assert Flow.parse(flow.text()) == flow


@pytest.mark.parametrize("text", ["", "TCP 1.2.3.4", "TCP 1.2.3.4 x - 0 - -", "a b c d e f g h"])
def test_text_that_is_no_flow_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Flow.parse(text)


def test_a_stream_flow_is_its_connection() -> None:
    assert TCP.address == Address("TCP", "192.0.2.7", 40123, 42)
    assert TCP.carries(Address("TCP", "192.0.2.7", 40123, 42))
    assert not TCP.carries(Address("TCP", "192.0.2.7", 40123, 43))  # another connection
    assert not TCP.carries(Address("TLS", "192.0.2.7", 40123, 42))


def test_a_udp_flow_is_its_remote_address() -> None:
    assert UDP6.carries(Address("UDP", "2001:db8::7", 5062))
    assert not UDP6.carries(Address("UDP", "2001:db8::7", 5063))
    assert UDP6.address.connection is None


@pytest.mark.parametrize("flow", [TCP, UDP6], ids=["tcp", "udp6"])
def test_tokens_round_trip_and_fit_a_uri_user_part(flow: Flow) -> None:
    tokens = FlowTokens(SECRET)
    token = tokens.encode(flow)
    assert tokens.decode(token) == flow
    uri = parse_uri(f"sip:{token}@198.51.100.1:5060;transport=tcp;lr;ob")
    assert uri.user == token  # nothing in it needs escaping
    assert str(uri).startswith(f"sip:{token}@")


def test_every_edit_of_a_token_is_detected() -> None:
    tokens = FlowTokens(SECRET)
    token = tokens.encode(TCP)
    for i in range(len(token)):
        replacement = "A" if token[i] != "A" else "B"
        edited = token[:i] + replacement + token[i + 1 :]
        try:
            decoded = tokens.decode(edited)
        except FlowTokenError:
            continue
        # The last character may carry only padding bits that decoding ignores.
        assert decoded == TCP and i == len(token) - 1, f"edit at {i} went unnoticed"


def test_a_token_made_with_the_payload_changed_but_the_old_mac_is_refused() -> None:
    tokens = FlowTokens(SECRET)
    raw = base64.urlsafe_b64decode(tokens.encode(TCP) + "==")
    other = Flow("TCP", "203.0.113.66", 40123, "198.51.100.1", 5060, 42, "a1b2c3d4")
    forged = base64.urlsafe_b64encode(raw[:MAC_SIZE] + other.text().encode()).rstrip(b"=").decode()
    with pytest.raises(FlowTokenError):
        tokens.decode(forged)


@pytest.mark.parametrize("token", ["", "!!!", "abc", "A" * 40])
def test_garbage_is_refused(token: str) -> None:
    with pytest.raises(FlowTokenError) as caught:
        FlowTokens(SECRET).decode(token)
    assert caught.value.status_code == 403


def test_another_secret_does_not_accept_the_token() -> None:
    token = FlowTokens(SECRET).encode(TCP)
    with pytest.raises(FlowTokenError):
        FlowTokens(b"another secret, also 32 bytes!!!").decode(token)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        FlowTokens(b"short")
