"""``sipstack serve`` as a child process, for tests that drive it from outside.

:class:`ServerKit` starts ``python -m sipstack serve`` on a port free for both UDP and TCP on
127.0.0.1, with its own data directory, and returns once the server answers an OPTIONS
(sent with a plain UDP socket) and accepts a TCP connection. It can be killed with SIGKILL
(:meth:`ServerKit.kill9`), stopped with SIGTERM (:meth:`ServerKit.stop`) and started again on
the same data directory and port (:meth:`ServerKit.start`). Whatever it started is killed by
PID on :meth:`ServerKit.close` (also ``with ServerKit(...)``), never by name.

The operator commands run against the same data directory: :meth:`ServerKit.cli`,
:meth:`ServerKit.add_user`, :meth:`ServerKit.registrations`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netkit import free_port, options_status

HOST = "127.0.0.1"


def free_udp_tcp_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 just now."""
    return free_port()


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def write_toml(path: Path, settings: dict[str, Any]) -> Path:
    """A TOML file from ``{"key": value, "section": {"key": value}}`` (tables after keys)."""
    lines = [f"{k} = {toml_value(v)}" for k, v in settings.items() if not isinstance(v, dict)]
    for section, table in settings.items():
        if isinstance(table, dict):
            lines += ["", f"[{section}]"] + [f"{k} = {toml_value(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class Registration:
    """One line of ``sipstack registrations``."""

    aor: str
    contact: str
    expires: int
    fields: dict[str, str]


def parse_registrations(text: str) -> list[Registration]:
    """``aor<TAB>contact<TAB>expires=N[<TAB>q=Q]<TAB>from=SOURCE<TAB>user-agent`` per line."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("\t")
        fields = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
        out.append(Registration(parts[0], parts[1], int(fields["expires"]), fields))
    return out


class ServerKit:
    """One ``sipstack serve`` child process (see the module docstring).

    ``auth``: False adds ``--no-auth``; ``algorithms``: ``--auth-algorithms`` (e.g. "MD5");
    ``config``: TOML settings written to ``<workdir>/server.toml`` and passed with
    ``--config``; ``transports``: the listeners (all on the same port)."""

    def __init__(
        self,
        workdir: Path,
        *,
        auth: bool = True,
        algorithms: str | None = None,
        config: dict[str, Any] | None = None,
        transports: tuple[str, ...] = ("udp", "tcp"),
        port: int | None = None,
        ready_timeout: float = 20.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.auth = auth
        self.algorithms = algorithms
        self.config_path = write_toml(self.workdir / "server.toml", config) if config else None
        self.transports = transports
        self.port = port or 0
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log_handle: Any = None

    # -- process control ------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"serve-{self.starts}.log"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "sipstack", "serve", "--data-dir", str(self.data_dir)]
        for transport in self.transports:
            cmd += ["--listen", f"{transport}:{HOST}:{self.port}"]
        if not self.auth:
            cmd.append("--no-auth")
        if self.algorithms:
            cmd += ["--auth-algorithms", self.algorithms]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        return cmd

    def start(self) -> ServerKit:
        """Start (or start again, on the same port and data directory) and wait until it
        answers. A port taken in the meantime by someone else is replaced on a first start."""
        assert not self.running, "already running"
        fixed = bool(self.port)
        for _ in range(1 if fixed else 3):
            if not fixed:
                self.port = free_udp_tcp_port()
            self.starts += 1
            self._close_log()
            self._log_handle = self.log_path.open("wb")
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=self._log_handle,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
            if self._wait_ready():
                return self
            if self.proc.poll() is None or b"cannot start" not in self.log_path.read_bytes():
                break
        self.close()
        raise AssertionError(f"sipstack serve did not come up: {self.command()}\n{self.log()}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            if self.options(timeout=0.2) == 200 and ("tcp" not in self.transports or self._tcp_open()):
                return True
            time.sleep(0.05)
        return False

    def _tcp_open(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            try:
                sock.connect((HOST, self.port))
            except OSError:
                return False
        return True

    def options(self, timeout: float = 1.0) -> int | None:
        """Send one OPTIONS for the server itself over UDP; the status code, or None."""
        return options_status(self.port, timeout)

    def kill9(self) -> int | None:
        """SIGKILL by PID (no chance to clean up); the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
        returncode = self.proc.wait(10)
        self._close_log()
        return returncode

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM by PID and wait (SIGKILL after ``timeout``); the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return self.kill9()
        self._close_log()
        return self.proc.returncode

    def close(self) -> None:
        """Kill what this kit started, if it is still running."""
        if self.proc is not None and self.proc.poll() is None:
            self.kill9()
        self._close_log()

    def _close_log(self) -> None:
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def __enter__(self) -> ServerKit:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log(self, max_chars: int = 6000) -> str:
        """The last start's output (its log), for assertion messages."""
        try:
            return self.log_path.read_text(errors="replace")[-max_chars:]
        except OSError:
            return ""

    # -- operator commands on the same data directory --------------------------------

    def cli(self, *args: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """``sipstack ARGS --data-dir <data dir>``."""
        cmd = [sys.executable, "-m", "sipstack", *args, "--data-dir", str(self.data_dir)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.workdir)
        if check and done.returncode != 0:
            raise AssertionError(f"$ {' '.join(cmd)}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}")
        return done

    def add_user(self, aor: str, password: str) -> None:
        self.cli("user", "add", aor, "--password", password)

    def registrations(self, aor: str | None = None) -> list[Registration]:
        """``sipstack registrations [AOR]``, parsed."""
        return parse_registrations(self.cli("registrations", *([aor] if aor else [])).stdout)


__all__ = ["HOST", "Registration", "ServerKit", "free_udp_tcp_port", "parse_registrations", "write_toml"]
