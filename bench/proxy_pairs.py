#!/usr/bin/env python3
"""CPU per call of sipstack's proxy against Kamailio's, in interleaved pairs.

``bench/proxy.py`` measures each system once, minutes apart; on a shared machine the load of
others moves either figure by 5-10 % from one minute to the next, and the ratio with them. Here
the two are measured in turn, several times, in the order A B B A A B … (so that a drift of the
machine weighs on both alike), each time freshly started and warmed up to its steady state, with
the same SIPp scenarios, ports and rate as ``bench/proxy.py``; what counts is the median of the
pairs' ratios, printed with every pair's figures.

    .venv/bin/python bench/proxy_pairs.py                      # 1 worker, 1000/s, 4 pairs: ~5 minutes
    .venv/bin/python bench/proxy_pairs.py --workers 2 --rate 200 --pairs 3
    .venv/bin/python bench/proxy_pairs.py --against ../other/src      # sipstack A/B: this tree / that one

``--against PATH`` measures, instead of Kamailio, sipstack started with ``PYTHONPATH=PATH``: another
checkout's ``src`` (an A/B of two versions), or a directory whose ``sitecustomize.py`` patches
this one (an experiment without a commit). The ratio is then this tree's / that one's.

A run whose calls did not all succeed is reported and left out of the ratios. Timings never make
it exit non-zero; it exits 1 only when SIPp or a system could not be started.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from options import say
from proxy import (
    PORTS,
    STOP_GRACE,
    Run,
    System,
    _terminate,
    choose_ports,
    make_systems,
    run_load,
    start_system,
    stop_all,
    stop_process,
)

OVERRUN = 4.0  # seconds a run goes on after its last call was due (as bench/proxy.py)


def measure(system: System, ports: tuple[int, int, int], rate: int, seconds: float, workdir: Path) -> Run:
    """Start ``system``, warm it up at ``rate`` to its steady state, measure ``seconds``, stop it."""
    if not start_system(system, ports[0], workdir):
        raise RuntimeError(f"{system.name} could not start: {system.error}")
    try:
        run_load(system, ports, rate, system.steady_warmup(), OVERRUN, workdir, "warmup")
        time.sleep(0.5)
        return run_load(system, ports, rate, seconds, OVERRUN, workdir, "cpu")
    finally:
        assert system.proc is not None
        stop_process(system.proc, grace=STOP_GRACE)
        time.sleep(0.5)


def against(ours: System, name: str, path: Path, workdir: Path) -> System:
    """``ours`` started with ``PYTHONPATH=path`` (its own log and data directory)."""
    argv = [str(workdir / f"{name}.data") if arg.endswith(f"{ours.name}.data") else arg for arg in ours.argv]
    return dataclasses.replace(
        ours,
        name=name,
        label=f"{ours.label}, PYTHONPATH={path}",
        argv=["env", f"PYTHONPATH={path}", *argv],
        log=workdir / f"{name}.log",
    )


def complete(run: Run) -> bool:
    """Every call the run placed succeeded."""
    return not run.error and run.ok > 0 and run.ok == run.created and not run.failed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, choices=(1, 2), default=1, help="of both systems (1)")
    ap.add_argument("--rate", type=int, default=1000, help="calls/s (1000)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each measurement (10)")
    ap.add_argument("--pairs", type=int, default=4, help="how many pairs (4)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, SIPp statistics)")
    ap.add_argument(
        "--against", metavar="PATH", help="compare with sipstack run with PYTHONPATH=PATH instead of Kamailio"
    )
    args = ap.parse_args(argv)
    if args.against is not None and not Path(args.against).is_dir():
        ap.error(f"--against: {args.against} is not a directory")
    signal.signal(signal.SIGTERM, _terminate)
    if shutil.which("sipp") is None:
        say("error: sipp (SIPp, Debian package sip-tester) is not installed")
        return 1
    ports, note = choose_ports(PORTS)
    if note:
        say(f"note: {note}")
    workdir = Path(tempfile.mkdtemp(prefix="sipstack-bench-pairs-"))
    names = (f"sipstack-{args.workers}", f"kamailio-{args.workers}")
    if args.against is not None:
        names = (names[0], f"{names[0]}-against")
    theirs_label = "that tree" if args.against is not None else "Kamailio"
    ours: list[float] = []
    theirs: list[float] = []
    ratios: list[float] = []
    try:
        systems = {s.name: s for s in make_systems(workdir, ports) if s.name in names}
        if args.against is not None:
            systems[names[1]] = against(systems[names[0]], names[1], Path(args.against).resolve(), workdir)
        for name in names:
            if systems[name].error is not None:
                say(f"error: {name}: {systems[name].error}")
                return 1
        say(f"{args.pairs} pairs at {args.rate} calls/s, {args.workers} worker(s), {args.seconds:.0f} s each")
        for i in range(args.pairs):
            order = names if i % 2 == 0 else names[::-1]
            runs: dict[str, Run] = {}
            for name in order:
                run = measure(systems[name], ports, args.rate, args.seconds, workdir)
                runs[name] = run
                say(
                    f"  pair {i + 1} {name:<11} ok {run.ok}/{run.created} failed {run.failed}"
                    f" retrans {run.retrans_uac}+{run.retrans_uas}  {run.cpu_ms_per_call:.3f} ms/call"
                )
            a, b = runs[names[0]], runs[names[1]]
            if not (complete(a) and complete(b)):
                say(f"  pair {i + 1}: left out (not every call succeeded)")
                continue
            ours.append(a.cpu_ms_per_call)
            theirs.append(b.cpu_ms_per_call)
            ratios.append(a.cpu_ms_per_call / b.cpu_ms_per_call)
            say(f"  pair {i + 1}: sipstack / {theirs_label} = {ratios[-1]:.2f}")
    except RuntimeError as exc:
        say(f"error: {exc}")
        return 1
    finally:
        stop_all()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if ratios:
        say(
            f"\nCPU ms per call at {args.rate}/s, {args.workers} worker(s), {len(ratios)} pairs:"
            f" sipstack median {statistics.median(ours):.3f} ({min(ours):.3f}-{max(ours):.3f}),"
            f" {theirs_label} median {statistics.median(theirs):.3f} ({min(theirs):.3f}-{max(theirs):.3f});"
            f" ratio median {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
        )
    if args.keep:
        say(f"work directory {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
