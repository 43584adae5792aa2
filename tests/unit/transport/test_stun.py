"""The STUN codec and client transaction (RFC 5389), without sockets."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipstack.transport import stun

TID = bytes.fromhex("b7e7a701bc34d686fa87dfae")

# RFC 5769 §2.2 and §2.3: sample Binding responses (SOFTWARE, XOR-MAPPED-ADDRESS,
# MESSAGE-INTEGRITY, FINGERPRINT) for 192.0.2.1:32853 and 2001:db8:1234:5678:11:2233:4455:6677.
RFC5769_IPV4 = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae"
    "8022000b7465737420766563746f7220"
    "002000080001a147e112a643"
    "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004c07d4c96"
)
RFC5769_IPV6 = bytes.fromhex(
    "010100482112a442b7e7a701bc34d686fa87dfae"
    "8022000b7465737420766563746f7220"
    "002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9"
    "00080014a382954e4be67bf11784c97c8292c275bfe3ed41"
    "80280004c8fb0b4c"
)


def test_binding_request_wire_format() -> None:
    data, tid = stun.binding_request(TID)
    assert tid == TID
    msg_type, length, cookie = struct.unpack_from("!HHI", data)
    assert (msg_type, cookie) == (0x0001, 0x2112A442)
    assert data[8:20] == TID
    assert length == len(data) - 20 == 8  # only FINGERPRINT
    # FINGERPRINT: CRC-32 of what precedes it, xor 0x5354554e (RFC 5389 §15.5).
    assert struct.unpack_from("!HHI", data, 20) == (0x8028, 4, (zlib.crc32(data[:20]) ^ 0x5354554E))
    message = stun.decode(data)
    assert (message.method, message.cls, message.transaction_id, message.fingerprint) == (
        stun.BINDING,
        stun.REQUEST,
        TID,
        True,
    )


def test_fresh_transaction_ids_are_random_96_bits() -> None:
    ids = {stun.binding_request()[1] for _ in range(50)}
    assert len(ids) == 50 and all(len(tid) == 12 for tid in ids)


@pytest.mark.parametrize(
    ("method", "cls", "wire"),
    [
        (stun.BINDING, stun.REQUEST, 0x0001),
        (stun.BINDING, stun.INDICATION, 0x0011),
        (stun.BINDING, stun.SUCCESS, 0x0101),
        (stun.BINDING, stun.ERROR, 0x0111),
        (0xFFF, stun.ERROR, 0x3FFF),
        (0x003, stun.REQUEST, 0x0003),  # TURN Allocate
    ],
)
def test_message_type_interleaves_method_and_class_bits(method: int, cls: int, wire: int) -> None:
    data = stun.encode(method, cls, TID)
    assert struct.unpack_from("!H", data)[0] == wire
    decoded = stun.decode(data)
    assert (decoded.method, decoded.cls) == (method, cls)


@pytest.mark.parametrize(
    ("host", "port"),
    [("192.0.2.1", 32853), ("127.0.0.1", 5060), ("2001:db8:1234:5678:11:2233:4455:6677", 32853), ("::1", 1)],
)
def test_xor_mapped_address_round_trip(host: str, port: int) -> None:
    value = stun.encode_xor_address(host, port, TID)
    data = stun.encode(stun.BINDING, stun.SUCCESS, TID, [(stun.XOR_MAPPED_ADDRESS, value)])
    assert stun.decode(data).mapped_address == (host, port)
    assert len(value) == (8 if ":" not in host else 20)
    assert host.encode() not in data  # obfuscated, not in clear


def test_ipv4_mapped_ipv6_source_is_reported_as_ipv4() -> None:
    value = stun.encode_xor_address("::ffff:192.0.2.7", 4000, TID)
    data = stun.encode(stun.BINDING, stun.SUCCESS, TID, [(stun.XOR_MAPPED_ADDRESS, value)])
    assert stun.decode(data).mapped_address == ("192.0.2.7", 4000)


def test_plain_mapped_address_is_accepted_when_no_xor_one() -> None:
    value = struct.pack("!BBH", 0, 1, 5060) + bytes([198, 51, 100, 9])
    data = stun.encode(stun.BINDING, stun.SUCCESS, TID, [(stun.MAPPED_ADDRESS, value)])
    assert stun.decode(data).mapped_address == ("198.51.100.9", 5060)


@pytest.mark.parametrize(
    ("sample", "host"),
    [(RFC5769_IPV4, "192.0.2.1"), (RFC5769_IPV6, "2001:db8:1234:5678:11:2233:4455:6677")],
)
def test_rfc5769_sample_responses(sample: bytes, host: str) -> None:
    assert stun.is_stun(sample)
    message = stun.decode(sample)
    assert message.fingerprint  # the sample's FINGERPRINT checks out
    assert (message.cls, message.transaction_id) == (stun.SUCCESS, TID)
    assert message.mapped_address == (host, 32853)
    assert message.attribute(stun.SOFTWARE) == b"test vector"  # padding removed


def test_fingerprint_mismatch_and_misplacement_are_errors() -> None:
    data = bytearray(stun.binding_request(TID)[0])
    data[-1] ^= 0x01
    with pytest.raises(stun.StunError, match="FINGERPRINT"):
        stun.decode(bytes(data))
    # FINGERPRINT followed by another attribute.
    good = stun.binding_request(TID)[0]
    extra = struct.pack("!HH", stun.SOFTWARE, 4) + b"abcd"
    moved = bytearray(good + extra)
    struct.pack_into("!H", moved, 2, len(moved) - 20)
    with pytest.raises(stun.StunError, match="last"):
        stun.decode(bytes(moved))


def test_attributes_after_message_integrity_are_ignored() -> None:
    data = stun.encode(
        stun.BINDING,
        stun.REQUEST,
        TID,
        [(stun.MESSAGE_INTEGRITY, b"\x00" * 20), (0x7777, b"late")],
    )
    message = stun.decode(data)
    assert [t for t, _ in message.attributes] == [stun.MESSAGE_INTEGRITY]
    assert message.unknown_required == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "shorter"),
        (b"\x00\x01\x00\x00\x21\x12\xa4", "shorter"),
        (b"\x40\x01\x00\x00\x21\x12\xa4\x42" + TID, "two most significant bits"),
        (b"\x00\x01\x00\x00\x21\x12\xa4\x43" + TID, "magic cookie"),
        (b"\x00\x01\x00\x02\x21\x12\xa4\x42" + TID + b"\x00\x00", "multiple of 4"),
        (b"\x00\x01\x00\x08\x21\x12\xa4\x42" + TID, "does not match"),
        (b"\x00\x01\x00\x04\x21\x12\xa4\x42" + TID + b"\x80\x22\x00\x09", "past the end"),
    ],
)
def test_malformed_messages_raise_stun_error(data: bytes, reason: str) -> None:
    with pytest.raises(stun.StunError, match=reason):
        stun.decode(data)


@pytest.mark.parametrize(
    "value",
    [
        b"\x00\x03\x13\xc4\x01\x02\x03\x04",  # unknown family
        b"\x00\x01\x13\xc4\x01\x02\x03",  # IPv4 too short
        b"\x00\x02\x13\xc4" + b"\x00" * 4,  # IPv6 too short
        b"\x00\x01",
    ],
)
def test_bad_address_attributes_raise_stun_error(value: bytes) -> None:
    data = stun.encode(stun.BINDING, stun.SUCCESS, TID, [(stun.XOR_MAPPED_ADDRESS, value)])
    message = stun.decode(data)
    with pytest.raises(stun.StunError):
        _ = message.mapped_address


@given(st.binary(max_size=120))
@settings(max_examples=400)
def test_arbitrary_bytes_raise_nothing_but_stun_error(data: bytes) -> None:
    try:
        message = stun.decode(data)
        _ = message.mapped_address, message.error, message.unknown_required
    except stun.StunError:
        pass


@given(st.integers(min_value=0, max_value=75), st.integers(min_value=0, max_value=255), st.booleans())
@settings(max_examples=400)
def test_corrupted_responses_raise_nothing_but_stun_error(position: int, byte: int, truncate: bool) -> None:
    data = bytearray(
        stun.encode(
            stun.BINDING,
            stun.ERROR,
            TID,
            [
                (stun.XOR_MAPPED_ADDRESS, stun.encode_xor_address("2001:db8::1", 9, TID)),
                (stun.ERROR_CODE, stun.encode_error_code(420, "Unknown Attribute")),
            ],
            fingerprint=not truncate,
        )
    )
    position %= len(data)
    if truncate:
        del data[position:]
    else:
        data[position] = byte
    try:
        message = stun.decode(bytes(data))
        _ = message.mapped_address, message.error
    except stun.StunError:
        pass


def test_is_stun_demultiplexes_from_sip() -> None:
    assert stun.is_stun(stun.binding_request()[0])
    assert not stun.is_stun(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP x\r\n\r\n")
    assert not stun.is_stun(b"\r\n\r\n")
    assert not stun.is_stun(b"\x00" * 4)  # NUL keep-alive padding
    assert not stun.is_stun(b"\x00\x01\x00\x00" + b"\x00\x00\x00\x00" + TID)  # RFC 3489: no cookie


def test_server_answers_binding_request_with_the_source() -> None:
    request, tid = stun.binding_request()
    reply = stun.answer(request, "203.0.113.5", 40000, software="sipstack")
    assert reply is not None
    message = stun.decode(reply)
    assert (message.method, message.cls, message.transaction_id) == (stun.BINDING, stun.SUCCESS, tid)
    assert message.mapped_address == ("203.0.113.5", 40000)
    assert message.attribute(stun.SOFTWARE) == b"sipstack"
    assert message.fingerprint  # mirrored from the request
    bare, _ = stun.binding_request(fingerprint=False)
    assert not stun.decode(stun.answer(bare, "::1", 5) or b"").fingerprint


def test_server_refuses_unknown_comprehension_required_attributes_with_420() -> None:
    request = stun.encode(stun.BINDING, stun.REQUEST, TID, [(0x0033, b"xx"), (0x8033, b"ok")])
    message = stun.decode(stun.answer(request, "127.0.0.1", 9) or b"")
    assert message.cls == stun.ERROR
    assert message.error == (420, "Unknown Attribute")
    assert message.attribute(stun.UNKNOWN_ATTRIBUTES) == b"\x00\x33"  # the optional one is not listed


def test_server_sends_nothing_for_indications_responses_and_other_methods() -> None:
    assert stun.answer(stun.encode(stun.BINDING, stun.INDICATION, TID), "127.0.0.1", 9) is None
    assert stun.answer(stun.encode(stun.BINDING, stun.SUCCESS, TID), "127.0.0.1", 9) is None
    assert stun.answer(stun.encode(0x003, stun.REQUEST, TID), "127.0.0.1", 9) is None
    with pytest.raises(stun.StunError):
        stun.answer(b"\x00\x01\x00\x00", "127.0.0.1", 9)


def test_default_retransmission_schedule_is_rfc5389s() -> None:
    # RFC 5389 §7.2.1: sent at 0, 500, 1500, 3500, 7500, 15500, 31500 ms; failed at 39500 ms.
    assert stun.retransmission_times() == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5, 39.5]
    assert stun.retransmission_times(0.1, 3, 4) == pytest.approx([0.0, 0.1, 0.3, 0.7])


def test_transaction_retransmits_on_schedule_then_times_out() -> None:
    request, tid = stun.binding_request()
    tx = stun.StunTransaction(request, tid)
    sent = [100.0]
    assert tx.start(100.0) == request
    assert tx.handle_timer(100.4) is None and not tx.done  # too early: nothing
    while not tx.done:
        when = tx.get_timer()
        assert when is not None
        if tx.handle_timer(when) == request:
            sent.append(when)
    assert [round(t - 100.0, 6) for t in sent] == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert isinstance(tx.error, stun.StunTimeout) and tx.get_timer() is None
    assert tx.requests_sent == 7


def test_transaction_ends_on_matching_response_only() -> None:
    request, tid = stun.binding_request()
    tx = stun.StunTransaction(request, tid, rto=0.1)
    tx.start(0.0)
    other = stun.decode(stun.answer(stun.binding_request()[0], "192.0.2.1", 1) or b"")
    assert not tx.receive(other) and not tx.done  # another transaction's answer
    assert tx.handle_timer(0.1) == request
    reply = stun.decode(stun.answer(request, "192.0.2.1", 7000) or b"")
    assert tx.receive(reply) and tx.done
    assert tx.result is not None and tx.result.mapped_address == ("192.0.2.1", 7000)
    assert tx.get_timer() is None and tx.handle_timer(99.0) is None


def test_transaction_error_response_and_response_without_address() -> None:
    request, tid = stun.binding_request()
    tx = stun.StunTransaction(request, tid)
    tx.start(0.0)
    error = stun.encode(
        stun.BINDING, stun.ERROR, tid, [(stun.ERROR_CODE, stun.encode_error_code(400, "Bad"))]
    )
    assert tx.receive(stun.decode(error))
    assert isinstance(tx.error, stun.StunError) and tx.error.code == 400
    tx2 = stun.StunTransaction(request, tid)
    tx2.start(0.0)
    assert tx2.receive(stun.decode(stun.encode(stun.BINDING, stun.SUCCESS, tid)))
    assert tx2.error is not None and "mapped address" in tx2.error.reason
