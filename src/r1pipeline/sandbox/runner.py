"""Run one untrusted program: stage it, launch it confined, feed and read it, kill what remains.

``run_program`` is the whole life of a run:

1. hold a dedicated uid (``uids``) and create the run's cgroups (``cgroups``), where available;
2. write the program into a fresh temporary directory (root-only when the launcher copies it into
   a private tmpfs; else owned by the run's uid);
3. start ``_launcher.py`` in a new session with a scrubbed environment; it confines itself and
   execs the program (see its docstring for the order of steps);
4. feed stdin and read stdout/stderr without blocking, until the program exits, the wall clock
   runs out or an output stream passes its cap;
5. kill everything left of the run, detached children included: the process group (while the
   program's zombie still holds its pid, so the group id cannot have been reused), the cgroups,
   every process of the run's uid; then reap the program, drain the pipes, remove the cgroups and
   the directory;
6. classify the exit (``result.classify``).

A failure of the sandbox itself (the launcher could not apply a limit the probe said works)
raises ``SandboxError``; it is never reported as the program's result.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import uids
from ._launcher import PRIVATE_TMP
from .capabilities import HIDE_DIRS, LAUNCHER, Capabilities, capabilities
from .cgroups import RunCgroup
from .errors import SandboxError
from .limits import MiB, Limits
from .result import SandboxResult, classify

log = logging.getLogger(__name__)
PROGRAM = "prog.py"
PATH = "/usr/local/bin:/usr/bin:/bin"
CHUNK = 1 << 16
DRAIN_S = 1.0  # how long to wait for the pipes to close once everything is killed
POLL_S = 0.01  # exit polling interval where pidfd_open is missing
CPU_POLL_S = 0.05  # how often the program's CPU time is checked against the limit
CLK_TCK = os.sysconf("SC_CLK_TCK")
NS_NAMES = {"NEWNET": "netns", "NEWIPC": "ipcns", "NEWNS": "mountns"}


class _Program(subprocess.Popen):
    """The launcher process (which becomes the program), with the CPU time wait4 reported."""

    cpu_s: float | None = None


@dataclass
class _Streams:
    """What was read from the program, and why reading stopped."""

    out: dict[str, bytearray] = field(default_factory=lambda: {"stdout": bytearray(),
                                                                "stderr": bytearray()})
    overflow: str | None = None  # e.g. "output on stdout", when it passed the cap
    wall_timeout: bool = False
    cpu_timeout: bool = False
    wall_s: float = 0.0


def run_program(source: str, stdin: str | bytes = "", *, time_limit_s: float | None = None,
                memory_mb: int | None = None, limits: Limits | None = None) -> SandboxResult:
    """Run Python ``source`` with ``stdin`` in the sandbox and say how it ended.

    ``time_limit_s`` (CPU seconds, default 2.0) and ``memory_mb`` (default 256) override the
    fields of ``limits``. Thread-safe; ``SandboxPool`` runs several at once. Raises
    ``SandboxError`` when the sandbox itself fails.
    """
    lim = (limits or Limits()).replace(time_limit_s=time_limit_s, memory_mb=memory_mb)
    data = stdin.encode() if isinstance(stdin, str) else bytes(stdin)
    caps = capabilities()
    if caps.uid_drop:
        with uids.uid_slot() as uid:
            return _run(source, data, lim, caps, uid)
    return _run(source, data, lim, caps, None)


def _run(source: str, stdin: bytes, lim: Limits, caps: Capabilities, uid: int | None
         ) -> SandboxResult:
    workdir = _stage(source, uid, caps)
    cgroup = RunCgroup(caps.cgroups, lim.max_processes, lim.memory_mb * MiB)
    meta: dict[str, Any] = {"uid": uid, "workdir": workdir, "isolation": _isolation(caps, uid)}
    proc = status_fd = None
    try:
        try:
            procs_files = cgroup.create()
        except OSError as exc:
            raise SandboxError(f"cannot create the run's cgroups: {exc}") from exc
        meta["cgroups"] = [str(d) for d in cgroup.dirs]
        proc, status_fd = _spawn(caps, _config(caps, lim, uid, workdir, procs_files))
        meta["pid"] = proc.pid
        streams = _communicate(proc, stdin, lim)
        _kill_run(proc, cgroup, uid, meta)
        _drain(proc, streams, lim)
        failure = _launch_failure(status_fd)
        if failure:
            raise SandboxError(f"sandbox launcher failed: {failure}")
        return _result(proc, streams, lim, cgroup, meta)
    finally:
        if proc is not None:
            if proc.returncode is None:  # interrupted (an exception, KeyboardInterrupt)
                _kill_run(proc, cgroup, uid, meta)
            _close(proc)
        if status_fd is not None:
            os.close(status_fd)
        if cgroup.remove():
            meta["cleanup_failed"] = f"cgroups left: {cgroup.dirs}"
            log.warning("sandbox: could not remove cgroups %s", cgroup.dirs)
        shutil.rmtree(workdir, ignore_errors=True)


def _isolation(caps: Capabilities, uid: int | None) -> list[str]:
    """What confines this run, for ``SandboxResult.meta``."""
    names = [f"uid {uid}"] if uid is not None else []
    names += [NS_NAMES[n] for n in caps.unshare_flags() if n in NS_NAMES]
    names += ["hidepid"] * caps.hidepid
    names += [f"cgroup:{','.join(sorted(h.controllers | ({'kill'} if h.can_kill else set())))}"
              for h in caps.cgroups]
    return [*names, "rlimits"]


def _stage(source: str, uid: int | None, caps: Capabilities) -> str:
    """A fresh directory with the program. Without a private /tmp the program runs in it, so it
    belongs to the run's uid; with one, the launcher copies the program and it stays root-only."""
    workdir = tempfile.mkdtemp(prefix="r1sbx-")
    program = Path(workdir, PROGRAM)
    program.write_text(source, encoding="utf-8", errors="surrogateescape")
    program.chmod(0o444)
    if uid is not None and not caps.mountns:
        os.chown(workdir, uid, uid)
    return workdir


