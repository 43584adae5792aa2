#!/usr/bin/env python3
"""REGISTER benchmark: sipstack's registrar against Kamailio's (usrloc in memory), under SIPp.

Systems under test, each started here on 127.0.0.1, one at a time and on the same UDP port,
in a session of its own (and stopped by that session's process group / PIDs, nothing else):

- ``sipstack``: ``python -m sipstack serve`` -- one process on uvloop, bindings in its SQLite
  store (WAL, ``synchronous=FULL``: every REGISTER that changes a binding is committed and
  fsynced before its 200 OK; durability is part of what is measured, the server has no option
  to relax it), ``--log-level warning``; ``--no-auth``, or digest with ``--auth-algorithms MD5``;
- ``kamailio``: Kamailio 5.6, one UDP worker (``-n 1``), usrloc in memory (``db_mode`` 0),
  ``save("location")``: ``bench/kamailio_registrar.cfg`` without auth,
  ``bench/kamailio_registrar_auth.cfg`` with digest (``www_challenge`` /
  ``pv_www_authenticate``, the passwords in an ``htable``).

Two modes, each system started afresh for each: ``noauth`` (REGISTER -> 200,
``bench/scenarios/register_noauth.xml``) and ``auth`` (REGISTER -> 401 -> REGISTER with MD5
credentials -> 200, ``bench/scenarios/register_auth.xml``). ``--users`` users (1000): u1 ... uN,
passwords pw1 ... pwN, in sipstack's store (written through the API ``sipstack user add`` uses)
and in Kamailio's hash table; SIPp reads them in turn from an injection file, so after the first
round every REGISTER refreshes the one binding of its address-of-record, as re-registering
phones do. One SIPp call is one registration (two REGISTER transactions with auth).

1. CPU per 1000 registrations: SIPp at ``--cpu-rate`` registrations/s (500) for ``--cpu-seconds``
   (10 s), after a warm-up at that rate until the system's steady state: sipstack
   keeps every answered REGISTER transaction 32 s (RFC 3261 Timer J) so 34 s; Kamailio answers
   statelessly and keeps only the bindings, which the first round of users creates: 2 s or the
   time of one round. CPU = the run time the scheduler counts (/proc/PID/schedstat; utime +
   stime where it is missing) of every process of the system's session during the load, per
   1000 registrations answered 200.
2. Highest rate with no failure: on the same process, steps of ``--step-seconds`` (2 s) at
   1000, 2000, 4000 ... registrations/s until a step misses (or SIPp is busy >= 90 % of a
   core), then bisection steps. A run passes when SIPp sent >= 95 % of the rate and every
   registration got its 200 with no failed call and no retransmission (each request answered
   within 500 ms, T1). The CPU run counts as a step. Short steps flatter a system that falls
   slowly behind (its socket buffers hide up to 500 ms of backlog), so the full run then holds
   rates longer (at most two holds; see ``hold_targets``): Kamailio 8 s at its best step's rate,
   or 85 % of it if that fails; sipstack 32 s, until its transaction state is in its steady
   state, first at a safe rate (80 % of one core at the CPU run's cost per registration), then,
   if that passed, half-way to its best step. The "held" figure is the highest rate held (the
   CPU run included) below every held rate that failed.

Prints tables and the ratios sipstack / Kamailio, with the CPU that other processes on the
machine used during each run (a run they disturbed is flagged). Usage:
``python bench/register.py [--quick]`` (--quick: about 75 s, 1 s steps, no steady state, no
holds; full: about 6 minutes). Timings never make it exit non-zero; it exits 1 only when SIPp
or a system under test could not be started at all.
The helpers it shares with ``bench/options.py`` (processes, CPU accounting, SIPp statistics,
the ramp's bookkeeping) are imported from there.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from options import (  # noqa: E402  (bench/options.py: the OPTIONS benchmark's helpers)
    CLK_TCK,
    HOST,
    KAMAILIO_BUSY,
    OVERRUN,
    SIPP_BUFFER,
    SIPP_SATURATED,
    Load,
    Result,
    System,
    describe,
    fmt,
    free_udp_port,
    machine_cpu,
    max_rate_text,
    parse_stat,
    ratio,
    say,
    start_process,
    stop_all,
    stop_process,
)

ROOT = BENCH.parent
SCENARIOS = {
    "noauth": BENCH / "scenarios" / "register_noauth.xml",
    "auth": BENCH / "scenarios" / "register_auth.xml",
}
KAMAILIO_CFGS = {
    "noauth": BENCH / "kamailio_registrar.cfg",
    "auth": BENCH / "kamailio_registrar_auth.cfg",
}
MODE_LABELS = {"noauth": "no auth", "auth": "digest auth (MD5)"}
DOMAIN = HOST  # the AoRs are sip:uK@127.0.0.1: a domain sipstack serves by default
TIMER_J = 32.0  # sipstack keeps an answered REGISTER transaction this long over UDP (64*T1)
# The ramp's rates (registrations/s) before bisection.
COARSE_RATES = (1000, 2000, 4000, 8000, 16000, 32000, 48000, 64000)
STOP_GRACE = 8.0  # sipstack drains up to 5 s on SIGTERM before it exits
BUSY_OTHERS = 0.25  # other processes using this share of a core during a run disturb it

# Writes the users into a sipstack data directory, as `sipstack user add` does (same calls),
# in one process: a thousand `sipstack user add` commands would take minutes.
ADD_USERS = """
import asyncio, sys
from sipstack.auth import ha1_all
from sipstack.server.app import open_data_store
from sipstack.storage import User

