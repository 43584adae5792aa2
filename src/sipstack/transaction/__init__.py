"""The transaction layer (RFC 3261 §17 with RFC 6026, RFC 4320), sans-I/O."""

from .base import MAGIC_COOKIE, State, Transaction, new_branch, new_tag, random_hex, response_address
from .client import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ClientTransaction,
    make_ack,
    make_cancel,
)
from .events import (
    RequestReceived,
    ResponseReceived,
    SendMessage,
    TransactionEvent,
    TransactionTerminated,
    TransactionTimeout,
    TransactionTransportError,
)
from .server import ServerInviteTransaction, ServerNonInviteTransaction, ServerTransaction
from .table import TransactionLayer, client_key, server_key
from .timers import DEFAULT_TIMERS, TimerConfig

__all__ = [
    "DEFAULT_TIMERS",
    "MAGIC_COOKIE",
    "ClientInviteTransaction",
    "ClientNonInviteTransaction",
    "ClientTransaction",
    "RequestReceived",
    "ResponseReceived",
    "SendMessage",
    "ServerInviteTransaction",
    "ServerNonInviteTransaction",
    "ServerTransaction",
    "State",
    "TimerConfig",
    "Transaction",
    "TransactionEvent",
    "TransactionLayer",
    "TransactionTerminated",
    "TransactionTimeout",
    "TransactionTransportError",
    "client_key",
    "make_ack",
    "make_cancel",
    "new_branch",
    "new_tag",
    "random_hex",
    "response_address",
    "server_key",
]
