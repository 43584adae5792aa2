"""RFC 3263 server location against a real DNS server (dnslib on 127.0.0.1, UDP and TCP)."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from dnslib import AAAA, NAPTR, QTYPE, RCODE, RR, SOA, SRV, A, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

from sipstack.errors import SipError
from sipstack.message import parse_uri
from sipstack.net import Address
from sipstack.transport.resolver import ResolveError, Resolver, SrvRecord, order_srv

ZONE = "example.test."
_SOA = SOA("ns.example.test.", "hostmaster.example.test.", (1, 3600, 600, 86400, 60))


class Zone(BaseResolver):
    """Records from an in-memory zone; every query is logged as ``(name, type, protocol)``.

    An unknown name is NXDOMAIN, a known name without the type an empty NOERROR; both carry
    the SOA so that resolvers can cache the negative answer. Over UDP, replies above 512
    bytes are truncated (TC set), so that a client has to retry over TCP.
    """

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[RR]] = {}
        self.queries: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()

    def add(self, name: str, rtype: str, rdata: object, ttl: int = 300) -> None:
        name = name.rstrip(".").lower() + "."
        rr = RR(name, getattr(QTYPE, rtype), rdata=rdata, ttl=ttl)
        with self.lock:
            self.records.setdefault((name, rtype), []).append(rr)

    def a(self, name: str, *addresses: str) -> None:
        for address in addresses:
            self.add(name, "AAAA" if ":" in address else "A", AAAA(address) if ":" in address else A(address))

    def srv(self, name: str, priority: int, weight: int, port: int, target: str) -> None:
        self.add(name, "SRV", SRV(priority, weight, port, target))

    def naptr(self, name: str, order: int, pref: int, service: str, repl: str, flags: str = "S") -> None:
        self.add(name, "NAPTR", NAPTR(order, pref, flags.encode(), service.encode(), b"", repl))

    def types_queried(self) -> list[str]:
        with self.lock:
            return [qtype for _, qtype, _ in self.queries]

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        qname = str(request.q.qname).lower()
        qtype = QTYPE[request.q.qtype]
        reply = request.reply()
        with self.lock:
            self.queries.append((qname.rstrip("."), qtype, handler.protocol))
            answers = list(self.records.get((qname, qtype), ()))
            known = any(name == qname or name.endswith("." + qname) for name, _ in self.records)
        for rr in answers:
            reply.add_answer(rr)
        if not answers:
            if not known:
                reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(RR(ZONE, QTYPE.SOA, rdata=_SOA, ttl=60))
        if handler.protocol == "udp" and len(reply.pack()) > 512:
            reply = request.reply()  # question kept, no records, TC set (RFC 1035 §4.1.1)
            reply.header.tc = 1
        return reply


class DnsServer:
    """A :class:`Zone` served over UDP and TCP on one free port of 127.0.0.1."""

    def __init__(self) -> None:
        self.zone = Zone()
        logger = DNSLogger("-recv,-send,-request,-reply,-truncated,-error,-data", logf=lambda _: None)
        for _ in range(20):
            self.udp = DNSServer(self.zone, address="127.0.0.1", port=0, logger=logger)
            self.port: int = self.udp.server.server_address[1]
            try:
                self.tcp = DNSServer(self.zone, address="127.0.0.1", port=self.port, tcp=True, logger=logger)
                break
            except OSError:
                self.udp.server.server_close()
        else:
            raise RuntimeError("no free port for both UDP and TCP")
        for server in (self.udp, self.tcp):  # a short poll interval keeps shutdown() quick
            threading.Thread(target=server.server.serve_forever, args=(0.01,), daemon=True).start()

    def stop(self) -> None:
        for server in (self.udp, self.tcp):
            server.stop()
            server.server.server_close()


# --- tests ---------------------------------------------------------------------------------


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    server = DnsServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """The port of a UDP socket on 127.0.0.1 that never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.fixture
def zone(dns_server: DnsServer) -> Zone:
    return dns_server.zone


@pytest.fixture
def make(dns_server: DnsServer) -> Callable[..., Resolver]:
    def make(**kwargs: object) -> Resolver:
        return Resolver(["127.0.0.1"], port=dns_server.port, **kwargs)  # type: ignore[arg-type]

    return make


