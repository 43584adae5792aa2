"""``ServerConfig`` and ``load_config``: defaults ← TOML ← flags, and validation errors that
name the key at fault (in ``load_config`` and at ``sipstack serve --config``)."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from sipkit import run_cli

from sipstack.errors import ConfigurationError
from sipstack.server import ServerConfig, load_config


def write(tmp_path: Path, text: str, name: str = "server.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def names_key(message: str, key: str) -> bool:
    """Whether ``message`` names ``key`` as a word (``cert`` is not named by ``tls_cert``)."""
    return re.search(rf"(?<![\w.]){re.escape(key)}\b|\.{re.escape(key)}\b", message) is not None


# -- defaults, TOML, flags ---------------------------------------------------------------------


def test_defaults_without_file_or_flags() -> None:
    config = load_config()
    assert config == ServerConfig()
    assert config.listen == ("udp:127.0.0.1:5060", "tcp:127.0.0.1:5060")
    assert config.domains == ("localhost", "127.0.0.1")
    assert config.data_dir == "sipstack-data"
    assert config.auth is True and config.auth_calls is False
    assert config.algorithms == ("SHA-512-256", "SHA-256", "MD5")
    assert (config.min_expires, config.default_expires, config.max_expires) == (60, 3600, 7200)
    assert (config.nonce_lifetime, config.max_failures) == (300, 10)
    assert config.record_route is True and config.timer_c == 180.0
    assert config.workers == 1 and config.routing == "" and config.default_route == ""
    assert (config.tls_cert, config.tls_key, config.tls_ca, config.tls_verify_client) == ("", "", "", False)
    assert config.log_level == "info"


def test_empty_file_keeps_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")) == ServerConfig()


FULL_TOML = """
listen = ["udp:127.0.0.1:5070", "tcp:127.0.0.1:5070", "tls:127.0.0.1:5071"]
domains = ["example.org"]
data_dir = "/var/lib/sip"
workers = 3
log_level = "debug"
user_agent = "edge-1"

[registrar]
min_expires = 30
default_expires = 600
max_expires = 900

[auth]
enabled = true
realm = "corp"
algorithms = ["MD5"]
nonce_lifetime = 60
max_failures = 4

[proxy]
record_route = false
timer_c = 90
auth_calls = true
default_route = "sip:gw.example.net;transport=tcp"
routing = "myroutes:route"

[tls]
cert = "/etc/sip/cert.pem"
key = "/etc/sip/key.pem"
ca = "/etc/sip/ca.pem"
verify_client = true
alias = true

[tcp]
alias = true

[outbound]
edge = false  # true needs workers = 1; tested on its own
flow_timer = 45

[udp]
read_pause = 2

