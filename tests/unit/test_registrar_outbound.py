"""The registrar's part of SIP Outbound (RFC 5626 §6) and public GRUUs (RFC 5627).

Outbound applies to a REGISTER with ``Supported: outbound`` and a Contact with
``+sip.instance`` and ``reg-id``: the binding is keyed by (AoR, instance, reg-id), records
its flow (the source when the UA reached the registrar directly, ``path`` when the last Path
entry — the first hop — carries ``ob``), and the 200 says ``Require: outbound``. A first hop
without ``ob`` is 439. Requests are built as a UA sends them and re-parsed from the wire."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from registrar_kit import AOR, Harness, listed, register

from sipstack.flow import PATH_FLOW, Flow
from sipstack.message import parse_uri
from sipstack.net import Address
from sipstack.registrar import RegistrarConfig, gruu_instance, public_gruu
from sipstack.storage.memory import MemoryStore
from sipstack.storage.sqlite import SqliteStore

DOMAIN = "example.com"
UUID = "urn:uuid:00000000-0000-1000-8000-000a95a0e128"
INSTANCE = f"<{UUID}>"
CONTACT = "sip:alice@192.0.2.10:5060;transport=tcp;ob"
TCP_1 = Address("TCP", "192.0.2.10", 40001, 11)
TCP_2 = Address("TCP", "192.0.2.10", 40002, 12)
OUTBOUND = ("Supported", "outbound, path")
EDGE_PATH = ("Path", "<sip:dG9rZW4@edge.example.net;transport=tcp;lr;ob>")
EDGE_VIA = ("Via", "SIP/2.0/TCP edge.example.net;branch=z9hG4bKedge1")


def flow_contact(
    reg_id: int, uri: str = CONTACT, *, instance: str = INSTANCE, expires: int | None = None
) -> str:
    extra = "" if expires is None else f";expires={expires}"
    return f'<{uri}>;+sip.instance="{instance}";reg-id={reg_id}{extra}'


def outbound_register(
    reg_id: int, *, call_id: str | None = None, cseq: int = 1, headers=(), **kwargs
) -> object:
    return register(
        flow_contact(reg_id, **kwargs),
        call_id=call_id or f"flow-{reg_id}",
        cseq=cseq,
        headers=[OUTBOUND, *headers],
    )


@pytest.fixture(params=["memory", "sqlite"])
async def h(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "db")
    yield Harness(store, config=RegistrarConfig(domains={DOMAIN}, flow_timer=0))
    await store.close()


# ---------------------------------------------------------------------------------------
# Keying by instance and reg-id, and the flow
# ---------------------------------------------------------------------------------------


async def test_a_direct_registration_records_its_flow_and_requires_outbound(h: Harness) -> None:
    response = await h.send(outbound_register(1), TCP_1)
    assert response.status_code == 200
    assert response.header_values("Require") == ["outbound"]
    assert "outbound" in [tag.lower() for tag in response.supported]
    assert response.header("Flow-Timer") is None
    [binding] = await h.bindings()
    assert (binding.instance, binding.reg_id, binding.contact) == (INSTANCE, 1, CONTACT)
    flow = Flow.parse(binding.flow)
    assert flow.address == TCP_1
    assert flow.epoch == h.registrar.flow_epoch
    assert flow.carries(TCP_1) and not flow.carries(TCP_2)


async def test_another_reg_id_adds_a_second_flow_with_the_same_contact(h: Harness) -> None:
    await h.send(outbound_register(1), TCP_1)
    h.clock.advance(1)
    response = await h.send(outbound_register(2), TCP_2)
    assert response.status_code == 200
    assert [item.params["reg-id"] for item in listed(response)] == ["2", "1"]  # newest first
    flows = {b.reg_id: Flow.parse(b.flow).address for b in await h.bindings()}
    assert flows == {1: TCP_1, 2: TCP_2}


async def test_the_same_reg_id_replaces_its_flow_whatever_the_contact(h: Harness) -> None:
    await h.send(outbound_register(1), TCP_1)
    await h.send(outbound_register(2), TCP_2)
    moved = "sip:alice@198.51.100.4:6000;transport=tcp;ob"
    reconnected = Address("TCP", "198.51.100.4", 6000, 99)
    response = await h.send(outbound_register(1, uri=moved, cseq=2), reconnected)
    assert response.status_code == 200
    by_reg_id = {b.reg_id: b for b in await h.bindings()}
    assert sorted(by_reg_id) == [1, 2]
    assert by_reg_id[1].contact == moved
    assert Flow.parse(by_reg_id[1].flow).address == reconnected
    assert Flow.parse(by_reg_id[2].flow).address == TCP_2


async def test_expires_zero_removes_only_that_flow(h: Harness) -> None:
    await h.send(outbound_register(1), TCP_1)
    await h.send(outbound_register(2), TCP_2)
    response = await h.send(outbound_register(1, cseq=2, expires=0), TCP_1)
    assert response.status_code == 200
    assert [b.reg_id for b in await h.bindings()] == [2]


async def test_a_flow_refresh_out_of_order_fails(h: Harness) -> None:
    await h.send(outbound_register(1, cseq=5), TCP_1)
    response = await h.send(outbound_register(1, cseq=5), TCP_2)
    assert response.status_code == 500
    assert Flow.parse((await h.bindings())[0].flow).address == TCP_1


async def test_an_outbound_flow_replaces_a_plain_binding_of_its_uri(h: Harness) -> None:
    await h.ok(register(f"<{CONTACT}>", call_id="plain"))
    await h.send(outbound_register(1), TCP_1)
    [binding] = await h.bindings()
    assert binding.reg_id == 1 and binding.flow


async def test_through_an_edge_proxy_the_flow_is_the_path(h: Harness) -> None:
    response = await h.send(outbound_register(1, headers=[EDGE_VIA, EDGE_PATH]), TCP_1)
    assert response.status_code == 200
    assert response.header_values("Require") == ["outbound"]
    assert response.header_values("Path") == [EDGE_PATH[1]]
    [binding] = await h.bindings()
    assert binding.flow == PATH_FLOW
    assert binding.path == [EDGE_PATH[1]]


async def test_only_the_first_hop_path_entry_needs_ob(h: Harness) -> None:
    """Proxies add their Path on top (RFC 3327): the last entry is the first hop's."""
    core = ("Path", "<sip:core.example.net;lr>")
    response = await h.send(outbound_register(1, headers=[EDGE_VIA, EDGE_VIA, core, EDGE_PATH]), TCP_1)
    assert response.status_code == 200
    [binding] = await h.bindings()
    assert binding.path == [core[1], EDGE_PATH[1]]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([EDGE_VIA], id="proxy-without-path"),
        pytest.param([EDGE_VIA, ("Path", "<sip:edge.example.net;lr>")], id="path-without-ob"),
        pytest.param(
            [EDGE_VIA, EDGE_VIA, EDGE_PATH, ("Path", "<sip:first.example.net;lr>")], id="first-hop-without-ob"
        ),
    ],
)
async def test_a_first_hop_without_outbound_is_439(h: Harness, headers: list) -> None:
    response = await h.send(outbound_register(1, headers=headers), TCP_1)
    assert response.status_code == 439
    assert response.reason == "First Hop Lacks Outbound Support"
    assert await h.bindings() == []


