"""Via processing of the transport layer (RFC 3261 §18.2.1, RFC 3581 §4) and the UDP size
rule (§18.1.1)."""

from __future__ import annotations

import re

from ..message import Request, Via
from ..net import Address

_RPORT_RE = re.compile(r";[ \t]*rport(?=[ \t]*(?:;|,|$))", re.IGNORECASE)
_RECEIVED_RE = re.compile(r";[ \t]*received[ \t]*=[ \t]*[^;,\s]*", re.IGNORECASE)

# §18.1.1: a request larger than this (path MTU unknown: 1500 minus 200) goes over TCP.
UDP_MTU_ALLOWANCE = 1300


def stamp_via(request: Request, source: Address) -> None:
    """Add ``received`` when the sent-by host is not the packet's source, and fill in an
    empty ``rport`` with the source port (then ``received`` is always added)."""
    via = request.top_via
    params = via.params
    wants_rport = "rport" in params and not params["rport"]
    host = via.host[1:-1] if via.host.startswith("[") else via.host
    if not wants_rport and host == source.host:
        return
    value = request.header_values("via")[0]
    stamped = dict(params)
    if wants_rport:
        value = _RPORT_RE.sub(f";rport={source.port}", value, count=1)
        stamped["rport"] = str(source.port)
    value = _RECEIVED_RE.sub("", value) + f";received={source.host}"
    stamped.pop("received", None)
    stamped["received"] = source.host
    # The stamped Via, as parsing ``value`` would give it: nothing to parse again.
    request.set_top_via(value, Via(via.transport, via.host, via.port, stamped, via.protocol))


def needs_congestion_control(size: int) -> bool:
    """§18.1.1: too large for UDP when the path MTU is unknown."""
    return size > UDP_MTU_ALLOWANCE
