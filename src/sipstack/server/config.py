"""Server configuration: defaults, then the TOML file, then command-line flags.

Every field has a default that works on a fresh machine (the embedded default: UDP and TCP
on 127.0.0.1:5060, SQLite in ``./sipstack-data``, domain ``localhost``/``127.0.0.1``).
Errors name the TOML key that is wrong.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from ..transport.base import ListenSpec

DEFAULT_DATA_DIR = "sipstack-data"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    listen: tuple[str, ...] = ("udp:127.0.0.1:5060", "tcp:127.0.0.1:5060")
    """Where to listen: ``udp:HOST:PORT``, ``tcp:…``, ``tls:…``, ``ws:…``, ``wss:…``."""
    domains: tuple[str, ...] = ("localhost", "127.0.0.1")
    """Domains this server is responsible for (registrar and, later, proxy)."""
    data_dir: str = DEFAULT_DATA_DIR
    """Where the SQLite database and the nonce secret live."""
    auth: bool = True
    """Require digest authentication for REGISTER (RFC 3261 §22)."""
    realm: str = ""
    """Digest realm for every domain; default: each domain is its own realm."""
    algorithms: tuple[str, ...] = ("SHA-512-256", "SHA-256", "MD5")
    """Digest algorithms offered, most preferred first (RFC 8760)."""
    nonce_lifetime: int = 300
    """Seconds a digest nonce stays fresh; after that the answer is 401 with stale=true."""
    max_failures: int = 10
    """Failed authentications per source address and per user within a minute before 403."""
    min_expires: int = 60
    max_expires: int = 7200
    default_expires: int = 3600
    tls_cert: str = ""
    """PEM certificate chain for ``tls:`` listeners."""
    tls_key: str = ""
    tls_ca: str = ""
    """CA bundle to verify peers (client certificates and outgoing TLS)."""
    tls_verify_client: bool = False
    """Require a client certificate on ``tls:`` listeners (mutual TLS)."""
    tls_alias: bool = False
    """Connection reuse over TLS (RFC 5923): ask peers for a client certificate (optional
    unless ``tls_verify_client``) verified against ``tls_ca``, reuse a connection a peer
    opened with ``alias`` in its Via for requests to its sent-by when its certificate names
    that host, and offer the TLS connections this server opens the same way."""
    tcp_alias: bool = False
    """Honour ``alias`` (RFC 5923) on plain TCP connections too, for a sent-by that is the
    connection's source address. Plain TCP proves nothing about the peer: off by default."""
    record_route: bool = True
    """Stay on the path of dialogs (RFC 3261 §16.6 step 4)."""
    timer_c: float = 180.0
    """Seconds an INVITE branch may ring without a final response (§16.6 step 11)."""
    auth_calls: bool = False
    """Require digest authentication (407, RFC 3261 §22.3) of requests from local users."""
    routing: str = ""
    """A Python routing function, ``module:function`` (see ``sipstack.server.hook``)."""
    workers: int = 1
    """Worker processes sharing the listening ports (SO_REUSEPORT)."""
    default_route: str = ""
    """Next hop (a SIP URI) for requests outside the served domains; empty: RFC 3263."""
    outbound_edge: bool = False
    """Act as an RFC 5626 edge proxy: keep the flows of UAs registering through this server
    (a flow token in the Path), route requests carrying its tokens over those flows."""
    flow_timer: int = 0
    """Keep-alive interval (seconds) asked of outbound UAs in the registrar's 200 (the
    Flow-Timer header, RFC 5626 §4.4); 0: none, UAs use their defaults."""
    udp_read_pause: float = 8.0
    """Milliseconds a UDP socket rests after a wake-up that did not fill its batch, so that
    the next one reads more at once: less CPU per message at moderate rates, at most this
    much added latency; 0: read at every wake-up."""
    gc_young_interval: float = 1.0
    """Seconds between collections of the young generation (``sipstack.server.collector``)."""
    gc_full_interval: float = 3600.0
    """Seconds between full garbage collections (each a pause that grows with the live
    state); 0: never."""
    log_level: str = "info"
    user_agent: str = "sipstack"

    def validate(self) -> ServerConfig:
        for spec in self.listen:
            try:
                ListenSpec.parse(spec)
            except ValueError as exc:
                raise ConfigurationError(f"listen: {exc}") from None
        unknown = set(self.algorithms) - {"SHA-512-256", "SHA-256", "MD5"}
        if unknown or not self.algorithms:
            raise ConfigurationError(
                f"auth.algorithms: choose among SHA-512-256, SHA-256, MD5 (got {unknown or 'none'})"
            )
        if self.workers < 1:
            raise ConfigurationError("workers: at least 1")
        if self.workers > 1 and any(ListenSpec.parse(s).port == 0 for s in self.listen):
            raise ConfigurationError("workers: several workers share a port, so listen ports cannot be 0")
        if not 0 <= self.udp_read_pause <= 100:
            raise ConfigurationError("udp.read_pause: 0 to 100 milliseconds")
        if not 0.05 <= self.gc_young_interval <= 60:
            raise ConfigurationError("gc.young_interval: 0.05 to 60 seconds")
        if self.gc_full_interval < 0:
            raise ConfigurationError("gc.full_interval: 0 (never) or a number of seconds")
        if self.timer_c < 1:
            raise ConfigurationError("proxy.timer_c: at least 1 second")
        if self.default_route:
            from ..message import ParseError, parse_uri

            try:
                scheme = parse_uri(self.default_route).scheme
            except ParseError as exc:
                raise ConfigurationError(f"proxy.default_route: {exc.reason}") from None
            if scheme not in ("sip", "sips"):
                raise ConfigurationError("proxy.default_route: a sip: or sips: URI is needed")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ConfigurationError(
                f"log_level: one of debug, info, warning, error (got {self.log_level!r})"
            )
        if self.auth_calls and not self.auth:
            raise ConfigurationError("proxy.auth_calls: needs authentication on (auth.enabled)")
        if self.routing and ":" not in self.routing:
            raise ConfigurationError("routing: expected module:function")
        if not self.domains:
            raise ConfigurationError("domains: at least one domain is needed")
        if self.outbound_edge and self.workers > 1:
            raise ConfigurationError(
                "outbound.edge: a flow is a connection of one process; needs workers = 1"
            )
        if self.flow_timer < 0:
            raise ConfigurationError("outbound.flow_timer: 0 (none) or a number of seconds")
        if not 1 <= self.min_expires <= self.default_expires <= self.max_expires:
            raise ConfigurationError("registrar: need 1 <= min_expires <= default_expires <= max_expires")
        if any(ListenSpec.parse(s).transport in ("TLS", "WSS") for s in self.listen) and not (
            self.tls_cert and self.tls_key
        ):
            raise ConfigurationError("tls: a tls: or wss: listener needs tls.cert and tls.key")
        if self.tls_alias and not (self.tls_cert and self.tls_key):
            raise ConfigurationError(
                "tls.alias: connection reuse needs tls.cert and tls.key (the certificate that "
                "proves this server's name to its peers, RFC 5923)"
            )
        if self.tcp_alias and not any(ListenSpec.parse(s).transport == "TCP" for s in self.listen):
            raise ConfigurationError("tcp.alias: needs a tcp: listener to accept connections on")
        return self