def chain(zone: Zone) -> None:
    """NAPTR → SRV → A/AAAA for example.test, the NAPTRs out of order in the zone."""
    zone.naptr("example.test", 20, 10, "SIP+D2U", "_sip._udp.example.test")
    zone.naptr("example.test", 10, 10, "SIP+D2T", "_sip._tcp.example.test")
    zone.naptr("example.test", 30, 10, "SIPS+D2T", "_sips._tcp.example.test")
    zone.srv("_sip._udp.example.test", 10, 0, 5060, "udp1.example.test")
    zone.srv("_sip._tcp.example.test", 10, 0, 5070, "tcp1.example.test")
    zone.srv("_sips._tcp.example.test", 10, 0, 5061, "tls1.example.test")
    zone.a("udp1.example.test", "192.0.2.20")
    zone.a("tcp1.example.test", "2001:db8::10", "192.0.2.10")
    zone.a("tls1.example.test", "192.0.2.30")
    zone.a("example.test", "192.0.2.1")


UDP20 = Address("UDP", "192.0.2.20", 5060)
TCP10 = [Address("TCP", "192.0.2.10", 5070), Address("TCP", "2001:db8::10", 5070)]
TLS30 = Address("TLS", "192.0.2.30", 5061, server_name="example.test")  # RFC 5922 §7.3: the URI's domain


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sip:192.0.2.1", Address("UDP", "192.0.2.1", 5060)),
        ("sip:alice@192.0.2.1:5070;transport=TCP", Address("TCP", "192.0.2.1", 5070)),
        ("sip:[2001:DB8::1]", Address("UDP", "2001:db8::1", 5060)),
        ("sip:[2001:db8::1]:5080;transport=tls", Address("TLS", "2001:db8::1", 5080)),
        ("sips:192.0.2.1", Address("TLS", "192.0.2.1", 5061)),
        ("sips:[2001:db8::1];transport=tcp", Address("TLS", "2001:db8::1", 5061)),
        ("sip:bob@example.test;maddr=192.0.2.99", Address("UDP", "192.0.2.99", 5060)),
        ("sip:bob@example.test:5099;maddr=[2001:db8::99]", Address("UDP", "2001:db8::99", 5099)),
    ],
)
async def test_numeric_targets_need_no_dns(make, zone: Zone, uri: str, expected: Address) -> None:
    chain(zone)
    assert await make().resolve(uri) == [expected]
    assert await make().resolve(parse_uri(uri)) == [expected]
    assert zone.queries == []


async def test_maddr_hostname_replaces_the_host(make, zone: Zone) -> None:
    chain(zone)
    zone.a("proxy.example.test", "192.0.2.50")
    assert await make().resolve("sips:bob@example.test;maddr=proxy.example.test") == [
        Address("TLS", "192.0.2.50", 5061, server_name="proxy.example.test")
    ]
    assert {name for name, _, _ in zone.queries} >= {"proxy.example.test"}
    assert all(name.endswith("proxy.example.test") for name, _, _ in zone.queries)


async def test_explicit_port_means_address_records_only(make, zone: Zone) -> None:
    chain(zone)
    assert await make().resolve("sip:example.test:5080") == [Address("UDP", "192.0.2.1", 5080)]
    assert await make().resolve("sips:example.test:5081") == [
        Address("TLS", "192.0.2.1", 5081, server_name="example.test")
    ]
    assert await make().resolve("sip:example.test:5080;transport=tcp") == [Address("TCP", "192.0.2.1", 5080)]
    assert set(zone.types_queried()) == {"A", "AAAA"}


async def test_transport_param_queries_srv_of_that_transport_only(make, zone: Zone) -> None:
    chain(zone)
    assert await make().resolve("sip:example.test;transport=tcp") == TCP10
    assert await make().resolve("sips:example.test;transport=tcp") == [TLS30]
    srv = [name for name, qtype, _ in zone.queries if qtype == "SRV"]
    assert srv == ["_sip._tcp.example.test", "_sips._tcp.example.test"]
    assert "NAPTR" not in zone.types_queried()


async def test_transport_param_without_srv_uses_default_port(make, zone: Zone) -> None:
    zone.a("example.test", "192.0.2.1")
    assert await make().resolve("sip:example.test;transport=tcp") == [Address("TCP", "192.0.2.1", 5060)]
    assert await make().resolve("sip:example.test;transport=tls") == [
        Address("TLS", "192.0.2.1", 5061, server_name="example.test")
    ]


async def test_naptr_srv_address_chain_in_naptr_order(make, zone: Zone) -> None:
    chain(zone)
    assert await make().resolve("sip:alice@example.test") == [*TCP10, UDP20, TLS30]
    assert zone.queries[0][:2] == ("example.test", "NAPTR")
    assert not any(name == "example.test" and qtype == "A" for name, qtype, _ in zone.queries)


async def test_naptr_filtered_by_supported_and_by_sips(make, zone: Zone) -> None:
    chain(zone)
    assert await make(supported=("UDP",)).resolve("sip:example.test") == [UDP20]
    assert await make(supported=("udp", "TCP")).resolve("sip:example.test") == [*TCP10, UDP20]
    assert await make().resolve("sips:example.test") == [TLS30]
    with pytest.raises(ResolveError, match="no supported transport"):
        await make(supported=("UDP", "TCP")).resolve("sips:example.test")


