"""URIs: sip/sips (RFC 3261 §19.1, §25.1), tel (RFC 3966), opaque schemes, and equality
(RFC 3261 §19.1.4, RFC 3966 §4). Hosts follow RFC 5954 (IPv4 dec-octets, IPv6 references)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipstack.message import AbsoluteURI, ParseError, SipURI, TelURI, parse, parse_uri


def bad(text: str, **kwargs: bool) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_uri(text, **kwargs)
    assert info.value.status_code == 400
    return info.value


# ---------------------------------------------------------------------------------------
# sip: and sips: components
# ---------------------------------------------------------------------------------------


def test_all_components_of_a_sip_uri() -> None:
    u = parse_uri("sip:alice:secret@atlanta.example.com:5061;transport=tcp;lr?subject=hi&priority=urgent")
    assert isinstance(u, SipURI)
    assert u.scheme == "sip"
    assert not u.secure
    assert u.user == "alice"
    assert u.password == "secret"
    assert u.host == "atlanta.example.com"
    assert u.port == 5061
    assert u.params == {"transport": "tcp", "lr": None}
    assert u.headers == {"subject": "hi", "priority": "urgent"}
    assert u.transport == "tcp"
    assert u.lr
    assert u.maddr is None
    assert u.host_port == "atlanta.example.com:5061"
    assert u.aor == "sip:alice@atlanta.example.com"
    assert str(u) == "sip:alice:secret@atlanta.example.com:5061;transport=tcp;lr?subject=hi&priority=urgent"


def test_minimal_sip_uri_has_no_optional_components() -> None:
    u = parse_uri("sip:example.com")
    assert isinstance(u, SipURI)
    assert (u.user, u.password, u.port) == (None, None, None)
    assert u.params == {} and u.headers == {}
    assert u.transport is None and not u.lr
    assert u.host_port == "example.com"
    assert u.aor == "sip:example.com"
    assert str(u) == "sip:example.com"


def test_sips_scheme() -> None:
    u = parse_uri("sips:bob@biloxi.example.com")
    assert isinstance(u, SipURI)
    assert u.scheme == "sips"
    assert u.secure
    assert str(u) == "sips:bob@biloxi.example.com"


@pytest.mark.parametrize(("text", "scheme"), [("SIP:a@example.com", "sip"), ("SiPs:a@example.com", "sips")])
def test_scheme_is_case_insensitive(text: str, scheme: str) -> None:
    u = parse_uri(text)
    assert isinstance(u, SipURI)
    assert u.scheme == scheme
    assert u == parse_uri(scheme + text[text.index(":") :])


def test_user_may_hold_user_unreserved_characters() -> None:
    # user-unreserved = "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
    u = parse_uri("sip:+1-212-555-1212;phone-context=example.com@gw.example.com;user=phone")
    assert isinstance(u, SipURI)
    assert u.user == "+1-212-555-1212;phone-context=example.com"
    assert u.host == "gw.example.com"
    assert u.params == {"user": "phone"}
    u = parse_uri("sip:a&b=c+d$e,f?g/h@example.com")
    assert isinstance(u, SipURI)
    assert u.user == "a&b=c+d$e,f?g/h"
    assert parse_uri(str(u)) == u


def test_empty_password_is_kept() -> None:
    u = parse_uri("sip:alice:@example.com")
    assert isinstance(u, SipURI)
    assert u.user == "alice"
    assert u.password == ""
    assert str(u) == "sip:alice:@example.com"
    assert u != parse_uri("sip:alice@example.com")


@pytest.mark.parametrize(
    "text",
    [
        "sip:@example.com",  # empty user
        "sip:a b@example.com",
        "sip:a<b@example.com",
        'sip:a"b@example.com',
        "sip:a@b@example.com",  # two '@'
        "sip:alice:se cret@example.com",
        "sip:alice:pa:ss@example.com",  # ':' is not a password character
        "sip:alice:p;w@example.com",
        "sip:a%2@example.com",  # truncated escape
        "sip:a%zz@example.com",
        "sip:%@example.com",
    ],
)
def test_bad_userinfo_is_rejected(text: str) -> None:
    bad(text)


# ---------------------------------------------------------------------------------------
# Hosts (RFC 3261 §25.1 hostname; RFC 5954 IPv4address / IPv6reference)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "example.com.",  # trailing dot of a fully qualified name
        "a-b.example.com",
        "x",
        "EXAMPLE.COM",
        "x1.y2.example9",
        "0.example.com",  # a domainlabel may start with a digit, the toplabel may not
        "192.0.2.1",
        "0.0.0.0",
        "255.255.255.255",
        "[2001:db8::1]",
        "[::1]",
        "[::]",
        "[2001:DB8:0:0:0:0:0:1]",
        "[2001:db8:85a3:8d3:1319:8a2e:370:7348]",
        "[::ffff:192.0.2.1]",  # IPv4-mapped
        "[2001:db8::192.0.2.1]",  # IPv4-embedded
        "[::192.0.2.1]",
    ],
)
def test_valid_hosts(host: str) -> None:
    for text in (f"sip:{host}", f"sip:alice@{host}", f"sip:alice@{host}:5060;lr"):
        u = parse_uri(text)
        assert isinstance(u, SipURI)
        assert u.host == host
        assert str(u) == text


@pytest.mark.parametrize(
    "host",
    [
        "192.0.2.256",  # dec-octet > 255
        "256.1.1.1",
        "1.2.3.999",
        "999.999.999.999",
        "1.2.3.4.5",  # neither IPv4 nor a hostname (toplabel starts with a digit)
        "example.123",
        "-example.com",
        "example-.com",
        "exa_mple.com",
        "example..com",
        ".example.com",
        "ex ample.com",
        "[2001:db8::1",
        "[2001:db8::g]",
        "[1:2:3:4:5:6:7:8:9]",
        "[2001:db8:::1]",
        "[::ffff:192.0.2.256]",
        "[192.0.2.1]",
        "[]",
        "",
    ],
)
def test_invalid_hosts_are_rejected(host: str) -> None:
    bad(f"sip:{host}")
    bad(f"sip:alice@{host}")


@pytest.mark.parametrize("text", ["sip:2001:db8::1", "sip:alice@2001:db8::1", "sip:alice@::1", "sip:fe80::1"])
def test_unbracketed_ipv6_is_rejected(text: str) -> None:
    bad(text)


@pytest.mark.parametrize("text", ["sip:192.0.2.01", "sip:alice@010.0.0.1"])
def test_ipv4_with_leading_zero_octet_is_rejected(text: str) -> None:
    bad(text)


@pytest.mark.parametrize("text", ["sip:[fe80::1%25eth0]", "sip:alice@[fe80::1%eth0]:5060"])
def test_ipv6_zone_id_is_rejected(text: str) -> None:
    bad(text)


# ---------------------------------------------------------------------------------------
# Ports
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("port", [0, 1, 5060, 5061, 65535])
def test_port_bounds_accepted(port: int) -> None:
    for host in ("example.com", "192.0.2.1", "[2001:db8::1]"):
        u = parse_uri(f"sip:alice@{host}:{port}")
        assert isinstance(u, SipURI)
        assert u.port == port
        assert u.host == host
        assert u.host_port == f"{host}:{port}"


@pytest.mark.parametrize("port", ["65536", "99999", "123456", "", "-1", "abc", "50a", "5060:5061", " 5060"])
def test_bad_ports_are_rejected(port: str) -> None:
    bad(f"sip:alice@example.com:{port}")
    bad(f"sip:alice@[2001:db8::1]:{port}")


def test_port_with_leading_zeros() -> None:
    u = parse_uri("sip:alice@example.com:0000005060")
    assert isinstance(u, SipURI)
    assert u.port == 5060


def test_ipv6_reference_followed_by_garbage_is_rejected() -> None:
    bad("sip:[2001:db8::1]5060")
    bad("sip:[2001:db8::1]x")


# ---------------------------------------------------------------------------------------
# Parameters and headers
# ---------------------------------------------------------------------------------------


def test_valueless_and_case_insensitive_parameter_names() -> None:
    u = parse_uri("sip:p1.example.com;LR;Transport=TCP;MADDR=239.255.255.1;TTL=15;method=INVITE")
    assert isinstance(u, SipURI)
    assert u.params == {
        "lr": None,
        "transport": "TCP",
        "maddr": "239.255.255.1",
        "ttl": "15",
        "method": "INVITE",
    }
    assert u.lr
    assert u.transport == "tcp"
    assert u.maddr == "239.255.255.1"


def test_parameter_values_are_unescaped_and_reescaped() -> None:
    u = parse_uri("sip:example.com;foo=a%20b;bar=%5Bx%5D;x%41y=1")
    assert isinstance(u, SipURI)
    assert u.params == {"foo": "a b", "bar": "[x]", "xay": "1"}
    assert parse_uri(str(u)) == u
    assert "a%20b" in str(u)


@pytest.mark.parametrize(
    "text",
    [
        "sip:example.com;",
        "sip:example.com;;lr",
        "sip:example.com;=x",
        "sip:example.com;a=",
        "sip:example.com;a=b c",
        'sip:example.com;a="b"',
        "sip:example.com;a=b=c",
        "sip:example.com;a=<b>",
    ],
)
def test_bad_parameters_are_rejected(text: str) -> None:
    bad(text)


def test_headers_component() -> None:
    u = parse_uri("sip:alice@example.com?a=b&c=d")
    assert isinstance(u, SipURI)
    assert u.headers == {"a": "b", "c": "d"}
    u = parse_uri("sip:biloxi.example.com?to=sip:bob%40biloxi.example.com&subject=project%20x&empty=")
    assert isinstance(u, SipURI)
    assert u.headers == {"to": "sip:bob@biloxi.example.com", "subject": "project x", "empty": ""}
    again = parse_uri(str(u))
    assert isinstance(again, SipURI)
    assert again.headers == u.headers
    assert "%40" in str(u) and "%20" in str(u)


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@example.com?",
        "sip:alice@example.com?a",
        "sip:alice@example.com?=b",
        "sip:alice@example.com?a=b&",
        "sip:alice@example.com?a=b&&c=d",
        "sip:alice@example.com?a=b c",
        "sip:alice@example.com?a=b=c",
        "sip:alice@example.com?a=<b>",
    ],
)
def test_bad_headers_are_rejected(text: str) -> None:
    bad(text)


# ---------------------------------------------------------------------------------------
# %-escaping: parse unescapes, str re-escapes, parse(str(u)) == u
# ---------------------------------------------------------------------------------------


def test_unreserved_escapes_are_unescaped_and_written_plain() -> None:
    u = parse_uri("sip:%61lice@atlanta.example.com")
    assert isinstance(u, SipURI)
    assert u.user == "alice"
    assert str(u) == "sip:alice@atlanta.example.com"


def test_characters_outside_the_user_set_are_escaped_by_str() -> None:
    u = parse_uri("sip:a%20b%3Ac%40d%25e@example.com")
    assert isinstance(u, SipURI)
    assert u.user == "a b:c@d%e"
    text = str(u)
    assert text.startswith("sip:a%20b%3Ac%40d%25e@")
    assert parse_uri(text) == u


def test_password_escaping() -> None:
    u = parse_uri("sip:alice:p%40ss%20w@example.com")
    assert isinstance(u, SipURI)
    assert u.password == "p@ss w"
    assert str(u) == "sip:alice:p%40ss%20w@example.com"


def test_escaped_nul_in_user() -> None:
    u = parse_uri("sip:null-%00-null@example.com")
    assert isinstance(u, SipURI)
    assert u.user == "null-\x00-null"
    assert str(u) == "sip:null-%00-null@example.com"
    assert parse_uri(str(u)) == u


def test_escaped_utf8_and_lower_case_hex() -> None:
    u = parse_uri("sip:j%c3%b6rg@example.com")
    assert isinstance(u, SipURI)
    assert u.user == "jörg"
    assert str(u) == "sip:j%C3%B6rg@example.com"
    assert u == parse_uri("sip:j%C3%B6rg@example.com")


def test_escaped_octet_that_is_not_utf8_survives() -> None:
    u = parse_uri("sip:a%FFb@example.com")
    assert isinstance(u, SipURI)
    assert str(u) == "sip:a%FFb@example.com"
    assert parse_uri(str(u)) == u
    assert u != parse_uri("sip:a%FEb@example.com")


def test_constructed_uri_is_escaped_on_output() -> None:
    u = SipURI(
        "example.com",
        "al ice",
        port=5060,
        password="p:w",
        params={"transport": "udp", "lr": None, "x": "a b"},
        headers={"subject": "a b&c"},
    )
    assert str(u) == "sip:al%20ice:p%3Aw@example.com:5060;transport=udp;lr;x=a%20b?subject=a%20b%26c"
    assert parse_uri(str(u)) == u


def test_copy_with_changes() -> None:
    u = parse_uri("sip:alice@example.com;transport=tcp?subject=x")
    assert isinstance(u, SipURI)
    v = u.copy(port=5070)
    assert v.port == 5070 and u.port is None
    v.params["lr"] = None
    v.headers.clear()
    assert "lr" not in u.params
    assert u.headers == {"subject": "x"}
    assert str(v) == "sip:alice@example.com:5070;transport=tcp;lr"


def test_repr_shows_the_text() -> None:
    assert repr(parse_uri("sip:alice@example.com")) == "SipURI('sip:alice@example.com')"


# ---------------------------------------------------------------------------------------
# Equality (RFC 3261 §19.1.4)
# ---------------------------------------------------------------------------------------

EQUAL = [
    # §19.1.4 examples of equivalent URIs
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
    # the rules themselves
    ("sip:alice@EXAMPLE.com", "sip:alice@example.COM"),  # host is case-insensitive
    ("sip:%41lice@example.com", "sip:Alice@example.com"),  # escaped unreserved == plain
    ("sip:alice@example.com;lr", "sip:alice@example.com;LR"),
    ("sip:alice@example.com;maddr=239.255.255.1", "sip:alice@example.com;MADDR=239.255.255.1"),
    ("sip:alice@example.com;user=phone;ttl=1", "sip:alice@example.com;ttl=1;user=PHONE"),
    ("sip:alice@example.com:5060", "sip:alice@example.com:5060"),
    ("sip:alice@example.com;foo=bar", "sip:alice@example.com;bar=foo"),  # each only in one: ignored
    ("sip:alice@example.com?Subject=x", "sip:alice@example.com?subject=x"),  # header names
    ("sips:alice@example.com", "SIPS:alice@example.com"),
    ("sip:alice:pw@example.com", "sip:alice:%70w@example.com"),
    # IPv6 references: the same address spelled differently (RFC 5118 §4.3)
    ("sip:[2001:db8::1]", "sip:[2001:DB8:0:0:0:0:0:1]"),
    ("sip:alice@[2001:db8::1]:5060", "sip:alice@[2001:0db8:0000::0001]:5060"),
    ("sip:[::ffff:192.0.2.1]", "sip:[::ffff:c000:201]"),
    ("sip:[2001:db8::192.0.2.1]", "sip:[2001:db8::c000:201]"),
    ("sip:[::1]", "sip:[0:0:0:0:0:0:0:1]"),
]

NOT_EQUAL = [
    # §19.1.4 examples of URIs that are not equivalent
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),  # user case
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),  # explicit default port
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),  # headers
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),  # no resolution
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),  # not transitive
    # the rules themselves
    ("sip:alice@example.com", "sips:alice@example.com"),
    ("sip:example.com", "sip:alice@example.com"),  # user in one only
    ("sip:alice@example.com", "sip:alice:pw@example.com"),  # password in one only
    ("sip:alice:pw@example.com", "sip:alice:PW@example.com"),  # password case
    ("sip:alice@example.com:5060", "sip:alice@example.com:5061"),
    ("sip:alice@example.com;transport=tcp", "sip:alice@example.com;transport=udp"),  # in both: must match
    ("sip:+15551234@gw.example.com", "sip:+15551234@gw.example.com;user=phone"),  # user= in one only
    ("sip:alice@example.com", "sip:alice@example.com;user=ip"),  # ... even with its default value
    ("sip:alice@example.com", "sip:alice@example.com;ttl=1"),  # ttl in one only
    ("sip:alice@example.com", "sip:alice@example.com;method=INVITE"),  # method in one only
    ("sip:alice@example.com", "sip:alice@example.com;maddr=239.255.255.1"),  # maddr in one only
    ("sip:alice@example.com;maddr=239.255.255.1", "sip:alice@example.com;maddr=239.255.255.2"),
    ("sip:alice@example.com?subject=a", "sip:alice@example.com?subject=b"),
    ("sip:alice@example.com?subject=a", "sip:alice@example.com?subject=a&priority=urgent"),
    ("sip:[2001:db8::1]", "sip:[2001:db8::2]"),
    ("sip:[2001:db8::1]", "sip:[2001:db8::1]:5060"),
    ("sip:[::ffff:192.0.2.1]", "sip:192.0.2.1"),
]


@pytest.mark.parametrize(("a", "b"), EQUAL)
def test_equal_uris(a: str, b: str) -> None:
    ua, ub = parse_uri(a), parse_uri(b)
    assert ua == ub
    assert ub == ua
    assert not ua != ub  # noqa: SIM202 - __ne__ must agree
    assert hash(ua) == hash(ub)


@pytest.mark.parametrize(("a", "b"), NOT_EQUAL)
def test_not_equal_uris(a: str, b: str) -> None:
    ua, ub = parse_uri(a), parse_uri(b)
    assert ua != ub
    assert ub != ua


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
        ("sip:bob@biloxi.com;transport=tcp", "sip:bob@biloxi.com"),
    ],
)
def test_transport_in_one_uri_only_does_not_match(a: str, b: str) -> None:
    assert parse_uri(a) != parse_uri(b)


@pytest.mark.xfail(
    strict=True,
    reason="BUG: an escaped reserved character equals its plain form; RFC 3261 §19.1.4 makes only "
    "characters outside the reserved set equivalent to their escapes",
)
def test_escaped_reserved_character_differs_from_plain() -> None:
    assert parse_uri("sip:a%3Bb@example.com") != parse_uri("sip:a;b@example.com")


def test_sip_uri_is_not_equal_to_other_kinds() -> None:
    u = parse_uri("sip:alice@example.com")
    assert u != "sip:alice@example.com"
    assert u != parse_uri("tel:+15551234")
    assert u != parse_uri("im:alice@example.com")


@pytest.mark.parametrize(("a", "b"), EQUAL)
def test_equal_uris_collapse_in_a_set(a: str, b: str) -> None:
    assert len({parse_uri(a), parse_uri(b)}) == 1


# ---------------------------------------------------------------------------------------
# tel: (RFC 3966)
# ---------------------------------------------------------------------------------------


def test_global_tel_uri() -> None:
    u = parse_uri("tel:+1-201-555-0123")
    assert isinstance(u, TelURI)
    assert u.scheme == "tel"
    assert u.is_global
    assert u.number == "+1-201-555-0123"
    assert u.digits == "+12015550123"
    assert u.params == {}
    assert str(u) == "tel:+1-201-555-0123"


def test_local_tel_uri_with_phone_context() -> None:
    u = parse_uri("tel:7042;phone-context=example.com")
    assert isinstance(u, TelURI)
    assert not u.is_global
    assert u.params == {"phone-context": "example.com"}
    assert str(u) == "tel:7042;phone-context=example.com"
    u = parse_uri("tel:*67#;phone-context=+1-201")
    assert isinstance(u, TelURI)
    assert u.digits == "*67#"


def test_tel_parameters() -> None:
    u = parse_uri("TEL:+1-201-555-0123;EXT=1234;isub=0")
    assert isinstance(u, TelURI)
    assert u.params == {"ext": "1234", "isub": "0"}
    assert parse_uri(str(u)) == u


@pytest.mark.parametrize(
    "text",
    [
        "tel:7042",  # a local number needs phone-context
        "tel:7042;ext=1",
        "tel:",
        "tel:+",
        "tel:+-().",
        "tel:+1a",  # global numbers are decimal digits
        "tel:+1 201",
        "tel:abc",
        "tel:+1234;",
        "tel:+1234;a=b c",
    ],
)
def test_bad_tel_uris(text: str) -> None:
    bad(text)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("tel:+1-201-555-0123", "tel:+12015550123"),
        ("tel:+1-201-555-0123", "tel:+1.201.555.0123"),
        ("tel:+1-201-555-0123", "tel:+1(201)555-0123"),
        ("tel:+1-201-555-0123;ext=1;isub=2", "tel:+12015550123;ISUB=2;Ext=1"),
        ("tel:ab12;phone-context=example.com", "tel:AB12;phone-context=EXAMPLE.com"),
        ("tel:7042;phone-context=example.com", "tel:70-42;phone-context=example.com"),
    ],
)
def test_equal_tel_uris(a: str, b: str) -> None:
    ua, ub = parse_uri(a), parse_uri(b)
    assert ua == ub and ub == ua
    assert hash(ua) == hash(ub)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("tel:+12015550123", "tel:+12015550124"),
        ("tel:+12015550123", "tel:+12015550123;ext=1"),  # parameter in one only (RFC 3966 §4)
        ("tel:+12015550123;ext=1", "tel:+12015550123;ext=2"),
        ("tel:7042;phone-context=example.com", "tel:7042;phone-context=example.net"),
        ("tel:+12015550123", "sip:+12015550123@example.com;user=phone"),
    ],
)
def test_not_equal_tel_uris(a: str, b: str) -> None:
    assert parse_uri(a) != parse_uri(b)


def test_phone_context_digits_compare_without_visual_separators() -> None:
    assert parse_uri("tel:7042;phone-context=+1-201-555") == parse_uri("tel:7042;phone-context=+1201555")


# ---------------------------------------------------------------------------------------
# Other schemes are kept opaque
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "mailto:alice@example.com",
        "im:alice@example.com",
        "pres:alice@example.com",
        "urn:service:sos",
        "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        "http://www.example.com/a/b?x=1&y=2",
        "h323:gw.example.com:1720",
        "x-custom+v1.0:opaque;part",
    ],
)
def test_opaque_uris_round_trip(text: str) -> None:
    u = parse_uri(text)
    assert isinstance(u, AbsoluteURI)
    assert u.scheme == text[: text.index(":")].lower()
    assert str(u) == text
    assert parse_uri(str(u)) == u
    assert hash(u) == hash(parse_uri(text))


def test_opaque_scheme_is_lower_cased_and_opaque_part_compared_exactly() -> None:
    u = parse_uri("MAILTO:alice@example.com")
    assert isinstance(u, AbsoluteURI)
    assert u.scheme == "mailto"
    assert u.opaque == "alice@example.com"
    assert u == parse_uri("mailto:alice@example.com")
    assert u != parse_uri("mailto:Alice@example.com")


@pytest.mark.parametrize(
    "text",
    [
        "mailto:",
        "mailto:a b",
        "mailto:<a>",
        ":alice@example.com",
        "1sip:alice@example.com",
        "s p:alice",
        "alice@example.com",
        "",
        "<sip:alice@example.com>",
        " sip:alice@example.com",
        "sip:alice@example.com ",
    ],
)
def test_not_a_uri(text: str) -> None:
    bad(text)


# ---------------------------------------------------------------------------------------
# Request-URI rules
# ---------------------------------------------------------------------------------------


def test_request_uri_refuses_headers() -> None:
    text = "sip:alice@example.com?subject=hello"
    assert isinstance(parse_uri(text), SipURI)
    bad(text, request_uri=True)
    assert isinstance(parse_uri("sip:alice@example.com;transport=tcp", request_uri=True), SipURI)


@pytest.mark.parametrize(
    "text", ["<sip:alice@example.com>", "<sip:alice@example.com", "sip:alice@example.com>"]
)
def test_request_uri_refuses_angle_brackets(text: str) -> None:
    bad(text, request_uri=True)


@pytest.mark.parametrize(
    "uri",
    ["sip:bob@biloxi.example.com?Subject=x", "<sip:bob@biloxi.example.com>", "sip:bob@192.0.2.300"],
)
def test_request_line_with_a_bad_request_uri_is_a_400(uri: str) -> None:
    data = (
        f"OPTIONS {uri} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bKa1\r\n"
        "To: <sip:bob@biloxi.example.com>\r\nFrom: <sip:alice@example.com>;tag=1\r\n"
        "Call-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    for strict in (True, False):
        with pytest.raises(ParseError) as info:
            parse(data, strict=strict)
        assert info.value.status_code == 400


# ---------------------------------------------------------------------------------------
# Property: generated SIP URIs round-trip through str / parse_uri
# ---------------------------------------------------------------------------------------

_LABEL = st.from_regex(r"[a-z]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_HOSTNAMES = st.builds(
    lambda labels, dot: ".".join(labels) + dot,
    st.lists(_LABEL, min_size=1, max_size=4),
    st.sampled_from(["", "."]),
)
_IPV4 = st.ip_addresses(v=4).map(str)
_IPV6 = st.one_of(
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
    st.ip_addresses(v=6).map(lambda a: f"[{a.exploded}]"),
    st.ip_addresses(v=4).map(lambda a: f"[::ffff:{a}]"),
)
HOSTS = st.one_of(_HOSTNAMES, _IPV4, _IPV6)
# Any Unicode text that UTF-8 can carry (no lone surrogates): escaped on output as needed.
_TEXT = st.characters(codec="utf-8")
_PARAM_NAMES = st.from_regex(r"[a-z][a-z0-9\-]{0,7}", fullmatch=True)


@st.composite
def sip_uris(draw: st.DrawFn) -> SipURI:
    user = draw(st.none() | st.text(_TEXT, min_size=1, max_size=12))
    password = draw(st.none() | st.text(_TEXT, max_size=8)) if user is not None else None
    return SipURI(
        draw(HOSTS),
        user,
        port=draw(st.none() | st.integers(0, 65535)),
        password=password,
        params=draw(
            st.dictionaries(_PARAM_NAMES, st.none() | st.text(_TEXT, min_size=1, max_size=8), max_size=4)
        ),
        headers=draw(
            st.dictionaries(st.text(_TEXT, min_size=1, max_size=6), st.text(_TEXT, max_size=8), max_size=3)
        ),
        scheme=draw(st.sampled_from(["sip", "sips"])),
    )


@settings(max_examples=300, deadline=None)
@given(sip_uris())
def test_generated_sip_uris_round_trip(u: SipURI) -> None:
    text = str(u)
    assert text.isascii() and " " not in text
    v = parse_uri(text)
    assert isinstance(v, SipURI)
    assert v == u
    assert (v.scheme, v.user, v.password, v.host, v.port) == (u.scheme, u.user, u.password, u.host, u.port)
    assert v.params == u.params
    assert v.headers == u.headers
    assert str(v) == text
    assert hash(v) == hash(u)
    if not u.headers:
        assert parse_uri(text, request_uri=True) == u


@settings(max_examples=200, deadline=None)
@given(HOSTS, st.integers(0, 65535))
def test_generated_hosts_are_accepted_and_compare_by_address(host: str, port: int) -> None:
    u = parse_uri(f"sip:{host}:{port}")
    assert isinstance(u, SipURI)
    assert u.host == host and u.port == port
    if host.startswith("["):
        respelled = "[" + ipaddress.IPv6Address(host[1:-1]).exploded.upper() + "]"
        assert parse_uri(f"sip:{respelled}:{port}") == u
    else:
        assert parse_uri(f"sip:{host.upper()}:{port}") == u


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(r"\+[0-9]([0-9.\-()]{0,12}[0-9])?", fullmatch=True),
    st.dictionaries(_PARAM_NAMES, st.none() | st.from_regex(r"[A-Za-z0-9]{1,6}", fullmatch=True), max_size=3),
)
def test_generated_tel_uris_round_trip(number: str, params: dict[str, str | None]) -> None:
    u = TelURI(number, params)
    v = parse_uri(str(u))
    assert isinstance(v, TelURI)
    assert v == u
    assert v.digits == u.digits
    assert str(v) == str(u)
