"""Fixtures for the interoperability tests against SIPp (Debian package ``sip-tester``).

The ``sipp`` fixture runs SIPp as a child process (never ``-bg``) with a bounded number of
calls (``-m``), SIPp's own global timeout (``-timeout`` with ``-timeout_error``) and a
wall-clock timeout on top; stdout, stderr, the statistics CSV and the message and error
traces go to files under the test's ``tmp_path``. Whatever it started is killed by PID on
teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import functools
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from netkit import free_port

SIPP = shutil.which("sipp")
SCENARIOS = Path(__file__).parent / "scenarios"
HOST = "127.0.0.1"
NO_SIPP = (
    "SIPp is not installed (Debian package sip-tester: `make debs` as root, or apt-get install sip-tester)"
)


@functools.cache
def sipp_features() -> str:
    """SIPp's build flags from ``sipp -v`` (e.g. ``3.6.1-SCTP-PCAP-RTPSTREAM``; TLS builds say
    ``-TLS-``); empty without SIPp."""
    if SIPP is None:
        return ""
    try:
        out = subprocess.run([SIPP, "-v"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    m = re.search(r"SIPp v(\S+)", out)
    return m.group(1) if m else ""


def free_sipp_port() -> int:
    """A port free for both UDP and TCP (SIPp binds the one given with ``-p``)."""
    return free_port()


def port_bound(port: int, transport: str) -> bool:
    """Whether something listens on ``port`` (Linux: read /proc/net)."""
    names = ("udp", "udp6") if transport == "u" else ("tcp", "tcp6")
    for name in names:
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            if int(local.rsplit(":", 1)[1], 16) == port and (transport == "u" or state == "0A"):
                return True
    return False


_TRACE_SPLIT = re.compile(r"^-{20,} ([^\n]*)\n(\w+) message (sent|received)[^\n]*\n\n", re.M)


@dataclass
class TracedMessage:
    time: float  # seconds since the epoch, from the trace's separator line
    transport: str
    direction: str  # "sent" or "received", from SIPp's side
    text: str

    @property
    def start_line(self) -> str:
        return self.text.split("\n", 1)[0].strip()


@dataclass
class SippRun:
    """What one SIPp run left: exit code, last statistics row, traces."""

    cmd: list[str]
    returncode: int | None
    workdir: Path
    stats: dict[str, str] = field(default_factory=dict)

    def _read(self, name: str) -> str:
        path = self.workdir / name
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def stdout(self) -> str:
        return self._read("stdout.txt")

    @property
    def stderr(self) -> str:
        return self._read("stderr.txt")

    @property
    def message_log(self) -> str:
        return self._read("messages.log")

    @property
    def error_log(self) -> str:
        return self._read("errors.log")

    def stat(self, name: str) -> int:
        return int(self.stats.get(name, "-1") or -1)

    @property
    def successful(self) -> int:
        return self.stat("SuccessfulCall(C)")

    @property
    def failed(self) -> int:
        return self.stat("FailedCall(C)")

    def messages(self, direction: str | None = None, start: str = "") -> list[TracedMessage]:
        """The messages in SIPp's ``-trace_msg`` log, optionally only those ``direction``
        (SIPp's view) whose start line begins with ``start``."""
        log = self.message_log
        parts = _TRACE_SPLIT.split(log)
        out = []
        # parts: [preamble, (stamp, transport, direction, text) * n]
        for i in range(1, len(parts) - 3, 4):
            stamp = datetime.strptime(parts[i].strip(), "%Y-%m-%d %H:%M:%S.%f").timestamp()
            msg = TracedMessage(stamp, parts[i + 1], parts[i + 2], parts[i + 3].strip("\n") + "\n")
            if (direction is None or msg.direction == direction) and msg.start_line.startswith(start):
                out.append(msg)
        return out

    def report(self, max_chars: int = 6000) -> str:
        """Evidence for an assertion message: the command, exit code, counters, the error
        trace and the start of the message trace."""
        keys = ("SuccessfulCall(C)", "FailedCall(C)", "Retransmissions(C)", "DeadCallMsgs(C)")
        counters = ", ".join(f"{k}={self.stats.get(k)}" for k in keys)
        return (
            f"\n$ {' '.join(self.cmd)}\nexit code {self.returncode}; {counters}\n"
            f"--- stderr ---\n{self.stderr[-2000:]}\n"
            f"--- errors.log ---\n{self.error_log[:max_chars]}\n"
            f"--- messages.log ---\n{self.message_log[:max_chars]}"
        )


class SippProcess:
    """A running SIPp child process."""

    def __init__(
        self, proc: asyncio.subprocess.Process, cmd: list[str], workdir: Path, port: int, wall: float
    ) -> None:
        self.proc = proc
        self.port = port
        """The port SIPp was given with ``-p``."""
        self.cmd = cmd
        self.workdir = workdir
        self.wall = wall

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)

    async def wait(self) -> SippRun:
        """Wait for SIPp to exit (killed after the wall-clock bound) and read its results."""
        try:
            await asyncio.wait_for(self.proc.wait(), self.wall)
        except TimeoutError:
            self.kill()
            await self.proc.wait()
            run = self.result()
            raise AssertionError(
                f"SIPp still running after {self.wall:.0f} s: killed{run.report()}"
            ) from None
        return self.result()

    def result(self) -> SippRun:
        run = SippRun(self.cmd, self.proc.returncode, self.workdir)
        stat_file = self.workdir / "stat.csv"
        if stat_file.exists():
            with stat_file.open(newline="", errors="replace") as f:
                rows = [row for row in csv.reader(f, delimiter=";") if row]
            if len(rows) >= 2:
                run.stats = dict(zip(rows[0], rows[-1], strict=False))
        return run


