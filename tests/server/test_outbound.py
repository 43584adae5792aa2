"""SIP Outbound (RFC 5626) and public GRUUs (RFC 5627) across three kinds of process: a UA
(plain TCP sockets in this test, one per flow; it accepts no connections), two
``sipstack serve`` edge proxies (``[outbound] edge = true``, ``--default-route`` to the
registrar) and a ``sipstack serve`` registrar. A caller (a UDP socket) sends requests to the
AoR at the registrar; they must come to the UA over one of its flows — one branch per
instance, the most recently registered flow first, the next flow when one is gone (430 from
its edge, or the edge unreachable) — and over the GRUU's instance only. A first hop that
is no outbound edge gets the REGISTER a 439; the registrations outlive a ``kill -9`` of the
registrar (SQLite). Every process is killed by PID on teardown."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sipkit import HOST, ServeProcess, UdpClient, free_port, new_id, register, sip_request

from sipstack.message import Request, Response, SipURI, make_response, parse, parse_uri

DOMAIN = "example.com"
AOR = f"sip:alice@{DOMAIN}"
CALLER = f"sip:bob@{DOMAIN}"
UUID_A = "urn:uuid:6f3a8c2e-0d47-4b1e-9a55-1c0de0a11ce1"
UUID_B = "urn:uuid:6f3a8c2e-0d47-4b1e-9a55-1c0de0a11ce2"
WAIT = 5.0  # seconds: the bound on every wait for a message that must come
QUIET = 0.5  # seconds: how long a message that must not come is waited for

Serve = Callable[..., ServeProcess]


# -- the UA: one TCP socket per flow -----------------------------------------------------------


class UaFlow:
    """One flow of the UA: a TCP connection it opened to an edge proxy. Messages are framed
    by Content-Length; the UA never listens, so only this connection reaches it."""

    def __init__(self, port: int, instance: str) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=WAIT)
        self.port: int = self.sock.getsockname()[1]
        self.instance = instance
        self.buffer = b""
        self.closed = False
        self.path_uri = ""
        """The Path the edge added for this flow (echoed in the 200 of the REGISTER)."""

    @property
    def contact(self) -> str:
        return f"sip:alice@{HOST}:{self.port};transport=tcp;ob"

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _take(self) -> Request | Response | None:
        while True:
            self.buffer = self.buffer.lstrip(b"\r\n")  # keep-alive pongs
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return None
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() in (b"content-length", b"l"):
                    length = int(value.strip())
            if len(rest) < length:
                return None
            self.buffer = rest[length:]
            return parse(head + sep + rest[:length])

    def _fill(self) -> bool:
        try:
            chunk = self.sock.recv(65535)
        except OSError:
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self.buffer += chunk
        return True

    def read(self, timeout: float = WAIT) -> Request | Response | None:
        deadline = time.monotonic() + timeout
        while (message := self._take()) is None:
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return None
            ready, _, _ = select.select([self.sock], [], [], left)
            if ready and not self._fill():
                return None
        return message

    def final(self, timeout: float = WAIT) -> Response:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.read(left)
            if isinstance(message, Response) and message.status_code >= 200:
                return message
        raise AssertionError(f"no final response on flow {self.port}")

    def register(self, reg_id: int, *, cseq: int = 1, gruu: bool = True) -> Response:
        """REGISTER this flow (RFC 5626 §4.2): instance and reg-id, Supported outbound."""
        request = sip_request(
            "REGISTER",
            f"sip:{DOMAIN}",
            local_port=self.port,
            transport="TCP",
            from_uri=AOR,
            to_uri=AOR,
            call_id=f"reg-{self.instance[-4:]}-{reg_id}@ua",
            cseq=cseq,
            contact=f'<{self.contact}>;+sip.instance="<{self.instance}>";reg-id={reg_id}',
            headers=[("Supported", "outbound, path" + (", gruu" if gruu else "")), ("Expires", "600")],
        )
        self.send(request)
        response = self.final()
        if response.status_code == 200:
            paths = response.header_values("Path")
            self.path_uri = paths[-1] if paths else ""
        return response

    def answer(
        self, request: Request, status: int = 200, headers: list[tuple[str, str]] | None = None
    ) -> None:
        response = make_response(request, status, to_tag=new_id(), headers=headers or [])
        self.send(bytes(response))

    def close(self) -> None:
        self.sock.close()
        self.closed = True


def next_request(flows: list[UaFlow], timeout: float = WAIT) -> tuple[UaFlow, Request] | None:
    """The next request that reaches the UA, and the flow it came over (None after
    ``timeout``); responses and pongs are skipped."""
    deadline = time.monotonic() + timeout
    while True:
        for flow in flows:
            while (message := flow._take()) is not None:
                if isinstance(message, Request):
                    return flow, message
        open_flows = [f for f in flows if not f.closed]
        left = deadline - time.monotonic()
        if left <= 0 or not open_flows:
            return None
        ready, _, _ = select.select([f.sock for f in open_flows], [], [], left)
        for flow in open_flows:
            if flow.sock in ready:
                flow._fill()


# -- the caller: a UDP socket ------------------------------------------------------------------


def caller_final(caller: UdpClient, call_id: str, timeout: float = WAIT) -> Response:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        response = caller.receive(left)
        if response is not None and response.call_id == call_id and response.status_code >= 200:
            return response
    raise AssertionError(f"the caller got no final response for {call_id}")


def message_to(caller: UdpClient, ruri: str, text: str) -> tuple[bytes, str]:
    call_id = f"{new_id()}@caller"
    request = sip_request(
        "MESSAGE",
        ruri,
        local_port=caller.port,
        from_uri=CALLER,
        to_uri=AOR,
        call_id=call_id,
        body=text.encode(),
    )
    return request, call_id


def deliver(
    net: Network, ruri: str, flows: list[UaFlow], text: str, *, answer: bool = True
) -> tuple[list[UaFlow], Response]:
    """Send a MESSAGE from the caller to ``ruri`` at the registrar; each copy the UA gets is
    answered 200 (when ``answer``). Returns the flows it came over and the caller's final
    response; afterwards, no further copy comes within QUIET seconds."""
    request, call_id = message_to(net.caller, ruri, text)
    net.caller.send(request, net.registrar_port)
    seen: list[UaFlow] = []
    got = next_request(flows)
    assert got is not None, f"{text!r} did not reach the UA"
    while got is not None:
        flow, incoming = got
        assert incoming.method == "MESSAGE" and incoming.body == text.encode()
        seen.append(flow)
        if answer:
            flow.answer(incoming)
        got = next_request(flows, QUIET)
    return seen, caller_final(net.caller, call_id)


# -- the three processes ------------------------------------------------------------------------


@dataclass
class Network:
    registrar: ServeProcess
    registrar_port: int
    edges: list[ServeProcess]
    edge_ports: list[int]
    caller: UdpClient
    start_registrar: Callable[[], ServeProcess]


def listen_args(port: int) -> list[str]:
    return ["--listen", f"udp:{HOST}:{port}", "--listen", f"tcp:{HOST}:{port}"]


def start_edge(
    serve: Serve, tmp_path: Path, name: str, registrar_port: int, *, outbound: bool = True
) -> tuple:
    port = free_port()
    config = tmp_path / f"{name}.toml"
    config.write_text("[outbound]\nedge = true\n" if outbound else "[proxy]\nrecord_route = true\n")
    process = serve(
        "--config",
        str(config),
        *listen_args(port),
        "--domain",
        f"{name}.invalid",
        "--default-route",
        f"sip:{HOST}:{registrar_port};transport=tcp",
        "--no-auth",
        "--data-dir",
        str(tmp_path / name),
    )
    assert process.wait_options(port), process.log()
    return process, port


@pytest.fixture
def net(serve: Serve, tmp_path: Path) -> Iterator[Network]:
    registrar_port = free_port()
    config = tmp_path / "registrar.toml"
    config.write_text("[outbound]\nflow_timer = 90\n")

    def start_registrar() -> ServeProcess:
        process = serve(
            "--config",
            str(config),
            *listen_args(registrar_port),
            "--domain",
            DOMAIN,
            "--no-auth",
            "--data-dir",
            str(tmp_path / "registrar"),
        )
        assert process.wait_options(registrar_port), process.log()
        return process

    registrar = start_registrar()
    edge1, port1 = start_edge(serve, tmp_path, "edge1", registrar_port)
    edge2, port2 = start_edge(serve, tmp_path, "edge2", registrar_port)
    with UdpClient() as caller:
        yield Network(registrar, registrar_port, [edge1, edge2], [port1, port2], caller, start_registrar)


@pytest.fixture
def ua_flows() -> Iterator[Callable[[int, str], UaFlow]]:
    made: list[UaFlow] = []

    def make(port: int, instance: str = UUID_A) -> UaFlow:
        flow = UaFlow(port, instance)
        made.append(flow)
        return flow

    yield make
    for flow in made:
        flow.close()


def two_flows(net: Network, ua_flows: Callable[[int, str], UaFlow]) -> tuple[UaFlow, UaFlow]:
    """Instance A registers reg-id 1 through edge 1, then reg-id 2 through edge 2."""
    first = ua_flows(net.edge_ports[0], UUID_A)
    second = ua_flows(net.edge_ports[1], UUID_A)
    for reg_id, flow in ((1, first), (2, second)):
        response = flow.register(reg_id)
        assert response.status_code == 200, response.start_line()
        assert response.header_values("Require") == ["outbound"]
        assert response.header("Flow-Timer") == "90"
        path = parse_uri(flow.path_uri.strip("<>"))
        assert isinstance(path, SipURI)
        assert path.port == net.edge_ports[reg_id - 1] and "ob" in path.params and path.user
        time.sleep(0.05)  # distinct registration times: reg-id 2 is the most recent
    return first, second


# -- the tests ----------------------------------------------------------------------------------


def test_requests_arrive_over_a_flow_and_move_to_the_other_when_it_fails(
    net: Network, ua_flows: Callable[[int, str], UaFlow]
) -> None:
    first, second = two_flows(net, ua_flows)
    # One branch for the instance, over its most recent flow only.
    seen, response = deliver(net, AOR, [first, second], "one")
    assert seen == [second]
    assert response.status_code == 200
    # The UA loses flow 2: edge 2 answers 430 and the registrar moves to flow 1.
    second.close()
    time.sleep(0.2)  # let edge 2 notice the connection is gone
    seen, response = deliver(net, AOR, [first], "two")
    assert seen == [first]
    assert response.status_code == 200
    assert "430" not in response.start_line()


def test_the_edge_answers_430_for_a_gone_flow_and_403_for_a_tampered_token(
    net: Network, ua_flows: Callable[[int, str], UaFlow]
) -> None:
    first, second = two_flows(net, ua_flows)
    token_uri = second.path_uri.strip("<>")
    token = parse_uri(token_uri).user
    assert token

    def options_via(route: str) -> Response:
        request = sip_request(
            "OPTIONS",
            second.contact,
            local_port=net.caller.port,
            from_uri=CALLER,
            headers=[("Route", f"<{route}>")],
        )
        answer = net.caller.request(request, net.edge_ports[1], timeout=WAIT)
        assert answer is not None
        return answer

    tampered = token_uri.replace(token, token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB"))
    assert options_via(tampered).status_code == 403
    second.close()
    time.sleep(0.2)
    assert options_via(token_uri).status_code == 430
    # Flow 1 is untouched: its token still reaches the UA.
    request = sip_request(
        "OPTIONS",
        first.contact,
        local_port=net.caller.port,
        from_uri=CALLER,
        headers=[("Route", f"<{first.path_uri.strip('<>')}>")],
    )
    net.caller.send(request, net.edge_ports[0])
    got = next_request([first])
    assert got is not None and got[1].method == "OPTIONS"
    first.answer(got[1])
    assert caller_final(net.caller, got[1].call_id).status_code == 200


def test_an_unreachable_edge_moves_the_request_to_the_next_flow(
    net: Network, ua_flows: Callable[[int, str], UaFlow]
) -> None:
    first, second = two_flows(net, ua_flows)
    net.edges[1].kill_all()  # edge 2 (and so flow 2) is gone: the registrar cannot connect
    seen, response = deliver(net, AOR, [first, second], "after the edge died")
    assert seen == [first]
    assert response.status_code == 200


def test_a_gruu_reaches_only_its_instance_and_the_aor_each_instance_once(
    net: Network, ua_flows: Callable[[int, str], UaFlow]
) -> None:
    first, second = two_flows(net, ua_flows)
    other = ua_flows(net.edge_ports[0], UUID_B)
    response = other.register(1)
    assert response.status_code == 200
    gruus = {c.params.get("+sip.instance"): c.params.get("pub-gruu") for c in response.contact}
    assert gruus[f"<{UUID_A}>"] == f"{AOR};gr={UUID_A}"
    assert gruus[f"<{UUID_B}>"] == f"{AOR};gr={UUID_B}"
    everyone = [first, second, other]
    for uuid, flow in ((UUID_A, second), (UUID_B, other)):
        seen, answer = deliver(net, f"{AOR};gr={uuid}", everyone, f"for {uuid}")
        assert seen == [flow]
        assert answer.status_code == 200
    # The AoR forks once per instance (not once per flow).
    seen, answer = deliver(net, AOR, everyone, "for all")
    assert sorted(f.port for f in seen) == sorted([second.port, other.port])
    assert answer.status_code == 200
    # A GRUU of an instance that is not registered reaches nobody.
    request, call_id = message_to(net.caller, f"{AOR};gr=urn:uuid:00000000-0000-0000-0000-000000000000", "x")
    net.caller.send(request, net.registrar_port)
    assert caller_final(net.caller, call_id).status_code in (404, 480)
    assert next_request(everyone, QUIET) is None


def test_a_dialog_stays_on_the_flow_in_both_directions(
    net: Network, ua_flows: Callable[[int, str], UaFlow]
) -> None:
    """The INVITE comes over flow 2 record-routed with edge 2's token (§5.3); the caller's ACK
    follows the route set back over that flow, and the UA's BYE leaves over it too."""
    first, second = two_flows(net, ua_flows)
    call_id = f"{new_id()}@caller"
    invite = sip_request(
        "INVITE",
        AOR,
        local_port=net.caller.port,
        from_uri=CALLER,
        to_uri=AOR,
        call_id=call_id,
        contact=f"<sip:bob@{HOST}:{net.caller.port}>",
    )
    net.caller.send(invite, net.registrar_port)
    got = next_request([first, second])
    assert got is not None and got[0] is second and got[1].method == "INVITE"
    incoming = got[1]
    record_route = incoming.header_values("Record-Route")
    tokens = [parse_uri(v.strip("<>")) for v in record_route]
    assert any(isinstance(u, SipURI) and u.user and u.port == net.edge_ports[1] for u in tokens), record_route
    ok = make_response(
        incoming,
        200,
        to_tag="ua-tag",
        headers=[*[("Record-Route", v) for v in record_route], ("Contact", f"<{second.contact}>")],
    )
    second.send(bytes(ok))
    answer = caller_final(net.caller, call_id)
    assert answer.status_code == 200
    # The caller's ACK: Request-URI the UA's Contact, Route the reversed Record-Route.
    route_set = list(reversed(answer.header_values("Record-Route")))
    ack = "\r\n".join(
        [
            f"ACK {second.contact} SIP/2.0",
            f"Via: SIP/2.0/UDP {HOST}:{net.caller.port};branch=z9hG4bK{new_id()};rport",
            "Max-Forwards: 70",
            f"From: {answer.header('from')}",
            f"To: {answer.header('to')}",
            f"Call-ID: {call_id}",
            "CSeq: 1 ACK",
            *[f"Route: {r}" for r in route_set],
            "Content-Length: 0",
            "",
            "",
        ]
    ).encode()
    net.caller.send(ack, net.registrar_port)
    got = next_request([first, second])
    assert got is not None and got[0] is second and got[1].method == "ACK"
    # The UA hangs up: its BYE follows the route set (the Record-Route in order) over flow 2.
    bye = "\r\n".join(
        [
            f"BYE sip:bob@{HOST}:{net.caller.port} SIP/2.0",
            f"Via: SIP/2.0/TCP {HOST}:{second.port};branch=z9hG4bK{new_id()};rport",
            "Max-Forwards: 70",
            f"From: {answer.header('to')}",
            f"To: {answer.header('from')}",
            f"Call-ID: {call_id}",
            "CSeq: 1 BYE",
            *[f"Route: {r}" for r in record_route],
            "Content-Length: 0",
            "",
            "",
        ]
    ).encode()
    second.send(bye)
    request = caller_request(net, "BYE")
    assert request is not None, "the UA's BYE did not reach the caller"
    net.caller.send(bytes(make_response(request, 200)), net.registrar_port)
    assert second.final().status_code == 200


