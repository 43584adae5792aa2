"""The in-memory store: dictionaries, for tests and single-process servers without a disk.

Nothing survives the process. :meth:`MemoryStore.update` is atomic within the process
because it never awaits between reading and writing an AoR's bindings (the event loop
cannot switch tasks there). It is not safe to share one object between threads.

Values are copied on the way in and out, so that a caller mutating what it passed or got
back (or an updater mutating ``current`` and then raising) cannot change the store.
"""

from __future__ import annotations

from dataclasses import replace

from .base import Binding, BindingUpdater, User


def _copy_user(user: User) -> User:
    return replace(user, ha1=dict(user.ha1))


def _copy_binding(binding: Binding, aor: str | None = None) -> Binding:
    return replace(binding, aor=binding.aor if aor is None else aor, path=list(binding.path))


def binding_order(binding: Binding) -> tuple[float, float, str, str]:
    """Sort key of :meth:`bindings`: q descending (unspecified ranks as 1.0), then the most
    recently updated first, then by contact and by key so that the order is total."""
    q = 1.0 if binding.q is None else binding.q
    return (-q, -binding.updated_at, binding.contact, binding.key)


def prepare_bindings(aor: str, bindings: list[Binding], now: float) -> list[Binding]:
    """What :meth:`update` stores from an updater's result: copies filed under ``aor``,
    without those already expired at ``now``, in :func:`binding_order`.

    Raises :class:`ValueError` if a key appears twice (one binding per contact, or per
    instance and reg-id for outbound registrations: :attr:`Binding.key`)."""
    result: list[Binding] = []
    seen: set[str] = set()
    for binding in bindings:
        key = binding.key
        if key in seen:
            raise ValueError(f"updater returned binding {key!r} twice for {aor}")
        seen.add(key)
        if binding.expires_at > now:
            result.append(_copy_binding(binding, aor))
    result.sort(key=binding_order)
    return result


class MemoryStore:
    """A :class:`~sipstack.storage.base.Store` in dictionaries."""

    def __init__(self) -> None:
        self._users: dict[str, User] = {}
        self._by_login: dict[tuple[str, str], set[str]] = {}
        self._bindings: dict[str, list[Binding]] = {}

    # Users.

    async def get_user(self, aor: str) -> User | None:
        user = self._users.get(aor)
        return None if user is None else _copy_user(user)

    async def find_user(self, username: str, realm: str) -> User | None:
        aors = self._by_login.get((username, realm))
        if not aors:
            return None
        return _copy_user(self._users[min(aors)])

    async def put_user(self, user: User) -> None:
        self._forget_login(user.aor)
        self._users[user.aor] = _copy_user(user)
        self._by_login.setdefault((user.username, user.realm), set()).add(user.aor)

    async def remove_user(self, aor: str) -> bool:
        if aor not in self._users:
            return False
        self._forget_login(aor)
        del self._users[aor]
        return True

    async def list_users(self) -> list[User]:
        return [_copy_user(self._users[aor]) for aor in sorted(self._users)]

    def _forget_login(self, aor: str) -> None:
        old = self._users.get(aor)
        if old is None:
            return
        key = (old.username, old.realm)
        aors = self._by_login.get(key)
        if aors is not None:
            aors.discard(aor)
            if not aors:
                del self._by_login[key]

    # Bindings.

    def _current(self, aor: str, now: float) -> list[Binding]:
        return [b for b in self._bindings.get(aor, ()) if b.expires_at > now]

    async def bindings(self, aor: str, now: float) -> list[Binding]:
        return [_copy_binding(b) for b in self._current(aor, now)]

    async def update(self, aor: str, updater: BindingUpdater, now: float) -> list[Binding]:
        # No await from here to the end: no other task can interleave.
        current = [_copy_binding(b) for b in self._current(aor, now)]
        new = prepare_bindings(aor, list(updater(current)), now)
        if new:
            self._bindings[aor] = new
        else:
            self._bindings.pop(aor, None)
        return [_copy_binding(b) for b in new]

    async def all_bindings(self, now: float) -> list[Binding]:
        return [_copy_binding(b) for aor in sorted(self._bindings) for b in self._current(aor, now)]

    async def purge_expired(self, now: float) -> int:
        removed = 0
        for aor in list(self._bindings):
            kept = self._current(aor, now)
            removed += len(self._bindings[aor]) - len(kept)
            if kept:
                self._bindings[aor] = kept
            else:
                del self._bindings[aor]
        return removed

    async def close(self) -> None:
        """Nothing to release; the data stays readable."""