class Sipp:
    """Starts SIPp runs, each in its own directory under ``tmp_path``."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.processes: list[SippProcess] = []

    @staticmethod
    def require_tls() -> None:
        """Skip the test unless this SIPp build has TLS (``-t l1``)."""
        features = sipp_features()
        if not re.search(r"\bTLS\b", features):
            pytest.skip(
                f"this SIPp build (v{features or '?'}) has no TLS: Debian's sip-tester is built without "
                "OpenSSL (`sipp -t l1` answers 'To use a TLS transport you must compile SIPp with OpenSSL')"
            )

    async def start(
        self,
        scenario: str,
        *,
        calls: int,
        remote: str | None = None,
        port: int | None = None,
        transport: str = "u1",
        rate: float | None = None,
        limit: int | None = None,
        timeout: float = 20.0,
        extra: Sequence[str] = (),
    ) -> SippProcess:
        """Start SIPp with ``scenarios/<scenario>.xml``: a client towards ``remote``
        (``host:port``), or a server when ``remote`` is None (returns once its port is
        bound). ``-m calls`` and ``-timeout`` bound the run; the wall clock gets 10 s more."""
        if SIPP is None:
            pytest.skip(NO_SIPP)
        port = port or free_sipp_port()
        workdir = self.tmp_path / f"sipp{len(self.processes)}-{scenario}"
        workdir.mkdir()
        cmd = [SIPP] + ([remote] if remote else [])
        cmd += ["-sf", str(SCENARIOS / f"{scenario}.xml"), "-i", HOST, "-p", str(port), "-t", transport]
        cmd += ["-m", str(calls), "-timeout", f"{timeout:g}s", "-timeout_error", "-nostdin"]
        cmd += ["-trace_stat", "-stf", str(workdir / "stat.csv"), "-fd", "1"]
        cmd += ["-trace_msg", "-message_file", str(workdir / "messages.log")]
        cmd += ["-trace_err", "-error_file", str(workdir / "errors.log")]
        if rate is not None:
            cmd += ["-r", f"{rate:g}"]
        if limit is not None:
            cmd += ["-l", str(limit)]
        cmd += list(extra)
        with (workdir / "stdout.txt").open("wb") as out, (workdir / "stderr.txt").open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=workdir
            )
        process = SippProcess(proc, cmd, workdir, port, timeout + 10.0)
        self.processes.append(process)
        if remote is None:
            await self._wait_bound(process, port, transport[0])
        return process

    async def run(self, scenario: str, **kwargs: object) -> SippRun:
        """Start SIPp and wait for it to exit."""
        process = await self.start(scenario, **kwargs)  # type: ignore[arg-type]
        return await process.wait()

    async def _wait_bound(self, process: SippProcess, port: int, transport: str) -> None:
        deadline = time.monotonic() + 10.0
        while not port_bound(port, transport):
            if process.proc.returncode is not None:
                raise AssertionError(f"SIPp exited before listening{process.result().report()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"SIPp did not bind port {port} within 10 s{process.result().report()}")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        for process in self.processes:
            process.kill()
        for process in self.processes:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.proc.wait(), 5.0)


@pytest.fixture
async def sipp(tmp_path: Path) -> AsyncIterator[Sipp]:
    """Runs SIPp; every process it started is killed (by PID) on teardown."""
    if SIPP is None:
        pytest.skip(NO_SIPP)
    runner = Sipp(tmp_path)
    try:
        yield runner
    finally:
        await runner.close()