[gc]
young_interval = 0.5
full_interval = 600
"""


def test_toml_overrides_every_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL_TOML))
    expected: dict[str, Any] = {
        "listen": ("udp:127.0.0.1:5070", "tcp:127.0.0.1:5070", "tls:127.0.0.1:5071"),
        "domains": ("example.org",),
        "data_dir": "/var/lib/sip",
        "workers": 3,
        "log_level": "debug",
        "user_agent": "edge-1",
        "min_expires": 30,
        "default_expires": 600,
        "max_expires": 900,
        "auth": True,  # auth_calls needs it on; "enabled = false" is tested on its own
        "realm": "corp",
        "algorithms": ("MD5",),
        "nonce_lifetime": 60,
        "max_failures": 4,
        "record_route": False,
        "timer_c": 90.0,
        "auth_calls": True,
        "default_route": "sip:gw.example.net;transport=tcp",
        "routing": "myroutes:route",
        "tls_cert": "/etc/sip/cert.pem",
        "tls_key": "/etc/sip/key.pem",
        "tls_ca": "/etc/sip/ca.pem",
        "tls_verify_client": True,
        "tls_alias": True,
        "tcp_alias": True,
        "outbound_edge": False,
        "flow_timer": 45,
        "udp_read_pause": 2.0,
        "gc_young_interval": 0.5,
        "gc_full_interval": 600,
    }
    assert {name: getattr(config, name) for name in expected} == expected
    # Every field of the configuration can be set from the file.
    assert set(expected) == {f.name for f in fields(ServerConfig)}
    assert isinstance(config.timer_c, float)


@pytest.mark.parametrize(
    ("section", "key", "value", "field_name", "expected"),
    [
        ("registrar", "min_expires", "10", "min_expires", 10),
        ("registrar", "default_expires", "120", "default_expires", 120),
        ("registrar", "max_expires", "86400", "max_expires", 86400),
        ("auth", "enabled", "false", "auth", False),
        ("auth", "realm", '"sip.example.org"', "realm", "sip.example.org"),
        ("auth", "algorithms", '["SHA-256", "MD5"]', "algorithms", ("SHA-256", "MD5")),
        ("auth", "nonce_lifetime", "30", "nonce_lifetime", 30),
        ("auth", "max_failures", "3", "max_failures", 3),
        ("proxy", "record_route", "false", "record_route", False),
        ("proxy", "timer_c", "200.5", "timer_c", 200.5),
        ("proxy", "auth_calls", "true", "auth_calls", True),
        ("proxy", "default_route", '"sip:10.0.0.1:5080"', "default_route", "sip:10.0.0.1:5080"),
        ("proxy", "routing", '"pkg.mod:fn"', "routing", "pkg.mod:fn"),
        ("tls", "cert", '"c.pem"', "tls_cert", "c.pem"),
        ("tls", "key", '"k.pem"', "tls_key", "k.pem"),
        ("tls", "ca", '"ca.pem"', "tls_ca", "ca.pem"),
        ("tls", "verify_client", "true", "tls_verify_client", True),
        ("tcp", "alias", "true", "tcp_alias", True),  # [tls] alias needs a certificate: below
        ("outbound", "edge", "true", "outbound_edge", True),
        ("outbound", "flow_timer", "120", "flow_timer", 120),
        ("udp", "read_pause", "0", "udp_read_pause", 0.0),
        ("gc", "young_interval", "2", "gc_young_interval", 2),
        ("gc", "full_interval", "0", "gc_full_interval", 0),
    ],
)
def test_each_section_key_sets_its_field_only(
    tmp_path: Path, section: str, key: str, value: str, field_name: str, expected: Any
) -> None:
    config = load_config(write(tmp_path, f"[{section}]\n{key} = {value}\n"))
    assert getattr(config, field_name) == expected
    others = {f.name for f in fields(ServerConfig)} - {field_name}
    assert all(getattr(config, name) == getattr(ServerConfig(), name) for name in others)


def test_flags_override_toml_and_unset_flags_do_not(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'listen = ["udp:127.0.0.1:5070"]\ndomains = ["a.example"]\ndata_dir = "from-file"\n'
        'workers = 2\n[auth]\nenabled = true\nalgorithms = ["SHA-256"]\n'
        '[proxy]\ndefault_route = "sip:file.example"\n',
    )
    config = load_config(
        path,
        listen=["tcp:127.0.0.1:5090", "udp:127.0.0.1:5090"],
        domains=["b.example", "c.example"],
        auth=False,
        algorithms=["MD5"],
        default_route="sip:flag.example",
        workers=None,  # not given on the command line: the file's value stays
        data_dir=None,
        log_level=None,
    )
    assert config.listen == ("tcp:127.0.0.1:5090", "udp:127.0.0.1:5090")  # lists become tuples
    assert config.domains == ("b.example", "c.example")
    assert config.auth is False and config.algorithms == ("MD5",)
    assert config.default_route == "sip:flag.example"
    assert config.workers == 2 and config.data_dir == "from-file"


def test_flags_without_file_override_defaults() -> None:
    config = load_config(None, data_dir="elsewhere", workers=4, log_level="debug")
    assert (config.data_dir, config.workers, config.log_level) == ("elsewhere", 4, "debug")
    assert config.listen == ServerConfig().listen


def test_flag_values_are_validated_too() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(None, workers=2, listen=["udp:127.0.0.1:0"])
    assert names_key(str(info.value), "workers")


def test_ipv6_and_default_port_listen_specs_are_accepted(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, 'listen = ["udp:[::1]:5062", "tcp:0.0.0.0"]\n'))
    assert config.listen == ("udp:[::1]:5062", "tcp:0.0.0.0")


# -- errors that name the key ------------------------------------------------------------------

CERTS = '[tls]\ncert = "c.pem"\nkey = "k.pem"\n'


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        pytest.param("bogus = 1\n", "bogus", id="unknown-top-level"),
        pytest.param("[nosuchsection]\nx = 1\n", "nosuchsection", id="unknown-section"),
        pytest.param("[registrar]\nbogus = 1\n", "bogus", id="unknown-registrar-key"),
        pytest.param("[auth]\nuser = 1\n", "user", id="unknown-auth-key"),
        pytest.param("[proxy]\ntimerc = 1\n", "timerc", id="unknown-proxy-key"),
        pytest.param("[tls]\ncertificate = 'x'\n", "certificate", id="unknown-tls-key"),
        pytest.param('workers = "2"\n', "workers", id="type-workers"),
        pytest.param('listen = "udp:127.0.0.1:5060"\n', "listen", id="type-listen-not-list"),
        pytest.param("domains = [1, 2]\n", "domains", id="type-domains-items"),
        pytest.param('[registrar]\nmin_expires = "60"\n', "min_expires", id="type-min_expires"),
        pytest.param("[registrar]\nmax_expires = 60.5\n", "max_expires", id="type-max_expires-float"),
        pytest.param("[auth]\nrealm = 5\n", "realm", id="type-realm"),
        pytest.param('[auth]\nalgorithms = "MD5"\n', "algorithms", id="type-algorithms"),
        pytest.param('[proxy]\ntimer_c = "x"\n', "timer_c", id="type-timer_c"),
        pytest.param('[proxy]\nrecord_route = "yes"\n', "record_route", id="type-record_route"),
        pytest.param('listen = ["udp:127.0.0.1:5060", "carrier-pigeon"]\n', "listen", id="listen-garbage"),
        pytest.param('listen = ["sctp:127.0.0.1:5060"]\n', "listen", id="listen-transport"),
        pytest.param('listen = ["udp:127.0.0.1:99999"]\n', "listen", id="listen-port"),
        pytest.param('[auth]\nalgorithms = ["SHA-1"]\n', "algorithms", id="algorithm-unknown"),
        pytest.param("[auth]\nalgorithms = []\n", "algorithms", id="algorithms-empty"),
        pytest.param("domains = []\n", "domains", id="domains-empty"),
        pytest.param("workers = 0\n", "workers", id="workers-zero"),
        pytest.param("[proxy]\ntimer_c = 0.5\n", "timer_c", id="timer_c-small"),
        pytest.param(
            "[registrar]\nmin_expires = 600\nmax_expires = 300\ndefault_expires = 400\n",
            "min_expires",
            id="min-over-max",
        ),
        pytest.param("[registrar]\ndefault_expires = 9000\n", "default_expires", id="default-over-max"),
        pytest.param("[registrar]\nmin_expires = 0\n", "min_expires", id="min-zero"),
        pytest.param('listen = ["tls:127.0.0.1:5061"]\n', "tls", id="tls-without-cert"),
        pytest.param('listen = ["tls:127.0.0.1:5061"]\n[tls]\ncert = "c.pem"\n', "tls", id="tls-without-key"),
        pytest.param('listen = ["wss:127.0.0.1:8443"]\n', "wss", id="wss-without-cert"),
        pytest.param(
            'workers = 2\nlisten = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:0"]\n',
            "workers",
            id="workers-port-0",
        ),
        pytest.param('[proxy]\ndefault_route = "not a uri"\n', "default_route", id="default_route-garbage"),
        pytest.param('[proxy]\ndefault_route = "sip:"\n', "default_route", id="default_route-no-host"),
        pytest.param('[proxy]\nrouting = "myroutes.route"\n', "routing", id="routing-without-colon"),
        pytest.param("workers = 2\n[outbound]\nedge = true\n", "edge", id="outbound-edge-workers"),
        pytest.param("[outbound]\nflow_timer = -1\n", "flow_timer", id="flow_timer-negative"),
        pytest.param('[outbound]\nedge = "yes"\n', "edge", id="type-outbound-edge"),
        pytest.param("[outbound]\nkeepalive = 1\n", "keepalive", id="unknown-outbound-key"),
        pytest.param("[tls]\nalias = true\n", "alias", id="tls-alias-without-cert"),
        pytest.param('[tls]\nalias = true\ncert = "c.pem"\n', "alias", id="tls-alias-without-key"),
        pytest.param(
            'listen = ["udp:127.0.0.1:5060"]\n[tcp]\nalias = true\n', "alias", id="tcp-alias-without-tcp"
        ),
        pytest.param("[tcp]\nreuse = true\n", "reuse", id="unknown-tcp-key"),
        pytest.param("[udp]\nread_pause = -1\n", "read_pause", id="udp-read_pause-negative"),
        pytest.param("[udp]\nread_pause = 1000\n", "read_pause", id="udp-read_pause-too-long"),
        pytest.param("[gc]\nyoung_interval = 0\n", "young_interval", id="gc-young_interval-zero"),
        pytest.param("[gc]\nyoung_interval = 120\n", "young_interval", id="gc-young_interval-too-long"),
        pytest.param("[gc]\nfull_interval = -1\n", "full_interval", id="gc-full_interval-negative"),
    ],
)
def test_bad_setting_raises_configuration_error_naming_the_key(tmp_path: Path, toml: str, key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(write(tmp_path, toml))
    assert names_key(str(info.value), key), str(info.value)


def test_min_over_max_names_both_bounds(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(write(tmp_path, "[registrar]\nmin_expires = 600\nmax_expires = 300\n"))
    assert names_key(str(info.value), "min_expires") and names_key(str(info.value), "max_expires")


def test_tls_listener_with_cert_and_key_is_valid(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, 'listen = ["tls:127.0.0.1:5061"]\n' + CERTS))
    assert config.tls_cert == "c.pem"


def test_tls_alias_with_cert_and_key_is_valid(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, 'listen = ["tls:127.0.0.1:5061"]\n' + CERTS + "alias = true\n"))
    assert config.tls_alias is True and config.tls_verify_client is False and config.tcp_alias is False


def test_workers_with_explicit_ports_are_valid(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, 'workers = 4\nlisten = ["udp:127.0.0.1:5090"]\n'))
    assert config.workers == 4


def test_unreadable_and_malformed_files_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigurationError, match=r"broken\.toml"):
        load_config(write(tmp_path, "listen = [\n", "broken.toml"))


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        pytest.param('[auth]\nenabled = "yes"\n', "enabled", id="auth.enabled"),
        pytest.param("[tls]\ncert = 5\n", "cert", id="tls.cert"),
        pytest.param("[tls]\nkey = 5\n", "key", id="tls.key"),
        pytest.param("[tls]\nca = 5\n", "ca", id="tls.ca"),
        pytest.param('[tls]\nverify_client = "no"\n', "verify_client", id="tls.verify_client"),
        pytest.param('[tls]\nalias = "yes"\n', "alias", id="tls.alias"),
        pytest.param("[tcp]\nalias = 1\n", "alias", id="tcp.alias"),
    ],
)
def test_wrong_type_in_renamed_section_key_names_the_toml_key(tmp_path: Path, toml: str, key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(write(tmp_path, toml))
    assert names_key(str(info.value), key), str(info.value)


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        pytest.param("workers = true\n", "workers", id="workers"),
        pytest.param("[registrar]\nmin_expires = true\n", "min_expires", id="min_expires"),
        pytest.param("[auth]\nmax_failures = true\n", "max_failures", id="max_failures"),
    ],
)
def test_boolean_for_integer_setting_is_a_type_error(tmp_path: Path, toml: str, key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(write(tmp_path, toml))
    assert names_key(str(info.value), key)


def test_unknown_log_level_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(write(tmp_path, 'log_level = "verbose"\n'))
    assert names_key(str(info.value), "log_level")


@pytest.mark.parametrize("route", ["http://gw.example.net", "tel:+15551234"])
def test_non_sip_default_route_is_rejected(tmp_path: Path, route: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(write(tmp_path, f'[proxy]\ndefault_route = "{route}"\n'))
    assert names_key(str(info.value), "default_route")


# -- sipstack serve --config -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "flags", "needle"),
    [
        pytest.param("[registrar]\nbogus = 1\n", [], "registrar.bogus", id="unknown-key"),
        pytest.param(
            "[registrar]\nmin_expires = 900\nmax_expires = 60\n", [], "min_expires", id="min-over-max"
        ),
        pytest.param(
            'listen = ["udp:127.0.0.1:0"]\n', ["--workers", "2"], "workers", id="flag-workers-port-0"
        ),
        pytest.param('listen = ["udp:127.0.0.1:0"]\n[tls]\nalias = true\n', [], "tls.alias", id="tls-alias"),
        pytest.param('listen = ["udp:127.0.0.1:0"]\n[tcp]\nalias = true\n', [], "tcp.alias", id="tcp-alias"),
    ],
)
def test_serve_with_bad_config_exits_2_naming_the_key(
    tmp_path: Path, toml: str, flags: list[str], needle: str
) -> None:
    path = write(tmp_path, toml, "bad.toml")
    done = run_cli("serve", "--config", str(path), *flags, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("sipstack serve: ")
    assert needle in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "sipstack-data").exists()  # nothing was started


def test_serve_with_missing_config_file_exits_2(tmp_path: Path) -> None:
    done = run_cli("serve", "--config", str(tmp_path / "nope.toml"), cwd=tmp_path)
    assert done.returncode == 2
    assert "cannot read" in done.stderr and "nope.toml" in done.stderr


def test_serve_with_unknown_log_level_exits_2_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, 'log_level = "verbose"\nlisten = ["udp:127.0.0.1:0"]\n', "bad.toml")
    done = run_cli("serve", "--config", str(path), "--data-dir", str(tmp_path / "d"), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "log_level" in done.stderr and "Traceback" not in done.stderr