async def test_a_registrar_that_keeps_no_flows_answers_a_direct_reg_id_439() -> None:
    h = Harness(MemoryStore(), config=RegistrarConfig(domains={DOMAIN}, first_hop_outbound=False))
    assert (await h.send(outbound_register(1), TCP_1)).status_code == 439
    # Through an outbound edge proxy it still registers.
    assert (await h.send(outbound_register(1, headers=[EDGE_VIA, EDGE_PATH]), TCP_1)).status_code == 200


async def test_without_supported_outbound_reg_id_is_only_kept(h: Harness) -> None:
    """§6: no outbound processing: no 439 through a plain proxy, no Require, and the Contact
    URI keys the binding (a second reg-id with the same URI replaces the first)."""
    first = register(flow_contact(1), call_id="a", headers=[EDGE_VIA])
    response = await h.send(first, TCP_1)
    assert response.status_code == 200
    assert not response.has_header("Require")
    second = register(flow_contact(2), call_id="b", headers=[EDGE_VIA])
    assert (await h.send(second, TCP_2)).status_code == 200
    [binding] = await h.bindings()
    assert (binding.reg_id, binding.flow) == (2, "")


async def test_two_reg_id_contacts_in_one_register_are_400(h: Harness) -> None:
    other = "sip:alice@192.0.2.11;ob"
    request = register(flow_contact(1), flow_contact(2, uri=other), headers=[OUTBOUND])
    assert (await h.send(request, TCP_1)).status_code == 400


