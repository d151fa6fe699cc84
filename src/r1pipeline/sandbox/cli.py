"""``r1 sandbox run PROGRAM.py``: run one program in the sandbox, print the result as JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Run untrusted Python programs in the sandbox.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Run untrusted Python programs in the sandbox."""


@app.command()
def run(
    program: Path = typer.Argument(..., exists=True, dir_okay=False, help="Python file to run."),
    stdin: Optional[Path] = typer.Option(None, "--stdin", exists=True, dir_okay=False,
                                         help="File fed to the program's stdin."),
    time_limit: float = typer.Option(2.0, "--time-limit", help="CPU-time limit, seconds."),
    memory_mb: int = typer.Option(256, "--memory-mb", help="Memory limit, MiB."),
) -> None:
    """Run PROGRAM in the sandbox and print the SandboxResult as JSON (exit 0 only if ok; 2 for bad options)."""
    problem = check_limits(time_limit, memory_mb)
    if problem:
        _fail(problem)
    from .runner import run_program

    try:
        source = program.read_text(encoding="utf-8", errors="surrogateescape")
        data = stdin.read_bytes() if stdin is not None else b""
    except OSError as e:
        _fail(f"{e.filename}: cannot be read ({e.strerror}); fix: check the path and its permissions")
    res = run_program(source, data, time_limit_s=time_limit, memory_mb=memory_mb)
    typer.echo(json.dumps(res.to_dict(), indent=2))
    raise typer.Exit(0 if res.ok else 1)


MAX_TIME_S = 24 * 3600.0  # a limit past a day is a typo, and past ~1e9 s the timers overflow
MAX_MEMORY_MB = 1 << 22  # 4 TiB


def check_limits(time_limit: float, memory_mb: int) -> str | None:
    """What is wrong with the limits as the user gave them (a message with its fix), or None.

    >>> check_limits(-1, 256)
    '--time-limit -1: must be a positive number of CPU seconds; fix: e.g. --time-limit 2'
    """
    if not math.isfinite(time_limit) or not 0 < time_limit <= MAX_TIME_S:
        return (f"--time-limit {time_limit:g}: must be a positive number of CPU seconds"
                + (f" up to {MAX_TIME_S:g}" if time_limit > 0 else "") + "; fix: e.g. --time-limit 2")
    if not 0 < memory_mb <= MAX_MEMORY_MB:
        return f"--memory-mb {memory_mb}: must be from 1 to {MAX_MEMORY_MB} MiB; fix: e.g. --memory-mb 256"
    return None


def _fail(message: str) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(2)
