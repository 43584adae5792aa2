"""Locating SIP servers: RFC 3263 §4 (NAPTR → SRV → A/AAAA) over dnspython's asyncio resolver.

``await Resolver().resolve(uri)`` turns a SIP or SIPS URI into the ordered list of
:class:`~sipstack.net.Address` targets to try; on a failure with one target the caller
moves on to the next (RFC 3263 §4.3). Hosts are IP literals (IPv6 without brackets) and
transports upper-case ("UDP", "TCP", "TLS"). A TLS target resolved from a domain name
carries that name (``Address.server_name``: the host of the URI, not an SRV target —
RFC 5922 §7.3), so that the connection is verified against the domain, not the IP.
Nothing is cached here beyond dnspython's own :class:`dns.resolver.LRUCache`, which
honours the records' TTLs.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import random
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, NamedTuple, TypeVar

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver

from ..errors import SipError
from ..message import SipURI, parse_uri
from ..net import DEFAULT_PORTS, SECURE_TRANSPORTS, Address, strip_brackets

__all__ = ["ResolveError", "Resolver", "SrvRecord", "order_srv"]

_T = TypeVar("_T")

# NAPTR services (RFC 3263 §4.1, IANA registry of §9) and SRV prefixes (§4.2) per transport.
_NAPTR_SERVICES = {"SIP+D2U": "UDP", "SIP+D2T": "TCP", "SIPS+D2T": "TLS"}
_SRV_PREFIXES = {"UDP": "_sip._udp", "TCP": "_sip._tcp", "TLS": "_sips._tcp"}
# URI transport parameter → transport name ("tls" is RFC 3261's deprecated spelling).
_PARAM_TRANSPORTS = {"udp": "UDP", "tcp": "TCP", "tls": "TLS", "sctp": "SCTP", "ws": "WS", "wss": "WSS"}


class ResolveError(SipError):
    """A SIP URI that yields no target: unknown name, no usable transport, or a DNS failure."""


class SrvRecord(NamedTuple):
    """The parts of an SRV record (RFC 2782) that the ordering and the lookup need."""

    priority: int
    weight: int
    port: int
    target: str


def order_srv(records: Sequence[SrvRecord], rng: random.Random | None = None) -> list[SrvRecord]:
    """Order SRV records as RFC 2782 ("Usage rules") prescribes: by ascending priority, and
    within one priority by repeated weighted random selection — zero weights placed first, a
    uniform number in ``[0, total]`` picks the first record whose running sum reaches it."""
    rng = rng or random.Random()
    result: list[SrvRecord] = []
    for priority in sorted({record.priority for record in records}):
        pool = [r for r in records if r.priority == priority and r.weight == 0]
        pool += [r for r in records if r.priority == priority and r.weight != 0]
        while pool:
            pick = rng.randint(0, sum(r.weight for r in pool))
            running = 0
            for index, record in enumerate(pool):
                running += record.weight
                if running >= pick:
                    result.append(pool.pop(index))
                    break
    return result


@functools.lru_cache(maxsize=4096)
def _ip_literal(host: str) -> str | None:
    """The canonical text of a numeric IPv4/IPv6 host (brackets stripped), else None."""
    try:
        return str(ipaddress.ip_address(strip_brackets(host)))
    except ValueError:
        return None


def is_ip_literal(host: str) -> bool:
    """Whether ``host`` is a numeric IPv4 or IPv6 address (brackets allowed)."""
    return _ip_literal(host) is not None


def _key(name: str) -> str:
    return name.lower().rstrip(".")


def _named(targets: Iterable[Address], name: str | None) -> list[Address]:
    """``targets`` with the secure ones bound to the domain ``name`` they were resolved for."""
    if name is None:
        return list(targets)
    return [a._replace(server_name=name) if a.transport in SECURE_TRANSPORTS else a for a in targets]


class Resolver:
    """RFC 3263 §4 client-side server location.

    ``nameservers``/``port`` select the DNS servers (``None``: the system configuration,
    read on first use); ``timeout`` bounds each DNS query (a timeout is a
    :class:`ResolveError`); ``supported`` lists the transports this client can use, in
    order of preference; ``hosts`` maps names to addresses without DNS (like /etc/hosts;
    ``localhost`` is always known); ``rng`` drives the RFC 2782 weighted selection.
    """

    def __init__(
        self,
        nameservers: list[str] | None = None,
        port: int = 53,
        *,
        timeout: float = 2.0,
        supported: tuple[str, ...] = ("UDP", "TCP", "TLS"),
        prefer_ipv6: bool = False,
        hosts: dict[str, list[str]] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.nameservers = list(nameservers) if nameservers is not None else None
        self.port = port
        self.timeout = timeout
        self.supported = tuple(dict.fromkeys(t.upper() for t in supported))
        self.prefer_ipv6 = prefer_ipv6
        self.hosts = {"localhost": ["127.0.0.1", "::1"]}
        self.hosts.update({_key(name): list(addrs) for name, addrs in (hosts or {}).items()})
        self._rng = rng or random.Random()
        self._dns: dns.asyncresolver.Resolver | None = None

    # --- RFC 3263 §4.1 / §4.2 -------------------------------------------------------
    async def resolve(self, uri: SipURI | str) -> list[Address]:
        """The ordered, deduplicated targets for ``uri`` (RFC 3263 §4.1, §4.2 and §4.3)."""
        if isinstance(uri, str):
            parsed = parse_uri(uri)
            if not isinstance(parsed, SipURI):
                raise ResolveError(f"cannot locate a server for non-SIP URI {uri!r}")
            uri = parsed
        secure = uri.secure
        target = strip_brackets(uri.maddr or uri.host)  # §4: TARGET is maddr, else the host
        transport = self._param_transport(uri)
        numeric = _ip_literal(target)
        name = None if numeric else _key(target)  # the domain TLS verifies (RFC 5922 §7.3)
        static = [numeric] if numeric else self._static(target)
        if static is not None or uri.port is not None:
            # §4.1/§4.2: numeric TARGET, a hosts entry, or an explicit port — no NAPTR/SRV.
            transport = transport or self._default_transport(secure)
            port = uri.port or DEFAULT_PORTS[transport]
            addresses = static if static is not None else await self._addresses(target)
            if not addresses:
                raise ResolveError(f"cannot resolve {target!r}: no A or AAAA records")
            return _named(dict.fromkeys(Address(transport, host, port) for host in addresses), name)
        if transport is not None:
            # §4.2: transport given explicitly — SRV for that transport only.
            wanted = [transport]
            found, targets = await self._srv_chain(self._srv_lookups(wanted, target))
        else:
            wanted = [t for t in self.supported if t in _SRV_PREFIXES and (t == "TLS" or not secure)]
            if not wanted:
                raise ResolveError(f"no supported transport for {'sips' if secure else 'sip'}:{target}")
            found, targets = await self._naptr(target, wanted)
            if not targets:  # §4.1: no (usable) NAPTR records — SRV per supported transport
                found_srv, targets = await self._srv_chain(self._srv_lookups(wanted, target))
                found = found or found_srv
        if not found:
            # §4.2: no SRV records — A/AAAA of the name on the transport's default port.
            transport = transport or self._default_transport(secure)
            hosts = await self._addresses(target)
            targets = [Address(transport, host, DEFAULT_PORTS[transport]) for host in hosts]
        if not targets:
            raise ResolveError(f"cannot resolve {target!r}: no usable NAPTR, SRV, A or AAAA records")
        return _named(dict.fromkeys(targets), name)

    def _param_transport(self, uri: SipURI) -> str | None:
        """The transport the URI's ``transport`` parameter names; SIPS means TLS (RFC 3261 §26.2.2)."""
        param = uri.transport
        if param is None:
            return None
        transport = _PARAM_TRANSPORTS.get(param, param.upper())
        if uri.secure:
            if transport in ("WS", "WSS"):
                transport = "WSS"  # RFC 7118 §5.2: sips with transport=ws is WebSocket over TLS
            elif transport not in ("TCP", "TLS"):
                raise ResolveError(f"a sips URI cannot use transport={param}")
            else:
                transport = "TLS"
        if transport not in self.supported:
            raise ResolveError(f"transport {transport} (transport={param}) is not supported")
        return transport

    def _default_transport(self, secure: bool) -> str:
        """UDP for SIP, TLS for SIPS (RFC 3263 §4.1); the next supported one if UDP is not."""
        for transport in ("TLS",) if secure else ("UDP", "TCP", "TLS"):
            if transport in self.supported:
                return transport
        raise ResolveError(f"no supported transport for a {'sips' if secure else 'sip'} URI")

    @staticmethod
    def _srv_lookups(transports: list[str], name: str) -> list[tuple[str, str]]:
        return [(t, f"{_SRV_PREFIXES[t]}.{name}") for t in transports if t in _SRV_PREFIXES]

    async def _naptr(self, name: str, wanted: list[str]) -> tuple[bool, list[Address]]:
        """NAPTR records of ``name`` with flag "s" and a wanted service, by (order, preference),
        each followed to the SRV records of its replacement (RFC 3263 §4.1)."""
        records = await self._query(name, "NAPTR")
        if records is None:
            raise ResolveError(f"cannot resolve {name!r}: no such domain (NXDOMAIN)")
        usable = []
        for rr in records:
            transport = _NAPTR_SERVICES.get(rr.service.decode("ascii", "replace").upper())
            if rr.flags.lower() == b"s" and transport in wanted:
                usable.append((rr.order, rr.preference, transport, rr.replacement.to_text(True)))
        usable.sort(key=lambda item: item[:2])
        if not usable:
            return False, []
        return await self._srv_chain([(transport, replacement) for *_, transport, replacement in usable])

    # --- RFC 2782 / RFC 3263 §4.3 -----------------------------------------------------
    async def _srv_chain(self, lookups: list[tuple[str, str]]) -> tuple[bool, list[Address]]:
        """SRV records of each ``(transport, name)`` in turn, ordered per RFC 2782, then the
        addresses of every target. Returns whether any SRV record existed, and the targets."""
        answers = await self._gather([self._query(name, "SRV") for _, name in lookups])
        plan: list[tuple[str, SrvRecord]] = []
        for (transport, _), answer in zip(lookups, answers, strict=True):
            if isinstance(answer, BaseException):
                raise answer
            records = [SrvRecord(r.priority, r.weight, r.port, r.target.to_text(True)) for r in answer or ()]
            # A target of "." means the service is decidedly not available (RFC 2782).
            plan += [(transport, r) for r in order_srv(records, self._rng) if r.target != "."]
        found = any(answer for answer in answers)
        names = list(dict.fromkeys(record.target for _, record in plan))
        resolved = dict(zip(names, await self._gather([self._addresses(n) for n in names]), strict=True))
        targets = [
            Address(transport, host, record.port)
            for transport, record in plan
            if isinstance(hosts := resolved[record.target], list)
            for host in hosts
        ]
        errors = [result for result in resolved.values() if isinstance(result, BaseException)]
        if not targets and errors:
            raise errors[0]
        return found, targets

    # --- A / AAAA ---------------------------------------------------------------------
    def _static(self, name: str) -> list[str] | None:
        """The ``hosts`` entry for ``name`` as IP literals, IPv4 first unless ``prefer_ipv6``."""
        entry = self.hosts.get(_key(name))
        if entry is None:
            return None
        literals = [ip for ip in map(_ip_literal, entry) if ip]
        return sorted(literals, key=lambda ip: (":" in ip) != self.prefer_ipv6)

    async def _addresses(self, name: str) -> list[str]:
        """A and AAAA records of ``name`` (``hosts`` first), IPv4 first unless ``prefer_ipv6``."""
        static = self._static(name)
        if static is not None:
            return static
        v4, v6 = await self._gather([self._query(name, "A"), self._query(name, "AAAA")])
        families = [[str(r.address) for r in a] if isinstance(a, list) else [] for a in (v4, v6)]
        if self.prefer_ipv6:
            families.reverse()
        hosts = families[0] + families[1]
        if not hosts:
            for answer in (v4, v6):
                if isinstance(answer, BaseException):
                    raise answer
        return hosts

    # --- dnspython --------------------------------------------------------------------
    @staticmethod
    async def _gather(aws: list[Awaitable[_T]]) -> list[_T | BaseException]:
        """Await all concurrently; a ResolveError becomes a result, anything else propagates."""
        results = await asyncio.gather(*aws, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, ResolveError):
                raise result
        return results

    def _dns_resolver(self) -> dns.asyncresolver.Resolver:
        if self._dns is None:
            try:
                resolver = dns.asyncresolver.Resolver(configure=self.nameservers is None)
            except dns.exception.DNSException as exc:
                raise ResolveError(f"no DNS configuration: {exc}") from exc
            if self.nameservers is not None:
                resolver.nameservers = self.nameservers
                resolver.port = self.port
            resolver.timeout = resolver.lifetime = self.timeout
            resolver.cache = dns.resolver.LRUCache()
            self._dns = resolver
        return self._dns

    async def _query(self, name: str, rdtype: str) -> list[Any] | None:
        """The records of one query: ``[]`` when the name has none of that type, ``None`` when
        the name does not exist; a timeout or a failing server raises :class:`ResolveError`."""
        qname = dns.name.from_text(name)  # absolute: no search list
        try:
            answer = await self._dns_resolver().resolve(qname, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            return None
        except dns.resolver.NoAnswer:
            return []
        except dns.exception.Timeout as exc:
            raise ResolveError(f"DNS timeout resolving {name} {rdtype} after {self.timeout:g} s") from exc
        except dns.exception.DNSException as exc:
            raise ResolveError(f"DNS failure resolving {name} {rdtype}: {exc}") from exc
        return list(answer)
