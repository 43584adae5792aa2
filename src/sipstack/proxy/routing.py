"""Route processing of a proxy: §16.4 pre-processing, §16.6 Record-Route (RFC 5658), loop
detection (§16.3 step 4) — pure functions over messages and the proxy's identity."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from ..message import Request, SipURI
from ..net import Address
from ..transaction import MAGIC_COOKIE, random_hex

IsLocal = Callable[[str, int | None], bool]


def is_own_uri(uri: object, is_local: IsLocal) -> bool:
    """A URI this proxy put in a Record-Route (its host:port, no user part)."""
    return isinstance(uri, SipURI) and uri.user is None and is_local(uri.host, uri.port)


def preprocess_routes(request: Request, is_local: IsLocal) -> int:
    """RFC 3261 §16.4 with RFC 5658 §3.4: a Request-URI that is ours came from a strict
    router (replace it with the last Route); then pop every leading Route that is ours (two
    of them when this proxy double record-routed). Returns how many Routes of ours went."""
    popped = 0
    if not request.has_header("route"):
        return 0
    if is_own_uri(request.uri, is_local):
        routes = request.header_values("route")
        last = routes[-1]
        uri_text = last[last.index("<") + 1 : last.index(">")] if "<" in last else last
        request.uri = uri_text
        _drop_last_route(request, len(routes))
        popped += 1
    routes = request.route
    ours = 0
    while ours < len(routes) and is_own_uri(routes[ours].uri, is_local):
        ours += 1
    for _ in range(ours):
        request.pop_value("route")
    return popped + ours


def _drop_last_route(request: Request, count: int) -> None:
    values = request.header_values("route")[: count - 1]
    request.remove_header("route")
    for value in values:
        request.add_header("Route", value)


def record_route_uri(local: Address) -> str:
    """The URI this proxy record-routes with on ``local`` (RFC 3261 §16.6 step 4; lr)."""
    transport = "" if local.transport == "UDP" else f";transport={local.transport.lower()}"
    scheme = "sips" if local.transport == "TLS" else "sip"
    return f"<{scheme}:{local.host_port}{transport};lr>"


def add_record_route(request: Request, incoming: Address | None, outgoing: Address | None) -> None:
    """§16.6 step 4; RFC 5658 §3.2: when the request leaves on another transport or IP family
    than it came on, two entries — the outgoing interface on top, the incoming one below —
    so each side of the dialog reaches this proxy on its own side."""
    if outgoing is None:
        return
    if incoming is not None and incoming != outgoing:
        request.prepend_header("Record-Route", record_route_uri(incoming))
    request.prepend_header("Record-Route", record_route_uri(outgoing))


def loop_hash(request: Request) -> str:
    """The part of a branch that identifies a request as this proxy received it (§16.6 step
    8): equal on a looped request, different on a legitimate spiral (retargeted). Made of
    the Request-URI and the From, To, Call-ID, CSeq, Route and Proxy-Require lines as
    written — one pass over the lines, nothing parsed (a loop brings them back unchanged)."""
    parts = [request.uri_text]
    parts += [line for key, line in zip(request._keys, request._lines, strict=True) if key in _LOOP_LINES]
    return hashlib.blake2s("\x00".join(parts).encode(), digest_size=8).hexdigest()


_LOOP_LINES = frozenset(("from", "to", "call-id", "cseq", "route", "proxy-require"))


def proxy_branch(request: Request, index: int) -> str:
    """A branch for a forwarded copy: the magic cookie, the loop hash and the branch index,
    plus randomness so that retries never collide (§16.6 step 8)."""
    return f"{MAGIC_COOKIE}{loop_hash(request)}.{index}{random_hex(3)}"


def detect_loop(request: Request, is_local: IsLocal) -> bool:
    """§16.3 step 4: a Via of ours whose branch carries this request's loop hash."""
    current = None
    # A request straight from its UAC has one Via: the one already parsed for matching.
    for via in request.via if request.has_second_via() else (request.top_via,):
        if not is_local(via.host, via.port):
            continue
        branch = via.branch or ""
        if not branch.startswith(MAGIC_COOKIE):
            continue
        if current is None:
            current = loop_hash(request)
        if branch[len(MAGIC_COOKIE) :].split(".", 1)[0] == current:
            return True
    return False
