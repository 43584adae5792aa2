"""The user agent (floor 5): registration, calls, and the requests a soft-phone sends,
on the asyncio :class:`~sipstack.endpoint.Endpoint`.

Public contract::

    async with UserAgent("sip:alice@example.com", password="secret") as ua:
        registration = await ua.register(expires=600)      # digest auth, refreshed
        call = await ua.invite("sip:bob@example.com")      # answered, ACKed
        call.remote_sdp, call.streams                      # the answer, what was agreed
        await call.reinvite(direction="sendonly")          # hold (RFC 3264 §8.4)
        await call.update(); await call.info(b"Signal=5\r\nDuration=160\r\n")
        await call.bye()
        await ua.message("sip:bob@example.com", "hi")      # RFC 3428
        await registration.unregister()

    @ua.on_call                                            # incoming calls
    async def answer(call: IncomingCall) -> None:
        await call.ring()                                  # 180 (reliable if 100rel asks)
        await call.accept()                                # 200 + answer, waits for the ACK

    # SIP Outbound (RFC 5626): a flow per outbound proxy, kept alive, re-formed on failure
    ua = UserAgent("sip:alice@example.com", instance_file="alice.instance")
    outbound = await ua.register_outbound(["sip:edge1.example.com;transport=tcp",
                                           "sip:edge2.example.com;transport=tcp"])
    outbound.flows[0].state, outbound.flows[0].events      # "registered", what happened

Failures raise :class:`RequestFailed` (``.response``), :class:`CallCancelled`,
:class:`CallStateError`, :class:`sipstack.errors.SipTimeoutError` (:class:`CallTimeout`, with
``.response`` and ``.call``, when ``invite(timeout=…)`` gave up and cancelled),
:class:`sipstack.errors.TransportError`.
"""

from .agent import ALLOW, SUPPORTED, UserAgent
from .call import Call, CallState
from .errors import AuthenticationFailed, CallCancelled, CallStateError, CallTimeout, RequestFailed
from .incoming import IncomingCall
from .outbound import Flow, FlowEvent, OutboundConfig, OutboundRegistration
from .outgoing import OutgoingCall
from .registration import Registration

__all__ = [
    "ALLOW",
    "SUPPORTED",
    "AuthenticationFailed",
    "Call",
    "CallCancelled",
    "CallState",
    "CallStateError",
    "CallTimeout",
    "Flow",
    "FlowEvent",
    "IncomingCall",
    "OutboundConfig",
    "OutboundRegistration",
    "OutgoingCall",
    "Registration",
    "RequestFailed",
    "UserAgent",
]
