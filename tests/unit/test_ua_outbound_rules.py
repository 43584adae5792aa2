"""The rules of SIP Outbound's user-agent side that need no network (RFC 5626 §4.1, §4.2, §4.5):
instance ids and their persistence, the flow-recovery back-off, the Contact a flow registers,
and how a REGISTER over a flow is built (Route, Supported, shared Call-ID and CSeq)."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import pytest

from sipstack.message import Response
from sipstack.message.headers import parse_contacts
from sipstack.net import Address
from sipstack.ua import OutboundConfig, OutboundRegistration, UserAgent
from sipstack.ua.outbound import load_instance_id, new_instance_id, normalise_instance_id, registered_contacts


def test_new_instance_ids_are_uuid_urns() -> None:
    ids = {new_instance_id() for _ in range(100)}
    assert len(ids) == 100
    for value in ids:
        assert value.startswith("urn:uuid:")
        assert uuid.UUID(value[9:]).version == 4


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("urn:uuid:00000000-0000-1000-8000-000A95A0E128", "urn:uuid:00000000-0000-1000-8000-000a95a0e128"),
        ("<urn:uuid:00000000-0000-1000-8000-000a95a0e128>", "urn:uuid:00000000-0000-1000-8000-000a95a0e128"),
        ("00000000-0000-1000-8000-000a95a0e128\n", "urn:uuid:00000000-0000-1000-8000-000a95a0e128"),
        ("urn:gsma:imei:35209900-176148-1", "urn:gsma:imei:35209900-176148-1"),
    ],
)
def test_instance_ids_are_normalised(given: str, expected: str) -> None:
    assert normalise_instance_id(given) == expected


@pytest.mark.parametrize("bad", ["", "alice", "urn:uuid:not-a-uuid", 'urn:x">', "sip:alice@example.com"])
def test_instance_ids_that_are_not_urns_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        normalise_instance_id(bad)


def test_instance_id_file_is_created_once_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "instance"
    first = load_instance_id(path)
    assert path.read_text() == first + "\n"
    assert load_instance_id(path) == first
    assert UserAgent("sip:a@example.com", instance_file=path).instance_id == first
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    path.write_text("garbage\n")
    replaced = load_instance_id(path)
    assert replaced != first and path.read_text().strip() == replaced


def test_user_agent_instance_id_is_stable_or_given() -> None:
    ua = UserAgent("sip:a@example.com")
    assert ua.instance_id == ua.instance_id
    assert UserAgent("sip:b@example.com").instance_id != ua.instance_id
    given = UserAgent("sip:a@example.com", instance_id="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>")
    assert given.instance_id == "urn:uuid:00000000-0000-1000-8000-000a95a0e128"
    with pytest.raises(ValueError):
        UserAgent("sip:a@example.com", instance_id="not a urn")


def test_back_off_follows_section_4_5() -> None:
    config = OutboundConfig(rng=random.Random(1))
    # wait-time = min(max-time, base-time * 2 ** consecutive-failures)
    assert [config.wait_time(n, all_failed=True) for n in range(8)] == [
        30,
        60,
        120,
        240,
        480,
        960,
        1800,
        1800,
    ]
    assert [config.wait_time(n, all_failed=False) for n in range(6)] == [90, 180, 360, 720, 1440, 1800]
    assert config.wait_time(10_000, all_failed=True) == 1800  # no overflow
    # The example of §4.5: base 30 s, three failures: 240 s.
    assert config.wait_time(3, all_failed=True) == 240
    # The delay is uniform in 50-100 % of the wait time.
    delays = [config.delay(2, all_failed=False) for _ in range(2000)]
    assert all(180 <= d <= 360 for d in delays)
    assert min(delays) < 185 and max(delays) > 355


def test_back_off_times_are_configurable_and_checked() -> None:
    config = OutboundConfig(base_time_all_failed=0.1, base_time_some_ok=0.3, max_time=1.0)
    assert config.wait_time(0, all_failed=True) == 0.1
    assert config.wait_time(5, all_failed=False) == 1.0
    with pytest.raises(ValueError):
        OutboundConfig(base_time_all_failed=0)
    with pytest.raises(ValueError):
        OutboundConfig(keepalive="sometimes")


async def test_flow_contact_and_register_request() -> None:
    async with UserAgent("sip:alice@example.com", listen=["tcp:127.0.0.1:0"]) as ua:
        port = ua.endpoint.listeners[0].local.port
        outbound = OutboundRegistration(
            ua,
            "sip:alice@example.com",
            ["sip:192.0.2.1;transport=tcp", "<sip:192.0.2.2:5070;transport=tcp;lr>"],
        )
        flow1, flow2 = outbound.flows
        assert (flow1.reg_id, flow1.proxy) == (1, "sip:192.0.2.1;transport=tcp;lr")
        assert (flow2.reg_id, flow2.proxy) == (2, "sip:192.0.2.2:5070;transport=tcp;lr")
        # §4.2: the UA's Contact for the transport with ob, then reg-id and +sip.instance.
        contact = outbound.contact_for(Address("TCP", "192.0.2.1", 5060), 1)
        (parsed,) = parse_contacts(contact)
        assert str(parsed.uri) == f"sip:alice@127.0.0.1:{port};transport=tcp;ob"
        assert parsed.params == {"reg-id": "1", "+sip.instance": f"<{ua.instance_id}>"}
        # With a reflexive address (UDP behind a NAT), the Contact names it instead.
        mapped = outbound.contact_for(
            Address("TCP", "192.0.2.1", 5060), 2, Address("UDP", "198.51.100.7", 40000)
        )
        assert parse_contacts(mapped)[0].uri.host_port == "198.51.100.7:40000"

        # Each flow's REGISTERs: its own Route and Supported: outbound; one Call-ID and one
        # CSeq space for all flows (the wire form is checked in tests/net/test_ua_outbound.py).
        reg1, reg2 = flow1.registration, flow2.registration
        assert (reg1.route, reg2.route) == (flow1.proxy, flow2.proxy)
        assert ("Supported", "outbound, path") in reg1.headers
        assert reg1.call_id == reg2.call_id == outbound.call_id and reg1.from_tag == reg2.from_tag
        assert [reg1._next_cseq(), reg2._next_cseq(), reg1._next_cseq()] == [1, 2, 3]
        assert reg1.registrar == "sip:example.com"


def test_granted_expiry_is_read_from_the_flows_own_binding() -> None:
    ua = UserAgent("sip:alice@example.com")
    outbound = OutboundRegistration(ua, "sip:alice@example.com", ["sip:192.0.2.1", "sip:192.0.2.2"])
    registration = outbound.flows[1].registration
    registration.contact = f'<sip:alice@192.0.2.9;ob>;reg-id=2;+sip.instance="<{ua.instance_id}>"'
    instance = f'+sip.instance="<{ua.instance_id}>"'
    response = Response(
        200,
        headers=[
            ("Contact", f"<sip:alice@192.0.2.9;ob>;reg-id=1;{instance};expires=100"),
            ("Contact", f"<sip:alice@192.0.2.9;ob>;reg-id=2;{instance};expires=250"),
            ("Require", "outbound"),
        ],
    )
    assert registration._granted(response) == 250
    assert registered_contacts(response) == [
        ("sip:alice@192.0.2.9;ob", 1, f"<{ua.instance_id}>"),
        ("sip:alice@192.0.2.9;ob", 2, f"<{ua.instance_id}>"),
    ]
