#!/usr/bin/env python3
"""OPTIONS benchmark: sipstack's endpoint against Kamailio answering statelessly, under SIPp.

Systems under test, each started here on 127.0.0.1 on a free UDP port, in a session of its own
(and stopped by that session's process group / PIDs, nothing else):

- ``sipstack``: ``bench/options_server.py`` -- one process on uvloop; every OPTIONS is answered
  ``200`` through a server transaction (``IncomingRequest.respond(200)``);
- ``kamailio-1``: Kamailio with ``bench/kamailio_options.cfg`` -- ``sl_send_reply("200", "OK")``,
  no transaction -- and one UDP worker (``children=1``): the reference;
- ``kamailio-2``: the same with two UDP workers (``-n 2``), for information.

All are loaded by the same SIPp UAC scenario, ``bench/scenarios/options_uac.xml`` (one OPTIONS
per call over ``-t u1``, retransmitted after 500 ms as RFC 3261 has it), open loop (``-l`` as
high as the count: slow answers do not slow the sending), bounded in count and in time.

1. CPU per 1000 requests: ``--cpu-rate`` requests/s (2000) for ``--cpu-seconds`` (10 s) after a
   warm-up at that rate long enough for the system to reach its steady state: sipstack keeps
   every answered transaction 32 s (RFC 3261 Timer J, 64*T1) so its warm-up is 34 s; Kamailio
   keeps nothing, 2 s. CPU = the run time the scheduler counts (/proc/PID/schedstat; utime +
   stime where it is missing) of every process of the system's session during the load, per
   1000 answered requests; response-time percentiles from SIPp.
2. Highest rate: on the same process, steps of ``--step-seconds`` (4 s) at 1000, 2000, 4000 ...
   32000, then every 16000 requests/s, until a step misses (or SIPp is busy >= 90 % of a core),
   then bisection steps. A run passes when SIPp sent >= 95 % of the rate and every OPTIONS got
   its 200 with no failed call and no retransmission, i.e. each within 500 ms (T1, before
   SIPp's first retransmission). SIPp itself fails a call only after 32 s (Timer F): with
   multi-megabyte socket buffers an overloaded system passes short steps on that count alone,
   so the retransmissions are what marks it. The highest rate is the highest pass below every
   miss, the CPU run included. Since the steps are shorter than the 32 s sipstack keeps its
   transactions, the full run then holds sipstack's highest rate for 44 s (into its steady
   state) and counts that run too. Past SIPp's ceiling a step measures SIPp (``sipp``: it could
   not send at the rate); the Kamailio runs find that ceiling.

Prints tables and the ratios sipstack / Kamailio (CPU per 1000 requests, highest rate).
Usage: ``python bench/options.py [--quick]`` (--quick: about a minute, 1 s steps, sipstack
never in its steady state; full: about 4 minutes). Timings never make it exit non-zero; it
exits 1 only when SIPp or a system under test could not be started at all.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SCENARIO = BENCH / "scenarios" / "options_uac.xml"
KAMAILIO_CFG = BENCH / "kamailio_options.cfg"
SERVER = BENCH / "options_server.py"
CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"
SIPP_BUFFER = 4 * 1024 * 1024  # SIPp's socket buffers, as large as the systems' own
TIMER_J = 32.0  # sipstack's Timer J over UDP (64*T1): how long an answered transaction is kept
OVERRUN = 5.0  # a SIPp run still going this long after its last call was due is killed
SENT_RATE_MIN = 0.95  # below this share of the asked rate, SIPp could not keep up
RATE_GRAIN = 250  # bisection steps are rounded to this many requests/s
SIPP_SATURATED = 0.9  # SIPp busy this share of a core: the ramp stops, SIPp is at its ceiling
KAMAILIO_BUSY = 0.7  # below this share of a core at its first miss, Kamailio was not the limit
# The ramp's rates before bisection: doubling to 32000, then steps of 16000.
COARSE_RATES = (1000, 2000, 4000, 8000, 16000, 32000, 48000, 64000, 80000, 96000, 112000, 128000)

# Every process group this script created and has not reaped yet (their leaders' Popen).
_STARTED: list[subprocess.Popen[bytes]] = []


# --------------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------------


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def machine_cpu() -> tuple[float, float]:
    """(busy, capacity) CPU seconds of the whole machine since boot: the capacity is the time
    since boot times the CPUs, busy is that less /proc/stat's idle and iowait, which a tickless
    kernel keeps exactly. (/proc/stat's user and system fields are sampled at each timer tick
    and miss a process that runs between two ticks, as SIPp's tick-aligned sends do: their sum
    read 17 % of the machine busy where every process's own run time added up to 29 %.)"""
    with open("/proc/stat") as f:
        values = f.readline().split()[1:]
    idle = (int(values[3]) + (int(values[4]) if len(values) > 4 else 0)) / CLK_TCK
    capacity = time.clock_gettime(time.CLOCK_BOOTTIME) * (os.cpu_count() or 1)
    return capacity - idle, capacity


def session_ticks(sid: int) -> dict[int, float]:
    """CPU time of every live process of session ``sid``, by PID, in clock ticks: the
    scheduler's exact run time (``/proc/PID/schedstat``, nanoseconds) where the kernel keeps
    it, else utime + stime, which the kernel samples at each timer tick (at 250 Hz, a 10 s run
    of a process 18 % busy is 450 samples: a few percent of noise)."""
    ticks: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2 :].split()  # from the state field on
        if int(fields[3]) != sid:
            continue
        try:
            with open(f"/proc/{entry.name}/schedstat", "rb") as f:
                ticks[int(entry.name)] = int(f.read().split()[0]) * CLK_TCK / 1e9
        except (OSError, ValueError, IndexError):
            ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    return ticks


