"""The outcome of one sandboxed run, and how a raw exit is classified.

Statuses: ``ok`` (exit 0), ``error`` (non-zero exit: an exception, ``sys.exit(3)``),
``timeout`` (CPU or wall-clock limit), ``crashed`` (killed by a signal the program caused itself:
segfault, abort, its own ``os.kill``), ``killed`` (a resource limit: memory, output, file size,
open files, process count).

A Python program that hits an rlimit usually does not die from it: it gets an exception
(``MemoryError``, ``OSError: [Errno 27] File too large``, ``can't start new thread``) and exits 1.
The last line of its traceback tells which, and ``classify`` reports those as ``killed`` with the
limit that was hit. The program could print such a line itself, but only to turn a failure into a
differently labelled failure: nothing it prints can make a run ``ok``.
"""

from __future__ import annotations

import signal
from dataclasses import asdict, dataclass, field
from typing import Any

from .limits import Limits

OK, ERROR, TIMEOUT, CRASHED, KILLED = "ok", "error", "timeout", "crashed", "killed"
STATUSES = (OK, ERROR, TIMEOUT, CRASHED, KILLED)

# Last traceback line prefix -> the limit it means.
LIMIT_EXCEPTIONS = (
    ("MemoryError", "memory limit {memory_mb} MiB exceeded (MemoryError)"),
    ("OSError: [Errno 27]", "file size limit {max_file_bytes} bytes exceeded"),
    ("OSError: [Errno 28]", "disk limit {max_disk_mb} MiB exceeded (no space left)"),
    ("OSError: [Errno 24]", "open-file limit {max_open_files} exceeded"),
    ("BlockingIOError: [Errno 11]", "process limit {max_processes} exceeded (fork failed)"),
    ("RuntimeError: can't start new thread", "process/thread limit {max_processes} exceeded"),
)


@dataclass
class SandboxResult:
    """What happened to one program. ``meta`` holds sandbox details (uid, cgroups, enforcement)."""

    status: str
    reason: str
    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float | None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of all fields.

        >>> SandboxResult("ok", "exit code 0", 0, "8\\n", "", 0.1, 0.05).to_dict()["stdout"]
        '8\\n'
        """
        return asdict(self)


def signal_name(signum: int) -> str:
    """The name of a signal number.

    >>> signal_name(11), signal_name(99)
    ('SIGSEGV', 'signal 99')
    """
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _last_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _limit_exception(stderr: str, limits: Limits) -> str | None:
    last = _last_line(stderr)
    for prefix, reason in LIMIT_EXCEPTIONS:
        if last.startswith(prefix):
            return reason.format(**asdict(limits))
    return None


def classify(returncode: int | None, *, limits: Limits, cpu_s: float | None = None,
             wall_timeout: bool = False, cpu_timeout: bool = False,
             output_overflow: str | None = None,
             oom_killed: bool = False, stderr: str = "") -> tuple[str, str]:
    """(status, reason) for a finished run; the first matching rule wins.

    >>> lim = Limits(time_limit_s=1.0)
    >>> classify(0, limits=lim)
    ('ok', 'exit code 0')
    >>> classify(1, limits=lim, stderr="Traceback ...\\nZeroDivisionError: division by zero\\n")
    ('error', 'exit code 1: ZeroDivisionError: division by zero')
    >>> classify(-9, limits=lim, wall_timeout=True)
    ('timeout', 'wall-clock limit 2.0 s exceeded')
    >>> classify(-24, limits=lim, cpu_s=1.01)
    ('timeout', 'CPU time limit 1.0 s exceeded (1.01 s)')
    >>> classify(-11, limits=lim)
    ('crashed', 'killed by SIGSEGV')
    >>> classify(1, limits=lim, stderr="MemoryError\\n")
    ('killed', 'memory limit 256 MiB exceeded (MemoryError)')
    """
    if output_overflow:
        return KILLED, f"{output_overflow} exceeded {_size(limits.max_output_bytes)}"
    if oom_killed:
        return KILLED, f"memory limit {limits.memory_mb} MiB exceeded (out-of-memory kill)"
    if wall_timeout:
        return TIMEOUT, f"wall-clock limit {limits.wall_s} s exceeded"
    if cpu_timeout or returncode == -signal.SIGXCPU or (cpu_s or 0) > limits.time_limit_s:
        used = "" if cpu_s is None else f" ({cpu_s:.2f} s)"
        return TIMEOUT, f"CPU time limit {limits.time_limit_s} s exceeded{used}"
    if returncode == -signal.SIGXFSZ:
        return KILLED, f"file size limit {limits.max_file_bytes} bytes exceeded"
    if returncode is not None and returncode < 0:
        return CRASHED, f"killed by {signal_name(-returncode)}"
    if returncode == 0:
        return OK, "exit code 0"
    limit = _limit_exception(stderr, limits)
    if limit:
        return KILLED, limit
    last = _last_line(stderr)
    return ERROR, f"exit code {returncode}" + (f": {last[:200]}" if last else "")


def _size(n: int) -> str:
    """A byte count for humans.

    >>> _size(1 << 20), _size(1000)
    ('1 MiB', '1000 bytes')
    """
    return f"{n >> 20} MiB" if n % (1 << 20) == 0 else f"{n} bytes"
