"""An OPTIONS responder and a client pinging it, on one sipstack endpoint each."""

from sipstack.endpoint import Endpoint, run
from sipstack.message import Request


async def main() -> None:
    async with Endpoint() as server, Endpoint() as client:
        address = await server.listen("udp:127.0.0.1:5060")
        server.on_request(lambda incoming: incoming.respond(200, headers=[("Allow", "OPTIONS")]))
        await client.listen("udp:127.0.0.1:0")
        ping = Request(
            "OPTIONS",
            "sip:127.0.0.1:5060",
            [
                ("From", "<sip:probe@127.0.0.1>;tag=8f2a1c"),
                ("To", "<sip:127.0.0.1:5060>"),
                ("Call-ID", "ping-1@127.0.0.1"),
                ("CSeq", "1 OPTIONS"),
                ("Max-Forwards", "70"),
            ],
        )
        response = await client.request(ping)  # RFC 3263 resolution of the Request-URI
        print(address, response.status_code, response.reason)  # udp:127.0.0.1:5060 200 OK


run(main())