def _rlimits(lim: Limits, caps: Capabilities) -> dict[str, tuple[int, int]]:
    rl = lim.rlimits()
    if not caps.root and "RLIMIT_NPROC" in rl:  # it counts every process of the caller's uid
        n = len(uids.processes_of(os.getuid())) + lim.max_processes
        rl["RLIMIT_NPROC"] = (n, n)
    return rl


def _config(caps: Capabilities, lim: Limits, uid: int | None, workdir: str,
            procs_files: list[str]) -> dict[str, Any]:
    """The launcher's instructions (see ``_launcher.py``)."""
    home = PRIVATE_TMP if caps.mountns else workdir
    return {
        "workdir": workdir, "program": PROGRAM, "python": caps.python, "uid": uid, "gid": uid,
        "cgroups": procs_files, "unshare": caps.unshare_flags(), "hidepid": caps.hidepid,
        "tmpfs_kb": lim.max_disk_mb * 1024, "hide_dirs": list(HIDE_DIRS),
        "rlimits": _rlimits(lim, caps), "nice": lim.nice,
        "env": {"PATH": PATH, "LANG": "C.UTF-8", "HOME": home, "TMPDIR": home},
    }


def _spawn(caps: Capabilities, cfg: dict[str, Any]) -> tuple[_Program, int]:
    """Start the launcher in a new session; returns it and the read end of its status pipe."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    cfg["status_fd"] = write_fd
    try:
        proc = _Program(
            [caps.launcher_python, "-I", "-S", str(LAUNCHER), json.dumps(cfg)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=(write_fd,), env=cfg["env"], cwd="/", start_new_session=True)
    except OSError as exc:
        os.close(read_fd)
        raise SandboxError(f"cannot start the sandbox launcher: {exc}") from exc
    finally:
        os.close(write_fd)
    return proc, read_fd


def _exited(proc: _Program) -> bool:
    """Whether the program has exited, without reaping it (its zombie keeps the pid taken)."""
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _reap(proc: _Program) -> None:
    """Wait for the (killed or exited) program; wait4 also gives its CPU time."""
    if proc.returncode is not None:
        return
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:
        proc.returncode = -signal.SIGKILL
        return
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.cpu_s = usage.ru_utime + usage.ru_stime


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _communicate(proc: _Program, stdin: bytes, lim: Limits) -> _Streams:
    """Feed stdin and read both outputs until the program exits, the wall clock runs out or an
    output passes ``lim.max_output_bytes``. Never blocks on a pipe."""
    start = time.monotonic()
    deadline = start + lim.wall_s
    streams = _Streams()
    sel = selectors.DefaultSelector()
    names = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr"}
    for fd in names:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    stdin_fd, sent = None, 0  # None unless registered: a closed fd's number gets reused
    if stdin:
        stdin_fd = proc.stdin.fileno()
        os.set_blocking(stdin_fd, False)
        sel.register(stdin_fd, selectors.EVENT_WRITE)
    else:
        proc.stdin.close()
    pidfd = _pidfd(proc.pid)
    if pidfd is not None:
        sel.register(pidfd, selectors.EVENT_READ)
    try:
        while not streams.overflow and not _exited(proc):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                streams.wall_timeout = True
                break
            if _cpu_time(proc.pid) > lim.time_limit_s:
                streams.cpu_timeout = True
                break
            wait = min(remaining, CPU_POLL_S if pidfd is not None else POLL_S)
            for key, _ in sel.select(wait):
                if key.fd == stdin_fd:
                    sent = _feed(sel, proc, stdin, sent)
                    stdin_fd = None if sent >= len(stdin) else stdin_fd
                elif key.fd in names:
                    _read_into(sel, key.fd, names[key.fd], streams, lim)
    finally:
        sel.close()
        if pidfd is not None:
            os.close(pidfd)
    streams.wall_s = time.monotonic() - start
    return streams


def _cpu_time(pid: int) -> float:
    """CPU seconds used so far by process ``pid`` itself (RLIMIT_CPU only acts on whole
    seconds); 0 when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _feed(sel: selectors.BaseSelector, proc: _Program, data: bytes, sent: int) -> int:
    """Write the next chunk of stdin; close it when all is sent or the program stopped reading."""
    fd = proc.stdin.fileno()
    try:
        sent += os.write(fd, data[sent:sent + CHUNK])
    except BlockingIOError:
        return sent
    except OSError:  # the program closed stdin or exited
        sent = len(data)
    if sent >= len(data):
        sel.unregister(fd)
        proc.stdin.close()
    return sent


