"""The resource budget of one sandboxed run.

``Limits`` is a frozen dataclass; ``run_program``'s ``time_limit_s`` and ``memory_mb`` are
shortcuts for its first two fields. Everything is per run (the program plus every process it
starts), except ``memory_mb`` under plain rlimits, which is per process (RLIMIT_AS); where a memory
cgroup is available the same number also bounds the whole run.
"""

from __future__ import annotations

import dataclasses
import math
import resource
from dataclasses import dataclass

MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run.

    ``time_limit_s`` is the CPU-time budget: the parent checks the program's CPU time every 50 ms
    and kills it past the budget; RLIMIT_CPU (whole seconds, per process) catches its children;
    CPU time over the budget found at exit (children included) is a timeout too.
    ``wall_limit_s`` is the wall-clock backstop for programs that sleep or block; by default it
    is ``max(2 * time_limit_s, time_limit_s + 1)``, slack for a machine that is busy training.

    >>> Limits(time_limit_s=0.5).wall_s, Limits(time_limit_s=3).wall_s
    (1.5, 6.0)
    >>> Limits(wall_limit_s=1).wall_s
    1.0
    """

    time_limit_s: float = 2.0
    memory_mb: int = 256
    wall_limit_s: float | None = None
    max_processes: int = 16  # processes + threads of the whole run
    max_output_bytes: int = 1 * MiB  # per stream (stdout, stderr); over it the run is killed
    max_file_bytes: int = 16 * MiB  # one file (RLIMIT_FSIZE)
    max_disk_mb: int = 64  # all files together (size of the private /tmp, where there is one)
    max_open_files: int = 64  # RLIMIT_NOFILE
    nice: int = 10  # added niceness, so that sandboxed programs yield to training

    def __post_init__(self) -> None:
        if self.time_limit_s <= 0 or (self.wall_limit_s is not None and self.wall_limit_s <= 0):
            raise ValueError("time limits must be positive")
        if min(self.memory_mb, self.max_processes, self.max_output_bytes, self.max_file_bytes,
               self.max_disk_mb, self.max_open_files) <= 0:
            raise ValueError("limits must be positive")

    @property
    def wall_s(self) -> float:
        """The wall-clock limit in seconds."""
        if self.wall_limit_s is not None:
            return float(self.wall_limit_s)
        return float(max(2 * self.time_limit_s, self.time_limit_s + 1.0))

    def replace(self, **changes: object) -> Limits:
        """A copy with some fields changed (``None`` values are ignored).

        >>> Limits().replace(time_limit_s=1.0, memory_mb=None).time_limit_s
        1.0
        """
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def rlimits(self) -> dict[str, tuple[int, int]]:
        """The (soft, hard) rlimits applied in the child, by ``resource`` constant name.

        RLIMIT_CPU's soft limit sends SIGXCPU, its hard limit one second later SIGKILL.

        >>> Limits(time_limit_s=0.5).rlimits()["RLIMIT_CPU"]
        (1, 2)
        """
        cpu = max(1, math.ceil(self.time_limit_s))
        pairs = {
            "RLIMIT_CPU": (cpu, cpu + 1),
            "RLIMIT_AS": (self.memory_mb * MiB,) * 2,
            "RLIMIT_NPROC": (self.max_processes,) * 2,
            "RLIMIT_FSIZE": (self.max_file_bytes,) * 2,
            "RLIMIT_NOFILE": (self.max_open_files,) * 2,
            "RLIMIT_CORE": (0, 0),
            "RLIMIT_MEMLOCK": (0, 0),
        }
        return {name: pair for name, pair in pairs.items() if hasattr(resource, name)}