async def main(data_dir, count, domain):
    store = open_data_store(data_dir)
    try:
        for i in range(1, count + 1):
            name = f"u{i}"
            await store.put_user(User(f"{name}@{domain}", name, domain, ha1_all(name, domain, f"pw{i}")))
    finally:
        await store.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
"""


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


# --------------------------------------------------------------------------------------------
# the systems
# --------------------------------------------------------------------------------------------


def sipstack_python() -> str | None:
    """An interpreter that can run ``python -m sipstack serve`` (sipstack and uvloop
    importable as installed): this one, else the project's venv."""
    candidates = [sys.executable, str(ROOT / ".venv" / "bin" / "python")]
    for python in dict.fromkeys(candidates):
        if Path(python).exists():
            check = subprocess.run(
                [python, "-c", "import sipstack.cli, uvloop"], capture_output=True, timeout=60, cwd="/"
            )
            if check.returncode == 0:
                return python
    return None


def kamailio_binary() -> str | None:
    return shutil.which("kamailio") or ("/usr/sbin/kamailio" if Path("/usr/sbin/kamailio").exists() else None)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def write_users_file(path: Path, users: int) -> None:
    """SIPp's injection file: field0 the user, field1 SIPp's whole digest keyword (SIPp cannot
    take a field inside ``[authentication ...]``, so the keyword itself is the field)."""
    lines = ["SEQUENTIAL"]
    lines += [f"u{i};[authentication username=u{i} password=pw{i}]" for i in range(1, users + 1)]
    path.write_text("\n".join(lines) + "\n")


