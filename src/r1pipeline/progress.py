"""Progress bars for long steps (rich); plain lines when stderr is not a terminal; silent on ranks
other than 0 of a multi-process run (rank 0's bar speaks for all)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Iterator


class _Bar:
    def __init__(self, progress, task_id, total: int, label: str, silent: bool = False):
        self._p, self._t, self.total, self.label = progress, task_id, total, label
        self.done, self._last_print, self._silent = 0, 0.0, silent

    def update(self, n: int = 1, description: str | None = None) -> None:
        self.done += n
        if self._silent:
            return
        if self._p is not None:
            self._p.update(self._t, advance=n, description=description or self.label)
        elif time.monotonic() - self._last_print > 10 or self.done >= self.total:
            # Not a terminal (CI, logs): one plain line every 10 seconds.
            self._last_print = time.monotonic()
            print(f"{description or self.label}: {self.done}/{self.total}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def progress_bar(label: str, total: int, completed: int = 0) -> Iterator[_Bar]:
    from r1pipeline.distributed import is_main

    main = is_main()
    if main and sys.stderr.isatty() and not os.environ.get("R1_NO_PROGRESS"):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), transient=False) as p:
            tid = p.add_task(label, total=total, completed=completed)
            bar = _Bar(p, tid, total, label)
            bar.done = completed
            yield bar
    else:
        bar = _Bar(None, None, total, label, silent=not main)
        bar.done = completed
        yield bar