def caller_request(net: Network, method: str) -> Request | None:
    """The next ``method`` request to reach the caller's socket within WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while (left := deadline - time.monotonic()) > 0:
        net.caller.sock.settimeout(max(0.01, left))
        try:
            data, _ = net.caller.sock.recvfrom(65535)
        except TimeoutError:
            return None
        message = parse(data, strict=False)
        if isinstance(message, Request) and message.method == method:
            return message
    return None


def test_a_first_hop_without_outbound_gets_439(
    serve: Serve, tmp_path: Path, net: Network, ua_flows: Callable[[int, str], UaFlow]
) -> None:
    _plain_edge, port = start_edge(serve, tmp_path, "plain", net.registrar_port, outbound=False)
    flow = ua_flows(port, UUID_A)
    response = flow.register(1)
    assert response.status_code == 439
    assert response.reason == "First Hop Lacks Outbound Support"
    # No binding was made: the AoR has nobody to deliver to.
    request, call_id = message_to(net.caller, AOR, "nobody")
    net.caller.send(request, net.registrar_port)
    assert caller_final(net.caller, call_id).status_code in (404, 480)


def test_registrations_survive_a_registrar_kill_9(
    net: Network, ua_flows: Callable[[int, str], UaFlow]
) -> None:
    first, second = two_flows(net, ua_flows)
    net.registrar.kill_all()  # SIGKILL: only what SQLite made durable is left
    net.registrar = net.start_registrar()
    seen, response = deliver(net, AOR, [first, second], "after the restart")
    assert seen == [second]
    assert response.status_code == 200
    second.close()
    time.sleep(0.2)
    seen, response = deliver(net, AOR, [first], "and failing over")
    assert seen == [first]
    assert response.status_code == 200


def test_a_ua_registering_directly_is_reached_over_its_own_connections(
    net: Network, ua_flows: Callable[[int, str], UaFlow]
) -> None:
    """With no edge proxy the registrar is the first hop (§6): it keeps the flows itself and
    never opens a connection to the Contact (nobody listens there)."""
    first = ua_flows(net.registrar_port, UUID_A)
    second = ua_flows(net.registrar_port, UUID_A)
    for reg_id, flow in ((1, first), (2, second)):
        response = flow.register(reg_id)
        assert response.status_code == 200, response.start_line()
        assert response.header_values("Require") == ["outbound"]
        assert not response.has_header("Path")
        time.sleep(0.05)
    seen, response = deliver(net, AOR, [first, second], "direct")
    assert seen == [second] and response.status_code == 200
    second.close()
    time.sleep(0.2)
    seen, response = deliver(net, AOR, [first], "direct, failing over")
    assert seen == [first] and response.status_code == 200
    first.close()
    time.sleep(0.2)
    request, call_id = message_to(net.caller, AOR, "nobody left")
    net.caller.send(request, net.registrar_port)
    assert caller_final(net.caller, call_id).status_code == 480


def test_a_udp_flow_through_the_edge(net: Network) -> None:
    """Over UDP the flow is the UA's address and the edge's socket (§5.2): requests come back
    to the address the REGISTER came from, not to the Contact."""
    with UdpClient() as ua, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as elsewhere:
        elsewhere.bind((HOST, 0))  # the Contact: a socket that must get nothing
        contact_port = elsewhere.getsockname()[1]
        registration = sip_request(
            "REGISTER",
            f"sip:{DOMAIN}",
            local_port=ua.port,
            from_uri=AOR,
            to_uri=AOR,
            contact=f'<sip:alice@{HOST}:{contact_port};ob>;+sip.instance="<{UUID_B}>";reg-id=1',
            headers=[("Supported", "outbound, path"), ("Expires", "600")],
        )
        response = ua.request(registration, net.edge_ports[0], timeout=WAIT)
        assert response is not None and response.status_code == 200
        assert response.header_values("Require") == ["outbound"]
        request, call_id = message_to(net.caller, AOR, "over udp")
        net.caller.send(request, net.registrar_port)
        ua.sock.settimeout(WAIT)
        data, source = ua.sock.recvfrom(65535)
        incoming = parse(data)
        assert isinstance(incoming, Request) and incoming.method == "MESSAGE"
        assert source == (HOST, net.edge_ports[0])  # from the edge's socket of the flow
        ua.sock.sendto(bytes(make_response(incoming, 200, to_tag=new_id())), source)
        assert caller_final(net.caller, call_id).status_code == 200
        elsewhere.settimeout(QUIET)
        with pytest.raises(TimeoutError):
            elsewhere.recvfrom(65535)


def test_a_call_from_the_ua_is_record_routed_with_its_flow_token(
    net: Network, ua_flows: Callable[[int, str], UaFlow]
) -> None:
    """§5.3: a dialog-forming request from an outbound UA (``ob`` in its Contact) is
    record-routed by the edge with a token for the flow it came over, so the far end's
    requests in the dialog come back over that flow."""
    first, second = two_flows(net, ua_flows)
    bob = register(net.caller, net.registrar_port, "bob@example.com", f"sip:bob@{HOST}:{net.caller.port}")
    assert bob.status_code == 200
    call_id = f"{new_id()}@ua"
    invite = sip_request(
        "INVITE",
        CALLER,
        local_port=second.port,
        transport="TCP",
        from_uri=AOR,
        to_uri=CALLER,
        call_id=call_id,
        contact=f"<{second.contact}>",
    )
    second.send(invite)
    arrived = caller_request(net, "INVITE")
    assert arrived is not None, "the UA's INVITE did not reach bob"
    record_route = arrived.header_values("Record-Route")
    flow_token = [
        u
        for u in (parse_uri(v.strip("<>")) for v in record_route)
        if isinstance(u, SipURI) and u.user and u.port == net.edge_ports[1]
    ]
    assert flow_token, record_route
    ok = make_response(
        arrived,
        200,
        to_tag="bob-tag",
        headers=[
            *[("Record-Route", v) for v in record_route],
            ("Contact", f"<sip:bob@{HOST}:{net.caller.port}>"),
        ],
    )
    net.caller.send(bytes(ok), net.registrar_port)
    answer = second.final()
    assert answer.status_code == 200
    # Bob hangs up: his BYE follows his route set (the Record-Route reversed) to flow 2.
    bye = "\r\n".join(
        [
            f"BYE {second.contact} SIP/2.0",
            f"Via: SIP/2.0/UDP {HOST}:{net.caller.port};branch=z9hG4bK{new_id()};rport",
            "Max-Forwards: 70",
            f"From: {answer.header('to')}",
            f"To: {answer.header('from')}",
            f"Call-ID: {call_id}",
            "CSeq: 7 BYE",
            *[f"Route: {r}" for r in reversed(record_route)],
            "Content-Length: 0",
            "",
            "",
        ]
    ).encode()
    net.caller.send(bye, net.registrar_port)
    got = next_request([first, second])
    assert got is not None and got[0] is second and got[1].method == "BYE"
    second.answer(got[1])
    assert caller_final(net.caller, call_id).status_code == 200
