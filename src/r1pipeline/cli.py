"""The ``r1`` command: validate | run | eval | report | models | sandbox.

Imports stay light at the top: ``r1 validate`` must answer in about a second, before torch loads.
A spec problem prints one line per problem and exits with status 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

if TYPE_CHECKING:
    from r1pipeline.pipeline.launch import Launcher

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="The DeepSeek-R1 recipe as one resumable pipeline.")

SetOpt = typer.Option(None, "--set", help="override a value: KEY=VALUE, e.g. r1_zero.learning_rate=1e-5 or seed=1")


def _load(spec_path: Path, overrides: Optional[List[str]]):
    from r1pipeline.pipeline.spec import SpecError, load_spec

    try:
        return load_spec(spec_path, overrides or [])
    except SpecError as exc:
        for p in exc.problems:
            typer.echo(f"{exc.source}: {p}", err=True)
        raise typer.Exit(2)


def _fail(msg: str, code: int = 2):
    typer.echo(msg, err=True)
    raise typer.Exit(code)


@app.command()
def validate(spec: Path = typer.Argument(..., help="pipeline spec (YAML)"), set_: Optional[List[str]] = SetOpt,
             num_processes: int = typer.Option(1, "--num-processes", min=1,
                                               help="also check that the batches split over N processes")):
    """Check a spec without loading anything heavy; exit 2 with one line per problem."""
    from r1pipeline.pipeline.spec import check_processes

    s = _load(spec, set_)
    problems = check_processes(s, num_processes)
    for p in problems:
        typer.echo(f"{spec}: {p}", err=True)
    if problems:
        raise typer.Exit(2)
    typer.echo(f"ok: {s.name}: {len(s.stages)} stages: {' -> '.join(st.name for st in s.order())}")


@app.command()
def run(spec: Path = typer.Argument(..., help="pipeline spec (YAML)"),
        set_: Optional[List[str]] = SetOpt,
        only: Optional[str] = typer.Option(None, "--only", help="run just this stage (its inputs must be done)"),
        from_: Optional[str] = typer.Option(None, "--from", help="rerun this stage and every stage after it"),
        until: Optional[str] = typer.Option(None, "--until", help="run this stage and the stages it needs, no more"),
        out: Optional[Path] = typer.Option(None, "--out", help="run directory (default runs/<spec name>)"),
        report: bool = typer.Option(True, "--report/--no-report", help="write report.md at the end"),
        num_processes: int = typer.Option(1, "--num-processes", min=1,
                                          help="data-parallel processes (GPUs, or CPU processes with gloo)"),
        launcher: str = typer.Option("accelerate", "--launcher", help="accelerate or torchrun"),
        accelerate_config: Optional[Path] = typer.Option(
            None, "--accelerate-config", help="accelerate config file (DeepSpeed, FSDP, several machines)"),
        print_launch: bool = typer.Option(False, "--print-launch",
                                          help="print the multi-process launch command instead of running it")):
    """Run a pipeline: finished stages are skipped, interrupted ones resume."""
    from r1pipeline.pipeline.spec import SpecError, check_processes

    s = _load(spec, set_)
    run_dir = out or Path("runs") / s.name
    if launcher not in ("accelerate", "torchrun"):
        _fail(f"--launcher {launcher!r}: unknown launcher; fix: use accelerate or torchrun")
    if print_launch and num_processes == 1:
        _fail("--print-launch: nothing to launch for one process; fix: add --num-processes N (N > 1)")
    from r1pipeline import distributed

    launched = distributed.launched_multiprocess()  # True in the processes a launcher started
    world = int(os.environ["WORLD_SIZE"]) if launched else num_processes
    if launched and num_processes not in (1, world):
        _fail(f"--num-processes {num_processes}: this launch has {world} processes; fix: drop --num-processes "
              "when starting r1 under a launcher yourself")
    problems = check_processes(s, world)
    for p in problems:
        typer.echo(f"{spec}: {p}", err=True)
    if problems:
        raise typer.Exit(2)
    if world > 1 and not launched:
        options = [*(a for kv in set_ or [] for a in ("--set", kv)),
                   *(a for flag, v in (("--only", only), ("--from", from_), ("--until", until)) if v
                     for a in (flag, v)),
                   *([] if report else ["--no-report"])]
        _launch(spec, run_dir, num_processes, launcher, accelerate_config, print_launch, options)
        return
    distributed.init()  # a no-op in a single process
    from r1pipeline.pipeline.runner import run_pipeline

    try:
        run_pipeline(s, run_dir, only=only, from_=from_, report=report, until=until)
        distributed.finish()  # every rank waits for rank 0's report before it exits
    except SpecError as exc:
        if distributed.is_main():
            for p in exc.problems:
                typer.echo(f"{spec}: {p}", err=True)
        raise typer.Exit(2)


def _launch(spec: Path, run_dir: Path, n: int, launcher: "Launcher", accelerate_config: Optional[Path],
            print_only: bool, options: List[str]) -> None:
    """Start (or print) ``r1 run`` on ``n`` processes; exit with the launch's status."""
    from r1pipeline.pipeline.launch import cli_target, launch_argv, relaunch, shell_line

    try:
        argv = launch_argv(n, cli_target(spec, run_dir, options), launcher, accelerate_config)
    except ValueError as exc:
        _fail(f"{exc}; fix: drop one of the two options")
    if print_only:
        typer.echo(shell_line(argv))
        return
    typer.echo(f"[r1] {n} processes: {shell_line(argv)}", err=True)
    code = relaunch(argv)
    if code:
        raise typer.Exit(code)


