"""RFC 3261 §25 grammar pieces as regular expressions, one named rule at a time.

Each rule keeps the ABNF rule's name; the ABNF is quoted above it. Rules are ``str``
patterns over header text decoded as UTF-8 with ``surrogateescape`` (so every byte of the
wire form survives, and UTF8-NONASCII is "any code point above 0x7F").

The message parser unfolds continuation lines (RFC 3261 §7.3.1) before these rules run,
so ``LWS`` here is ``1*WSP`` and ``SWS`` is ``*WSP``.

Deliberate departures, each where RFC 3261 or its errata allow:
- IPv4address and IPv6reference follow RFC 5954 (RFC 3986's dec-octet/IPv6address);
  the addresses are checked with :mod:`ipaddress` after the pattern has isolated them.
- The ``received`` Via parameter accepts an IPv6 address with or without brackets
  (RFC 5118 §4.5, §4.6).
"""

from __future__ import annotations

import re

# WSP = SP / HTAB ; LWS = [*WSP CRLF] 1*WSP ; SWS = [LWS]  (after unfolding)
LWS = r"[ \t]+"
SWS = r"[ \t]*"

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" )
TOKEN_CHARS = r"A-Za-z0-9\-.!%*_+`'~"
token = rf"[{TOKEN_CHARS}]+"

# word = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" /
#        "(" / ")" / "<" / ">" / ":" / "\" / DQUOTE / "/" / "[" / "]" / "?" / "{" / "}" )
word = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"

# callid = word [ "@" word ]
callid = rf"{word}(?:@{word})?"

# quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
# qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
# quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
qdtext = r"[ \t!#-\[\]-~\u0080-\U0010ffff]"
quoted_pair = r"\\[\x00-\x09\x0b\x0c\x0e-\x7f]"
quoted_string = rf'"(?:{qdtext}|{quoted_pair})*"'

# A host as it appears in a header or URI, isolated loosely here and checked exactly by
# net-level validation (hostname / IPv4address / IPv6reference).
host_loose = r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._]+"

# generic-param = token [ EQUAL gen-value ] ; gen-value = token / host / quoted-string
gen_value = rf"{quoted_string}|\[[0-9A-Fa-f:.]+\]|{token}"
generic_param = rf"{token}(?:{SWS}={SWS}(?:{gen_value}))?"
# *( SEMI generic-param ), SEMI = SWS ";" SWS
params = rf"(?:{SWS};{SWS}{generic_param})*"

# One parameter at a time (for pulling names and values out of a matched ``params``).
PARAM_RE = re.compile(rf";{SWS}({token})(?:{SWS}={SWS}({gen_value}))?")

# Via parameters: the received parameter may carry a bare IPv6 address (RFC 5118 §4.5).
via_gen_value = rf"{quoted_string}|\[[0-9A-Fa-f:.]+\]|[{TOKEN_CHARS}:]+"
via_params = rf"(?:{SWS};{SWS}{token}(?:{SWS}={SWS}(?:{via_gen_value}))?)*"
VIA_PARAM_RE = re.compile(rf";{SWS}({token})(?:{SWS}={SWS}({via_gen_value}))?")

# via-parm = sent-protocol LWS sent-by *( SEMI via-params )
# sent-protocol = protocol-name SLASH protocol-version SLASH transport
# sent-by = host [ COLON port ]
via_parm = (
    rf"({token}){SWS}/{SWS}({token}){SWS}/{SWS}({token}){LWS}"
    rf"({host_loose})(?:{SWS}:{SWS}([0-9]+))?({via_params})"
)
VIA_PARM_RE = re.compile(via_parm)

# display-name = *(token LWS) / quoted-string   (RFC 4475 §3.1.1.6: no LWS before "<" is
# accepted, LAQUOT = SWS "<" makes that unambiguous)
display_name = rf"{quoted_string}|{token}(?:{LWS}{token})*"

# name-addr = [ display-name ] LAQUOT addr-spec RAQUOT
# An addr-spec outside angle brackets may not hold ";", "," or "?" (RFC 3261 §20).
name_addr_or_spec = rf"(?:({display_name})?{SWS}<([^<>\s]*)>{SWS}|([^\s;,<>\"?]+))({params})"
NAME_ADDR_RE = re.compile(name_addr_or_spec)
COMMA_RE = re.compile(rf"{SWS},{SWS}")