def start_process(argv: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
    _STARTED.append(proc)
    return proc


def stop_process(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Stop the session ``proc`` leads (it was started with start_new_session=True): SIGTERM to
    its process group while the leader is unreaped, SIGKILL after ``grace``; then SIGKILL, by
    PID, any process of that session still alive."""
    sid = proc.pid
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(sid, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + grace
    while session_ticks(sid) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in session_ticks(sid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if proc in _STARTED:
        _STARTED.remove(proc)


def stop_all() -> None:
    for proc in list(_STARTED):
        stop_process(proc, grace=2.0)


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
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    error: str | None = None
    processes: int = 0
    state_seconds: float = 0.0  # how long the system keeps something of an answered request

    def ticks(self) -> dict[int, int]:
        assert self.proc is not None
        return session_ticks(self.proc.pid)


def probe(port: int, timeout: float) -> bool:
    """Whether an OPTIONS to 127.0.0.1:port gets a 200 within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        local = sock.getsockname()[1]
        n = 0
        while time.monotonic() < deadline:
            n += 1
            tag = f"{n}{random.getrandbits(32):08x}"
            message = (
                f"OPTIONS sip:probe@{HOST}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {HOST}:{local};branch=z9hG4bK-probe-{tag};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:probe@{HOST}>;tag=p{tag}\r\n"
                f"To: <sip:probe@{HOST}:{port}>\r\n"
                f"Call-ID: probe-{tag}@{HOST}\r\n"
                "CSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            with contextlib.suppress(OSError):
                sock.sendto(message.encode(), (HOST, port))
            sock.settimeout(0.3)
            with contextlib.suppress(OSError):
                data = sock.recv(65535)
                if data.startswith(b"SIP/2.0 200"):
                    return True
    return False


def start_system(system: System, workdir: Path) -> bool:
    system.proc = start_process(system.argv, system.log, workdir)
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        if system.proc.poll() is not None:
            break
        if probe(system.port, 0.5):
            time.sleep(0.5)  # let the remaining processes settle
            system.processes = len(system.ticks())
            return True
    code = system.proc.poll()
    stop_process(system.proc)
    tail = system.log.read_text(errors="replace").strip().splitlines()[-8:]
    system.error = (
        f"exited with status {code}" if code is not None else "did not answer an OPTIONS within 20 s"
    ) + ("; log: " + " | ".join(tail) if tail else "")
    return False


def server_python() -> str | None:
    """An interpreter that can run options_server.py: this one, else the project's venv."""
    check = f"import sys; sys.path.insert(0, {str(ROOT / 'src')!r}); import sipstack.endpoint, uvloop"
    candidates = [sys.executable, str(ROOT / ".venv" / "bin" / "python")]
    for python in dict.fromkeys(candidates):
        if Path(python).exists():
            result = subprocess.run([python, "-c", check], capture_output=True, timeout=60)
            if result.returncode == 0:
                return python
    return None


# --------------------------------------------------------------------------------------------
# one SIPp run
# --------------------------------------------------------------------------------------------


@dataclass
class Load:
    rate: int
    count: int
    created: int = 0
    ok: int = 0
    failed: int = 0
    retrans: int = 0
    timeouts: int = 0  # calls failed for want of an answer
    unexpected: int = 0  # calls failed on an unexpected message
    sent_rate: float = 0.0
    response_ms: float = 0.0  # mean, from SIPp's statistics
    rtt_ms: list[int] = field(default_factory=list)  # every call's response time (CPU runs only)
    wall: float = 0.0
    sut_cpu: float = 0.0
    sut_busiest: float = 0.0  # CPU share of the system's busiest process during SIPp's run, 1.0 = a core
    sipp_cpu: float = 0.0  # SIPp's CPU share during its run
    sipp_rc: int | None = None
    overran: bool = False
    tag: str = ""  # warmup, cpu or ramp
    seconds: float = 0.0
    error: str | None = None

    @property
    def verdict(self) -> str:
        """pass: SIPp sent at the rate and every OPTIONS got its 200 within 500 ms (none failed,
        none retransmitted); fail: not so; sipp: SIPp could not send at the rate."""
        if self.error:
            return "error"
        if self.overran or self.failed or self.ok < self.count:
            return "fail"
        if self.sent_rate < SENT_RATE_MIN * self.rate:
            return "sipp"
        if self.retrans:
            return "fail"
        return "pass"

    @property
    def cpu_ms_per_1000(self) -> float:
        return self.sut_cpu * 1e6 / self.ok if self.ok else float("nan")

    def percentile(self, q: float) -> float | None:
        if not self.rtt_ms:
            return None
        ordered = sorted(self.rtt_ms)
        return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def _duration(text: str) -> float:
    """SIPp's ``HH:MM:SS:uuuuuu`` (response times) in seconds."""
    parts = text.strip().split(":")
    if len(parts) != 4:
        return float("nan")
    h, m, s, us = (int(p) for p in parts)
    return h * 3600 + m * 60 + s + us / 1e6


def _epoch(text: str) -> float:
    """The epoch at the end of SIPp's ``date<TAB>time<TAB>epoch`` time fields."""
    return float(text.split()[-1])


def parse_stat(path: Path, load: Load) -> None:
    with open(path, newline="") as f:
        rows = [row for row in csv.DictReader(f, delimiter=";") if row.get("TotalCallCreated")]
    if not rows:
        raise ValueError("empty statistics file")
    last = rows[-1]
    load.created = int(last["TotalCallCreated"])
    load.ok = int(last["SuccessfulCall(C)"])
    load.failed = int(last["FailedCall(C)"])
    load.retrans = int(last["Retransmissions(C)"])
    load.timeouts = int(last["FailedTimeoutOnRecv(C)"]) + int(last["FailedMaxUDPRetrans(C)"])
    load.unexpected = int(last["FailedUnexpectedMessage(C)"]) + int(last["OutOfCallMsgs(C)"])
    load.response_ms = _duration(last["ResponseTime1(C)"]) * 1000
    # The sending rate, from the periodic rows (every second; the final row also covers the
    # wait for the last answers): the average up to the last row taken while SIPp was still
    # creating calls, or -- a lower bound -- the count over the time of the first row after it
    # had created them all, whichever is higher.
    start = _epoch(last["StartTime"])
    points = [(_epoch(r["CurrentTime"]) - start, int(r["TotalCallCreated"])) for r in rows]
    during = [(t, n) for t, n in points if n < load.count and t >= 0.5]
    done = [t for t, n in points if n >= load.count]
    estimates = [n / t for t, n in during[-1:]] + [load.count / t for t in done[:1] if t > 0]
    if not estimates and points[-1][0] > 0:
        estimates = [points[-1][1] / points[-1][0]]
    load.sent_rate = max(estimates, default=0.0)


def run_sipp(
    system: System, rate: int, seconds: float, workdir: Path, tag: str, trace_rtt: bool = False
) -> Load:
    count = max(1, round(rate * seconds))
    load = Load(rate=rate, count=count, tag=tag, seconds=seconds)
    stat = workdir / f"{system.name}-{tag}-{rate}.csv"
    out = workdir / f"{system.name}-{tag}-{rate}.sipp.log"
    argv = [
        "sipp",
        "-sf", str(SCENARIO),
        "-t", "u1",
        "-i", HOST,
        "-p", str(free_udp_port()),
        f"{HOST}:{system.port}",
        "-r", str(rate),
        "-m", str(count),
        "-trace_stat", "-stf", str(stat), "-fd", "1",
        "-nostdin",
        "-buff_size", str(SIPP_BUFFER),
        "-l", str(count),  # open loop: slow answers must not slow the sending down
    ]  # fmt: skip
    if trace_rtt:
        argv += ["-trace_rtt", "-rtt_freq", "1000"]  # every call's response time, to the cwd
    before = system.ticks()
    t0 = time.monotonic()
    proc = start_process(argv, out, workdir)
    deadline = t0 + seconds + OVERRUN
    usage = None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            load.overran = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # SIPp's own group, created above
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.02)
    load.wall = time.monotonic() - t0
    after = system.ticks()
    proc.returncode = os.waitstatus_to_exitcode(status)
    _STARTED.remove(proc)
    load.sipp_rc = proc.returncode
    load.sut_cpu = (sum(after.values()) - sum(before.values())) / CLK_TCK
    busiest = max((after[p] - before.get(p, 0) for p in after), default=0) / CLK_TCK
    try:
        parse_stat(stat, load)
    except (OSError, ValueError, KeyError) as exc:
        tail = out.read_text(errors="replace").strip().splitlines()[-3:] if out.exists() else []
        load.error = f"no SIPp statistics ({exc}); SIPp exit {load.sipp_rc}: {' | '.join(tail)}"
    # CPU shares over SIPp's run, 1.0 = one core.
    load.sut_busiest = busiest / load.wall
    load.sipp_cpu = (usage.ru_utime + usage.ru_stime) / load.wall
    rtt = workdir / f"{SCENARIO.stem}_{proc.pid}_rtt.csv"
    if trace_rtt and rtt.exists():
        with open(rtt) as f:
            load.rtt_ms = [int(float(line.split(";")[1])) for line in f if line[:1].isdigit()]
        rtt.unlink()
    return load


# --------------------------------------------------------------------------------------------
# the measurements
# --------------------------------------------------------------------------------------------


@dataclass
class Settings:
    cpu_rate: int
    cpu_seconds: float
    warmup_seconds: float | None  # None: until the system's steady state (state_seconds + 2 s)
    step_seconds: float
    bisect_rounds: int
    ramp: tuple[str, ...]
    confirm: bool  # hold a stateful system's highest rate until its steady state
    max_rate: int = 128000

    def warmup_for(self, system: System) -> float:
        if self.warmup_seconds is not None:
            return self.warmup_seconds
        return max(2.0, system.state_seconds + 2.0)


@dataclass
class Result:
    system: System
    warmup: Load | None = None
    cpu: Load | None = None
    steps: list[Load] = field(default_factory=list)
    sipp_saturated: Load | None = None  # the step after which the ramp stopped for SIPp's sake
    steady: Load | None = None  # the run that held the highest rate until the steady state
    log_notes: list[str] = field(default_factory=list)
    stats_line: str | None = None

    def runs(self) -> list[Load]:
        """The runs that tell whether a rate is held: the ramp's steps and the CPU run."""
        runs = [s for s in self.steps if not s.error]
        if self.cpu is not None and not self.cpu.error:
            runs.append(self.cpu)
        return runs

    def bounds(self) -> tuple[int, int | None]:
        """(the highest rate that passed below every rate that did not, the lowest that did not)."""
        runs = self.runs()
        bad = min((s.rate for s in runs if s.verdict != "pass"), default=None)
        good = max((s.rate for s in runs if s.verdict == "pass" and (bad is None or s.rate < bad)), default=0)
        return good, bad

    def best(self) -> int | None:
        """The highest rate with no failure (0: none; None: no ramp was run)."""
        return self.bounds()[0] if self.steps else None

    def first_miss(self) -> Load | None:
        """The run at the lowest rate that did not pass (the longest one if there are several)."""
        bad = self.bounds()[1]
        misses = [s for s in self.runs() if s.rate == bad and s.verdict != "pass"]
        return max(misses, key=lambda s: s.seconds) if misses else None


def say(text: str) -> None:
    print(text, flush=True)


def describe(load: Load) -> str:
    if load.error:
        return f"{load.rate:>6}/s  ERROR {load.error}"
    return (
        f"{load.rate:>6}/s  sent {load.sent_rate:7.0f}/s  ok {load.ok:>6}/{load.count:<6}"
        f" failed {load.failed:>4}  retrans {load.retrans:>6}  rt {load.response_ms:6.1f} ms"
        f"  cpu {load.sut_cpu:6.2f} s = {fmt(load.cpu_ms_per_1000)} ms/1000"
        f" (busiest {100 * load.sut_busiest:3.0f} %)  sipp {100 * load.sipp_cpu:3.0f} %"
        f"{'  overran' if load.overran else ''}  -> {load.verdict}"
    )


def ramp(system: System, settings: Settings, workdir: Path, result: Result) -> None:
    """1000, 2000, 4000 ... requests/s until a step misses, then bisection steps."""

    def step(rate: int) -> bool:
        load = run_sipp(system, rate, settings.step_seconds, workdir, "ramp")
        result.steps.append(load)
        say(f"  [{system.name}] ramp    {describe(load)}")
        # let a backlog drain before the next step
        time.sleep(0.3 if load.verdict == "pass" else min(2.0, settings.step_seconds))
        return load.verdict == "pass"

    for rate in COARSE_RATES:
        bad = result.bounds()[1]  # the CPU run may already have missed
        if rate > settings.max_rate or (bad is not None and rate >= bad):
            break
        if not step(rate):
            break
        if result.steps[-1].sipp_cpu >= SIPP_SATURATED:
            result.sipp_saturated = result.steps[-1]  # a higher rate would measure SIPp
            break
    for _ in range(settings.bisect_rounds):
        good, bad = result.bounds()
        if bad is None or bad - good <= max(RATE_GRAIN, 0.1 * good):
            break
        mid = round((good + bad) / 2 / RATE_GRAIN) * RATE_GRAIN
        if mid <= good or mid >= bad:
            break
        step(mid)


def measure(system: System, settings: Settings, workdir: Path) -> Result:
    result = Result(system)
    say(f"\n== {system.label}: {' '.join(system.argv)}")
    say(f"  listening on udp:{HOST}:{system.port}, {system.processes} process(es) in its session")
    rate = settings.cpu_rate
    result.warmup = run_sipp(system, rate, settings.warmup_for(system), workdir, "warmup")
    say(f"  [{system.name}] warm-up {describe(result.warmup)}")
    result.cpu = run_sipp(system, rate, settings.cpu_seconds, workdir, "cpu", trace_rtt=True)
    say(f"  [{system.name}] cpu     {describe(result.cpu)}")
    if system.name in settings.ramp:
        time.sleep(1.0)
        ramp(system, settings, workdir, result)
        best = result.best()
        if settings.confirm and system.state_seconds and best:
            # The steps are shorter than the time this system keeps its transactions: hold the
            # highest rate until the state reaches its steady state, and then some.
            time.sleep(1.0)
            seconds = system.state_seconds + 2.0 + settings.cpu_seconds
            result.steady = run_sipp(system, best, seconds, workdir, "steady")
            result.steps.append(result.steady)
            say(f"  [{system.name}] steady  {describe(result.steady)}")
    return result


def read_log(result: Result) -> None:
    system = result.system
    if not system.log.exists():
        return
    for line in system.log.read_text(errors="replace").splitlines():
        if line.startswith("sipstack-stats"):
            result.stats_line = line
        elif system.name == "sipstack":
            if not line.startswith("sipstack OPTIONS responder listening"):
                result.log_notes.append(line)
        elif any(word in line for word in ("ERROR", "CRITICAL", "BUG")):
            result.log_notes.append(line)


# --------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------


def fmt(value: float | None, spec: str = ".1f") -> str:
    if value is None or value != value:
        return "-"
    return format(value, spec)


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b or a != a or b != b:
        return "-"
    value = a / b
    return f"{value:.2f}" if value >= 0.1 else f"{value:.4f}"


def max_rate_text(result: Result | None) -> str:
    if result is None or not result.steps:
        return "-"
    best, miss, saturated = result.best(), result.first_miss(), result.sipp_saturated
    if miss is None and saturated is not None and saturated.rate == best:
        return f">= {best} (SIPp then at {100 * saturated.sipp_cpu:.0f} % CPU)"
    if miss is None:
        return f"{best} (every step passed)"
    if miss.verdict == "sipp":
        return f">= {best} (SIPp fell behind at {miss.rate}/s)"
    if miss.failed or miss.ok < miss.count or miss.overran:
        why = f"{miss.count - miss.ok} unanswered/failed"
    else:
        why = f"{miss.retrans} retransmissions"
    where = f"{miss.rate}/s for {miss.seconds:g} s{' (the CPU run)' if miss.tag == 'cpu' else ''}: {why}"
    steady = result.steady
    if steady is not None and steady.verdict == "pass" and steady.rate == best:
        where += f"; held for {steady.seconds:g} s into the steady state"
    elif steady is not None and best and best < steady.rate:
        where += f"; {best}/s from {result.steps[0].seconds:g} s steps only"
    return f"{best} ({where})" if best else f"< {miss.rate} ({where})"


def report(results: list[Result], settings: Settings, quick: bool) -> None:
    say("\n" + "=" * 100)
    say(
        f"OPTIONS benchmark ({'--quick' if quick else 'full'}): {os.cpu_count()} CPUs, "
        f"Linux {platform.release()}, Python {platform.python_version()}; SIPp "
        f"{SCENARIO.relative_to(ROOT)} -t u1; CPU = scheduler run time "
        f"(schedstat) of every process of the system's session"
    )
    say(
        f"\nCPU per 1000 OPTIONS at {settings.cpu_rate}/s for {settings.cpu_seconds:g} s "
        f"({round(settings.cpu_rate * settings.cpu_seconds)} requests), after a warm-up at that rate"
        + (
            f" of {settings.warmup_seconds:g} s (sipstack not in its steady state: it keeps"
            " transactions 32 s)"
            if settings.warmup_seconds is not None
            else " until the steady state (sipstack 34 s: it keeps transactions 32 s; Kamailio 2 s)"
        )
        + ":"
    )
    say(
        "| system | processes | ok | failed | retrans | response ms: mean / p50 / p99 / max | "
        "CPU s | CPU ms / 1000 |"
    )
    say("|---|---|---|---|---|---|---|---|")
    for r in results:
        c = r.cpu
        if c is None:
            say(f"| {r.system.label} | could not start: {r.system.error} |")
            continue
        if c.error:
            say(f"| {r.system.label} | error: {c.error} |")
            continue
        times = " / ".join(fmt(v, ".0f") for v in (c.percentile(0.5), c.percentile(0.99), c.percentile(1.0)))
        say(
            f"| {r.system.label} | {r.system.processes} | {c.ok}/{c.count} | {c.failed} | {c.retrans} | "
            f"{fmt(c.response_ms)} / {times} | {c.sut_cpu:.2f} | {fmt(c.cpu_ms_per_1000)} |"
        )

    ramped = [r for r in results if r.steps]
    if ramped:
        say(
            f"\nHighest rate: steps of {settings.step_seconds:g} s, and the CPU run; pass = SIPp sent "
            ">= 95 % of the rate and every OPTIONS got its 200 within 500 ms (no failed call, no "
            "retransmission); the highest rate is the highest pass below every miss; busiest = CPU of the "
            "system's busiest process, 100 % = one core:"
        )
        say(
            "| system | rate/s | run | sent/s | ok | failed | retrans | mean response ms | CPU ms / 1000 | "
            "busiest | SIPp CPU | verdict |"
        )
        say("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in ramped:
            for s in sorted([*r.steps, *([r.cpu] if r.cpu else [])], key=lambda s: (s.rate, s.seconds)):
                if s.error:
                    say(f"| {r.system.label} | {s.rate} | {s.tag} | error: {s.error} |")
                    continue
                say(
                    f"| {r.system.label} | {s.rate} | {s.tag} {s.seconds:g} s | {s.sent_rate:.0f} | "
                    f"{s.ok}/{s.count} | {s.failed} | "
                    f"{s.retrans} | {fmt(s.response_ms)} | {fmt(s.cpu_ms_per_1000)} | "
                    f"{100 * s.sut_busiest:.0f} % | {100 * s.sipp_cpu:.0f} % | "
                    f"{s.verdict}{' (overran)' if s.overran else ''} |"
                )

    kamailio_steps = [
        (r.system.name, s)
        for r in results
        if r.system.name.startswith("kamailio")
        for s in r.steps
        if not s.error
    ]
    if kamailio_steps:
        passed = [(n, s) for n, s in kamailio_steps if s.verdict == "pass"] or kamailio_steps
        name, fastest = max(passed, key=lambda ns: ns[1].sent_rate)
        text = (
            f"\nSIPp's own ceiling, against Kamailio: it sent {fastest.sent_rate:.0f}/s with every answer in "
            f"time ({name}, asked {fastest.rate}/s) using {100 * fastest.sipp_cpu:.0f} % of a core"
        )
        behind = [(n, s) for n, s in kamailio_steps if s.verdict == "sipp"]
        if behind:
            name, first = min(behind, key=lambda ns: ns[1].rate)
            text += f"; it fell behind when asked for {first.rate}/s ({name}, sent {first.sent_rate:.0f}/s)"
        say(text + ".")

    by_name = {r.system.name: r for r in results}
    ours, ref, ref2 = by_name.get("sipstack"), by_name.get("kamailio-1"), by_name.get("kamailio-2")

    def cpu_of(r: Result | None) -> float | None:
        return r.cpu.cpu_ms_per_1000 if r and r.cpu and not r.cpu.error else None

    def rate_of(r: Result | None) -> float | None:
        best = r.best() if r else None
        return float(best) if best is not None else None

    say("\nSummary, ratios sipstack / Kamailio (1 worker):")
    say("| measure | sipstack | Kamailio, 1 worker | sipstack / Kamailio | Kamailio, 2 workers (info) |")
    say("|---|---|---|---|---|")
    say(
        f"| CPU ms per 1000 OPTIONS at {settings.cpu_rate}/s | {fmt(cpu_of(ours))} | {fmt(cpu_of(ref))} | "
        f"{ratio(cpu_of(ours), cpu_of(ref))} | {fmt(cpu_of(ref2))} |"
    )
    say(
        f"| highest rate/s with no failure (all answered within 500 ms) | {max_rate_text(ours)} | "
        f"{max_rate_text(ref)} | {ratio(rate_of(ours), rate_of(ref))} | {max_rate_text(ref2)} |"
    )
    miss = ref.first_miss() if ref and ref.steps else None
    if ref and ref.steps and (ref.sipp_saturated or (miss is not None and miss.verdict == "sipp")):
        say(
            "Kamailio's highest rate is SIPp's ceiling here, a lower bound for Kamailio: "
            "the rate ratio is an upper bound for sipstack."
        )
    elif miss is not None and miss.sut_busiest < KAMAILIO_BUSY:
        say(
            f"Kamailio was not CPU-bound at its first miss ({miss.rate}/s: its busiest process at "
            f"{100 * miss.sut_busiest:.0f} % of a core, SIPp at {100 * miss.sipp_cpu:.0f} %): SIPp and the "
            "kernel sharing the machine set that limit, so Kamailio's highest rate is a lower bound and the "
            "rate ratio an upper bound for sipstack."
        )

    say("\nLogs of the systems under test:")
    for r in results:
        if r.system.error:
            say(f"- {r.system.label}: could not start: {r.system.error}")
            continue
        if r.stats_line:
            say(f"- {r.system.label}: {r.stats_line}")
        if r.log_notes:
            say(f"- {r.system.label}: {len(r.log_notes)} warning/error line(s) in its log, the first ones:")
            for line in r.log_notes[:10]:
                say(f"    {line}")
        else:
            say(f"- {r.system.label}: no warning or error in its log")


# --------------------------------------------------------------------------------------------


def make_systems(workdir: Path) -> list[System]:
    """sipstack, Kamailio with one worker, Kamailio with two; each on a free port, with the
    reason it cannot be started when that is known before trying."""
    python = server_python()
    port = free_udp_port()
    systems = [
        System(
            "sipstack",
            "sipstack (1 process, uvloop)",
            [python or sys.executable, str(SERVER), "--listen", f"udp:{HOST}:{port}"],
            port,
            workdir / "sipstack.log",
            error=None if python else "no interpreter here can import sipstack.endpoint and uvloop",
            state_seconds=TIMER_J,
        )
    ]
    kamailio = shutil.which("kamailio") or (
        "/usr/sbin/kamailio" if Path("/usr/sbin/kamailio").exists() else None
    )
    for children in (1, 2):
        port = free_udp_port()
        rundir = workdir / f"kamailio-{children}.run"
        rundir.mkdir()
        base = [
            kamailio or "kamailio",
            "-f",
            str(KAMAILIO_CFG),
            "-l",
            f"udp:{HOST}:{port}",
            "-Y",
            str(rundir),
        ]
        system = System(
            f"kamailio-{children}",
            f"Kamailio sl_send_reply, {children} worker{'s' if children > 1 else ''}",
            [*base, "-n", str(children), "-DD", "-E"],
            port,
            workdir / f"kamailio-{children}.log",
        )
        if kamailio is None:
            system.error = "kamailio is not installed (Debian package kamailio)"
        else:
            check = subprocess.run([*base, "-c"], capture_output=True, text=True, timeout=60)
            if check.returncode != 0:
                tail = (check.stdout + check.stderr).strip().splitlines()[-4:]
                system.error = f"kamailio -c rejected {KAMAILIO_CFG.name}: {' | '.join(tail)}"
        systems.append(system)
    return systems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--quick", action="store_true", help="about a minute instead of about four")
    ap.add_argument("--cpu-rate", type=int, default=2000, help="requests/s of the CPU measurement (2000)")
    ap.add_argument("--cpu-seconds", type=float, help="length of the CPU measurement (10; quick 5)")
    ap.add_argument("--warmup-seconds", type=float, help="warm-up before it (steady state; quick 1)")
    ap.add_argument("--step-seconds", type=float, help="length of each rate step (4; quick 1)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, SIPp statistics)")
    args = ap.parse_args(argv)
    settings = Settings(
        cpu_rate=args.cpu_rate,
        cpu_seconds=args.cpu_seconds or (5.0 if args.quick else 10.0),
        warmup_seconds=args.warmup_seconds or (1.0 if args.quick else None),
        step_seconds=args.step_seconds or (1.0 if args.quick else 4.0),
        bisect_rounds=1 if args.quick else 3,
        confirm=not args.quick,
        ramp=("sipstack", "kamailio-1") if args.quick else ("sipstack", "kamailio-1", "kamailio-2"),
        max_rate=64000 if args.quick else 128000,
    )
    signal.signal(signal.SIGTERM, _terminate)

    if shutil.which("sipp") is None:
        say("error: sipp (SIPp, Debian package sip-tester) is not installed: nothing can load the systems")
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="sipstack-bench-options-"))
    started = time.monotonic()
    results: list[Result] = []
    failed_to_start = False
    try:
        for system in make_systems(workdir):
            result = Result(system)
            if system.error is None and start_system(system, workdir):
                try:
                    result = measure(system, settings, workdir)
                finally:
                    assert system.proc is not None
                    stop_process(system.proc)
                read_log(result)
            else:
                failed_to_start = True
                say(f"\n== {system.label}: could not start: {system.error}")
            results.append(result)
        report(results, settings, args.quick)
        say(
            f"\nwall time {time.monotonic() - started:.0f} s"
            + (f"; work directory {workdir}" if args.keep else "")
        )
    finally:
        stop_all()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed_to_start else 0


if __name__ == "__main__":
    sys.exit(main())
