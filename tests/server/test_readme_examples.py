"""The README's user-agent examples run as written: each complete program (a ```python block
of the "User agent library" section that ends with ``run(main())``) and the example files
``examples/ua_call.py`` and ``examples/ua_register.py``, as child processes — the register
example against a ``sipstack serve`` child on 127.0.0.1 with alice@localhost added by
``sipstack user add``. Children are bounded by a wall clock and killed on expiry."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sipkit import HOST, ServeProcess, child_env, free_port, run_cli

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def ua_section_programs() -> list[str]:
    text = README.read_text()
    section = text.split("## User agent library", 1)[1]
    section = re.split(r"^## ", section, maxsplit=1, flags=re.M)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    return [block for block in blocks if block.rstrip().endswith("run(main())")]


def run_python(script: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env=child_env(),
    )


@pytest.fixture
def server(tmp_path: Path, serve: Callable[..., ServeProcess]) -> str:
    data = tmp_path / "data"
    done = run_cli(
        "user", "add", "alice@localhost", "--password", "secret", "--data-dir", str(data), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    for _ in range(3):
        port = free_port()
        process = serve(
            "--listen", f"udp:{HOST}:{port}", "--listen", f"tcp:{HOST}:{port}", "--data-dir", str(data)
        )
        if process.wait_options(port, timeout=15):
            return f"sip:{HOST}:{port}"
        process.kill_all()
    raise AssertionError(f"sipstack serve did not come up:\n{process.log()}")


def test_the_readme_has_two_runnable_ua_programs() -> None:
    programs = ua_section_programs()
    assert len(programs) == 3, programs
    assert "alice.invite(" in programs[0] and "alice.register(" in programs[1]
    # The third (SIP Outbound) needs edge proxies on the Internet: it is compiled only here;
    # tests/server/test_outbound_ua.py does the same on loopback.
    assert "register_outbound(" in programs[2]
    for number, program in enumerate(programs):
        compile(program, f"README program {number}", "exec")


def test_readme_call_example_runs(tmp_path: Path) -> None:
    script = tmp_path / "readme_call.py"
    script.write_text(ua_section_programs()[0])
    done = run_python(script, cwd=tmp_path)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert done.stdout.startswith("v=0") and "m=audio " in done.stdout, done.stdout


def test_readme_register_example_runs_against_sipstack_serve(tmp_path: Path, server: str) -> None:
    script = tmp_path / "readme_register.py"
    script.write_text(ua_section_programs()[1])
    done = run_python(script, server, cwd=tmp_path)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    lines = done.stdout.splitlines()
    assert lines[0].startswith("registered <sip:alice@") and lines[0].endswith(" for 600 s"), lines
    assert lines[1:] == ["200", "got hi", "200"], lines


def test_examples_ua_call_runs(tmp_path: Path) -> None:
    done = run_python(ROOT / "examples" / "ua_call.py", cwd=tmp_path)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "alice: agreed ['PCMA']" in done.stdout and "alice: BYE answered 200" in done.stdout, done.stdout


def test_examples_ua_register_runs_against_sipstack_serve(tmp_path: Path, server: str) -> None:
    done = run_python(ROOT / "examples" / "ua_register.py", server, cwd=tmp_path)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "alice: OPTIONS 200 OK" in done.stdout, done.stdout
    assert "alice: MESSAGE from sip:alice@localhost: hello, me" in done.stdout, done.stdout
    assert "alice: MESSAGE 200 OK" in done.stdout and "alice: unregistered (200 OK)" in done.stdout, (
        done.stdout
    )
