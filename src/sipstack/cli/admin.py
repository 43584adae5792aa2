"""``sipstack user …`` and ``sipstack registrations``: operator commands on the data directory."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
import time
from pathlib import Path

from ..auth import ha1_all
from ..server.app import database_path, open_data_store
from ..server.config import DEFAULT_DATA_DIR
from ..storage import User

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def add_data_dir(parser: argparse.ArgumentParser, *, config_file: bool = False) -> None:
    """``--data-dir``; with ``config_file`` its default is left to the configuration file."""
    env = os.environ.get("SIPSTACK_DATA_DIR")
    parser.add_argument(
        "--data-dir",
        default=env if config_file else (env or DEFAULT_DATA_DIR),
        metavar="DIR",
        help=f"where users and registrations are kept (default: ./{DEFAULT_DATA_DIR}; env SIPSTACK_DATA_DIR)",
    )


def _split_aor(text: str) -> tuple[str, str]:
    text = text.removeprefix("sip:").removeprefix("sips:")
    user, at, domain = text.partition("@")
    if not at or not user or not domain:
        raise ValueError(f"expected USER@DOMAIN, got {text!r}")
    return user, domain.lower()


def _where(args: argparse.Namespace) -> str:
    return f"data directory {Path(args.data_dir).resolve()}"


async def _user_add(args: argparse.Namespace) -> int:
    try:
        username, domain = _split_aor(args.aor)
    except ValueError as exc:
        print(f"sipstack user add: {exc}", file=sys.stderr)
        return EXIT_USAGE
    password = args.password or os.environ.get("SIPSTACK_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            print("sipstack user add: give --password or set SIPSTACK_PASSWORD", file=sys.stderr)
            return EXIT_USAGE
        password = getpass.getpass(f"password for {username}@{domain}: ")
    realm = args.realm or domain
    store = open_data_store(args.data_dir)
    try:
        existed = await store.get_user(f"{username}@{domain}") is not None
        await store.put_user(
            User(f"{username}@{domain}", username, realm, ha1_all(username, realm, password))
        )
    finally:
        await store.close()
    print(f"{'updated' if existed else 'added'} {username}@{domain} (realm {realm}) in {_where(args)}")
    return EXIT_OK


async def _user_remove(args: argparse.Namespace) -> int:
    try:
        username, domain = _split_aor(args.aor)
    except ValueError as exc:
        print(f"sipstack user remove: {exc}", file=sys.stderr)
        return EXIT_USAGE
    store = open_data_store(args.data_dir)
    try:
        removed = await store.remove_user(f"{username}@{domain}")
    finally:
        await store.close()
    if not removed:
        print(f"no user {username}@{domain} in {_where(args)}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"removed {username}@{domain} from {_where(args)}")
    return EXIT_OK


async def _user_list(args: argparse.Namespace) -> int:
    if not database_path(args.data_dir).exists():
        print(f"no users yet: {_where(args)} has no database", file=sys.stderr)
        return EXIT_OK
    store = open_data_store(args.data_dir)
    try:
        users = await store.list_users()
    finally:
        await store.close()
    for user in users:
        print(f"{user.aor}\trealm={user.realm}\talgorithms={','.join(sorted(user.ha1))}")
    print(f"{len(users)} user(s) in {_where(args)}", file=sys.stderr)
    return EXIT_OK


async def _registrations(args: argparse.Namespace) -> int:
    if not database_path(args.data_dir).exists():
        print(f"no registrations: {_where(args)} has no database", file=sys.stderr)
        return EXIT_OK
    store = open_data_store(args.data_dir)
    now = time.time()
    try:
        bindings = await store.bindings(args.aor, now) if args.aor else await store.all_bindings(now)
    finally:
        await store.close()
    for b in bindings:
        q = "" if b.q is None else f"\tq={b.q}"
        print(f"{b.aor}\t{b.contact}\texpires={b.remaining(now)}{q}\tfrom={b.source}\t{b.user_agent}")
    print(f"{len(bindings)} binding(s) in {_where(args)}", file=sys.stderr)
    return EXIT_OK


def register_commands(sub: argparse._SubParsersAction) -> None:
    user = sub.add_parser("user", help="manage the users who may register")
    user_sub = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    p = user_sub.add_parser("add", help="add a user, or set a user's password")
    p.add_argument("aor", metavar="USER@DOMAIN")
    p.add_argument("--password", "-p", help="the password (or env SIPSTACK_PASSWORD, or a prompt)")
    p.add_argument("--realm", help="digest realm (default: DOMAIN, as the server challenges)")
    add_data_dir(p)
    p.set_defaults(async_func=_user_add)
    p = user_sub.add_parser("remove", help="remove a user")
    p.add_argument("aor", metavar="USER@DOMAIN")
    add_data_dir(p)
    p.set_defaults(async_func=_user_remove)
    p = user_sub.add_parser("list", help="list users")
    add_data_dir(p)
    p.set_defaults(async_func=_user_list)
    p = sub.add_parser("registrations", help="show current registrations (bindings)")
    p.add_argument("aor", nargs="?", help="only this address-of-record (sip:user@domain)")
    add_data_dir(p)
    p.set_defaults(async_func=_registrations)


def run_async(args: argparse.Namespace) -> int:
    return asyncio.run(args.async_func(args))
