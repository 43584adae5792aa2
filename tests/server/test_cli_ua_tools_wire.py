"""More of ``sipstack register``, ``call`` and ``message`` against a real ``sipstack serve``
child (fixtures of test_cli_ua_tools.py): the cases the sipsak exit-code convention and the
shared flags promise that the first file leaves out.

- ``call`` that nobody answers within ``--timeout``: CANCEL, exit 3, the 487 in the progress;
  ``call`` to a port where nothing listens: exit 3 at once (ICMP).
- ``register --transport tcp -v``: the wire on stderr (REGISTER, its 401, the authorized
  retry and the 200), over TCP, the Contact saying so.
- ``message --transport tcp --json`` to a registered UserAgent.
"""

from __future__ import annotations

from pathlib import Path

from sipkit import HOST, free_port
from test_cli_ua_tools import DOMAIN, Server, bob, cli, server

from sipstack.message import Request
from sipstack.ua import IncomingCall, UserAgent

__all__ = ["bob", "server"]  # fixtures shared with test_cli_ua_tools.py


async def test_call_unanswered_within_timeout_cancels_and_exits_3(server: Server, bob: UserAgent) -> None:
    calls: list[IncomingCall] = []

    @bob.on_call
    async def ring(call: IncomingCall) -> None:
        calls.append(call)
        await call.ring()

    done = await cli(
        "call", f"sip:bob@{DOMAIN}", "--proxy", server.proxy, "--timeout", "1.5", "--json", cwd=server.cwd
    )
    assert done.returncode == 3, done
    doc = done.json()
    assert doc["error"] == "timeout" and doc["exit_code"] == 3 and not doc["answered"], doc
    statuses = [p["status"] for p in doc["progress"]]
    assert 180 in statuses and statuses[-1] == 487, doc  # the CANCEL's outcome
    (call,) = calls
    assert await call.wait_ended(5) == "cancelled"


async def test_call_to_a_closed_port_exits_3(tmp_path: Path) -> None:
    done = await cli("call", f"sip:bob@{HOST}:{free_port()}", "--timeout", "5", cwd=tmp_path)
    assert done.returncode == 3, done
    assert done.stdout.splitlines()[-1].startswith("unreachable "), done
    assert done.seconds < 4.5, done


async def test_register_over_tcp_prints_the_wire(server: Server) -> None:
    done = await cli(
        "register", f"sip:alice@{DOMAIN}", "--password", "alice-pw", "--proxy", server.proxy,
        "--transport", "tcp", "--expires", "60", "-v", cwd=server.cwd,
    )  # fmt: skip
    assert done.returncode == 0, done
    assert done.stdout.startswith("200 OK "), done
    assert ";transport=tcp>" in done.stdout.splitlines()[1], done
    wire = done.stderr
    assert wire.count(f"--- sent to tcp:{HOST}:{server.port}") == 2, done
    assert wire.count(f"--- received from tcp:{HOST}:{server.port}") == 2, done
    assert "REGISTER sip:localhost SIP/2.0" in wire and "SIP/2.0 401 Unauthorized" in wire, done
    assert "Authorization: Digest " in wire and "SIP/2.0 200 OK" in wire, done
    assert f"sip:alice@{DOMAIN}\t" in server.registrations()


async def test_message_over_tcp_with_json(server: Server, bob: UserAgent) -> None:
    got: list[Request] = []
    bob.on_message(lambda request: got.append(request) or None)
    done = await cli(
        "message", f"sip:bob@{DOMAIN}", "over tcp", "--from", f"sip:alice@{DOMAIN}", "--password", "alice-pw",
        "--proxy", server.proxy, "--transport", "tcp", "--json", cwd=server.cwd,
    )  # fmt: skip
    assert done.returncode == 0, done
    doc = done.json()
    assert doc["status"] == 200 and doc["transport"] == "tcp" and doc["exit_code"] == 0, doc
    assert [r.body for r in got] == [b"over tcp"]
    assert got[0].via[-1].transport == "TCP"  # our hop to the server