async def test_naptr_with_other_flags_or_services_is_ignored(make, zone: Zone) -> None:
    zone.naptr("example.test", 5, 10, "SIP+D2S", "_sip._sctp.example.test")
    zone.naptr("example.test", 6, 10, "SIP+D2U", "!^.*$!sip:x@example.test!", flags="U")
    zone.naptr("example.test", 7, 10, "E2U+sip", "_sip._udp.example.test")
    zone.srv("_sip._sctp.example.test", 10, 0, 5060, "sctp.example.test")
    zone.srv("_sip._tcp.example.test", 10, 0, 5070, "tcp1.example.test")
    zone.a("tcp1.example.test", "192.0.2.10")
    # No usable NAPTR: SRV per supported transport (RFC 3263 §4.1).
    assert await make().resolve("sip:example.test") == [Address("TCP", "192.0.2.10", 5070)]


async def test_no_naptr_falls_back_to_srv_in_supported_order(make, zone: Zone) -> None:
    chain(zone)
    del zone.records[("example.test.", "NAPTR")]
    assert await make().resolve("sip:example.test") == [UDP20, *TCP10, TLS30]
    assert await make(supported=("TLS", "TCP", "UDP")).resolve("sip:example.test") == [TLS30, *TCP10, UDP20]
    assert await make().resolve("sips:example.test") == [TLS30]
    srv = [name for name, qtype, _ in zone.queries if qtype == "SRV"]
    assert srv[:3] == ["_sip._udp.example.test", "_sip._tcp.example.test", "_sips._tcp.example.test"]


async def test_no_srv_falls_back_to_address_records(make, zone: Zone) -> None:
    zone.a("example.test", "2001:db8::1", "192.0.2.1")
    v4, v6 = ("192.0.2.1", 5060), ("2001:db8::1", 5060)
    assert await make().resolve("sip:example.test") == [Address("UDP", *v4), Address("UDP", *v6)]
    assert await make(prefer_ipv6=True).resolve("sip:example.test") == [
        Address("UDP", *v6),
        Address("UDP", *v4),
    ]
    assert await make().resolve("sips:example.test") == [
        Address("TLS", "192.0.2.1", 5061, server_name="example.test"),
        Address("TLS", "2001:db8::1", 5061, server_name="example.test"),
    ]
    assert await make(supported=("TCP",)).resolve("sip:example.test") == [
        Address("TCP", *v4),
        Address("TCP", *v6),
    ]


async def test_aaaa_only_target(make, zone: Zone) -> None:
    zone.srv("_sip._udp.example.test", 10, 0, 5062, "v6.example.test")
    zone.a("v6.example.test", "2001:db8::62")
    assert await make().resolve("sip:example.test") == [Address("UDP", "2001:db8::62", 5062)]


def priorities(zone: Zone) -> None:
    zone.srv("_sip._udp.example.test", 10, 60, 5060, "a.example.test")
    zone.srv("_sip._udp.example.test", 10, 40, 5060, "b.example.test")
    zone.srv("_sip._udp.example.test", 5, 0, 5060, "c.example.test")
    zone.srv("_sip._udp.example.test", 20, 0, 5060, "d.example.test")
    for index, name in enumerate("abcd", 1):
        zone.a(f"{name}.example.test", f"192.0.2.{index}")


async def test_srv_priority_then_seeded_weights(make, zone: Zone) -> None:
    priorities(zone)
    orders = set()
    for seed in range(12):
        first = [a.host for a in await make(rng=random.Random(seed)).resolve("sip:example.test")]
        again = [a.host for a in await make(rng=random.Random(seed)).resolve("sip:example.test")]
        assert first == again
        assert first[0] == "192.0.2.3" and first[3] == "192.0.2.4"
        orders.add(tuple(first[1:3]))
    assert orders == {("192.0.2.1", "192.0.2.2"), ("192.0.2.2", "192.0.2.1")}


async def test_srv_weights_are_proportional(make, zone: Zone) -> None:
    zone.srv("_sip._udp.example.test", 10, 60, 5060, "a.example.test")
    zone.srv("_sip._udp.example.test", 10, 40, 5060, "b.example.test")
    zone.a("a.example.test", "192.0.2.1")
    zone.a("b.example.test", "192.0.2.2")
    resolver = make(rng=random.Random(2782))
    draws = 2000
    firsts = [(await resolver.resolve("sip:example.test"))[0].host for _ in range(draws)]
    share = firsts.count("192.0.2.1") / draws
    assert 0.55 < share < 0.65, share
    assert len(zone.queries) <= 10  # dnspython's LRUCache answered the rest (TTLs, negative SOA)


