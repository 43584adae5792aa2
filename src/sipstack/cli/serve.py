"""``sipstack serve``: run the server."""

from __future__ import annotations

import argparse
import logging
import sys

from ..endpoint import run
from ..errors import ConfigurationError
from ..server import Server, load_config
from ..server.workers import run_workers
from .admin import add_data_dir


def register_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the registrar/proxy server")
    p.add_argument(
        "--listen",
        action="append",
        metavar="PROTO:HOST:PORT",
        help="udp:, tcp: or tls: address to listen on (repeatable; default udp and tcp 127.0.0.1:5060)",
    )
    p.add_argument("--domain", action="append", metavar="D", help="a domain this server is responsible for")
    p.add_argument(
        "--default-route",
        metavar="SIP-URI",
        help="next hop for requests for other domains (default: RFC 3263)",
    )
    p.add_argument("--workers", type=int, metavar="N", help="worker processes sharing the ports (default 1)")
    p.add_argument("--config", "-f", metavar="FILE", help="TOML configuration file")
    p.add_argument(
        "--no-auth",
        dest="auth",
        action="store_const",
        const=False,
        help="accept REGISTER without authentication",
    )
    p.add_argument(
        "--auth-algorithms",
        metavar="LIST",
        help="digest algorithms to offer, most preferred first (default SHA-512-256,SHA-256,MD5; "
        "clients that only answer the first challenge, like SIPp, need MD5 first)",
    )
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="default: info")
    add_data_dir(p, config_file=True)
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    try:
        config = load_config(
            args.config,
            listen=args.listen,
            domains=args.domain,
            data_dir=args.data_dir,
            auth=args.auth,
            algorithms=args.auth_algorithms.split(",") if args.auth_algorithms else None,
            log_level=args.log_level,
            default_route=args.default_route,
            workers=args.workers,
        )
    except ConfigurationError as exc:
        print(f"sipstack serve: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, config.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if config.workers > 1:
            return run_workers(config)
        run(Server(config).run())
    except (OSError, ImportError) as exc:
        print(f"sipstack serve: cannot start: {exc}", file=sys.stderr)
        return 2
    return 0


__all__ = ["register_command"]
