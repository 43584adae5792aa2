#!/usr/bin/env python3
"""The Python floor under ``bench/proxy.py``: a stateless, record-routing UDP relay that only
cuts and splices bytes — no parsing, no transactions, no checks. It is not a proxy anyone
should run (it trusts every byte it gets); it shows what the event loop, the socket calls and
the least Python per message cost, so that sipstack's CPU per call can be read against what
any Python proxy must spend on this machine, at the same rate.

    python bench/floor_relay.py LISTEN_PORT NEXT_HOP_PORT [--asyncio]

Requests go to 127.0.0.1:NEXT_HOP_PORT with a Via of ours added (and a Record-Route on an
INVITE; a Route naming us is taken out); a response loses its top Via and goes to the address
of the next one. An OPTIONS for the relay itself (no Route, not an in-dialog request) is
answered 200 here: that is how ``bench/proxy.py`` sees that it is up. uvloop unless
``--asyncio``.
"""

from __future__ import annotations

import asyncio
import sys

HOST = "127.0.0.1"


class Relay(asyncio.DatagramProtocol):
    def __init__(self, port: int, next_hop: int) -> None:
        me = f"{HOST}:{port}".encode()
        self.next_hop = (HOST, next_hop)
        self.via = b"Via: SIP/2.0/UDP " + me + b";branch=z9hG4bK"
        self.record_route = b"Record-Route: <sip:" + me + b";lr>\r\n"
        self.route = b"Route: <sip:" + me + b";lr>\r\n"
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        if data.startswith(b"SIP/2.0 "):
            self._response(data)
            return
        head_end = data.find(b"\r\n")
        if data.startswith(b"OPTIONS ") and self.route not in data and b"\r\nRoute:" not in data:
            self._answer_options(data, addr)
            return
        # Our Route out (the ACK and BYE come back through us), our Via on top, the branch made
        # of the caller's (stateless, §16.11: a retransmission gets the same one).
        data = data.replace(self.route, b"", 1)
        via = data.index(b"\r\nVia:")
        line_end = data.index(b"\r\n", via + 2)
        start = data.find(b";branch=", via, line_end)
        branch = b"" if start < 0 else data[start + 8 : line_end].split(b";", 1)[0].split(b",", 1)[0]
        added = self.via + branch + b".x\r\n"
        if data.startswith(b"INVITE "):
            added = self.record_route + added
        self.transport.sendto(data[: head_end + 2] + added + data[head_end + 2 :], self.next_hop)

    def _response(self, data: bytes) -> None:
        assert self.transport is not None
        first = data.index(b"\r\nVia:") + 2
        end = data.index(b"\r\n", first)
        comma = data.find(b",", first, end)
        if comma >= 0:  # "Via: ours, theirs" on one line (SIPp writes them so): cut ours
            rest = data[:first] + b"Via: " + data[comma + 1 : end].lstrip() + data[end:]
        else:  # our Via on a line of its own
            rest = data[:first] + data[end + 2 :]
        sent_by = rest.index(b"SIP/2.0/UDP ", rest.index(b"\r\nVia:")) + 12
        host, _, port = rest[sent_by : rest.index(b";", sent_by)].partition(b":")
        self.transport.sendto(rest, (host.decode(), int(port or b"5060")))

    def _answer_options(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        lines = data.split(b"\r\n")
        kept = [line for line in lines if line[:4] in (b"Via:", b"From", b"To: ", b"Call", b"CSeq")]
        reply = b"SIP/2.0 200 OK\r\n" + b"\r\n".join(kept) + b"\r\nContent-Length: 0\r\n\r\n"
        self.transport.sendto(reply, addr)


async def main(port: int, next_hop: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: Relay(port, next_hop), local_addr=(HOST, port))
    print(f"floor relay: udp:{HOST}:{port} -> udp:{HOST}:{next_hop}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    listen, target = int(sys.argv[1]), int(sys.argv[2])
    if "--asyncio" in sys.argv:
        asyncio.run(main(listen, target))
    else:
        import uvloop

        uvloop.run(main(listen, target))