def test_order_srv_directly() -> None:
    records = [SrvRecord(1, 0, 5060, "z"), SrvRecord(0, 0, 5060, "y"), SrvRecord(1, 0, 5060, "x")]
    assert [r.target for r in order_srv(records, random.Random(0))] == ["y", "z", "x"]
    weighted = [SrvRecord(0, 0, 1, "zero"), SrvRecord(0, 100, 1, "heavy")]
    counts = Counter(order_srv(weighted, random.Random(seed))[0].target for seed in range(500))
    assert counts["heavy"] > 450 and counts["zero"] >= 1


async def test_duplicates_removed_and_dot_target_skipped(make, zone: Zone) -> None:
    zone.srv("_sip._udp.example.test", 10, 0, 5060, "a.example.test")
    zone.srv("_sip._udp.example.test", 20, 0, 5060, "a.example.test")
    zone.srv("_sip._udp.example.test", 30, 0, 5060, ".")
    zone.a("a.example.test", "192.0.2.1")
    assert await make().resolve("sip:example.test") == [Address("UDP", "192.0.2.1", 5060)]


async def test_srv_dot_means_decidedly_unavailable(make, zone: Zone) -> None:
    zone.srv("_sip._udp.example.test", 0, 0, 0, ".")
    zone.a("example.test", "192.0.2.1")
    with pytest.raises(ResolveError):
        await make(supported=("UDP",)).resolve("sip:example.test")


async def test_truncated_answer_is_retried_over_tcp(make, zone: Zone) -> None:
    many = [f"192.0.2.{i}" for i in range(1, 61)]
    zone.a("big.example.test", *many)
    assert [a.host for a in await make().resolve("sip:big.example.test:5060")] == many
    assert ("big.example.test", "A", "tcp") in zone.queries


async def test_nxdomain_raises(make, zone: Zone) -> None:
    chain(zone)
    with pytest.raises(ResolveError, match=r"nowhere\.test"):
        await make().resolve("sip:nowhere.test")
    assert zone.types_queried() == ["NAPTR"]
    with pytest.raises(ResolveError, match=r"nowhere\.test"):
        await make().resolve("sip:nowhere.test:5060;transport=tcp")


async def test_unanswered_queries_time_out(silent_server: int) -> None:
    resolver = Resolver(["127.0.0.1"], port=silent_server, timeout=0.5)
    start = time.monotonic()
    with pytest.raises(ResolveError, match="timeout"):
        await resolver.resolve("sip:example.test")
    assert time.monotonic() - start < 1.5


async def test_hosts_override(make, zone: Zone) -> None:
    zone.srv("_sip._udp.example.test", 10, 0, 5070, "pbx.internal")
    resolver = make(hosts={"PBX.internal.": ["10.0.0.5", "fd00::5"]})
    assert await resolver.resolve("sip:pbx.internal") == [
        Address("UDP", "10.0.0.5", 5060),
        Address("UDP", "fd00::5", 5060),
    ]
    assert zone.queries == []
    assert await resolver.resolve("sip:example.test") == [
        Address("UDP", "10.0.0.5", 5070),
        Address("UDP", "fd00::5", 5070),
    ]
    assert not any(name == "pbx.internal" for name, _, _ in zone.queries)


async def test_localhost_needs_no_dns_configuration() -> None:
    assert await Resolver().resolve("sips:localhost") == [
        Address("TLS", "127.0.0.1", 5061, server_name="localhost"),
        Address("TLS", "::1", 5061, server_name="localhost"),
    ]
    assert await Resolver(prefer_ipv6=True).resolve("sip:localhost:5090;transport=tcp") == [
        Address("TCP", "::1", 5090),
        Address("TCP", "127.0.0.1", 5090),
    ]


async def test_the_cache_answers_repeated_lookups(make, zone: Zone) -> None:
    chain(zone)
    resolver = make()
    first = await resolver.resolve("sip:example.test")
    seen = len(zone.queries)
    assert await resolver.resolve("sip:example.test") == first
    assert len(zone.queries) == seen


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("tel:+15551234567", "non-SIP"),
        ("sip:192.0.2.1;transport=sctp", "not supported"),
        ("sips:192.0.2.1;transport=udp", "cannot use transport=udp"),
    ],
)
async def test_unusable_uris(make, zone: Zone, uri: str, message: str) -> None:
    with pytest.raises(ResolveError, match=message):
        await make().resolve(uri)
    assert zone.queries == []
    assert issubclass(ResolveError, SipError)