# TOML layout → field names.
_SECTIONS = {
    "registrar": {"min_expires", "max_expires", "default_expires"},
    "auth": {
        "enabled": "auth",
        "realm": "realm",
        "algorithms": "algorithms",
        "nonce_lifetime": "nonce_lifetime",
        "max_failures": "max_failures",
    },
    "proxy": {
        "record_route": "record_route",
        "timer_c": "timer_c",
        "auth_calls": "auth_calls",
        "default_route": "default_route",
        "routing": "routing",
    },
    "outbound": {"edge": "outbound_edge", "flow_timer": "flow_timer"},
    "tls": {
        "cert": "tls_cert",
        "key": "tls_key",
        "ca": "tls_ca",
        "verify_client": "tls_verify_client",
        "alias": "tls_alias",
    },
    "tcp": {"alias": "tcp_alias"},
    "udp": {"read_pause": "udp_read_pause"},
    "gc": {"young_interval": "gc_young_interval", "full_interval": "gc_full_interval"},
}


def _from_toml(data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(ServerConfig)}
    out: dict[str, Any] = {}
    where: dict[str, str] = {}  # field → the TOML key it came from, for error messages
    for key, value in data.items():
        if key in _SECTIONS and isinstance(value, dict):
            mapping = _SECTIONS[key]
            for sub, sub_value in value.items():
                target = mapping.get(sub) if isinstance(mapping, dict) else (sub if sub in mapping else None)
                if target is None:
                    raise ConfigurationError(f"{key}.{sub}: unknown setting")
                out[target] = sub_value
                where[target] = f"{key}.{sub}"
        elif key in names and not any(key in _section_fields(s) for s in _SECTIONS):
            out[key] = value
            where[key] = key
        else:
            raise ConfigurationError(f"{key}: unknown setting")
    defaults = ServerConfig()
    for key, value in out.items():
        name = where[key]
        default = getattr(defaults, key)
        if isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigurationError(f"{name}: expected a list of strings")
            out[key] = tuple(value)
        elif isinstance(default, bool) or isinstance(value, bool):
            if not (isinstance(default, bool) and isinstance(value, bool)):
                raise ConfigurationError(f"{name}: expected {type(default).__name__}, got {value!r}")
        elif isinstance(default, float) and isinstance(value, int):
            out[key] = float(value)
        elif not isinstance(value, type(default)):
            raise ConfigurationError(f"{name}: expected {type(default).__name__}, got {value!r}")
    return out


def _section_fields(section: str) -> set[str]:
    mapping = _SECTIONS[section]
    return set(mapping.values()) if isinstance(mapping, dict) else set(mapping)


def load_config(path: str | Path | None = None, **overrides: Any) -> ServerConfig:
    """Defaults ← TOML file (if given) ← ``overrides`` (flags that were set; None = unset)."""
    config = ServerConfig()
    if path is not None:
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except OSError as exc:
            raise ConfigurationError(f"cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{path}: {exc}") from None
        config = replace(config, **_from_toml(data))
    set_flags = {k: v for k, v in overrides.items() if v is not None}
    for key, value in set_flags.items():
        if isinstance(value, list):
            set_flags[key] = tuple(value)
    return replace(config, **set_flags).validate()


__all__ = ["DEFAULT_DATA_DIR", "ServerConfig", "load_config"]
