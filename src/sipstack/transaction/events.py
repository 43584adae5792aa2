"""What the transaction layer hands to the layers around it.

``SendMessage`` goes to the transport; the others go to the transaction user (TU).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..message import Request, Response
from ..net import Address

if TYPE_CHECKING:
    from .base import Transaction


@dataclass(slots=True)
class SendMessage:
    """Bytes for the transport to send to ``address`` (``transaction`` may be None for
    stateless sends)."""

    data: bytes
    address: Address
    transaction: Transaction | None = None


@dataclass(slots=True)
class RequestReceived:
    """A new request for the TU. ``transaction`` is the server transaction that answers it;
    None for an ACK that matched no transaction (the ACK to a 2xx, RFC 3261 §17.1.1.3)."""

    request: Request
    source: Address
    transaction: Transaction | None


@dataclass(slots=True)
class ResponseReceived:
    """A response for the TU; ``transaction`` is None for a stray response (e.g. a 2xx
    retransmission after its client transaction ended, forwarded statelessly by proxies,
    RFC 6026 §7.1)."""

    response: Response
    source: Address
    transaction: Transaction | None


@dataclass(slots=True)
class TransactionTimeout:
    """Timer B, F or H fired (RFC 3261 §17): the transaction failed for lack of an answer."""

    transaction: Transaction
    timer: str


@dataclass(slots=True)
class TransactionTransportError:
    """The transport could not deliver a message of the transaction (RFC 3261 §17.1.4)."""

    transaction: Transaction


@dataclass(slots=True)
class TransactionTerminated:
    """The transaction reached Terminated and left the table."""

    transaction: Transaction


TransactionEvent = (
    SendMessage
    | RequestReceived
    | ResponseReceived
    | TransactionTimeout
    | TransactionTransportError
    | TransactionTerminated
)
