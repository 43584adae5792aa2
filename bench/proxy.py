#!/usr/bin/env python3
"""Proxy benchmark: sipstack's record-routing stateful proxy against Kamailio 5.6, under SIPp.

SIPp UAC (127.0.0.1:15080) -> proxy under test (127.0.0.1:15060) -> SIPp UAS (127.0.0.1:15070),
one call = INVITE / 100 / 180 / 200 / ACK / BYE / 200, record-routed: the ACK and the BYE follow
the route set through the proxy (``bench/scenarios/proxy_uac.xml``, ``proxy_uas.xml``).

Systems under test, one after the other on the same three ports and under the same load, each
started here in a session of its own and stopped by that session's process group / PIDs only:

- ``sipstack-1``, ``sipstack-2``: ``python -m sipstack serve --workers 1|2 --no-auth`` with a
  TOML file whose ``[proxy] default_route`` is the UAS (the calls are for ``example.net``, a
  domain it does not serve); the supervisor and the workers are measured;
- ``kamailio-1``, ``kamailio-2``: Kamailio with ``bench/kamailio_proxy.cfg`` (tm + rr + sl +
  maxfwd: ``record_route()``, ``t_relay()`` to ``$du`` = the UAS) and ``-n 1`` or ``-n 2`` UDP
  workers; all its processes (main, timers, workers) are measured;
- ``floor``, at the CPU rates only: ``bench/floor_relay.py``, a stateless relay on uvloop that
  only splices bytes (no parsing, no transactions) -- what the event loop and the socket calls
  alone cost per call in Python, the floor under any Python proxy.

1. CPU per call: ``--cpu-rate`` calls/s (200), then ``--cpu-rate-high`` calls/s (1000, the rate
   of the anchor harness's figures), each for ``--cpu-seconds`` (10 s) after a warm-up at that
   rate until the system's steady state: sipstack keeps a finished transaction 32 s (RFC 6026
   Timers L and M, RFC 3261 Timer J: 64*T1), so its warm-up is 34 s; Kamailio's tm keeps one
   5 s (its wait timer), 7 s. CPU = the run time the scheduler counts (/proc/PID/schedstat; utime
   + stime where it is missing) of every process of the system's session over the run, divided
   by the successful calls.
2. Highest rate: steps of ``--step-seconds`` (3 s) at 800, 1200, 1600, 2400, 3200, 4800 ...
   calls/s until a step misses, then one bisection step. Every run is bounded: a fresh SIPp UAS
   (``-timeout``) and a SIPp UAC placing ``rate * seconds`` calls (``-m``), stopped 4 s after the
   last call was due. A run passes when fewer than 0.1 % of the calls SIPp placed had not
   succeeded by the time it ended and SIPp placed them at >= 95 % of the rate. SIPp fails a call
   by itself only after ~32 s of retransmissions, so a call unfinished when the run is stopped
   counts as failed; retransmissions are reported beside: SIPp's retransmitted messages (UAC +
   UAS), and the calls with a late transaction from SIPp's per-call response times -- INVITE
   with no 100/180 within 500 ms (the UAC retransmitted it), 200 not ACKed within 500 ms (the
   UAS retransmitted it), BYE not answered within 500 ms (retransmitted). The highest rate is
   the highest pass below every miss, the CPU run included; a stricter figure also wants fewer
   than 0.1 % of the calls late. After a run that missed, the system is restarted (its leftover
   transactions would go on retransmitting into the next run for up to 32 s). In the full run
   each system is then held at rates for 35 s each (past sipstack's 32 s of state, and so past
   Kamailio's 5 s too: both are held alike), and those runs count too: first the highest step
   without late transactions (a late step has always collapsed when held), lower ones while
   holds miss, then halfway between the highest rate held and the lowest that missed (or the
   highest step passed); at most 5 holds, so that the rate reported was held.

SIPp runs with ``-default_behaviors all,-abortunexp``: a message out of order (a 180 that a second
worker relays after the 200, an ACK after the BYE) is logged (``-trace_err``) and ignored, as a
user agent ignores it, instead of failing the call; the report counts these messages by kind.

Prints tables and the ratios sipstack / Kamailio for 1 and 2 workers (CPU per call, highest
rate), the unexpected messages and the systems' log lines. Usage: ``python bench/proxy.py
[--quick] [--keep]`` (--quick: about 75 s, 2 s steps, no warm-up, no bisection, no steady run;
full: about 18 minutes). Timings never make it exit non-zero; it exits 1 only when SIPp or a
system under test could not be started (or restarted).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from options import (
    CLK_TCK,
    HOST,
    fmt,
    machine_cpu,
    ratio,
    say,
    session_ticks,
    start_process,
    stop_all,
    stop_process,
)

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
UAC_SCENARIO = BENCH / "scenarios" / "proxy_uac.xml"
UAS_SCENARIO = BENCH / "scenarios" / "proxy_uas.xml"
KAMAILIO_CFG = BENCH / "kamailio_proxy.cfg"
PORTS = (15060, 15070, 15080)  # proxy, UAS, UAC: the reference harness's
SIPP_BUFFER = 4 * 1024 * 1024  # SIPp's socket buffers, as large as the systems' own
STOP_GRACE = 3.0  # seconds a system under test has to stop after SIGTERM before SIGKILL
UAS_LINGER = 2.0  # the UAS keeps a call 1 s after the BYE's 200 (timewait); then it is stopped
FAIL_MAX = 0.001  # a step passes with fewer than 0.1 % of its calls failed
LATE_MS = 500  # T1: an answer this late means a retransmission
SENT_RATE_MIN = 0.95  # below this share of the asked rate, SIPp could not keep up
SIPP_SATURATED = 0.9  # a SIPp this busy (share of a core): the ramp stops, SIPp is the limit
SUT_BUSY = 0.7  # below this share of a core at the first miss, the proxy was not the limit
MACHINE_BUSY = 0.9  # above this share of all CPUs, the machine was the limit
SUT_SATURATED = 0.9  # above this share of a core, the proxy's busiest process was the limit
RATE_GRAIN = 50  # bisection steps are rounded to this many calls/s
MAX_HOLDS = 5  # holds of 35 s, from a system's highest step down until one passes
RATES = (800, 1200, 1600, 2400, 3200, 4800, 6400, 9600)  # the ramp before bisection
QUICK_RATES = (800, 1600, 3200, 6400)
SIPSTACK_STATE = 32.0  # sipstack keeps a finished transaction 64*T1 (Timers L, M, J)
KAMAILIO_STATE = 5.0  # Kamailio tm's wait timer
# Kamailio's shared memory (MB), where its transactions live: large enough that an overload
# does not end in "out of mem" sooner than it would for sipstack, which has no such cap.
KAMAILIO_SHM_MB = 1024


# --------------------------------------------------------------------------------------------
# ports and processes
# --------------------------------------------------------------------------------------------


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def udp_bound(port: int) -> bool:
    """Whether some socket is bound to udp 127.0.0.1:port or *:port (from /proc/net/udp, without
    binding: a test bind could make a SIPp starting at that moment fail)."""
    wanted = {f"0100007F:{port:04X}", f"00000000:{port:04X}"}
    with open("/proc/net/udp") as f:
        return any(line.split()[1] in wanted for line in f.readlines()[1:])


def choose_ports(wanted: tuple[int, int, int]) -> tuple[tuple[int, int, int], str | None]:
    """The three ports every system is measured on: ``wanted`` when all are free, else three
    free ones, used for every system alike, with a note."""
    if all(port_free(p) for p in wanted):
        return wanted, None
    socks = []
    try:
        for _ in range(3):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((HOST, 0))
            socks.append(sock)
        sut, uas, uac = (sock.getsockname()[1] for sock in socks)
    finally:
        for sock in socks:
            sock.close()
    busy = ", ".join(str(p) for p in wanted if not port_free(p))
    return (sut, uas, uac), f"port(s) {busy} in use by someone else: using {sut}, {uas}, {uac} instead"


def other_sip_processes() -> list[str]:
    """SIPp, Kamailio and sipstack processes on this machine not started by this script."""
    mine = {os.getpid()}
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        text = b" ".join(argv).decode(errors="replace").strip()
        name = os.path.basename(argv[0].decode(errors="replace")) if argv and argv[0] else ""
        if name in ("sipp", "kamailio") or "sipstack serve" in text or "-m sipstack" in text:
            found.append(f"{entry.name}: {text[:100]}")
    return found


def probe(port: int, timeout: float) -> bool:
    """Whether an OPTIONS for the proxy itself (``sip:127.0.0.1:port``, no user part) gets a
    response within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        local = sock.getsockname()[1]
        n = 0
        while time.monotonic() < deadline:
            n += 1
            tag = f"{os.getpid()}-{n}-{time.monotonic_ns() % 10**9}"
            message = (
                f"OPTIONS sip:{HOST}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {HOST}:{local};branch=z9hG4bK-probe-{tag};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:probe@{HOST}>;tag=p{tag}\r\n"
                f"To: <sip:{HOST}:{port}>\r\n"
                f"Call-ID: probe-{tag}@{HOST}\r\n"
                "CSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            with contextlib.suppress(OSError):
                sock.sendto(message.encode(), (HOST, port))
            sock.settimeout(0.3)
            with contextlib.suppress(OSError):
                if sock.recv(65535).startswith(b"SIP/2.0 "):
                    return True
    return False


def exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether ``proc`` has exited, without reaping it (its rusage is read when it is)."""
    return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def reap(proc: subprocess.Popen[bytes], deadline: float, terminate: bool = False) -> tuple[float, bool]:
    """Wait for ``proc`` (a SIPp this script started in a session of its own) until
    ``deadline`` -- after a SIGTERM at once if ``terminate`` -- and stop it: SIGTERM (SIPp then
    writes its statistics and lets its calls end), SIGKILL a second later, to its own process
    group. Returns (its CPU seconds, whether it had to be stopped before it ended by itself)."""
    stopped = False
    signals = [signal.SIGTERM, signal.SIGKILL]
    if terminate:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signals.pop(0))
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            stopped = stopped or not terminate
            sig = signals.pop(0) if signals else signal.SIGKILL
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            deadline = time.monotonic() + 1.0
        time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)
    stop_process(proc, grace=1.0)  # reaped: this only checks that its session is empty, and forgets it
    return usage.ru_utime + usage.ru_stime, stopped


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


# --------------------------------------------------------------------------------------------
# systems under test
# --------------------------------------------------------------------------------------------


@dataclass
class System:
    name: str
    label: str
    argv: list[str]
    log: Path
    workers: int
    state_seconds: float  # how long the system keeps a finished transaction
    ready_lines: int = 0  # log lines saying a worker is ready, to wait for (sipstack, N workers)
    proc: subprocess.Popen[bytes] | None = None
    error: str | None = None
    processes: int = 0
    cpu_only: bool = False  # measured at the CPU rates only (the floor relay: no ramp)

    def steady_warmup(self) -> float:
        """Seconds of load after which the system holds its steady state of transactions."""
        return self.state_seconds + 2.0

    def ticks(self) -> dict[int, int]:
        assert self.proc is not None
        return session_ticks(self.proc.pid)


def start_system(system: System, port: int, workdir: Path) -> bool:
    if udp_bound(port):
        system.error = f"udp:{HOST}:{port} is in use (by a previous system or someone else)"
        return False
    offset = system.log.stat().st_size if system.log.exists() else 0  # a restart appends to the log
    system.proc = start_process(system.argv, system.log, workdir)
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        if system.proc.poll() is not None:
            break
        with open(system.log, "rb") as f:
            f.seek(offset)
            ready = f.read().count(b" ready (pid ")
        if ready >= system.ready_lines and probe(port, 0.5):
            time.sleep(0.5)  # let the remaining processes settle
            system.processes = len(system.ticks())
            return True
        time.sleep(0.1)
    code = system.proc.poll()
    stop_process(system.proc)
    tail = system.log.read_text(errors="replace").strip().splitlines()[-8:]
    system.error = (
        f"exited with status {code}" if code is not None else "did not answer an OPTIONS within 30 s"
    ) + ("; log: " + " | ".join(tail) if tail else "")
    return False


def sipstack_python() -> str | None:
    """An interpreter that can run ``python -m sipstack``: the project's venv, else this one."""
    for python in dict.fromkeys([str(ROOT / ".venv" / "bin" / "python"), sys.executable]):
        if Path(python).exists():
            check = subprocess.run([python, "-c", "import sipstack.cli"], capture_output=True, timeout=60)
            if check.returncode == 0:
                return python
    return None


def make_systems(workdir: Path, ports: tuple[int, int, int]) -> list[System]:
    """sipstack with 1 and 2 workers, Kamailio with 1 and 2; with the reason one cannot be
    started when that is known before trying."""
    sut, uas, _ = ports
    next_hop = f"sip:{HOST}:{uas}"
    config = workdir / "sipstack.toml"
    config.write_text(
        "# bench/proxy.py: calls are for example.net, which this server does not serve,\n"
        "# so they go to the default route, the SIPp UAS.\n"
        'domains = ["sipstack.bench.invalid"]\n\n'
        f'[proxy]\ndefault_route = "{next_hop}"\nrecord_route = true\n'
    )
    python = sipstack_python()
    systems = []
    for workers in (1, 2):
        data = workdir / f"sipstack-{workers}.data"
        argv = [
            python or sys.executable, "-m", "sipstack", "serve",
            "--listen", f"udp:{HOST}:{sut}",
            "--no-auth",
            "--workers", str(workers),
            "--data-dir", str(data),
            "--config", str(config),
            "--log-level", "info",
        ]  # fmt: skip
        systems.append(
            System(
                f"sipstack-{workers}",
                f"sipstack, {workers} worker{'s' if workers > 1 else ''}",
                argv,
                workdir / f"sipstack-{workers}.log",
                workers,
                SIPSTACK_STATE,
                ready_lines=workers if workers > 1 else 0,
                error=None if python else "no interpreter here can import sipstack (make the venv first)",
            )
        )
    kamailio = shutil.which("kamailio") or (
        "/usr/sbin/kamailio" if Path("/usr/sbin/kamailio").exists() else None
    )
    for children in (1, 2):
        rundir = workdir / f"kamailio-{children}.run"
        rundir.mkdir()
        base = [
            kamailio or "kamailio",
            "-f", str(KAMAILIO_CFG),
            "-l", f"udp:{HOST}:{sut}",
            "-A", f'NEXT_HOP="{next_hop}"',
            "-Y", str(rundir),
            "-m", str(KAMAILIO_SHM_MB), "-M", "32",
        ]  # fmt: skip
        system = System(
            f"kamailio-{children}",
            f"Kamailio, {children} worker{'s' if children > 1 else ''}",
            [*base, "-n", str(children), "-DD", "-E"],
            workdir / f"kamailio-{children}.log",
            children,
            KAMAILIO_STATE,
        )
        if kamailio is None:
            system.error = "kamailio is not installed (Debian package kamailio)"
        else:
            check = subprocess.run([*base, "-c"], capture_output=True, text=True, timeout=60)
            if check.returncode != 0:
                tail = (check.stdout + check.stderr).strip().splitlines()[-4:]
                system.error = f"kamailio -c rejected {KAMAILIO_CFG.name}: {' | '.join(tail)}"
        systems.append(system)
    # The Python floor: our bytes-only relay (bench/floor_relay.py), for scale.
    systems.append(
        System(
            "floor",
            "floor: bytes-only Python relay (uvloop)",
            [python or sys.executable, str(BENCH / "floor_relay.py"), str(sut), str(uas)],
            workdir / "floor.log",
            1,
            0.0,
            cpu_only=True,
        )
    )
    return systems


# --------------------------------------------------------------------------------------------
# one load: a SIPp UAS and a SIPp UAC
# --------------------------------------------------------------------------------------------


@dataclass
class Run:
    rate: int
    count: int
    seconds: float
    tag: str  # warmup, cpu, ramp or steady
    created: int = 0
    ok: int = 0
    failed: int = 0  # failed by SIPp itself (timeouts, unexpected messages)
    retrans_uac: int = 0  # messages SIPp retransmitted: INVITE, BYE
    retrans_uas: int = 0  # 200 to the INVITE
    late_invite: int = 0  # calls whose INVITE got no 100 within 500 ms (retransmitted)
    late_ack: int = 0  # calls whose 200 was not ACKed within 500 ms (retransmitted)
    late_bye: int = 0  # calls whose BYE got no 200 within 500 ms (retransmitted)
    unexpected: Counter[str] = field(default_factory=Counter)  # unexpected messages, by kind
    out_of_call: int = 0  # messages for no call SIPp knows, UAC and UAS
    uas_failed: int = 0
    setup_ms: list[int] = field(default_factory=list)  # INVITE -> 200, every call
    sent_rate: float = 0.0
    wall: float = 0.0
    sut_cpu: float = 0.0
    sut_busiest: float = 0.0  # CPU share of the system's busiest process, 1.0 = a core
    sut_shares: list[float] = field(default_factory=list)  # every process's share, busiest first
    uac_cpu: float = 0.0  # SIPp UAC's CPU share
    uas_cpu: float = 0.0
    machine_busy: float = 0.0  # share of all CPUs busy during the run (anyone's processes)
    overran: bool = False
    error: str | None = None

    @property
    def not_ok(self) -> int:
        """Calls SIPp placed that did not succeed before the run ended or was stopped."""
        return self.created - self.ok

    @property
    def late(self) -> int:
        """An upper bound of the calls with a retransmission (a call may be late twice)."""
        return self.late_invite + self.late_ack + self.late_bye

    @property
    def verdict(self) -> str:
        """pass: < 0.1 % of the calls placed failed, at >= 95 % of the rate; fail: not so;
        sipp: SIPp could not place the calls at the rate."""
        if self.error:
            return "error"
        if self.created == 0 or self.not_ok >= FAIL_MAX * self.created:
            return "fail"
        if self.created < self.count or self.sent_rate < SENT_RATE_MIN * self.rate:
            return "sipp"
        return "pass"

    @property
    def clean(self) -> bool:
        """Passed, and fewer than 0.1 % of the calls had a retransmission."""
        return self.verdict == "pass" and self.late < FAIL_MAX * self.created

    def good(self, strict: bool = False) -> bool:
        return self.clean if strict else self.verdict == "pass"

    @property
    def cpu_ms_per_call(self) -> float:
        return self.sut_cpu * 1000 / self.ok if self.ok else float("nan")

    def percentile(self, q: float) -> float | None:
        if not self.setup_ms:
            return None
        ordered = sorted(self.setup_ms)
        return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])

    @property
    def setup_mean(self) -> float | None:
        return sum(self.setup_ms) / len(self.setup_ms) if self.setup_ms else None


