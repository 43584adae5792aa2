"""RFC 3261 §17 timer values (Table 4 in RFC 3261 §A, with RFC 6026's L and M)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """Base timers in seconds; every transaction timer derives from them."""

    T1: float = 0.5
    """RTT estimate (RFC 3261 §17.1.1.1)."""
    T2: float = 4.0
    """Maximum retransmit interval for non-INVITE requests and INVITE responses."""
    T4: float = 5.0
    """Maximum duration a message remains in the network."""

    @property
    def A(self) -> float:  # INVITE request retransmit, doubling (unreliable only)
        return self.T1

    @property
    def B(self) -> float:  # INVITE transaction timeout
        return 64 * self.T1

    @property
    def D(self) -> float:  # wait for response retransmits (unreliable); 0 on reliable
        return max(32.0, 64 * self.T1)

    @property
    def E(self) -> float:  # non-INVITE request retransmit (unreliable only)
        return self.T1

    @property
    def F(self) -> float:  # non-INVITE transaction timeout
        return 64 * self.T1

    @property
    def G(self) -> float:  # INVITE final response retransmit (unreliable only)
        return self.T1

    @property
    def H(self) -> float:  # wait for ACK receipt
        return 64 * self.T1

    @property
    def I(self) -> float:  # noqa: E743 - the RFC's name; wait for ACK retransmits
        return self.T4

    @property
    def J(self) -> float:  # wait for non-INVITE request retransmits (unreliable)
        return 64 * self.T1

    @property
    def K(self) -> float:  # wait for response retransmits (unreliable)
        return self.T4

    @property
    def L(self) -> float:  # RFC 6026: wait for INVITE retransmits in Accepted
        return 64 * self.T1

    @property
    def M(self) -> float:  # RFC 6026: wait for 2xx retransmits in Accepted
        return 64 * self.T1

    @property
    def trying_nict(self) -> float:
        """RFC 4320 §4.1: a 100 to a non-INVITE request goes out over an unreliable
        transport only once the client's Timer E has reached T2 (T1 + 2T1 + 4T1 with the
        defaults), and must go out then if nothing else has."""
        return _trying_nict(self.T1, self.T2)


@lru_cache(maxsize=16)
def _trying_nict(t1: float, t2: float) -> float:
    # §17.1.2.2: E fires at T1, then after MIN(2*T1, T2), doubling until T2.
    total, interval = t1, 2 * t1
    while interval < t2:
        total += interval
        interval *= 2
    return total


DEFAULT_TIMERS = TimerConfig()