def _read_into(sel: selectors.BaseSelector | None, fd: int, name: str, streams: _Streams,
               lim: Limits) -> bool:
    """Read what is there from ``fd`` up to the cap; False at end of file (and unregisters)."""
    try:
        chunk = os.read(fd, CHUNK)
    except BlockingIOError:
        return True
    if not chunk:
        if sel is not None:
            sel.unregister(fd)
        return False
    buf = streams.out[name]
    room = lim.max_output_bytes - len(buf)
    buf += chunk[:max(room, 0)]
    if len(chunk) > room and not streams.overflow:
        streams.overflow = f"output on {name}"
    return True


def _drain(proc: _Program, streams: _Streams, lim: Limits) -> None:
    """Read what the (now dead) run left in the pipes, until end of file or ``DRAIN_S``."""
    deadline = time.monotonic() + DRAIN_S
    open_fds = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr"}
    while open_fds and not streams.overflow and time.monotonic() < deadline:
        for fd, name in list(open_fds.items()):
            if not _read_into(None, fd, name, streams, lim):
                del open_fds[fd]
        if open_fds:
            time.sleep(0.002)


def _kill_run(proc: _Program, cgroup: RunCgroup, uid: int | None, meta: dict[str, Any]) -> None:
    """SIGKILL everything of the run (process group, cgroups, uid) and reap the program."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # before reaping: the pgid is still ours
    except (ProcessLookupError, PermissionError):
        pass
    _reap(proc)
    problems = []
    if cgroup.dirs and not cgroup.kill():
        problems.append(f"processes left in {cgroup.dirs}: {sorted(cgroup.pids())}")
    if uid is not None and not uids.kill_uid(uid):
        problems.append(f"processes of uid {uid} left: {uids.processes_of(uid)}")
    if problems:
        meta["cleanup_failed"] = "; ".join(problems)
        log.warning("sandbox cleanup: %s", meta["cleanup_failed"])


def _launch_failure(status_fd: int) -> str | None:
    """The launcher's error message, if it failed before exec'ing the program (the pipe is
    close-on-exec, so after a successful exec it holds nothing)."""
    os.set_blocking(status_fd, False)
    try:
        message = os.read(status_fd, CHUNK)
    except BlockingIOError:
        return None
    return message.decode(errors="replace") or None


def _close(proc: _Program) -> None:
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f is not None and not f.closed:
            try:
                f.close()
            except OSError:
                pass


def _result(proc: _Program, streams: _Streams, lim: Limits, cgroup: RunCgroup,
            meta: dict[str, Any]) -> SandboxResult:
    stdout = streams.out["stdout"].decode(errors="replace")
    stderr = streams.out["stderr"].decode(errors="replace")
    status, reason = classify(
        proc.returncode, limits=lim, cpu_s=proc.cpu_s, wall_timeout=streams.wall_timeout,
        cpu_timeout=streams.cpu_timeout, output_overflow=streams.overflow,
        oom_killed=cgroup.oom_killed(), stderr=stderr)
    return SandboxResult(status=status, reason=reason, returncode=proc.returncode, stdout=stdout,
                         stderr=stderr, wall_s=round(streams.wall_s, 4),
                         cpu_s=None if proc.cpu_s is None else round(proc.cpu_s, 4), meta=meta)
