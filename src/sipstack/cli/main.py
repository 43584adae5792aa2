"""``sipstack`` command: sub-commands for operators.

Exit codes follow sipsak's convention: 0 success, 1 the SIP answer was a failure, 2 a
local or usage error, 3 a remote or network error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..message import ParseError, Request, parse
from .admin import register_commands as register_admin
from .admin import run_async
from .serve import register_command as register_serve
from .tools import register_commands as register_tools

EXIT_OK, EXIT_SIP_FAILURE, EXIT_LOCAL_ERROR, EXIT_REMOTE_ERROR = 0, 1, 2, 3


def _cmd_parse(args: argparse.Namespace) -> int:
    """Check captured messages: print a summary, or the status a server would answer."""
    worst = EXIT_OK
    for name in args.files:
        try:
            if name == "-":
                data = sys.stdin.buffer.read()
            else:
                with open(name, "rb") as handle:
                    data = handle.read()
        except OSError as exc:
            print(f"{name}: {exc.strerror}", file=sys.stderr)
            return EXIT_LOCAL_ERROR
        if args.crlf:
            data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        try:
            msg = parse(data, strict=not args.lenient)
        except ParseError as exc:
            print(f"{name}: invalid: {exc.status_code} {exc.reason}")
            worst = EXIT_SIP_FAILURE
            continue
        kind = f"{msg.method} {msg.uri}" if isinstance(msg, Request) else f"{msg.status_code} {msg.reason}"
        print(f"{name}: valid: {kind}; Call-ID {msg.call_id}; CSeq {msg.cseq}; {len(msg.body)} body bytes")
        if args.verbose:
            for header_name, value in msg.header_items():
                print(f"  {header_name}: {value}")
    return worst


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sipstack", description="SIP stack and server tools.")
    parser.add_argument("--version", action="version", version=f"sipstack {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("parse", help="check SIP messages saved in files ('-' for stdin)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--lenient", action="store_true", help="check only what a proxy relies on")
    p.add_argument("--crlf", action="store_true", help="convert bare LF line ends to CRLF first")
    p.add_argument("-v", "--verbose", action="store_true", help="print every header")
    p.set_defaults(func=_cmd_parse)
    register_serve(sub)
    register_admin(sub)
    register_tools(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_LOCAL_ERROR
    if hasattr(args, "async_func"):
        return run_async(args)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
