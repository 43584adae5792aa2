"""The routing hook: a Python function, named in the configuration as
``routing = "package.module:function"``, that sees each request the proxy is about to
route (after the RFC 3261 §16.3 checks and route pre-processing) and decides — Kamailio's
routing script, in Python::

    from sipstack.server.hook import Forward, Reply, redirect

    def route(call):
        if call.method == "INVITE" and call.to_user == "echo":
            return Reply(486, "Busy Here")
        if call.to_user.startswith("+1"):
            return Forward("sip:gateway.example.net;transport=tcp")
        if call.to_user == "old":
            return redirect("sip:new@example.org")
        return None          # the default: location service, or the Request-URI

The function may be a coroutine function. ``Authenticate()`` demands the caller's digest
credentials (407) and then continues with the default routing. An exception in the
function is logged and answered 500.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..message import Request, SipURI
from ..net import Address


@dataclass(slots=True)
class Forward:
    """Proxy the request to these URIs (forked in parallel)."""

    targets: list[str]

    def __init__(self, *targets: str) -> None:
        self.targets = list(targets)


@dataclass(slots=True)
class Reply:
    """Answer the request with this status (and headers)."""

    status: int
    reason: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class Authenticate:
    """Require digest credentials from the caller (407), then route by default."""


def redirect(*contacts: str, status: int = 302) -> Reply:
    """A 3xx with these Contacts (RFC 3261 §21.3)."""
    return Reply(status, None, [("Contact", f"<{contact}>") for contact in contacts])


Decision = Forward | Reply | Authenticate | None


class Call:
    """What the routing function sees of a request."""

    __slots__ = ("request", "source")

    def __init__(self, request: Request, source: Address) -> None:
        self.request = request
        self.source = source

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def ruri(self) -> str:
        return self.request.uri_text

    @property
    def from_user(self) -> str:
        uri = self.request.from_.uri
        return (uri.user or "") if isinstance(uri, SipURI) else ""

    @property
    def from_domain(self) -> str:
        uri = self.request.from_.uri
        return uri.host.lower() if isinstance(uri, SipURI) else ""

    @property
    def to_user(self) -> str:
        uri = self.request.uri
        return (uri.user or "") if isinstance(uri, SipURI) else ""

    @property
    def to_domain(self) -> str:
        uri = self.request.uri
        return uri.host.lower() if isinstance(uri, SipURI) else ""

    def header(self, name: str) -> str | None:
        return self.request.header(name)

    def header_values(self, name: str) -> list[str]:
        return self.request.header_values(name)


RoutingFunction = Callable[[Call], Decision | Awaitable[Decision]]


def load_routing(spec: str) -> RoutingFunction:
    """Import ``module:function``; a clear error when it is not there."""
    module_name, _, function_name = spec.partition(":")
    if os.getcwd() not in sys.path:  # like uvicorn's --app-dir ".": modules next to the config
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"routing: cannot import {module_name!r}: {exc}") from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ImportError(f"routing: {module_name!r} has no function {function_name!r}")
    return function


__all__ = ["Authenticate", "Call", "Decision", "Forward", "Reply", "load_routing", "redirect"]