@app.command("eval")
def eval_(run_dir: Path = typer.Argument(..., help="a run directory"),
          models: Optional[str] = typer.Option(None, help="comma-separated stages or model paths (default: the spec's evaluate stage's)"),
          k: Optional[int] = typer.Option(None, help="samples per prompt"),
          n_prompts: Optional[int] = typer.Option(None, "--n-prompts", help="held-out prompts"),
          name: str = typer.Option("eval", help="stage folder to write into under the run directory")):
    """Evaluate checkpoints of a run on the same held-out prompts and seed (paper protocol)."""
    import yaml

    from r1pipeline.pipeline.runner import run_pipeline
    from r1pipeline.pipeline.spec import SpecError, validate_raw

    spec_file = run_dir / "spec.yaml"
    if not spec_file.exists():
        _fail(f"{run_dir}: no spec.yaml; fix: give a run directory written by 'r1 run'")
    raw = yaml.safe_load(spec_file.read_text())
    evals = [st for st in raw["stages"] if st.get("kind") == "evaluate"]
    block = dict(evals[-1]) if evals else {"task": next((st["task"] for st in raw["stages"] if "task" in st), {})}
    block.update(name=name, kind="evaluate")
    if models:
        block["models"] = [m.strip() for m in models.split(",") if m.strip()]
    # reward-model scores only from reward models this run has finished
    from r1pipeline.pipeline.rundir import read_json

    block["reward_models"] = {k: v for k, v in (block.get("reward_models") or {}).items()
                              if (read_json(run_dir / v / "manifest.json") or {}).get("status") == "done"}
    if k:
        block["k"] = k
    if n_prompts:
        block["n_prompts"] = n_prompts
    raw["stages"] = [st for st in raw["stages"] if st.get("name") != name] + [block]
    try:
        s = validate_raw(raw, str(spec_file), base_dir=Path(raw.get("base_dir", ".")))
        run_pipeline(s, run_dir, only=name, report=False)
    except SpecError as exc:
        for p in exc.problems:
            typer.echo(f"{spec_file}: {p}", err=True)
        raise typer.Exit(2)
    from r1pipeline.pipeline.report import eval_table
    from r1pipeline.pipeline.rundir import read_json

    typer.echo(eval_table(read_json(run_dir / name / "summary.json")))


@app.command()
def report(run_dir: Path = typer.Argument(..., help="a run directory")):
    """Write report.md and plots for a run directory."""
    from r1pipeline.pipeline.report import write_report

    if not (run_dir / "spec.yaml").exists():
        _fail(f"{run_dir}: no spec.yaml; fix: give a run directory written by 'r1 run'")
    typer.echo(str(write_report(run_dir)))


@app.command()
def rewards():
    """List the registered rewards and their parameters."""
    from r1pipeline.rewards import registry

    for name in registry.names():
        e = registry.entry(name)
        params = ", ".join(e.params) or "-"
        typer.echo(f"{name:24s} params: {params:40s} {e.summary}")


def _mount_optional() -> None:
    for mod, name, help_ in (("r1pipeline.models.cli", "models", "list and pull models"),
                             ("r1pipeline.sandbox.cli", "sandbox", "run programs in the local sandbox")):
        try:
            sub = __import__(mod, fromlist=["app"]).app
        except (ImportError, AttributeError):
            continue
        app.add_typer(sub, name=name, help=help_)


_mount_optional()


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
