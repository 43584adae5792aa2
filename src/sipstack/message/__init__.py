"""The SIP message layer (sans-I/O): parse and build requests and responses, URIs, headers.

Public contract::

    msg = parse(datagram)            # Request | Response, or ParseError(status_code, reason)
    msg.via[0].branch, msg.call_id, msg.cseq.seq, msg.from_.tag, msg.header("Subject")
    bytes(msg)                       # the wire form; parse(bytes(msg)) == msg
"""

from ..errors import ParseError
from .headers import STAR, Auth, CSeq, MediaType, NameAddr, Via, canonical_name, pretty_name
from .message import (
    Message,
    Request,
    Response,
    UnsupportedExtension,
    make_response,
    parse,
    salvage,
    validate_request,
)
from .status import REASON_PHRASES, reason_phrase
from .stream import Malformed, Ping, Pong, StreamEvent, StreamParser
from .uri import URI, AbsoluteURI, SipURI, TelURI, parse_uri

__all__ = [
    "REASON_PHRASES",
    "STAR",
    "URI",
    "AbsoluteURI",
    "Auth",
    "CSeq",
    "Malformed",
    "MediaType",
    "Message",
    "NameAddr",
    "ParseError",
    "Ping",
    "Pong",
    "Request",
    "Response",
    "SipURI",
    "StreamEvent",
    "StreamParser",
    "TelURI",
    "UnsupportedExtension",
    "Via",
    "canonical_name",
    "make_response",
    "parse",
    "parse_uri",
    "pretty_name",
    "reason_phrase",
    "salvage",
    "validate_request",
]