# CSeq = 1*DIGIT LWS Method
CSEQ_RE = re.compile(rf"([0-9]+){LWS}({token})")

# Content-Type = media-type ; media-type = m-type SLASH m-subtype *(SEMI m-parameter)
# m-parameter = m-attribute EQUAL m-value ; m-value = token / quoted-string
media_param = rf"{token}{SWS}={SWS}(?:{quoted_string}|{token})"
MEDIA_TYPE_RE = re.compile(rf"({token}){SWS}/{SWS}({token})((?:{SWS};{SWS}{media_param})*)")
MEDIA_PARAM_RE = re.compile(rf";{SWS}({token}){SWS}={SWS}({quoted_string}|{token})")

# media-range = ( "*/*" / ( m-type SLASH "*" ) / ( m-type SLASH m-subtype ) ) *( SEMI accept-param )
ACCEPT_RANGE_RE = re.compile(rf"({token}){SWS}/{SWS}({token}){params}")

# credentials = ("Digest" LWS digest-response) / other-response
# challenge = ("Digest" LWS digest-cln *(COMMA digest-cln)) / other-challenge
# auth-param = auth-param-name EQUAL ( token / quoted-string )
auth_param = rf"{token}{SWS}={SWS}(?:{quoted_string}|{token})"
AUTH_RE = re.compile(rf"({token}){LWS}({auth_param}(?:{SWS},{SWS}{auth_param})*)")
AUTH_PARAM_RE = re.compile(rf"({token}){SWS}={SWS}({quoted_string}|{token})")

# rfc1123-date = wkday "," SP date1 SP time SP "GMT"
DATE_RE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([0-9]{4}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT"
)

TOKEN_RE = re.compile(token)
TOKEN_LIST_RE = re.compile(rf"(?:{token}(?:{SWS},{SWS}{token})*)?")
DIGITS_RE = re.compile(r"[0-9]+")
CALLID_RE = re.compile(callid)

# SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT
SIP_VERSION_RE = re.compile(r"[Ss][Ii][Pp]/([0-9]+)\.([0-9]+)")

# qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
QVALUE_RE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")


def unquote(value: str) -> str:
    """The text of a quoted-string (quotes removed, quoted-pairs resolved); other values as is."""
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        inner = value[1:-1]
        if "\\" not in inner:
            return inner
        out: list[str] = []
        i = 0
        n = len(inner)
        while i < n:
            ch = inner[i]
            if ch == "\\" and i + 1 < n:
                out.append(inner[i + 1])
                i += 2
            else:
                out.append(ch)
                i += 1
        return "".join(out)
    return value


def quote(value: str) -> str:
    """A quoted-string holding ``value``: quote, backslash and control characters as
    quoted-pairs (CR and LF cannot be carried: ValueError)."""
    if "\r" in value or "\n" in value:
        raise ValueError("CR and LF cannot be carried in a quoted-string")
    return '"' + _QUOTE_RE.sub(lambda m: "\\" + m.group(0), value) + '"'


_QUOTE_RE = re.compile(r'["\\\x00-\x08\x0b\x0c\x0e-\x1f\x7f]')


def parse_params(text: str, pattern: re.Pattern[str] = PARAM_RE) -> dict[str, str | None]:
    """Names (lower-cased) and values of a string of ``;name=value`` parameters matched before."""
    out: dict[str, str | None] = {}
    for name, value in pattern.findall(text):
        out[name.lower()] = unquote(value) if value else None
    return out


_BARE_VALUE_RE = re.compile(rf"[{TOKEN_CHARS}:\[\]]+")


def format_params(params: dict[str, str | None]) -> str:
    parts = []
    for name, value in params.items():
        if value is None:
            parts.append(f";{name}")
        elif _BARE_VALUE_RE.fullmatch(value):
            parts.append(f";{name}={value}")
        else:
            parts.append(f";{name}={quote(value)}")
    return "".join(parts)
