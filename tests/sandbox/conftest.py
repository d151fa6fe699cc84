"""Shared helpers of the sandbox tests: run a program and check that it ended contained."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable

import pytest

from r1pipeline.sandbox import Limits, SandboxResult, run_program, sandbox_capabilities
from r1pipeline.sandbox.uids import processes_of

REPO = Path(__file__).resolve().parents[2]
FAST = Limits(time_limit_s=0.5, wall_limit_s=1.0)
SHARED_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/root", str(REPO), os.getcwd())
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Double fork + setsid: prints the pid of a grandchild that sleeps on, detached, stdio closed.
DAEMON = """
import os, time
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.close(1); os.close(2)
        os.write(w, str(os.getpid()).encode())
        time.sleep(60)
    os._exit(0)
os.wait()
print(os.read(r, 32).decode())
"""


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state is [0], pgid [2], sid [3])."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie)."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def session_members(sid: int) -> list[int]:
    """Live processes in process group or session ``sid``."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and fields[0] not in ("Z", "X") and sid in (int(fields[2]), int(fields[3])):
                found.append(int(entry.name))
    return found


def survivors(res: SandboxResult, ended: float) -> list[int]:
    """Live processes of the run: its uid (started before it ended) or its session."""
    found = session_members(res.meta["pid"])
    if res.meta.get("uid") is not None:
        for pid in processes_of(res.meta["uid"]):
            fields = _stat(pid)  # a later run (maybe another test session) may hold the uid now
            if fields and int(fields[19]) / CLK_TCK <= ended:
                found.append(pid)
    return found


def stray_files(marker: str) -> list[Path]:
    return [p for d in SHARED_DIRS if os.access(d, os.R_OK)
            for p in Path(d).glob(f"*{marker}*")]


@pytest.fixture(scope="session")
def caps() -> dict:
    return sandbox_capabilities()


@pytest.fixture
def marker() -> str:
    """A unique name for files a hostile program tries to create."""
    return f"r1sbx-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def contained(marker: str) -> Callable[..., SandboxResult]:
    """Run a program (``{marker}`` and ``{ppid}`` are filled in) and assert that it ended
    contained: no process of the run left, cgroups and working dir gone, no stray file, the
    environment of this process unchanged."""

    def run(source: str, stdin: str = "", limits: Limits = FAST) -> SandboxResult:
        source = source.replace("{marker}", marker).replace("{ppid}", str(os.getpid()))
        env_before = dict(os.environ)
        res = run_program(source, stdin, limits=limits)
        ended = uptime()
        assert "cleanup_failed" not in res.meta, res.meta["cleanup_failed"]
        assert survivors(res, ended) == []
        assert not Path(res.meta["workdir"]).exists()
        assert [d for d in res.meta.get("cgroups", []) if Path(d).exists()] == []
        assert stray_files(marker) == []
        assert dict(os.environ) == env_before
        assert len(res.stdout) <= limits.max_output_bytes >= len(res.stderr)
        return res

    return run
