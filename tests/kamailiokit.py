"""Kamailio as a child process of the interop tests: where it is, started in a session of
its own (so its process group is its own), waited for, and stopped as a whole group by PID."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Self


def find_kamailio() -> str | None:
    found = shutil.which("kamailio")
    if found is None and os.access("/usr/sbin/kamailio", os.X_OK):
        found = "/usr/sbin/kamailio"  # not on a non-root user's PATH
    return found


KAMAILIO = find_kamailio()


def _end_with_parent() -> None:
    """In the child, before exec (Linux): SIGTERM when the test process dies, so that an
    interrupted run (Ctrl-C, a killed pytest) does not leave Kamailio running in the session
    of its own that it gets (its own teardown cannot run then)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class KamailioProcess:
    """``kamailio … -DD -E`` in the foreground, logging to ``workdir/kamailio.log``.
    Subclasses say how it is started (:meth:`command`) and when it is up (:meth:`ready`)."""

    name = "Kamailio"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.log_path = workdir / "kamailio.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:  # pragma: no cover - subclasses
        raise NotImplementedError

    def ready(self) -> bool:  # pragma: no cover - subclasses
        raise NotImplementedError

    def start(self, ready_timeout: float = 10.0) -> Self:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
                preexec_fn=_end_with_parent,
            )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.ready():
                return self
            time.sleep(0.05)
        self.close()
        raise AssertionError(f"{self.name} did not come up:\n$ {' '.join(self.command())}\n{self.log()}")

    def close(self) -> None:
        """SIGTERM to the process group created for it (the main process and its children),
        SIGKILL after 3 s; the group's ID is the main process's PID, reserved until reaped."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):  # children may outlive the main process
            os.killpg(pgid, signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL to the whole group at once (a crash, as the tests that need one see it)."""
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def log(self, max_chars: int | None = 12000) -> str:
        """The end of its log (all of it with ``max_chars=None``)."""
        try:
            text = self.log_path.read_text(errors="replace")
            return text if max_chars is None else text[-max_chars:]
        except OSError:
            return ""

    def wait_log(self, needle: str, timeout: float = 3.0) -> bool:
        """Whether ``needle`` shows in its log within ``timeout`` seconds (it writes a line
        about a refused connection some time after the peer has seen the refusal)."""
        deadline = time.monotonic() + timeout
        while needle not in self.log(None):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True
