"""Many sandboxed runs at once, without starving training of CPU.

``SandboxPool`` is a thread pool whose threads only wait on child processes (the work is in the
children), sized to half the cores by default; every child also runs with raised niceness
(``Limits.nice``), so on a machine that is training the sandboxed programs get the leftover CPU.
Each concurrent run holds its own uid and cgroup, so killing one run's leftovers never touches
another's.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Iterable

from .limits import Limits
from .result import SandboxResult
from .runner import run_program

Job = tuple[str, str] | str  # (source, stdin) or just source


def default_workers() -> int:
    return max(1, (os.cpu_count() or 2) // 2)


class SandboxPool:
    """Run programs in parallel: ``submit`` one, or ``map`` many (results in input order).

    ``limits`` and keyword arguments of ``submit``/``map`` are those of ``run_program``.
    """

    def __init__(self, max_workers: int | None = None, *, limits: Limits | None = None) -> None:
        self.max_workers = max_workers or default_workers()
        self.limits = limits
        self._executor = ThreadPoolExecutor(self.max_workers, thread_name_prefix="sandbox")

    def submit(self, source: str, stdin: str = "", **kwargs: Any) -> Future[SandboxResult]:
        kwargs.setdefault("limits", self.limits)
        return self._executor.submit(run_program, source, stdin, **kwargs)

    def map(self, jobs: Iterable[Job], **kwargs: Any) -> list[SandboxResult]:
        futures = [self.submit(*((job,) if isinstance(job, str) else job), **kwargs)
                   for job in jobs]
        return [f.result() for f in futures]

    def close(self) -> None:
        """Wait for running programs; drop queued ones."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
