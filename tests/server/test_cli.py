"""Operator commands on a data directory: ``sipstack user add/list/remove`` and
``sipstack registrations`` — exit codes (0 ok, 1 failure, 2 usage), outputs, ``--data-dir``
and ``SIPSTACK_DATA_DIR``; users added this way authenticate against the server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from sipkit import (
    HOST,
    ServeProcess,
    UdpClient,
    free_port,
    register,
    run_cli,
    server_config,
    sip_request,
    udp_port,
)

from sipstack.auth import ha1_all
from sipstack.cli.main import main
from sipstack.server import Server
from sipstack.server.app import open_data_store


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SIPSTACK_DATA_DIR", raising=False)
    monkeypatch.delenv("SIPSTACK_PASSWORD", raising=False)
    monkeypatch.chdir(tmp_path)  # the default ./sipstack-data lands here


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def stored_users(data_dir: Path) -> dict[str, tuple[str, str, dict[str, str]]]:
    async def read() -> dict[str, tuple[str, str, dict[str, str]]]:
        store = open_data_store(data_dir)
        try:
            return {u.aor: (u.username, u.realm, u.ha1) for u in await store.list_users()}
        finally:
            await store.close()

    return asyncio.run(read())


# -- user add / list / remove ------------------------------------------------------------------


def test_user_add_stores_ha1_per_algorithm_and_reports_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    code, out, err = cli(
        capsys, "user", "add", "alice@Example.COM", "--password", "pw1", "--data-dir", str(data)
    )
    assert code == 0, err
    assert out.strip() == f"added alice@example.com (realm example.com) in data directory {data.resolve()}"
    assert (data / "sipstack.db").exists()
    assert stored_users(data) == {
        "alice@example.com": ("alice", "example.com", ha1_all("alice", "example.com", "pw1"))
    }
    assert "pw1" not in (data / "sipstack.db").read_bytes().decode("latin-1")  # only HA1s are kept


def test_user_add_again_updates_the_password(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    assert cli(capsys, "user", "add", "sip:bob@example.com", "-p", "old", "--data-dir", data)[0] == 0
    code, out, _ = cli(capsys, "user", "add", "bob@example.com", "-p", "new", "--data-dir", data)
    assert code == 0 and out.startswith("updated bob@example.com (realm example.com)")
    assert stored_users(Path(data))["bob@example.com"][2] == ha1_all("bob", "example.com", "new")


def test_user_add_with_realm_and_password_from_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIPSTACK_PASSWORD", "from-env")
    data = tmp_path / "data"
    code, out, _ = cli(capsys, "user", "add", "carol@example.com", "--realm", "corp", "--data-dir", str(data))
    assert code == 0 and "(realm corp)" in out
    assert stored_users(data)["carol@example.com"] == ("carol", "corp", ha1_all("carol", "corp", "from-env"))


@pytest.mark.parametrize("aor", ["alice", "@example.com", "alice@", "sip:alice"])
def test_user_add_and_remove_reject_a_bad_aor_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], aor: str
) -> None:
    data = str(tmp_path / "data")
    code, out, err = cli(capsys, "user", "add", aor, "-p", "x", "--data-dir", data)
    assert code == 2 and out == ""
    assert err.startswith("sipstack user add: expected USER@DOMAIN")
    code, _, err = cli(capsys, "user", "remove", aor, "--data-dir", data)
    assert code == 2 and err.startswith("sipstack user remove: expected USER@DOMAIN")
    assert not (tmp_path / "data" / "sipstack.db").exists()


def test_user_add_without_password_and_without_terminal_exits_2(tmp_path: Path) -> None:
    done = run_cli("user", "add", "dave@example.com", "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert done.returncode == 2
    assert "give --password or set SIPSTACK_PASSWORD" in done.stderr
    assert not (tmp_path / "data" / "sipstack.db").exists()


def test_user_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    code, out, err = cli(capsys, "user", "list", "--data-dir", data)
    assert code == 0 and out == "" and "no users yet" in err
    assert not Path(data).exists()  # listing creates nothing
    for aor in ("zed@example.com", "amy@example.com"):
        cli(capsys, "user", "add", aor, "-p", "x", "--data-dir", data)
    code, out, err = cli(capsys, "user", "list", "--data-dir", data)
    assert code == 0
    assert out.splitlines() == [
        "amy@example.com\trealm=example.com\talgorithms=MD5,SHA-256,SHA-512-256",
        "zed@example.com\trealm=example.com\talgorithms=MD5,SHA-256,SHA-512-256",
    ]
    assert err.startswith("2 user(s) in data directory")


def test_user_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    cli(capsys, "user", "add", "erin@example.com", "-p", "x", "--data-dir", data)
    code, out, _ = cli(capsys, "user", "remove", "erin@Example.com", "--data-dir", data)
    assert code == 0 and out.startswith("removed erin@example.com from data directory")
    code, out, err = cli(capsys, "user", "remove", "erin@example.com", "--data-dir", data)
    assert code == 1 and out == "" and err.startswith("no user erin@example.com in data directory")
    assert stored_users(Path(data)) == {}


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    for argv in (["user"], ["user", "frobnicate"], ["registrations", "a", "b"], []):
        done = run_cli(*argv, cwd=tmp_path)
        assert done.returncode == 2, (argv, done.stdout, done.stderr)
        assert "usage: sipstack" in done.stderr + done.stdout


# -- data directory: flag, environment, default ------------------------------------------------


def test_data_dir_flag_environment_and_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli(capsys, "user", "add", "dflt@example.com", "-p", "x")
    assert set(stored_users(tmp_path / "sipstack-data")) == {"dflt@example.com"}  # ./sipstack-data

    monkeypatch.setenv("SIPSTACK_DATA_DIR", str(tmp_path / "from-env"))
    code, out, _ = cli(capsys, "user", "add", "env@example.com", "-p", "x")
    assert code == 0 and str((tmp_path / "from-env").resolve()) in out
    code, out, _ = cli(
        capsys, "user", "add", "flag@example.com", "-p", "x", "--data-dir", str(tmp_path / "flag")
    )
    assert code == 0  # the flag beats the environment
    assert set(stored_users(tmp_path / "from-env")) == {"env@example.com"}
    assert set(stored_users(tmp_path / "flag")) == {"flag@example.com"}
    code, out, _ = cli(capsys, "user", "list")
    assert out.splitlines()[0].startswith("env@example.com\t")


def test_environment_data_dir_in_child_processes(tmp_path: Path) -> None:
    env_dir = str(tmp_path / "env-data")
    added = run_cli(
        "user", "add", "fay@example.com", "--password", "x", cwd=tmp_path, SIPSTACK_DATA_DIR=env_dir
    )
    assert added.returncode == 0, added.stderr
    listed = run_cli("user", "list", cwd=tmp_path, SIPSTACK_DATA_DIR=env_dir)
    assert listed.returncode == 0 and listed.stdout.startswith("fay@example.com\trealm=example.com")
    assert not (tmp_path / "sipstack-data").exists()


# -- registrations -----------------------------------------------------------------------------


def make_bindings(data_dir: Path) -> int:
    """REGISTER two contacts of alice (one with q=0.5) and one of bob at an in-process server
    without authentication; returns the client's port."""

    async def run() -> int:
        server = Server(server_config(data_dir, auth=False))
        await server.start()
        try:
            with UdpClient() as client:
                port = udp_port(server)
                for aor, contact in (
                    ("alice@localhost", f"<sip:alice@{HOST}:7001>"),
                    ("alice@localhost", f"<sip:alice@{HOST}:7002>;q=0.5"),
                    ("bob@localhost", f"<sip:bob@{HOST}:7003>"),
                ):
                    request = sip_request(
                        "REGISTER",
                        "sip:localhost",
                        local_port=client.port,
                        from_uri=f"sip:{aor}",
                        to_uri=f"sip:{aor}",
                        contact=contact,
                        headers=[("Expires", "300"), ("User-Agent", "TestPhone/1.0")],
                    )
                    response = await client.arequest(request, port)
                    assert response is not None and response.status_code == 200
                return client.port
        finally:
            await server.stop()

    return asyncio.run(run())