def prepare_sipstack(python: str, data_dir: Path, users: int) -> str | None:
    """Create the users in a fresh data directory; None, or why it failed."""
    result = subprocess.run(
        [python, "-c", ADD_USERS, str(data_dir), str(users), DOMAIN],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        return "adding the users failed: " + " | ".join(result.stderr.strip().splitlines()[-3:])
    listed = subprocess.run(
        [python, "-m", "sipstack", "user", "list", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    count = listed.stdout.count("\n")
    if listed.returncode != 0 or count != users:
        return f"`sipstack user list` shows {count} users, not {users}: {listed.stderr.strip()}"
    return None


def make_system(name: str, mode: str, port: int, workdir: Path, users: int) -> System:
    """The system ``name`` in ``mode`` on ``port``, with the reason it cannot be started when that
    is known before trying."""
    tag = f"{name}-{mode}"
    log = workdir / f"{tag}.log"
    if name == "sipstack":
        python = sipstack_python()
        data_dir = workdir / f"{tag}.data"
        argv = [
            python or sys.executable,
            "-m", "sipstack", "serve",
            "--listen", f"udp:{HOST}:{port}",
            "--data-dir", str(data_dir),
            "--log-level", "warning",
            *(["--no-auth"] if mode == "noauth" else ["--auth-algorithms", "MD5"]),
        ]  # fmt: skip
        system = System(tag, f"sipstack, {MODE_LABELS[mode]}", argv, port, log, state_seconds=TIMER_J)
        if python is None:
            system.error = "no interpreter here can import sipstack.cli and uvloop (make venv)"
        else:
            system.error = prepare_sipstack(python, data_dir, users)
        return system
    kamailio = kamailio_binary()
    cfg = KAMAILIO_CFGS[mode]
    rundir = workdir / f"{tag}.run"
    rundir.mkdir()
    base = [
        kamailio or "kamailio",
        "-f", str(cfg),
        "-l", f"udp:{HOST}:{port}",
        "-Y", str(rundir),
        "-A", f"BENCH_USERS={users}",
    ]  # fmt: skip
    system = System(tag, f"Kamailio usrloc, {MODE_LABELS[mode]}", [*base, "-n", "1", "-DD", "-E"], port, log)
    if kamailio is None:
        system.error = "kamailio is not installed (Debian package kamailio)"
    else:
        check = subprocess.run([*base, "-c"], capture_output=True, text=True, timeout=60)
        if check.returncode != 0:
            tail = (check.stdout + check.stderr).strip().splitlines()[-4:]
            system.error = f"kamailio -c rejected {cfg.name}: {' | '.join(tail)}"
    return system


def probe(port: int, timeout: float) -> str | None:
    """The status line a REGISTER without Contact (a query, which changes nothing) for u1 gets
    from 127.0.0.1:port within ``timeout`` seconds: 200, or 401 with auth."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        local = sock.getsockname()[1]
        n = 0
        while time.monotonic() < deadline:
            n += 1
            tag = f"{n}{random.getrandbits(32):08x}"
            message = (
                f"REGISTER sip:{HOST}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {HOST}:{local};branch=z9hG4bK-probe-{tag};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:u1@{DOMAIN}>;tag=p{tag}\r\n"
                f"To: <sip:u1@{DOMAIN}>\r\n"
                f"Call-ID: probe-{tag}@{HOST}\r\n"
                "CSeq: 1 REGISTER\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            with contextlib.suppress(OSError):
                sock.sendto(message.encode(), (HOST, port))
            sock.settimeout(0.3)
            with contextlib.suppress(OSError):
                data = sock.recv(65535)
                line = data.split(b"\r\n", 1)[0].decode(errors="replace")
                if line.startswith("SIP/2.0 ") and not line.startswith("SIP/2.0 1"):
                    return line
    return None


def start_system(system: System, workdir: Path) -> bool:
    system.proc = start_process(system.argv, system.log, workdir)
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        if system.proc.poll() is not None:
            break
        answer = probe(system.port, 0.5)
        if answer is not None:
            time.sleep(0.5)  # let the remaining processes settle
            system.processes = len(system.ticks())
            say(f"  probe REGISTER (no Contact) for u1: {answer}")
            return True
    code = system.proc.poll()
    stop_process(system.proc, grace=STOP_GRACE)
    tail = system.log.read_text(errors="replace").strip().splitlines()[-8:]
    system.error = (
        f"exited with status {code}" if code is not None else "did not answer a REGISTER within 20 s"
    ) + ("; log: " + " | ".join(tail) if tail else "")
    return False


# --------------------------------------------------------------------------------------------
# one SIPp run
# --------------------------------------------------------------------------------------------


@dataclass
class RegLoad(Load):
    others: float = 0.0  # CPU share (1.0 = a core) of every other process on the machine


def run_sipp(
    system: System,
    mode: str,
    users_file: Path,
    rate: int,
    seconds: float,
    workdir: Path,
    tag: str,
    trace_rtt: bool = False,
) -> RegLoad:
    count = max(1, round(rate * seconds))
    load = RegLoad(rate=rate, count=count, tag=tag, seconds=seconds)
    scenario = SCENARIOS[mode]
    stat = workdir / f"{system.name}-{tag}-{rate}.csv"
    out = workdir / f"{system.name}-{tag}-{rate}.sipp.log"
    argv = [
        "sipp",
        "-sf", str(scenario),
        "-inf", str(users_file),
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
    busy_before = machine_cpu()[0]
    t0 = time.monotonic()
    proc = start_process(argv, out, workdir)
    deadline = t0 + seconds + OVERRUN
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
    busy = machine_cpu()[0] - busy_before
    proc.returncode = os.waitstatus_to_exitcode(status)
    stop_process(proc)  # reaped already: only forgets it (and kills any straggler of its session)
    load.sipp_rc = proc.returncode
    load.sut_cpu = (sum(after.values()) - sum(before.values())) / CLK_TCK
    busiest = max((after[p] - before.get(p, 0) for p in after), default=0) / CLK_TCK
    try:
        parse_stat(stat, load)
    except (OSError, ValueError, KeyError) as exc:
        tail = out.read_text(errors="replace").strip().splitlines()[-3:] if out.exists() else []
        load.error = f"no SIPp statistics ({exc}); SIPp exit {load.sipp_rc}: {' | '.join(tail)}"
    load.sut_busiest = busiest / load.wall
    load.sipp_cpu = (usage.ru_utime + usage.ru_stime) / load.wall
    load.others = max(0.0, busy - load.sut_cpu - usage.ru_utime - usage.ru_stime) / load.wall
    rtt = workdir / f"{scenario.stem}_{proc.pid}_rtt.csv"
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
    users: int
    cpu_rate: int
    cpu_seconds: float
    warmup_seconds: float | None  # None: until the system's steady state; never under one round
    step_seconds: float
    bisect_rounds: int
    holds: int  # at most this many held runs after the ramp (0: none)
    hold_seconds: float  # a held run of a system that keeps no state (sipstack: its state time)
    max_rate: int

    def warmup_for(self, system: System) -> float:
        one_round = self.users / self.cpu_rate + 1.0  # every user's binding created first
        if self.warmup_seconds is not None:
            return max(self.warmup_seconds, one_round)
        return max(2.0, one_round, system.state_seconds + 2.0)

    def hold_for(self, system: System) -> float:
        return system.state_seconds or self.hold_seconds


@dataclass
class Run:
    mode: str
    system_name: str  # sipstack or kamailio
    result: Result
    holds: list[Load] = field(default_factory=list)  # the held runs, in order
    notes: list[str] = field(default_factory=list)

    def held(self) -> list[Load]:
        """The runs that tell whether a rate is held: the CPU run (after the warm-up, at the
        system's steady state when the warm-up reached it) and the holds."""
        cpu = self.result.cpu
        return [s for s in [*([cpu] if cpu else []), *self.holds] if not s.error]

    def held_best(self) -> int | None:
        """The highest rate held with no failure, below every held rate that failed (None:
        nothing was held after the ramp)."""
        if not self.holds:
            return None
        runs = self.held()
        # "sipp" (SIPp could not send at the rate) is neither a pass nor the system's failure.
        bad = min((s.rate for s in runs if s.verdict not in ("pass", "sipp")), default=None)
        return max((s.rate for s in runs if s.verdict == "pass" and (bad is None or s.rate < bad)), default=0)


def show(load: Load) -> str:
    """The options benchmark's one-line description, plus the CPU of the machine's other processes."""
    others = getattr(load, "others", 0.0)
    return f"{describe(load)}  (others {100 * others:.0f} %)"


def grain(good: int) -> int:
    """Bisection steps are rounded to this many registrations/s."""
    return 50 if good < 2000 else 250


def ramp(
    system: System, mode: str, users_file: Path, settings: Settings, workdir: Path, result: Result
) -> None:
    """1000, 2000, 4000 ... registrations/s until a step misses, then bisection steps."""

    def step(rate: int) -> bool:
        load = run_sipp(system, mode, users_file, rate, settings.step_seconds, workdir, "ramp")
        result.steps.append(load)
        say(f"  [{system.name}] ramp    {show(load)}")
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
        if bad is None or bad - good <= max(grain(good), 0.1 * good):
            break
        unit = grain(good)
        mid = round((good + bad) / 2 / unit) * unit
        if mid <= good or mid >= bad:
            break
        step(mid)


def rounded(rate: float) -> int:
    """``rate`` rounded down to the bisection grain."""
    unit = grain(int(rate))
    return int(rate // unit) * unit


def hold_targets(run: Run) -> tuple[str, list[int]]:
    """The order of the held runs and their first rates, after the ramp.

    Kamailio keeps no state per request: it holds the best step's rate, and if that fails
    (short steps hide a backlog of up to 500 ms in the socket buffers) 85 % of it.
    sipstack keeps every transaction 32 s, its steady state costs more CPU per registration
    than the short steps show, and after a failed hold it is still busy with 32 s of state and
    retransmissions: so it holds upwards from a safe rate -- 80 % of what one core does at the
    CPU run's (steady-state) cost per registration, at most the best step -- and, if that
    passes, half-way between it and the best step."""
    best = run.result.best()
    cpu = run.result.cpu
    if not best or cpu is None or cpu.error or cpu.verdict != "pass":
        return "down", [best] if best else []
    if not run.result.system.state_seconds or cpu.sut_cpu <= 0:
        return "down", [best, rounded(0.85 * best)]
    safe = min(best, rounded(0.8 * 1e6 / cpu.cpu_ms_per_1000))
    return "up", [safe, rounded((safe + best) / 2), best]


def measure(run: Run, mode: str, users_file: Path, settings: Settings, workdir: Path) -> None:
    result = run.result
    system = result.system
    say(f"  listening on udp:{HOST}:{system.port}, {system.processes} process(es) in its session")
    rate = settings.cpu_rate
    result.warmup = run_sipp(system, mode, users_file, rate, settings.warmup_for(system), workdir, "warmup")
    say(f"  [{system.name}] warm-up {show(result.warmup)}")
    result.cpu = run_sipp(
        system, mode, users_file, rate, settings.cpu_seconds, workdir, "cpu", trace_rtt=True
    )
    say(f"  [{system.name}] cpu     {show(result.cpu)}")
    time.sleep(1.0)
    ramp(system, mode, users_file, settings, workdir, result)
    if not settings.holds:
        return
    direction, targets = hold_targets(run)
    seconds = settings.hold_for(system)
    held = {rate} if result.cpu is not None and result.cpu.verdict == "pass" else set()
    for target in dict.fromkeys(targets):
        if len(run.holds) >= settings.holds:
            break
        if target in held or (direction == "up" and target <= max(held, default=0)):
            continue  # held already (the CPU run, or a hold)
        time.sleep(1.0)
        load = run_sipp(system, mode, users_file, target, seconds, workdir, "hold")
        run.holds.append(load)
        say(f"  [{system.name}] hold    {show(load)}")
        if load.verdict == "pass":
            held.add(target)
        if (load.verdict == "pass") == (direction == "down"):
            break  # down: the first pass; up: the first failure
        time.sleep(2.0)  # let a backlog drain


def read_log(result: Result) -> None:
    system = result.system
    if not system.log.exists():
        return
    for line in system.log.read_text(errors="replace").splitlines():
        if system.name.startswith("sipstack"):
            # --log-level warning: anything logged is a warning or an error, except the
            # start-up hints printed for newcomers.
            if " WARNING " in line or " ERROR " in line or " CRITICAL " in line or "Traceback" in line:
                result.log_notes.append(line)
        elif any(word in line for word in ("ERROR", "CRITICAL", "BUG")):
            result.log_notes.append(line)


def sipstack_bindings(system: System) -> str | None:
    """What ``sipstack registrations`` says of the data directory after the run."""
    data_dir = system.argv[system.argv.index("--data-dir") + 1]
    shown = subprocess.run(
        [system.argv[0], "-m", "sipstack", "registrations", "--data-dir", data_dir],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = shown.stderr.strip().splitlines()
    return lines[-1] if lines else None


def fsync_ms(directory: Path, rounds: int = 200) -> float:
    """Median time of a small write + fsync in ``directory`` (the durability cost per commit)."""
    path = directory / "fsync-probe"
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(rounds):
            t0 = time.perf_counter()
            os.write(fd, b"x" * 512)
            os.fsync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times) * 1000


# --------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------


def why_failed(load: Load) -> str:
    if load.failed or load.ok < load.count or load.overran:
        return f"{load.count - load.ok} of {load.count} unanswered or failed, {load.retrans} retransmissions"
    return f"{load.retrans} retransmissions"


def held_text(run: Run | None) -> str:
    best = run.held_best() if run else None
    if run is None or best is None:
        return "-"
    parts = [
        f"{s.rate}/s for {s.seconds:g} s failed: {why_failed(s)}" for s in run.holds if s.verdict != "pass"
    ]
    passed = [s for s in run.holds if s.verdict == "pass" and s.rate == best]
    if passed:
        parts.append(f"{best}/s held {passed[0].seconds:g} s")
    elif best and run.result.cpu is not None and best == run.result.cpu.rate:
        parts.append(f"{best}/s: the CPU run")
    return f"{best} ({'; '.join(parts)})"


def report(runs: list[Run], settings: Settings, quick: bool, fsync: float, load_before: str) -> None:
    say("\n" + "=" * 100)
    say(
        f"REGISTER benchmark ({'--quick' if quick else 'full'}): {os.cpu_count()} CPUs, "
        f"Linux {platform.release()}, Python {platform.python_version()}; SIPp -t u1, "
        f"{settings.users} users in turn; CPU = scheduler run time (schedstat) of every process of the "
        f"system's session; load average before: {load_before}"
    )
    say(
        "A registration = one SIPp call: REGISTER -> 200 without auth; REGISTER -> 401 -> REGISTER -> 200 "
        "with auth (two REGISTER requests). sipstack commits each binding to SQLite (WAL, "
        f"synchronous=FULL: fsync) before its 200 OK, its figures include that (a write+fsync here: "
        f"{fsync:.2f} ms median); Kamailio keeps usrloc in memory (db_mode 0)."
    )
    warm = (
        f" of {max(settings.warmup_seconds, settings.users / settings.cpu_rate + 1.0):g} s (one round of "
        "users at least; sipstack not in its steady state: it keeps transactions 32 s)"
        if settings.warmup_seconds is not None
        else " until the steady state (sipstack 34 s: it keeps transactions 32 s; Kamailio one round of"
        " users)"
    )
    say(
        f"\nCPU per 1000 registrations at {settings.cpu_rate}/s for {settings.cpu_seconds:g} s "
        f"({round(settings.cpu_rate * settings.cpu_seconds)} registrations), after a warm-up at that "
        f"rate{warm}:"
    )
    say(
        "| mode | system | processes | ok | failed | retrans | response ms: mean / p50 / p99 / max | "
        "CPU s | CPU ms / 1000 registrations | CPU ms / 1000 REGISTER requests |"
    )
    say("|---|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        r, c = run.result, run.result.cpu
        head = f"| {MODE_LABELS[run.mode]} | {r.system.label}"
        if c is None:
            say(f"{head} | could not start: {r.system.error} |")
            continue
        if c.error:
            say(f"{head} | error: {c.error} |")
            continue
        per_request = c.cpu_ms_per_1000 / (2 if run.mode == "auth" else 1)
        times = " / ".join(fmt(v, ".0f") for v in (c.percentile(0.5), c.percentile(0.99), c.percentile(1.0)))
        say(
            f"{head} | {r.system.processes} | {c.ok}/{c.count} | {c.failed} | {c.retrans} | "
            f"{fmt(c.response_ms)} / {times} | {c.sut_cpu:.2f} | {fmt(c.cpu_ms_per_1000)} | "
            f"{fmt(per_request)} |"
        )

    say(
        f"\nHighest rate: steps of {settings.step_seconds:g} s, the CPU run"
        + (
            f", and held runs (hold: sipstack {TIMER_J:g} s, into the steady state of its transactions; "
            f"Kamailio {settings.hold_seconds:g} s)"
            if settings.holds
            else " (no held runs with --quick: short steps flatter a system that falls slowly behind)"
        )
        + "; pass = SIPp sent >= 95 % of the rate and every registration got its "
        "200 with every request answered within 500 ms (no failed call, no retransmission); busiest = CPU "
        "of the system's busiest process, others = CPU of every process on the machine but the system and "
        "SIPp, 100 % = one core:"
    )
    say(
        "| mode | system | rate/s | run | sent/s | ok | failed | retrans | mean response ms | "
        "CPU ms / 1000 | busiest | SIPp CPU | others | verdict |"
    )
    say("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        r = run.result
        loads = [*r.steps, *([r.cpu] if r.cpu else []), *run.holds]
        for s in sorted(loads, key=lambda s: (s.rate, s.seconds)):
            head = f"| {MODE_LABELS[run.mode]} | {r.system.label} | {s.rate}"
            if s.error:
                say(f"{head} | {s.tag} | error: {s.error} |")
                continue
            say(
                f"{head} | {s.tag} {s.seconds:g} s | {s.sent_rate:.0f} | {s.ok}/{s.count} | {s.failed} | "
                f"{s.retrans} | {fmt(s.response_ms)} | {fmt(s.cpu_ms_per_1000)} | "
                f"{100 * s.sut_busiest:.0f} % | {100 * s.sipp_cpu:.0f} % | "
                f"{100 * getattr(s, 'others', 0.0):.0f} % | {s.verdict}{' (overran)' if s.overran else ''} |"
            )

    def cpu_of(r: Result | None) -> float | None:
        return r.cpu.cpu_ms_per_1000 if r and r.cpu and not r.cpu.error else None

    def rate_of(r: Result | None) -> float | None:
        best = r.best() if r else None
        return float(best) if best is not None else None

    def held_of(run: Run | None) -> float | None:
        best = run.held_best() if run else None
        return float(best) if best is not None else None

    say("\nSummary, ratios sipstack / Kamailio (one process / one UDP worker each):")
    say("| measure | mode | sipstack | Kamailio | sipstack / Kamailio |")
    say("|---|---|---|---|---|")
    bounds_notes = []
    for mode in SCENARIOS:
        by_name = {run.system_name: run for run in runs if run.mode == mode}
        ours_run, ref_run = by_name.get("sipstack"), by_name.get("kamailio")
        ours = ours_run.result if ours_run else None
        ref = ref_run.result if ref_run else None
        label = MODE_LABELS[mode]
        say(
            f"| CPU ms per 1000 registrations at {settings.cpu_rate}/s | {label} | "
            f"{fmt(cpu_of(ours))} | {fmt(cpu_of(ref))} | {ratio(cpu_of(ours), cpu_of(ref))} |"
        )
        say(
            f"| highest registrations/s with no failure, {settings.step_seconds:g} s steps | {label} | "
            f"{max_rate_text(ours)} | {max_rate_text(ref)} | {ratio(rate_of(ours), rate_of(ref))} |"
        )
        if settings.holds:
            say(
                f"| highest registrations/s with no failure, held | {label} | {held_text(ours_run)} | "
                f"{held_text(ref_run)} | {ratio(held_of(ours_run), held_of(ref_run))} |"
            )
        miss = ref.first_miss() if ref and ref.steps else None
        if ref and ref.steps and (ref.sipp_saturated or (miss is not None and miss.verdict == "sipp")):
            bounds_notes.append(
                f"{label}: Kamailio's highest rate is SIPp's ceiling here, a lower bound for Kamailio: the "
                "rate ratio is an upper bound for sipstack."
            )
        elif ref and ref.steps and miss is None:
            top = max(ref.steps, key=lambda s: s.rate)
            bounds_notes.append(
                f"{label}: Kamailio passed every step up to the ramp's top, {top.rate}/s (SIPp then at "
                f"{100 * top.sipp_cpu:.0f} % of a core): a lower bound for Kamailio, so the rate ratio is an "
                "upper bound for sipstack."
            )
        elif miss is not None and miss.sut_busiest < KAMAILIO_BUSY:
            bounds_notes.append(
                f"{label}: Kamailio was not CPU-bound at its first miss ({miss.rate}/s: its busiest "
                f"process at {100 * miss.sut_busiest:.0f} % of a core, SIPp at {100 * miss.sipp_cpu:.0f} %): "
                "SIPp and the kernel sharing the machine set that limit, so Kamailio's highest rate is a "
                "lower bound and the rate ratio an upper bound for sipstack."
            )
    for note in bounds_notes:
        say(note)
    disturbed = [
        (run, s)
        for run in runs
        for s in [*([run.result.cpu] if run.result.cpu else []), *run.result.steps, *run.holds]
        if getattr(s, "others", 0.0) >= BUSY_OTHERS
    ]
    if disturbed:
        run, worst = max(disturbed, key=lambda rs: getattr(rs[1], "others", 0.0))
        say(
            f"Disturbed: in {len(disturbed)} run(s) other processes on this machine used >= "
            f"{100 * BUSY_OTHERS:.0f} % of a core (at most {100 * getattr(worst, 'others', 0.0):.0f} %: "
            f"{run.result.system.label}, {worst.tag} at {worst.rate}/s); those figures are not clean, "
            "run again on a quiet machine."
        )

    say("\nLogs of the systems under test:")
    for run in runs:
        r = run.result
        if r.system.error:
            say(f"- {r.system.label}: could not start: {r.system.error}")
            continue
        for note in run.notes:
            say(f"- {r.system.label}: {note}")
        if r.log_notes:
            say(f"- {r.system.label}: {len(r.log_notes)} warning/error line(s) in its log, the first ones:")
            for line in r.log_notes[:10]:
                say(f"    {line}")
        else:
            say(f"- {r.system.label}: no warning or error in its log")


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--quick", action="store_true", help="about 75 s instead of about 6 minutes")
    ap.add_argument("--users", type=int, default=1000, help="distinct users registering in turn (1000)")
    ap.add_argument("--cpu-rate", type=int, default=500, help="registrations/s of the CPU measurement (500)")
    ap.add_argument("--cpu-seconds", type=float, help="length of the CPU measurement (10; quick 5)")
    ap.add_argument("--warmup-seconds", type=float, help="warm-up before it (steady state; quick 1)")
    ap.add_argument("--step-seconds", type=float, help="length of each rate step (2; quick 1)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, SIPp statistics)")
    args = ap.parse_args(argv)
    settings = Settings(
        users=args.users,
        cpu_rate=args.cpu_rate,
        cpu_seconds=args.cpu_seconds or (5.0 if args.quick else 10.0),
        warmup_seconds=args.warmup_seconds or (1.0 if args.quick else None),
        step_seconds=args.step_seconds or (1.0 if args.quick else 2.0),
        bisect_rounds=1,
        holds=0 if args.quick else 2,
        hold_seconds=8.0,
        max_rate=32000 if args.quick else 64000,
    )
    signal.signal(signal.SIGTERM, _terminate)

    if shutil.which("sipp") is None:
        say("error: sipp (SIPp, Debian package sip-tester) is not installed: nothing can load the systems")
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="sipstack-bench-register-"))
    started = time.monotonic()
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    runs: list[Run] = []
    failed_to_start = False
    try:
        users_file = workdir / "users.csv"
        write_users_file(users_file, settings.users)
        fsync = fsync_ms(workdir)
        port = free_udp_port()  # the same port for every system, one at a time
        for mode in SCENARIOS:
            for name in ("sipstack", "kamailio"):
                if not port_is_free(port):
                    old, port = port, free_udp_port()
                    say(f"\n(port {old} was taken by something else meanwhile: now on {port})")
                system = make_system(name, mode, port, workdir, settings.users)
                say(f"\n== {system.label}: {' '.join(system.argv)}")
                result = Result(system)
                run = Run(mode, name, result)
                if system.error is None and start_system(system, workdir):
                    try:
                        measure(run, mode, users_file, settings, workdir)
                    finally:
                        assert system.proc is not None
                        stop_process(system.proc, grace=STOP_GRACE)
                    read_log(result)
                    if name == "sipstack":
                        shown = sipstack_bindings(system)
                        if shown:
                            run.notes.append(f"`sipstack registrations` after the run: {shown}")
                else:
                    failed_to_start = True
                    say(f"== {system.label}: could not start: {system.error}")
                runs.append(run)
        report(runs, settings, args.quick, fsync, load_before)
        say(
            f"\nwall time {time.monotonic() - started:.0f} s; load average after: "
            + " ".join(Path("/proc/loadavg").read_text().split()[:3])
            + (f"; work directory {workdir}" if args.keep else "")
        )
    finally:
        stop_all()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed_to_start else 0


if __name__ == "__main__":
    sys.exit(main())
