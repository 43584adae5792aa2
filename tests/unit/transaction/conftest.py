"""Fixtures of the transaction-layer tests; the builders and the clock are in ``txkit``."""

from __future__ import annotations

import pytest

from sipstack.transaction import TimerConfig, TransactionLayer


@pytest.fixture
def layer() -> TransactionLayer:
    """A layer with the RFC 3261 default timers (T1 0.5 s, T2 4 s, T4 5 s)."""
    return TransactionLayer()


@pytest.fixture
def fast() -> TimerConfig:
    """Scaled-down timers: T1 0.1 s, T2 0.4 s, T4 1 s."""
    return TimerConfig(T1=0.1, T2=0.4, T4=1.0)
