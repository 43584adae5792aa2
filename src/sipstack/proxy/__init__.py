"""The transaction-stateful proxy (RFC 3261 §16)."""

from .core import Branch, Proxy, ResponseContext, Target
from .routing import add_record_route, detect_loop, loop_hash, preprocess_routes, record_route_uri

__all__ = [
    "Branch",
    "Proxy",
    "ResponseContext",
    "Target",
    "add_record_route",
    "detect_loop",
    "loop_hash",
    "preprocess_routes",
    "record_route_uri",
]
