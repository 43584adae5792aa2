"""A user agent against a running ``sipstack serve``: register (digest authentication, refreshed
before it expires), ping the server, send an instant message through it to our own binding,
and remove the binding.

    .venv/bin/sipstack user add alice@localhost --password secret
    .venv/bin/sipstack serve                                  # 127.0.0.1:5060, in another shell
    .venv/bin/python examples/ua_register.py [sip:127.0.0.1:5060]
"""

import sys

from sipstack.endpoint import run
from sipstack.message import Request
from sipstack.ua import UserAgent

SERVER = sys.argv[1] if len(sys.argv) > 1 else "sip:127.0.0.1:5060"


async def main() -> None:
    # The server is our outbound proxy: every request outside a dialog goes through it.
    async with UserAgent("sip:alice@localhost", password="secret", proxy=SERVER) as alice:

        @alice.on_message
        def received(request: Request) -> None:  # None: answered 200
            print(f"alice: MESSAGE from {request.from_.uri}: {request.body.decode()}")

        registration = await alice.register(expires=600)  # 401, then digest: 200
        print(f"alice: registered {registration.contact} for {registration.granted} s")
        ping = await alice.options(SERVER)
        print(f"alice: OPTIONS {ping.status_code} {ping.reason}")
        sent = await alice.message("sip:alice@localhost", "hello, me")  # RFC 3428, via our binding
        print(f"alice: MESSAGE {sent.status_code} {sent.reason}")
        removed = await registration.unregister()  # Expires: 0
        print(f"alice: unregistered ({removed.status_code} {removed.reason})")


if __name__ == "__main__":
    run(main())
