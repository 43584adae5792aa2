"""Connection reuse (RFC 5923): the alias table.

A client that opens a TLS connection and puts ``alias`` in the Via of its requests offers
the server that connection for the requests the server sends back to it. The server takes
the offer only when the client proved it is the sent-by host: the certificate the client
presented (validated by the TLS layer) names that host (RFC 5923 §5.3, with the matching
rules of RFC 5922 §7.1: subjectAltName URI ``sip:host`` and DNS entries, IP address
entries for an IP sent-by, and the Common Name only when there is no subjectAltName).
The alias is then keyed by (transport, sent-by host, sent-by port) and lives as long as
the connection.

Plain TCP proves nothing about the peer, so aliases over TCP are off unless the endpoint
asks for them (``tcp=True``); even then the sent-by host must be the connection's source
address.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING

from ..errors import ParseError
from ..message import Request
from ..net import DEFAULT_PORTS

if TYPE_CHECKING:
    from .stream import Connection

log = logging.getLogger("sipstack.transport")

AliasKey = tuple[str, str, int]


def _normal_host(host: str) -> str:
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower().rstrip(".")


def certificate_names(cert: dict | None) -> tuple[set[str], set[str]]:
    """The DNS names and IP addresses a validated peer certificate (``getpeercert()``)
    vouches for (RFC 5922 §7.1)."""
    names: set[str] = set()
    addresses: set[str] = set()
    if not cert:
        return names, addresses
    san = cert.get("subjectAltName") or ()
    for kind, value in san:
        if kind == "DNS":
            names.add(value.lower().rstrip("."))
        elif kind == "URI" and value.lower().startswith(("sip:", "sips:")):
            # RFC 5922 §7.1: a SIP URI with only a host part names that domain.
            rest = value.split(":", 1)[1].split(";", 1)[0].split("?", 1)[0]
            if "@" in rest:
                continue  # a user's URI, not a domain's
            if rest.startswith("["):
                rest = rest[: rest.find("]") + 1]
            names.add(_normal_host(rest.split(":", 1)[0] if not rest.startswith("[") else rest))
        elif kind == "IP Address":
            try:
                addresses.add(str(ipaddress.ip_address(value.strip())))
            except ValueError:
                continue
    if not san:
        for rdn in cert.get("subject") or ():
            for key, value in rdn:
                if key == "commonName":
                    names.add(value.lower().rstrip("."))
    return names, addresses


def certificate_matches(cert: dict | None, host: str) -> bool:
    """Whether ``cert`` vouches for ``host`` (a DNS name or an IP literal). Wildcards are
    not honoured (RFC 5922 §7.2)."""
    names, addresses = certificate_names(cert)
    host = _normal_host(host)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host in names
    return host in addresses


class AliasTable:
    """Connections offered for reuse by their peers, by (transport, sent-by host, port)."""

    def __init__(self, *, tcp: bool = False) -> None:
        self._aliases: dict[AliasKey, Connection] = {}
        self._keys: dict[int, set[AliasKey]] = {}
        self.transports: frozenset[str] = frozenset()
        self.tcp = tcp

    @property
    def tcp(self) -> bool:
        """Whether ``alias`` is honoured on plain TCP connections."""
        return "TCP" in self.transports

    @tcp.setter
    def tcp(self, value: bool) -> None:
        self.transports = frozenset({"TLS", "TCP"} if value else {"TLS"})

    def __len__(self) -> int:
        return len(self._aliases)

    def note(self, request: Request, connection: Connection) -> AliasKey | None:
        """Record ``connection`` under the sent-by of ``request``'s top Via when that Via
        has ``alias`` and the peer is entitled to it; the key recorded, else None."""
        if connection.outbound or connection.transport_name not in self.transports:
            return None  # only a connection the peer opened is offered by it
        try:
            via = request.via[0]
            if "alias" not in via.params:
                return None
        except (ParseError, IndexError):
            return None
        transport = connection.transport_name
        if via.transport.upper() != transport:
            return None
        host = _normal_host(via.host)
        if transport == "TLS":
            if not certificate_matches(connection.peer_certificate, host):
                log.info(
                    "%r: alias for %s refused: the peer's certificate does not name it", connection, via.host
                )
                return None
        elif host != _normal_host(connection.remote.host):
            log.info("%r: TCP alias for %s refused: not the source address", connection, via.host)
            return None
        key = (transport, host, via.port or DEFAULT_PORTS[transport])
        previous = self._aliases.get(key)
        if previous is connection:
            return key
        if previous is not None:
            self._keys.get(previous.id, set()).discard(key)
        self._aliases[key] = connection
        self._keys.setdefault(connection.id, set()).add(key)
        log.debug("%r: alias %s:%s:%d", connection, *key)
        return key

    def find(self, transport: str, host: str, port: int, *, identity: str | None = None) -> Connection | None:
        """The open connection aliased to ``transport:host:port``, if any. ``identity``: the
        domain the request is for (the host TLS would verify); a TLS alias is then used only
        if the peer's certificate names it too (RFC 5923 on virtual servers: another domain at
        the same address is another peer, with a connection of its own)."""
        connection = self._aliases.get((transport, _normal_host(host), port))
        if connection is None or connection.closed:
            return None
        if (
            identity is not None
            and transport == "TLS"
            and not certificate_matches(connection.peer_certificate, identity)
        ):
            return None
        return connection

    def discard(self, connection: Connection) -> None:
        """Forget the aliases of a connection that closed."""
        for key in self._keys.pop(connection.id, ()):
            if self._aliases.get(key) is connection:
                del self._aliases[key]