def _epoch(text: str) -> float:
    """The epoch at the end of SIPp's ``date<TAB>time<TAB>epoch`` time fields."""
    return float(text.split()[-1])


def read_stat(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        rows = [row for row in csv.DictReader(f, delimiter=";") if row.get("TotalCallCreated")]
    if not rows:
        raise ValueError(f"{path.name}: no statistics")
    return rows


def read_rtt(path: Path) -> dict[str, list[int]]:
    """SIPp's -trace_rtt file: every call's response times (ms), by measure name."""
    times: dict[str, list[int]] = {}
    if path.exists():
        with open(path) as f:
            for line in f:
                parts = line.strip().split(";")
                if len(parts) == 3 and line[:1].isdigit():
                    times.setdefault(parts[2], []).append(int(float(parts[1])))
    return times


def read_errors(path: Path, side: str, kinds: Counter[str]) -> None:
    """Count the unexpected messages in SIPp's -trace_err file, by what the call was doing and
    what came: ``UAS: while pausing (index 6), received ACK``."""
    if not path.exists():
        return
    text = path.read_text(errors="replace")
    for match in re.finditer(
        r"unexpected message for Call-I[dD] '[^']*': (while [^,]*), received '([^\r\n]*)", text
    ):
        first = match.group(2)
        kinds[f"{side}: {match.group(1)}, received {' '.join(first.split()[:3])}"] += 1


def sent_rate(rows: list[dict[str, str]], count: int) -> float:
    """The rate SIPp placed calls at, from its periodic rows (every second): the average up to
    the last row taken while it was still placing calls, or -- a lower bound -- the count over
    the time of the first row after it had placed them all, whichever is higher."""
    start = _epoch(rows[-1]["StartTime"])
    points = [(_epoch(r["CurrentTime"]) - start, int(r["TotalCallCreated"])) for r in rows]
    during = [(t, n) for t, n in points if n < count and t >= 0.5]
    done = [t for t, n in points if n >= count]
    estimates = [n / t for t, n in during[-1:]] + [count / t for t in done[:1] if t > 0]
    if not estimates and points[-1][0] > 0:
        estimates = [points[-1][1] / points[-1][0]]
    return max(estimates, default=0.0)


def sipp_argv(scenario: Path, port: int, stem: Path) -> list[str]:
    return [
        "sipp",
        "-sf", str(scenario),
        "-i", HOST, "-p", str(port), "-bind_local",
        "-nostdin",
        "-trace_stat", "-stf", f"{stem}.csv", "-fd", "1",
        "-trace_rtt", "-rtt_freq", "1",  # every call's response times, to the cwd, as they come
        "-trace_err", "-error_file", f"{stem}.err",  # unexpected messages
        # A message out of order (a 180 relayed after the 200 by another worker of the proxy, an
        # ACK after the BYE) is logged but does not abort the call, as a real user agent ignores
        # it; the call still fails if what it waits for does not come.
        "-default_behaviors", "all,-abortunexp",
        "-buff_size", str(SIPP_BUFFER),
        # a loaded 2-core machine must not make SIPp abort its own test
        "-watchdog_minor_maxtriggers", "1000000", "-watchdog_major_maxtriggers", "1000000",
    ]  # fmt: skip


def run_load(
    system: System,
    ports: tuple[int, int, int],
    rate: int,
    seconds: float,
    overrun: float,
    workdir: Path,
    tag: str,
) -> Run:
    """``rate`` calls/s for ``seconds``: a SIPp UAS, then a SIPp UAC placing ``rate * seconds``
    calls; the UAC is stopped ``overrun`` seconds after its last call was due, the UAS once the
    UAC is done (after its calls' 1 s timewait)."""
    sut, uas_port, uac_port = ports
    count = max(1, round(rate * seconds))
    run = Run(rate=rate, count=count, seconds=seconds, tag=tag)
    stem = f"{system.name}-{tag}-{rate}-{time.monotonic_ns() % 10**6}"
    uac_stem, uas_stem = workdir / f"{stem}.uac", workdir / f"{stem}.uas"
    limit = seconds + overrun
    # The UAS first (bounded in time; it takes any number of calls, so that a stray INVITE
    # cannot use up a count meant for this run's calls); it must listen before the UAC calls.
    uas_argv = [*sipp_argv(UAS_SCENARIO, uas_port, uas_stem), "-timeout", f"{limit + UAS_LINGER + 5:.0f}"]
    uas = start_process(uas_argv, workdir / f"{stem}.uas.log", workdir)
    deadline = time.monotonic() + 5.0
    while not udp_bound(uas_port) and not exited(uas) and time.monotonic() < deadline:
        time.sleep(0.02)
    if not udp_bound(uas_port):
        reap(uas, time.monotonic() + 1.0, terminate=True)
        tail = (workdir / f"{stem}.uas.log").read_text(errors="replace").strip().splitlines()[-3:]
        run.error = f"the SIPp UAS did not start on port {uas_port}: {' | '.join(tail)}"
        return run
    uac_argv = [
        *sipp_argv(UAC_SCENARIO, uac_port, uac_stem),
        f"{HOST}:{sut}",
        "-r", str(rate), "-m", str(count),
        "-l", str(count),  # open loop: slow answers must not slow the calling down
        "-d", "0",  # the pause between ACK and BYE
    ]  # fmt: skip
    machine0 = machine_cpu()
    before = system.ticks()
    t0 = time.monotonic()
    uac = start_process(uac_argv, workdir / f"{stem}.uac.log", workdir)
    # The CPU shares are taken while the calls are placed; the CPU per call over the whole run.
    while time.monotonic() < t0 + seconds and not exited(uac):
        time.sleep(0.02)
    during = system.ticks()
    machine1 = machine_cpu()
    placing = time.monotonic() - t0
    uac_cpu, run.overran = reap(uac, t0 + limit)
    run.wall = time.monotonic() - t0
    after = system.ticks()
    uas_cpu, _ = reap(uas, time.monotonic() + UAS_LINGER, terminate=True)
    run.sut_cpu = (sum(after.values()) - sum(before.values())) / CLK_TCK
    run.sut_shares = sorted(
        ((during[p] - before.get(p, 0)) / CLK_TCK / placing for p in during), reverse=True
    )
    run.sut_busiest = run.sut_shares[0] if run.sut_shares else 0.0
    run.machine_busy = (machine1[0] - machine0[0]) / max(1e-9, machine1[1] - machine0[1])
    run.uac_cpu, run.uas_cpu = uac_cpu / run.wall, uas_cpu / run.wall
    try:
        rows = read_stat(Path(f"{uac_stem}.csv"))
    except (OSError, ValueError) as exc:
        tail = (workdir / f"{stem}.uac.log").read_text(errors="replace").strip().splitlines()[-3:]
        run.error = f"no SIPp statistics ({exc}): {' | '.join(tail)}"
        return run
    last = rows[-1]
    run.created = int(last["TotalCallCreated"])
    run.ok = int(last["SuccessfulCall(C)"])
    run.failed = int(last["FailedCall(C)"])
    run.retrans_uac = int(last["Retransmissions(C)"])
    run.out_of_call = int(last["OutOfCallMsgs(C)"])
    run.sent_rate = sent_rate(rows, count)
    with contextlib.suppress(OSError, ValueError):
        uas_last = read_stat(Path(f"{uas_stem}.csv"))[-1]
        run.retrans_uas = int(uas_last["Retransmissions(C)"])
        run.uas_failed = int(uas_last["FailedCall(C)"])
        run.out_of_call += int(uas_last["OutOfCallMsgs(C)"])
    for side, path in (("UAC", Path(f"{uac_stem}.err")), ("UAS", Path(f"{uas_stem}.err"))):
        read_errors(path, side, run.unexpected)
    uac_rtt = read_rtt(workdir / f"{UAC_SCENARIO.stem}_{uac.pid}_rtt.csv")
    uas_rtt = read_rtt(workdir / f"{UAS_SCENARIO.stem}_{uas.pid}_rtt.csv")
    trying = uac_rtt.get("trying", [])
    # An INVITE is retransmitted when neither 100 nor 180 comes within 500 ms (or ever).
    run.late_invite = sum(t >= LATE_MS for t in trying) + max(0, run.ok - len(trying))
    run.late_bye = sum(t >= LATE_MS for t in uac_rtt.get("bye", []))
    run.late_ack = sum(t >= LATE_MS for t in uas_rtt.get("ack", []))
    run.setup_ms = uac_rtt.get("setup", [])
    return run


# --------------------------------------------------------------------------------------------
# the measurements
# --------------------------------------------------------------------------------------------


@dataclass
class Settings:
    cpu_rate: int
    cpu_rate_high: int | None  # a second CPU measurement at the anchor's rate (1000), or None
    cpu_seconds: float
    warmup_seconds: float | None  # None: until the system's steady state (state_seconds + 2 s)
    step_seconds: float
    overrun: float  # a run is stopped this long after its last call was due
    rates: tuple[int, ...]  # the ramp's rates before bisection
    bisect_rounds: int
    confirm: bool  # hold each system's highest rate for hold_seconds
    hold_seconds: float = SIPSTACK_STATE + 3.0  # past the longest-lived state of the systems

    def warmup_for(self, system: System) -> float:
        return self.warmup_seconds if self.warmup_seconds is not None else system.steady_warmup()


@dataclass
class Result:
    system: System
    warmup: Run | None = None
    cpu: Run | None = None
    cpu_high: Run | None = None  # the CPU measurement at --cpu-rate-high
    steps: list[Run] = field(default_factory=list)
    sipp_saturated: Run | None = None  # the step after which the ramp stopped for SIPp's sake
    restarts: int = 0
    log_kinds: dict[str, list] = field(default_factory=dict)  # kind -> [count, first line]

    def runs(self) -> list[Run]:
        """The runs that tell whether a rate is held: the CPU run, the steps, the steady run."""
        runs = [s for s in self.steps if not s.error]
        runs += [c for c in (self.cpu, self.cpu_high) if c is not None and not c.error]
        return runs

    def bounds(self, strict: bool = False) -> tuple[int, int | None]:
        """(the highest rate that passed below every rate that did not, the lowest that did not);
        ``strict``: passing also wants < 0.1 % of the calls late."""
        runs = self.runs()
        bad = min((s.rate for s in runs if not s.good(strict)), default=None)
        best = max((s.rate for s in runs if s.good(strict) and (bad is None or s.rate < bad)), default=0)
        return best, bad

    def best(self, strict: bool = False) -> int | None:
        return self.bounds(strict)[0] if self.runs() else None

    def first_miss(self, strict: bool = False) -> Run | None:
        bad = self.bounds(strict)[1]
        misses = [s for s in self.runs() if s.rate == bad and not s.good(strict)]
        return max(misses, key=lambda s: s.seconds) if misses else None


def describe(run: Run) -> str:
    if run.error:
        return f"{run.rate:>5}/s  ERROR {run.error}"
    return (
        f"{run.rate:>5}/s  placed {run.sent_rate:5.0f}/s  ok {run.ok:>5}/{run.created:<5}"
        f" failed {run.failed}  retrans {run.retrans_uac}+{run.retrans_uas}"
        f"  late {run.late_invite}/{run.late_ack}/{run.late_bye}"
        f"  unexpected {run.unexpected.total()}+{run.out_of_call}"
        f"  setup {fmt(run.setup_mean)} ms  cpu {run.sut_cpu:.2f} s"
        f" = {fmt(run.cpu_ms_per_call, '.3f')} ms/call"
        f"  processes {split(run)} %  sipp {100 * run.uac_cpu:.0f}+{100 * run.uas_cpu:.0f} %"
        f"  machine {100 * run.machine_busy:.0f} %{'  stopped' if run.overran else ''}  -> {run.verdict}"
        f"{'' if run.clean or run.verdict != 'pass' else ' (late)'}"
    )


class Bench:
    """One system under test, started, measured and restarted on the same ports."""

    def __init__(self, system: System, ports: tuple[int, int, int], settings: Settings, workdir: Path):
        self.system, self.ports, self.settings, self.workdir = system, ports, settings, workdir
        self.result = Result(system)
        self.dirty = False  # the last run missed: the system may still hold its calls

    def load(self, rate: int, seconds: float, tag: str) -> Run:
        if self.dirty:
            # A run that missed leaves transactions behind that keep retransmitting for up to
            # 32 s into the next run's UAS and UAC: start the system afresh instead.
            self.restart()
        run = run_load(self.system, self.ports, rate, seconds, self.settings.overrun, self.workdir, tag)
        say(f"  [{self.system.name}] {tag:<7} {describe(run)}")
        self.dirty = run.verdict != "pass"
        time.sleep(0.5)
        return run

    def restart(self) -> None:
        assert self.system.proc is not None
        stop_process(self.system.proc, grace=STOP_GRACE)
        time.sleep(0.3)
        if not start_system(self.system, self.ports[0], self.workdir):
            raise RuntimeError(f"could not restart: {self.system.error}")
        self.result.restarts += 1
        self.dirty = False

    def ramp(self) -> None:
        """Up the rates until a step misses, then bisection steps."""
        settings, result = self.settings, self.result

        def step(rate: int) -> Run:
            run = self.load(rate, settings.step_seconds, "ramp")
            result.steps.append(run)
            return run

        for rate in settings.rates:
            best, bad = result.bounds()
            if bad is not None and rate >= bad:
                break
            if rate <= best:
                continue  # the CPU run passed there already
            run = step(rate)
            if run.verdict != "pass":
                break
            if max(run.uac_cpu, run.uas_cpu) >= SIPP_SATURATED:
                result.sipp_saturated = run  # a higher rate would measure SIPp
                break
        for _ in range(settings.bisect_rounds):
            good, bad = result.bounds()
            if bad is None or bad - good <= max(RATE_GRAIN, 0.1 * good):
                break
            grain = RATE_GRAIN if good < 1000 else 2 * RATE_GRAIN
            mid = round((good + bad) / 2 / grain) * grain
            if mid <= good or mid >= bad:
                break
            step(mid)

    def hold_down(self, best: int) -> None:
        """Hold rates for ``hold_seconds`` (past every system's state lifetime) to find the
        highest that holds, in at most MAX_HOLDS holds, so that the rate reported was held.
        First the highest step that passed without late transactions: a step with
        retransmissions has collapsed whenever it was held, so holding ``best`` first when it
        was late only spends a hold. While holds miss, the next lower such step. Once one
        holds: halfway between it and the lowest rate that missed held — or, while none above
        it has, the lowest late step above it — while that gap is wider than 10 %; a narrow
        gap to a late step, that step itself."""
        result = self.result
        steps = [s for s in result.steps if s.tag != "steady" and s.good() and s.rate <= best]
        clean = sorted({s.rate for s in steps if s.good(strict=True)})
        passed = sorted({s.rate for s in steps})
        late = [r for r in passed if r not in clean]
        held_ok = 0
        held_bad: int | None = None
        hold: int | None = clean[-1] if clean else best
        for _ in range(MAX_HOLDS):
            if hold is None:
                break
            run = self.load(hold, self.settings.hold_seconds, "steady")
            result.steps.append(run)
            if run.verdict == "pass":
                held_ok = max(held_ok, hold)
            else:
                held_bad = hold if held_bad is None else min(held_bad, hold)
            if not held_ok:
                assert held_bad is not None
                lower = [r for r in clean if r < held_bad] or [r for r in passed if r < held_bad]
                hold = lower[-1] if lower else None
                continue
            # Above the highest rate held: the lowest that missed held; else the lowest late
            # step above it, likely to miss (a narrow gap to it: that step itself).
            upper = held_bad
            if upper is None:
                upper = next((r for r in late if r > held_ok), None)
                if upper is None:
                    break  # the highest step held
            grain = RATE_GRAIN if held_ok < 1000 else 2 * RATE_GRAIN
            mid = round((held_ok + upper) / 2 / grain) * grain
            if upper - held_ok > max(RATE_GRAIN, 0.1 * held_ok) and held_ok < mid < upper:
                hold = mid
            else:
                hold = upper if held_bad is None else None

    def measure(self) -> Result:
        system, settings, result = self.system, self.settings, self.result
        say(f"\n== {system.label}: {' '.join(system.argv)}")
        say(f"  listening on udp:{HOST}:{self.ports[0]}, {system.processes} process(es) in its session")
        warmup = settings.warmup_for(system)
        if warmup > 0:
            result.warmup = self.load(settings.cpu_rate, warmup, "warmup")
        result.cpu = self.load(settings.cpu_rate, settings.cpu_seconds, "cpu")
        if settings.cpu_rate_high:
            if warmup > 0:  # the steady state at that rate too
                self.load(settings.cpu_rate_high, warmup, "warmup")
            result.cpu_high = self.load(settings.cpu_rate_high, settings.cpu_seconds, "cpu")
        if system.cpu_only:
            return result
        self.ramp()
        best = result.best()
        if settings.confirm and best:
            # The steps are shorter than the time a system keeps its transactions: hold the
            # highest rate until the state of every system compared would be full, and then
            # some — each system for as long, so that both rates compared are held rates.
            self.hold_down(best)
        return result


SIPSTACK_ROUTINE = (
    "sipstack is running. Next steps:",
    "  add a user:",
    "  point a phone at:",
    "  see who is in:",
    "  stop:",
)


def read_log(result: Result) -> None:
    """The log lines worth reporting -- sipstack's other than its start and stop lines,
    Kamailio's warnings and errors -- grouped by their text with the numbers taken out."""
    system = result.system
    if not system.log.exists():
        return
    for line in system.log.read_text(errors="replace").splitlines():
        if system.name.startswith("sipstack"):
            if line.startswith(SIPSTACK_ROUTINE) or line.endswith(": stopped"):
                continue
            if any(
                s in line for s in (" serving ", " listening on ", " sending requests from ", " ready (pid ")
            ):
                continue
            text = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ", "", line)
        else:
            if not any(f"{w}:" in line for w in ("CRITICAL", "ERROR", "BUG", "WARNING")):
                continue
            text = re.sub(r"^\s*\d+\(\d+\) ", "", line)
        kind = re.sub(r"\d+", "#", text)
        if kind not in result.log_kinds:
            result.log_kinds[kind] = [0, text]
        result.log_kinds[kind][0] += 1


# --------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------


def split(run: Run) -> str:
    """The CPU shares of the system's three busiest processes while the calls were placed."""
    return "/".join(f"{100 * share:.0f}" for share in run.sut_shares[:3]) or "-"


def late_text(run: Run) -> str:
    return f"{run.late_invite} / {run.late_ack} / {run.late_bye}"


def max_rate_text(result: Result | None, strict: bool = False) -> str:
    if result is None or not result.runs():
        return "-"
    best, miss = result.best(strict), result.first_miss(strict)
    saturated = result.sipp_saturated
    if miss is None and saturated is not None and saturated.rate == best:
        return f">= {best} (SIPp then at {100 * max(saturated.uac_cpu, saturated.uas_cpu):.0f} % CPU)"
    if miss is None:
        return f"{best} (every run passed)"
    if miss.verdict == "sipp":
        why = f"SIPp placed {miss.sent_rate:.0f}/s"
    elif miss.verdict == "fail":
        why = f"{miss.not_ok} of {miss.created} calls failed/unfinished"
    else:
        why = f"{miss.late} late transactions in {miss.created} calls"
    where = f"next {miss.rate}/s, {miss.tag} {miss.seconds:g} s: {why}"
    held = [s for s in result.steps if s.tag == "steady" and s.rate == best and s.good(strict)]
    if miss.tag == "steady" and best:
        how = f"held {held[0].seconds:g} s" if held else f"from {result.steps[0].seconds:g} s steps only"
        where = f"{how}; {miss.rate}/s held {miss.seconds:g} s: {why}"
    elif held:
        where = f"held {held[0].seconds:g} s; {where}"
    else:
        holds = [s.rate for s in result.steps if s.tag == "steady" and s.good(strict)]
        if holds:
            where = f"from {result.steps[0].seconds:g} s steps only, {max(holds)}/s held; {where}"
    return f"{best} ({where})" if best else f"< {miss.rate} ({where})"


def _cpu_row(r: Result, c: Run) -> None:
    times = " / ".join(fmt(c.percentile(q), ".0f") for q in (0.5, 0.99, 1.0))
    say(
        f"| {r.system.label} | {c.rate} | {r.system.processes} | {c.ok}/{c.count} | {c.not_ok} | "
        f"{c.retrans_uac} + {c.retrans_uas} | {late_text(c)} | {fmt(c.setup_mean)} / {times} | "
        f"{c.sut_cpu:.2f} | {fmt(c.cpu_ms_per_call, '.3f')} | {split(c)} % | "
        f"{100 * c.machine_busy:.0f} % |"
    )


def report(results: list[Result], settings: Settings, quick: bool, ports: tuple[int, int, int]) -> None:
    say("\n" + "=" * 100)
    say(
        f"Proxy benchmark ({'--quick' if quick else 'full'}): {os.cpu_count()} CPUs, Linux "
        f"{platform.release()}, Python {platform.python_version()}; SIPp UAC {HOST}:{ports[2]} -> proxy "
        f"{HOST}:{ports[0]} -> SIPp UAS {HOST}:{ports[1]}, INVITE/100/180/200/ACK/BYE/200 record-routed; "
        "CPU = scheduler run time (schedstat) of every process of the proxy's session"
    )
    if settings.warmup_seconds is None:
        warm = ", after a warm-up at that rate until the steady state (sipstack 34 s, Kamailio 7 s)"
    elif settings.warmup_seconds > 0:
        warm = f", after a warm-up at that rate of {settings.warmup_seconds:g} s (not the steady state)"
    else:
        warm = " with no warm-up (not the steady state: sipstack keeps its transactions 32 s)"
    high = f" and at {settings.cpu_rate_high} calls/s" if settings.cpu_rate_high else ""
    say(
        f"\nCPU per call at {settings.cpu_rate} calls/s{high} for {settings.cpu_seconds:g} s "
        f"({round(settings.cpu_rate * settings.cpu_seconds)} calls){warm}; "
        "late = calls whose INVITE got no 100 / whose 200 got no ACK / whose BYE got no 200 within 500 ms; "
        "busiest processes = CPU shares of the proxy's three busiest processes (100 % = one core):"
    )
    say(
        "| system | rate/s | processes | ok | failed | retrans UAC + UAS | late INVITE / 200 / BYE | "
        "set-up ms: mean / p50 / p99 / max | CPU s | CPU ms per call | busiest processes | machine |"
    )
    say("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if r.cpu is None:
            say(f"| {r.system.label} | could not start: {r.system.error} |")
            continue
        for c in (r.cpu, r.cpu_high):
            if c is None:
                continue
            if c.error:
                say(f"| {r.system.label} | {c.rate} | error: {c.error} |")
                continue
            _cpu_row(r, c)

    ramped = [r for r in results if r.steps]

    if ramped:
        say(
            f"\nHighest rate: steps of {settings.step_seconds:g} s, the CPU run"
            + (f", and the {settings.hold_seconds:g} s holds" if settings.confirm else "")
            + f"; pass = fewer than 0.1 % of the calls placed failed or unfinished {settings.overrun:g} s "
            "after the last was due, placed at >= 95 % of the rate; late as above (a call can be late "
            "twice); unexpected = messages SIPp did not expect (logged, the call goes on) + messages for no "
            "call it knows, UAC and UAS / calls the UAS failed; busiest processes = the CPU shares of "
            "the proxy's three busiest processes while the calls were placed (100 % = one core); "
            "machine = all CPUs, anyone's processes; "
            "after a run that did not pass the system is restarted:"
        )
        say(
            "| system | rate/s | run | placed/s | ok | failed | retrans UAC + UAS | "
            "late INVITE / 200 / BYE | unexpected / UAS failed | set-up ms mean / p99 | CPU ms per call | "
            "busiest processes | SIPp UAC + UAS | machine | verdict |"
        )
        say("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in ramped:
            runs = [*r.steps, *(c for c in (r.cpu, r.cpu_high) if c)]
            for s in sorted(runs, key=lambda s: (s.rate, s.seconds)):
                if s.error:
                    say(f"| {r.system.label} | {s.rate} | {s.tag} | error: {s.error} |")
                    continue
                verdict = s.verdict + ("" if s.clean or s.verdict != "pass" else ", late")
                say(
                    f"| {r.system.label} | {s.rate} | {s.tag} {s.seconds:g} s | {s.sent_rate:.0f} | "
                    f"{s.ok}/{s.created} | {s.not_ok} | {s.retrans_uac} + {s.retrans_uas} | {late_text(s)} | "
                    f"{s.unexpected.total()} + {s.out_of_call} / {s.uas_failed} | "
                    f"{fmt(s.setup_mean, '.0f')} / {fmt(s.percentile(0.99), '.0f')} | "
                    f"{fmt(s.cpu_ms_per_call, '.3f')} | {split(s)} % | "
                    f"{100 * s.uac_cpu:.0f} + {100 * s.uas_cpu:.0f} % | {100 * s.machine_busy:.0f} % | "
                    f"{verdict}{' (stopped)' if s.overran else ''} |"
                )

    by_name = {r.system.name: r for r in results}

    def cpu_of(r: Result | None, high: bool = False) -> float | None:
        c = (r.cpu_high if high else r.cpu) if r else None
        return c.cpu_ms_per_call if c and not c.error and c.ok else None

    def rate_of(r: Result | None, strict: bool = False) -> float | None:
        best = r.best(strict) if r else None
        return float(best) if best is not None else None

    def rate_ratio(ours: Result | None, ref: Result | None, strict: bool = False) -> str:
        a, b = rate_of(ours, strict), rate_of(ref, strict)
        return "0" if a == 0 and b else ratio(a, b)

    say("\nSummary, ratios sipstack / Kamailio (same ports, same load, same run):")
    say("| measure | workers | sipstack | Kamailio | sipstack / Kamailio |")
    say("|---|---|---|---|---|")
    for high in (False, True):
        if high and not settings.cpu_rate_high:
            continue
        rate = settings.cpu_rate_high if high else settings.cpu_rate
        for workers in (1, 2):
            ours, ref = by_name.get(f"sipstack-{workers}"), by_name.get(f"kamailio-{workers}")
            a, b = cpu_of(ours, high), cpu_of(ref, high)
            cells = f"{fmt(a, '.3f')} | {fmt(b, '.3f')} | {ratio(a, b)}"
            say(f"| CPU ms per call at {rate}/s | {workers} | {cells} |")
    floor = by_name.get("floor")
    for high in (False, True):
        if floor is None or (high and not settings.cpu_rate_high):
            continue
        rate = settings.cpu_rate_high if high else settings.cpu_rate
        a, b = cpu_of(floor, high), cpu_of(by_name.get("kamailio-1"), high)
        say(
            f"| CPU ms per call at {rate}/s: the floor, a bytes-only Python relay (not a proxy) | 1 | "
            f"{fmt(a, '.3f')} | {fmt(b, '.3f')} | {ratio(a, b)} |"
        )
    for workers in (1, 2):
        ours, ref = by_name.get(f"sipstack-{workers}"), by_name.get(f"kamailio-{workers}")
        say(
            f"| highest rate/s, < 0.1 % failed | {workers} | {max_rate_text(ours)} | {max_rate_text(ref)} | "
            f"{rate_ratio(ours, ref)} |"
        )
    for workers in (1, 2):
        ours, ref = by_name.get(f"sipstack-{workers}"), by_name.get(f"kamailio-{workers}")
        say(
            f"| highest rate/s, < 0.1 % failed and < 0.1 % late | {workers} | {max_rate_text(ours, True)} | "
            f"{max_rate_text(ref, True)} | {rate_ratio(ours, ref, True)} |"
        )
    for r in results:
        miss = r.first_miss()
        if miss is None or miss.verdict != "fail":
            continue
        where = (
            f"- {r.system.label}, first miss at {miss.rate}/s: its busiest processes used {split(miss)} % of "
            f"a core, the machine was {100 * miss.machine_busy:.0f} % busy"
        )
        if miss.sut_busiest >= SUT_SATURATED and r.system.workers > 1 and miss.sut_shares[1] < SUT_BUSY / 2:
            say(f"{where}: one process did nearly all the work and was saturated while the others idled.")
        elif miss.sut_busiest >= SUT_SATURATED:
            say(f"{where}: its busiest process was saturated.")
        elif miss.machine_busy >= MACHINE_BUSY:
            say(f"{where}: the machine's cores were saturated (proxy, both SIPps, anyone else's processes).")
        elif miss.sut_busiest < SUT_BUSY:
            say(f"{where}: no CPU limit explains that miss (see its unexpected messages and its log).")
        else:
            say(f"{where}.")
    for r in results:
        if r.restarts:
            say(f"- {r.system.label}: restarted {r.restarts} time(s), after runs that did not pass.")

    say("\nUnexpected messages (SIPp's -trace_err), every run of each system, the commonest first:")
    for r in results:
        kinds: Counter[str] = Counter()
        for run in [*([r.warmup] if r.warmup else []), *r.runs()]:
            kinds.update(run.unexpected)
        if not kinds:
            say(f"- {r.system.label}: none")
            continue
        say(f"- {r.system.label}: {kinds.total()}")
        for kind, n in kinds.most_common(4):
            say(f"    {n:>6}  {kind}")

    say("\nLogs of the systems under test:")
    for r in results:
        if r.system.error:
            say(f"- {r.system.label}: could not start: {r.system.error}")
            continue
        if r.log_kinds:
            total = sum(n for n, _ in r.log_kinds.values())
            say(f"- {r.system.label}: {total} line(s) beyond start and stop, the commonest kinds first:")
            for n, text in sorted(r.log_kinds.values(), key=lambda v: -v[0])[:6]:
                say(f"    {n:>6}  {text[:240]}")
        else:
            say(f"- {r.system.label}: nothing in its log beyond start and stop")


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--quick", action="store_true", help="under 90 s instead of about 18 minutes")
    ap.add_argument("--cpu-rate", type=int, default=200, help="calls/s of the CPU measurement (200)")
    ap.add_argument(
        "--cpu-rate-high",
        type=int,
        help="calls/s of a second CPU measurement, 0 for none (1000, the anchor harness's rate; quick 0)",
    )
    ap.add_argument("--cpu-seconds", type=float, help="length of the CPU measurement (10; quick 4)")
    ap.add_argument("--warmup-seconds", type=float, help="warm-up before it (steady state; quick 0)")
    ap.add_argument("--step-seconds", type=float, help="length of each rate step (3; quick 2)")
    ap.add_argument(
        "--ports",
        default=",".join(map(str, PORTS)),
        help="proxy,UAS,UAC UDP ports on 127.0.0.1 (15060,15070,15080; free ones if these are taken)",
    )
    ap.add_argument("--only", help="systems to run, e.g. sipstack-1,kamailio-1,floor (default: all five)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, SIPp statistics)")
    args = ap.parse_args(argv)
    quick = args.quick
    settings = Settings(
        cpu_rate=args.cpu_rate,
        cpu_rate_high=args.cpu_rate_high if args.cpu_rate_high is not None else (None if quick else 1000),
        cpu_seconds=args.cpu_seconds or (4.0 if quick else 10.0),
        warmup_seconds=args.warmup_seconds if args.warmup_seconds is not None else (0.0 if quick else None),
        step_seconds=args.step_seconds or (2.0 if quick else 3.0),
        overrun=2.0 if quick else 4.0,
        rates=QUICK_RATES if quick else RATES,
        bisect_rounds=0 if quick else 1,
        confirm=not quick,
    )
    signal.signal(signal.SIGTERM, _terminate)

    if shutil.which("sipp") is None:
        say("error: sipp (SIPp, Debian package sip-tester) is not installed: nothing can load the systems")
        return 1
    try:
        sut, uas, uac = (int(p) for p in args.ports.split(","))
    except ValueError:
        ap.error("--ports wants three ports: proxy,UAS,UAC")
    ports, note = choose_ports((sut, uas, uac))
    if note:
        say(f"note: {note}")
    others = other_sip_processes()
    load = os.getloadavg()
    say(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} now")
    if others:
        say(f"note: {len(others)} SIPp / Kamailio / sipstack process(es) not started here are running:")
        for line in others[:6]:
            say(f"    {line}")
    workdir = Path(tempfile.mkdtemp(prefix="sipstack-bench-proxy-"))
    started = time.monotonic()
    results: list[Result] = []
    failed_to_start = False
    try:
        systems = make_systems(workdir, ports)
        if args.only:
            wanted_names = set(args.only.split(","))
            systems = [s for s in systems if s.name in wanted_names]
        for system in systems:
            result = Result(system)
            if system.error is None and start_system(system, ports[0], workdir):
                bench = Bench(system, ports, settings, workdir)
                result = bench.result
                try:
                    bench.measure()
                except RuntimeError as exc:  # a restart failed
                    failed_to_start = True
                    say(f"  [{system.name}] {exc}")
                finally:
                    if system.proc is not None:
                        stop_process(system.proc, grace=STOP_GRACE)
                read_log(result)
            else:
                failed_to_start = True
                say(f"\n== {system.label}: could not start: {system.error}")
            results.append(result)
            time.sleep(0.5)
        report(results, settings, args.quick, ports)
        others_now = other_sip_processes()
        if others_now:
            say(
                f"\nnote: {len(others_now)} SIPp / Kamailio / sipstack process(es) not started here, "
                "at the end"
            )
        say(
            f"\nwall time {time.monotonic() - started:.0f} s; load average at the end "
            f"{os.getloadavg()[0]:.2f}" + (f"; work directory {workdir}" if args.keep else "")
        )
    finally:
        stop_all()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed_to_start else 0


if __name__ == "__main__":
    sys.exit(main())
