"""Suite-wide settings: async tests run on uvloop, the endpoint's default loop on Linux."""

from __future__ import annotations

import asyncio

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
    uvloop = None

if uvloop is not None:
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