async def test_reg_id_without_instance_is_a_plain_binding(h: Harness) -> None:
    """§6: without +sip.instance the RFC 3261 binding rules apply: no flow, no Require."""
    request = register(f"<{CONTACT}>;reg-id=1", headers=[OUTBOUND])
    response = await h.send(request, TCP_1)
    assert response.status_code == 200 and not response.has_header("Require")
    [binding] = await h.bindings()
    assert (binding.contact, binding.flow, binding.instance) == (CONTACT, "", None)
    # Beside a flow of an instance, it stays plain too.
    other = "sip:alice@203.0.113.9"
    request = register(flow_contact(1, uri=other), f"<{CONTACT}>;reg-id=2", call_id="b", headers=[OUTBOUND])
    assert (await h.send(request, TCP_1)).status_code == 200
    flows = {b.contact: b.flow for b in await h.bindings()}
    assert flows[CONTACT] == "" and flows[other]


async def test_a_reg_id_that_is_no_number_is_400(h: Harness) -> None:
    assert (await h.send(register(flow_contact(0), headers=[OUTBOUND]), TCP_1)).status_code == 400
    request = register(f'<{CONTACT}>;+sip.instance="{INSTANCE}";reg-id=x', headers=[OUTBOUND])
    assert (await h.send(request, TCP_1)).status_code == 400


async def test_a_plain_contact_beside_the_flow_stays_plain(h: Harness) -> None:
    plain = "sip:alice@203.0.113.9"
    request = register(flow_contact(1), f"<{plain}>", headers=[OUTBOUND])
    assert (await h.send(request, TCP_1)).status_code == 200
    flows = {b.contact: b.flow for b in await h.bindings()}
    assert flows[plain] == ""
    assert flows[CONTACT]


async def test_flow_timer_when_configured() -> None:
    h = Harness(MemoryStore(), config=RegistrarConfig(domains={DOMAIN}, flow_timer=120))
    response = await h.send(outbound_register(1), TCP_1)
    assert response.header("Flow-Timer") == "120"
    plain = await h.send(register("<sip:bob@192.0.2.99>", aor="sip:bob@example.com", call_id="x"), TCP_2)
    assert plain.header("Flow-Timer") is None and not plain.has_header("Require")


async def test_registrations_with_flows_survive_a_restart(tmp_path: Path) -> None:
    config = RegistrarConfig(domains={DOMAIN})
    first = SqliteStore(tmp_path / "db")
    await Harness(first, config=config).send(outbound_register(1, headers=[EDGE_VIA, EDGE_PATH]), TCP_1)
    await Harness(first, config=config).send(outbound_register(2), TCP_2)
    await first.close()
    second = SqliteStore(tmp_path / "db")
    try:
        by_reg_id = {b.reg_id: b for b in await second.bindings(AOR, 1_700_000_000.0)}
        assert by_reg_id[1].flow == PATH_FLOW and by_reg_id[1].path == [EDGE_PATH[1]]
        assert Flow.parse(by_reg_id[2].flow).address == TCP_2
    finally:
        await second.close()


# ---------------------------------------------------------------------------------------
# Public GRUUs (RFC 5627)
# ---------------------------------------------------------------------------------------


async def test_supported_gruu_gets_a_pub_gruu_per_instance(h: Harness) -> None:
    plain = "sip:alice@203.0.113.9"
    request = register(
        f'<{CONTACT}>;+sip.instance="{INSTANCE}"', f"<{plain}>", headers=[("Supported", "gruu")]
    )
    response = await h.send(request, TCP_1)
    assert response.status_code == 200
    by_uri = {item.uri: item.params for item in listed(response)}
    assert by_uri[CONTACT]["pub-gruu"] == f"{AOR};gr={UUID}"
    assert "pub-gruu" not in by_uri[plain]
    without = await h.send(register(call_id="query"), TCP_1)
    assert all("pub-gruu" not in item.params for item in listed(without))


def test_the_public_gruu_names_its_instance() -> None:
    gruu = public_gruu(AOR, INSTANCE)
    assert gruu == f"sip:alice@example.com;gr={UUID}"
    uri = parse_uri(gruu)
    assert uri.aor == AOR
    assert gruu_instance(uri) == INSTANCE
    assert gruu_instance(parse_uri(AOR)) is None
