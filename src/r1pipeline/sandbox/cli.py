"""``r1 sandbox run PROGRAM.py``: run one program in the sandbox, print the result as JSON."""

from __future__ import annotations

import json
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
    """Run PROGRAM in the sandbox and print the SandboxResult as JSON (exit 0 only if ok)."""
    from .runner import run_program

    source = program.read_text(encoding="utf-8", errors="surrogateescape")
    data = stdin.read_bytes() if stdin is not None else b""
    res = run_program(source, data, time_limit_s=time_limit, memory_mb=memory_mb)
    typer.echo(json.dumps(res.to_dict(), indent=2))
    raise typer.Exit(0 if res.ok else 1)