def test_registrations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    code, out, err = cli(capsys, "registrations", "--data-dir", str(data))
    assert code == 0 and out == "" and "no registrations" in err
    client_port = make_bindings(data)
    code, out, err = cli(capsys, "registrations", "--data-dir", str(data))
    assert code == 0 and err.startswith("3 binding(s) in data directory")
    rows = [line.split("\t") for line in out.splitlines()]
    assert [(r[0], r[1]) for r in rows] == [
        ("sip:alice@localhost", f"sip:alice@{HOST}:7001"),
        ("sip:alice@localhost", f"sip:alice@{HOST}:7002"),
        ("sip:bob@localhost", f"sip:bob@{HOST}:7003"),
    ]
    for row in rows:
        expires = int(row[2].removeprefix("expires="))
        assert 290 <= expires <= 300
        assert f"from=UDP:{HOST}:{client_port}".lower() in "\t".join(row).lower()
        assert row[-1] == "TestPhone/1.0"
    assert "q=0.5" in rows[1]
    code, out, err = cli(capsys, "registrations", "sip:bob@localhost", "--data-dir", str(data))
    assert code == 0 and len(out.splitlines()) == 1 and out.startswith("sip:bob@localhost\t")
    assert err.startswith("1 binding(s)")
    code, out, err = cli(capsys, "registrations", "sip:nobody@localhost", "--data-dir", str(data))
    assert code == 0 and out == "" and err.startswith("0 binding(s)")


# -- the commands and the server share the data directory --------------------------------------


def test_user_added_by_cli_can_register_with_the_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert cli(capsys, "user", "add", "gil@localhost", "-p", "secret", "--data-dir", str(data))[0] == 0

    async def run() -> tuple[int, int]:
        server = Server(server_config(data))
        await server.start()
        try:
            with UdpClient() as client:
                port = udp_port(server)
                contact = f"sip:gil@{HOST}:{client.port}"
                good = await asyncio.to_thread(
                    register, client, port, "gil@localhost", contact, password="secret"
                )
                bad = await asyncio.to_thread(
                    register, client, port, "gil@localhost", contact, password="wrong"
                )
                return good.status_code, bad.status_code
        finally:
            await server.stop()

    assert asyncio.run(run()) == (200, 401)


def test_serve_uses_sipstack_data_dir_and_registrations_read_it_while_running(
    tmp_path: Path, serve: Callable[..., ServeProcess]
) -> None:
    env_dir = str(tmp_path / "env-data")
    port = free_port()
    process = serve("--listen", f"udp:{HOST}:{port}", "--no-auth", env={"SIPSTACK_DATA_DIR": env_dir})
    assert process.wait_options(port), process.log()
    with UdpClient() as client:
        assert register(client, port, "hal@localhost", f"sip:hal@{HOST}:7010").status_code == 200
    listed = run_cli("registrations", cwd=tmp_path, SIPSTACK_DATA_DIR=env_dir)
    assert listed.returncode == 0
    assert listed.stdout.startswith(f"sip:hal@localhost\tsip:hal@{HOST}:7010\t")
    assert f"data in {env_dir}" in process.log()
    process.terminate()
    assert process.proc.wait(8) == 0
    assert not (tmp_path / "sipstack-data").exists()
