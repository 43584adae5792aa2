"""What every transaction shares, and the transaction-layer helpers of RFC 3261 §17–§18."""

from __future__ import annotations

import enum
import os
from typing import TYPE_CHECKING, Any, ClassVar

from ..message import Request
from ..net import DEFAULT_PORTS, Address, strip_brackets
from .events import SendMessage, TransactionTerminated

if TYPE_CHECKING:
    from .table import TransactionLayer

MAGIC_COOKIE = "z9hG4bK"


class _RandomPool:
    """Bytes from the OS's cryptographic generator, fetched 4 KiB at a time: a proxy needs
    a few random bytes per message, and one getrandom() call per message was a measurable
    share of its time. A forked worker starts with a fresh pool (never its parent's)."""

    def __init__(self) -> None:
        self._data = b""
        self._at = 0
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self._data = b""
        self._at = 0

    def hex(self, n: int) -> str:
        at = self._at
        if at + n > len(self._data):
            self._data = os.urandom(max(4096, n))
            at = 0
        self._at = at + n
        return self._data[at : at + n].hex()


random_hex = _RandomPool().hex
"""``random_hex(n)``: the hex text of ``n`` cryptographically random bytes."""


def new_branch() -> str:
    """A branch unique across space and time, with the RFC 3261 magic cookie (§8.1.1.7)."""
    return MAGIC_COOKIE + random_hex(10)


def new_tag() -> str:
    """A From/To tag with at least 32 bits of randomness (RFC 3261 §19.3)."""
    return random_hex(6)


class State(enum.Enum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    ACCEPTED = "Accepted"  # RFC 6026
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


class Transaction:
    """A transaction of the table that created it. ``user_data`` is the TU's to use."""

    __slots__ = ("address", "key", "layer", "method", "reliable", "request", "state", "user_data")
    kind: ClassVar[str] = ""
    TIMERS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, layer: TransactionLayer, key: tuple, request: Request, address: Address) -> None:
        self.layer = layer
        self.key = key
        self.request: Request | None = request
        """The request; released (None) once the transaction has its final response, so that
        the many transactions waiting out Timers J, K, D, I, L and M hold no parsed messages."""
        self.method = request.method
        self.address = address
        self.reliable = address.reliable
        self.state = State.TRYING
        self.user_data: Any = None

    @property
    def branch(self) -> str:
        return self.key[0]

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def _send(self, data: bytes) -> None:
        self.layer._events.append(SendMessage(data, self.address, self))

    def _start(self, name: str, delay: float, now: float) -> None:
        self.layer.deadlines.set_after(now, delay, self, name)

    def _start_wait(self, name: str, delay: float, now: float) -> None:
        """A timer that only ends the transaction (D, I, J, K, L, M: the time left to absorb
        retransmissions): it may fire a little late — up to the layer's ``wait_grid``, and
        never more than a sixteenth of ``delay`` — and then shares a wake-up with others."""
        grid = self.layer.wait_grid
        self.layer.deadlines.set_after(now, delay, self, name, min(grid, delay / 16) if grid else 0.0)

    def _stop(self, *names: str) -> None:
        self.layer.deadlines.cancel_all(self, names)

    def _release(self) -> None:
        """Drop the parsed messages: what is left to do needs only bytes already built."""
        self.request = None

    def _terminate(self) -> None:
        if self.state is State.TERMINATED:
            return
        self.state = State.TERMINATED
        self.layer.deadlines.cancel_all(self, self.TIMERS)
        self.layer._forget(self)
        self.layer._events.append(TransactionTerminated(self))

    def on_timer(self, name: str, now: float) -> None:  # pragma: no cover - subclasses
        raise NotImplementedError

    def on_transport_error(self, now: float) -> None:  # pragma: no cover - subclasses
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.key[0]} {self.state.value}>"


def response_address(request: Request, source: Address) -> Address:
    """Where responses to ``request`` go (RFC 3261 §18.2.2, RFC 3581 §4).

    On a stream the response goes back over the connection the request came on
    (``source.connection``); host and port are where to connect should it be gone: the
    ``received`` address and the sent-by port.
    """
    via = request.top_via
    port = via.port or DEFAULT_PORTS.get(via.transport, 5060)
    if source.reliable:
        return Address(source.transport, source.host, port, source.connection)
    maddr = via.maddr
    if maddr is not None:
        return Address(source.transport, strip_brackets(maddr), port)
    if "rport" in via.params:
        return Address(source.transport, source.host, source.port)
    return Address(source.transport, source.host, port)
