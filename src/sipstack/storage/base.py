"""Storage value types and interfaces (floor 1: imports nothing from sipstack).

The registrar and the proxy see users and bindings only through these Protocols; the
memory, SQLite and (later) Redis implementations are chosen by name
(:func:`sipstack.storage.open_store`). Every method is a coroutine so that a networked
store fits the same interface; the local ones do their work inline.

Times are seconds since the epoch (``time.time()``): bindings must outlive the process
(RFC 3261 §10.3 — a binding acknowledged with 200 OK survives a restart).

Common to every backend:

- A binding is expired at ``now`` when ``expires_at <= now``; expired bindings are never
  returned, whether or not :meth:`LocationStore.purge_expired` has removed them yet.
- Bindings are listed by q descending (an unspecified q ranks as 1.0 but is kept as
  ``None``), then most recently updated first, then by contact, then by key.
- Within an AoR a binding is identified by its :attr:`Binding.key`: the Contact URI, or for
  an RFC 5626 outbound registration its instance and reg-id (several flows of one UA may
  share a Contact URI).
- Values are copies: mutating a returned ``User`` or ``Binding`` (or one passed in) does not
  change the store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(slots=True)
class User:
    """A user who may register and place calls. Credentials are stored only as HA1 values,
    one per digest algorithm (RFC 7616 §3.4.2: H(username ":" realm ":" password)), never
    as the password itself."""

    aor: str
    """The address-of-record ``user@domain`` (lower-case domain), without scheme."""
    username: str
    """The digest username (usually the user part of the AoR)."""
    realm: str
    """The digest realm the HA1 values were computed for."""
    ha1: dict[str, str] = field(default_factory=dict)
    """Algorithm name ("MD5", "SHA-256", "SHA-512-256") → hex HA1."""


@dataclass(slots=True)
class Binding:
    """One contact address bound to an address-of-record (RFC 3261 §10.3)."""

    aor: str
    """``sip:user@domain`` in canonical form (RFC 3261 §10.3 step 5)."""
    contact: str
    """The Contact URI as the UA sent it."""
    expires_at: float
    """When the binding lapses (epoch seconds)."""
    call_id: str
    cseq: int
    q: float | None = None
    path: list[str] = field(default_factory=list)
    """Path header values (RFC 3327), in order, to be used as a Route set towards it."""
    instance: str | None = None
    """``+sip.instance`` (RFC 5626 §4.1), e.g. ``<urn:uuid:…>``."""
    reg_id: int | None = None
    """``reg-id`` (RFC 5626 §4.2)."""
    params: str = ""
    """Other Contact header parameters, as written (e.g. feature tags), to echo back."""
    source: str = ""
    """Where the REGISTER came from (``transport:host:port``; for NAT and Outbound)."""
    user_agent: str = ""
    updated_at: float = 0.0
    flow: str = ""
    """RFC 5626 §6: empty unless the binding is an outbound registration; then ``"path"`` when
    the first-hop edge proxy keeps the flow (its Path entry, the last, carries the flow
    token), else the flow the REGISTER reached this registrar on (``sipstack.flow.Flow``
    text form)."""

    @property
    def key(self) -> str:
        """What identifies the binding within its AoR: the Contact URI (RFC 3261 §10.3), or
        for an outbound registration the instance and reg-id (RFC 5626 §6)."""
        if self.flow and self.instance is not None and self.reg_id is not None:
            return f"{self.instance};reg-id={self.reg_id}"
        return self.contact

    def remaining(self, now: float) -> int:
        """Whole seconds left, rounded up: an unexpired binding never reads as 0 (which a UA
        would take for "removed", RFC 3261 §10.2.4)."""
        left = self.expires_at - now
        return max(0, -int(-left // 1)) if left > 0 else 0


BindingUpdater = Callable[[list[Binding]], list[Binding]]
"""Given the current, unexpired bindings of an AoR, return the bindings it must have now."""


class UserStore(Protocol):
    async def get_user(self, aor: str) -> User | None: ...

    async def find_user(self, username: str, realm: str) -> User | None:
        """The user authenticating as ``username`` in ``realm`` (both compared exactly; if
        several users share them, the first by AoR)."""
        ...

    async def put_user(self, user: User) -> None:
        """Add the user, or replace the one with the same ``aor``."""
        ...

    async def remove_user(self, aor: str) -> bool:
        """Delete the user (not its bindings); whether there was one."""
        ...

    async def list_users(self) -> list[User]:
        """Every user, ordered by AoR."""
        ...


class LocationStore(Protocol):
    async def bindings(self, aor: str, now: float) -> list[Binding]:
        """The unexpired bindings of ``aor``, in the listing order."""
        ...

    async def update(self, aor: str, updater: BindingUpdater, now: float) -> list[Binding]:
        """Atomically replace the unexpired bindings of ``aor`` by ``updater(current)`` and
        return the new set. Durable when it returns: the registrar answers 200 OK only
        then. Several processes may call it for the same AoR at once.

        ``updater`` is called once, with the current bindings in the listing order.
        What it returns is stored under ``aor`` (each binding's ``aor`` is set to it), less
        any binding already expired at ``now``; the result is in the listing order. If
        ``updater`` raises, nothing changes and the exception propagates; a contact
        returned twice (two bindings with one :attr:`Binding.key`) raises :class:`ValueError`,
        likewise changing nothing."""
        ...

    async def all_bindings(self, now: float) -> list[Binding]:
        """Every unexpired binding, ordered by AoR, then in the listing order."""
        ...

    async def purge_expired(self, now: float) -> int:
        """Delete lapsed bindings; how many were removed."""
        ...


class Store(UserStore, LocationStore, Protocol):
    """Users and bindings in one backend."""

    async def close(self) -> None:
        """Release the backend (idempotent); the object is not to be used afterwards."""
        ...
