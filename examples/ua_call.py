"""Two user agents on loopback: bob answers, alice calls him, prints the SDP answer and
what was agreed, puts him on hold, sends a DTMF INFO, and hangs up.

    .venv/bin/python examples/ua_call.py
"""

from sipstack.endpoint import run
from sipstack.offeranswer import PCMA, TELEPHONE_EVENT
from sipstack.ua import IncomingCall, UserAgent


async def main() -> None:
    async with (
        UserAgent("sip:alice@127.0.0.1", rtp_port=40000) as alice,
        UserAgent("sip:bob@127.0.0.1", rtp_port=50000, codecs=[PCMA, TELEPHONE_EVENT]) as bob,
    ):

        @bob.on_call
        async def answer(call: IncomingCall) -> None:
            print(f"bob: call from {call.caller.uri}")
            await call.ring()  # 180 Ringing
            await call.accept()  # 200 OK with the SDP answer; returns once the ACK is in

        bob_address = bob.endpoint.listeners[0].local.host_port
        call = await alice.invite(f"sip:bob@{bob_address}")
        print("alice: answered; the SDP answer is:")
        print(bytes(call.remote_sdp).decode().rstrip())  # type: ignore[arg-type]
        stream = call.streams[0]
        codecs = [c.name for c in stream.codecs]
        print(f"alice: agreed {codecs}, media to {stream.remote_address}:{stream.remote_port}")

        await call.reinvite(direction="sendonly")  # hold (RFC 3264 §8.4)
        print(f"alice: bob is on hold (alice {call.streams[0].direction}, bob recvonly)")
        await call.reinvite(direction="sendrecv")
        await call.info(b"Signal=5\r\nDuration=160\r\n")  # DTMF as INFO (RFC 2976)
        response = await call.bye()
        print(f"alice: BYE answered {response.status_code}; the call ended: {call.end_reason}")


if __name__ == "__main__":
    run(main())
