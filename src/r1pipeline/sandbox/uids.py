"""Dedicated unprivileged uids for sandboxed runs, one per concurrent run, machine-wide.

Running as root, a sandboxed program would ignore RLIMIT_NPROC and could read, write and signal
anything. So each run drops to its own uid from ``UID_BASE`` up (60000, 60001, ...; uids that
have a passwd entry are skipped). A slot is held with ``flock`` on a lock file in a root-only
directory, so runs in other processes (another pool, another test session) never share a uid,
and a crashed holder's slot frees itself. Owning a uid alone means that, after a run, every
process still running under it belongs to that run and can be killed, detached or not.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

from .errors import SandboxError

UID_BASE = 60000
N_SLOTS = 512
LOCK_DIRS = (Path("/run/r1pipeline-sandbox"), Path("/tmp/r1pipeline-sandbox-locks"))
_held: set[int] = set()
_held_lock = threading.Lock()


def _secure_dir(path: Path) -> bool:
    """Create ``path`` (mode 0700) if missing; True when it is a real directory owned by us that
    nobody else can write to (a sandboxed program might have planted a look-alike)."""
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        st = path.lstat()
    except OSError:
        return False
    return (stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
            and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def lock_dir() -> Path:
    for path in LOCK_DIRS:
        if path.parent.is_dir() and _secure_dir(path):
            return path
    raise SandboxError(f"no safe directory for uid lock files among {LOCK_DIRS}")


def _unassigned(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return True
    return False


def _release(fd: int, uid: int) -> None:
    os.close(fd)
    with _held_lock:
        _held.discard(uid)


def _try_hold(directory: Path, uid: int) -> int | None:
    """Lock ``uid``'s slot; the lock's fd, or None when it is taken or not usable."""
    with _held_lock:
        if uid in _held or not _unassigned(uid):
            return None
        _held.add(uid)
    fd = os.open(directory / f"uid-{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _release(fd, uid)
        return None
    # Leftovers of a holder that crashed mid-run are killed; a uid with processes left, even
    # zombies not yet reaped by init (they count against RLIMIT_NPROC), is skipped.
    if not kill_uid(uid, timeout_s=0.5) or processes_of(uid, zombies=True):
        _release(fd, uid)
        return None
    return fd


@contextlib.contextmanager
def uid_slot() -> Iterator[int]:
    """Hold a free sandbox uid for the duration of the block (raises when all are taken)."""
    directory = lock_dir()
    for uid in range(UID_BASE, UID_BASE + N_SLOTS):
        fd = _try_hold(directory, uid)
        if fd is None:
            continue
        try:
            yield uid
        finally:
            _release(fd, uid)
        return
    raise SandboxError(f"all {N_SLOTS} sandbox uids are in use")


def processes_of(uid: int, zombies: bool = False) -> list[int]:
    """Processes whose real, effective or saved uid is ``uid``, from /proc (zombies, which can
    not be killed but still count against RLIMIT_NPROC until reaped, only if asked)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(entry.path, "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        uids = {int(u) for u in fields.get("Uid", "").split()[:3]}
        dead = fields.get("State", "").strip().startswith(("Z", "X"))
        if uid in uids and (zombies or not dead):
            found.append(int(entry.name))
    return found


def _kill_all_as(uid: int) -> None:
    """kill(-1, SIGKILL) as ``uid``: the kernel signals all its processes in one sweep, so even
    processes forked while we iterate are caught."""
    subprocess.run(["kill", "-9", "-1"], user=uid, group=uid, extra_groups=[],
                   env={"PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=10)


def kill_uid(uid: int, timeout_s: float = 2.0) -> bool:
    """Kill every process running as ``uid``; True when none is left alive. (Their zombies are
    reaped by init, which on some machines takes a second: ``uid_slot`` skips such a uid.)"""
    deadline = time.monotonic() + timeout_s
    sweep = False
    while pids := processes_of(uid):
        if time.monotonic() > deadline:
            return False
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if sweep:  # processes keep appearing: a fork race
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                _kill_all_as(uid)
        sweep = True
        time.sleep(0.002)
    return True
