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
        out: Optional[Path] = typer.Option(None, "--out", help="run directory (default runs/<spec name>; "
                                                               "with --seeds: runs/<spec name>-seeds)"),
        seeds: Optional[str] = typer.Option(None, "--seeds", help="comma-separated seeds, e.g. 0,1,2: one run "
                                            "directory per seed under --out (seed-0, ...), then replication.json "
                                            "and report.md"),
        report: bool = typer.Option(True, "--report/--no-report", help="write report.md at the end"),
        num_processes: int = typer.Option(1, "--num-processes", min=1,
                                          help="data-parallel processes (GPUs, or CPU processes with gloo)"),
        launcher: str = typer.Option("accelerate", "--launcher", help="accelerate or torchrun"),
        accelerate_config: Optional[Path] = typer.Option(
            None, "--accelerate-config", help="accelerate config file (DeepSpeed, FSDP, several machines)"),
        print_launch: bool = typer.Option(False, "--print-launch",
                                          help="print the multi-process launch command instead of running it"),
        jobs: int = typer.Option(1, "--jobs", min=1, help="run up to N independent stages (of every seed) at once, "
                                 "each in its own process on cores/N threads; logs in RUN_DIR/logs/")):
    """Run a pipeline: finished stages are skipped, interrupted ones resume."""
    if launcher not in ("accelerate", "torchrun"):
        _fail(f"--launcher {launcher!r}: unknown launcher; fix: use accelerate or torchrun")
    if print_launch and num_processes == 1:
        _fail("--print-launch: nothing to launch for one process; fix: add --num-processes N (N > 1)")
    seed_list = _parse_seeds(seeds) if seeds is not None else None
    s = _load(spec, set_)
    from r1pipeline import distributed

    launched = distributed.launched_multiprocess()  # True in the processes a launcher started
    world = int(os.environ["WORLD_SIZE"]) if launched else num_processes
    if launched and num_processes not in (1, world):
        _fail(f"--num-processes {num_processes}: this launch has {world} processes; fix: drop --num-processes "
              "when starting r1 under a launcher yourself")
    _check_processes(spec, s, world)
    if jobs > 1 and world > 1:
        _fail(f"--jobs {jobs} with {world} processes: a data-parallel stage wants every core; fix: drop one of the two")
    relaunch = world > 1 and not launched
    options = [*(a for flag, v in (("--only", only), ("--from", from_), ("--until", until)) if v for a in (flag, v)),
               *([] if report else ["--no-report"])]
    launch = dict(n=num_processes, launcher=launcher, accelerate_config=accelerate_config, print_only=print_launch)
    if seed_list is None:
        run_dir = out or Path("runs") / s.name
        if relaunch:
            _launch(spec, run_dir, options=[*_set_args(set_), *options], **launch)
        else:
            if jobs > 1:
                _run_concurrently(spec, [(s, run_dir, list(set_ or []))], jobs, only, from_, until)
            _run_here(spec, [(s, run_dir)], only, from_, until, report)
        return
    root = out or Path("runs") / f"{s.name}-seeds"
    runs = [(_load(spec, [*(set_ or []), f"seed={seed}"]), root / f"seed-{seed}") for seed in seed_list]
    if jobs > 1 and not relaunch:
        _run_concurrently(spec, [(r, d, [*(set_ or []), f"seed={seed}"]) for (r, d), seed in zip(runs, seed_list)],
                          jobs, only, from_, until)
    if relaunch:
        for (_, run_dir), seed in zip(runs, seed_list):
            _launch(spec, run_dir, options=[*_set_args([*(set_ or []), f"seed={seed}"]), *options], **launch)
        if not print_launch:
            _replicate([d for _, d in runs], root, report)
    else:
        _run_here(spec, runs, only, from_, until, report, replicate_into=root)


def _parse_seeds(text: str) -> List[int]:
    """``--seeds 0,1,2`` as a list of distinct integers."""
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        _fail(f"--seeds {text!r}: not a comma-separated list of integers; fix: write e.g. --seeds 0,1,2")
    if not seeds or len(set(seeds)) != len(seeds):
        _fail(f"--seeds {text!r}: give at least one seed, each once; fix: write e.g. --seeds 0,1,2")
    return seeds


def _set_args(overrides: Optional[List[str]]) -> List[str]:
    return [a for kv in overrides or [] for a in ("--set", kv)]


def _check_processes(spec_path: Path, s, world: int) -> None:
    from r1pipeline.pipeline.spec import check_processes

    problems = check_processes(s, world)
    for p in problems:
        typer.echo(f"{spec_path}: {p}", err=True)
    if problems:
        raise typer.Exit(2)


def _run_here(spec_path: Path, runs, only, from_, until, report: bool, replicate_into: Optional[Path] = None) -> None:
    """Run each (spec, run dir) in this process (or in each process of a launch), one after the
    other; then, for ``--seeds``, write the replication summary on rank 0."""
    from r1pipeline import distributed
    from r1pipeline.pipeline.runner import StageFailed, error_text, resume_command, run_pipeline
    from r1pipeline.pipeline.spec import SpecError

    distributed.init()  # a no-op in a single process
    try:
        for s, run_dir in runs:
            run_pipeline(s, run_dir, only=only, from_=from_, report=report, until=until)
        if replicate_into is not None and distributed.is_main():
            _replicate([d for _, d in runs], replicate_into, report)
        distributed.finish()  # every rank waits for rank 0's report before it exits
    except SpecError as exc:
        if distributed.is_main():
            for p in exc.problems:
                typer.echo(f"{spec_path}: {p}", err=True)
        raise typer.Exit(2)
    except (StageFailed, KeyboardInterrupt) as exc:
        stage = exc.stage if isinstance(exc, StageFailed) else getattr(exc, "r1_stage", None)
        if stage is None:
            raise  # interrupted outside any stage: nothing is marked, nothing to resume
        if isinstance(exc, StageFailed):
            import traceback

            traceback.print_exception(exc.error, file=sys.stderr)  # the stage's own error, for its fix
        argv = sys.argv[1:] if sys.argv[1:2] == ["run"] else ["run", str(spec_path)]  # app() called in-process
        verb, command = resume_command(argv, stage, distributed.world_size())
        rank = f" (rank {distributed.rank()})" if distributed.world_size() > 1 else ""
        why = error_text(exc.error if isinstance(exc, StageFailed) else exc)
        typer.echo(f"[r1] stage '{stage}' failed{rank}: {why}; {verb}: {command}", err=True)
        raise typer.Exit(130 if isinstance(exc, KeyboardInterrupt) else 1)


def _run_concurrently(spec_path: Path, runs, jobs: int, only, from_, until) -> None:
    """``--jobs N``: every stage left to run, N at a time, each in its own ``r1 run`` process
    (``pipeline/schedule.py``); the caller's ordinary loop then finds them done and writes the reports."""
    from r1pipeline.pipeline.schedule import Run, UnitFailed, plan_units, run_units
    from r1pipeline.pipeline.spec import SpecError

    try:
        units = plan_units([Run(s, d, o) for s, d, o in runs], only=only, from_=from_, until=until)
        run_units(spec_path, units, jobs)
    except SpecError as exc:
        for p in exc.problems:
            typer.echo(f"{spec_path}: {p}", err=True)
        raise typer.Exit(2)
    except UnitFailed as exc:
        import shlex

        typer.echo(f"[r1] stage '{exc.unit.stage}' failed in {exc.unit.run.run_dir}: {exc.why}; "
                   f"resume: r1 {shlex.join(sys.argv[1:])}", err=True)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        typer.echo(f"[r1] interrupted; resume: r1 {' '.join(sys.argv[1:])}", err=True)
        raise typer.Exit(130)


def _replicate(run_dirs: List[Path], out: Path, report: bool = True) -> None:
    from r1pipeline.pipeline.replication import ReplicationError, write_replication

    try:
        typer.echo(f"[r1] replication: {write_replication(run_dirs, out, report=report)}")
    except ReplicationError as exc:
        _fail(str(exc))


def _launch(spec: Path, run_dir: Path, *, n: int, launcher: "Launcher", accelerate_config: Optional[Path],
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
    from r1pipeline.rundir import read_json

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
    from r1pipeline.rundir import read_json

    typer.echo(eval_table(read_json(run_dir / name / "summary.json")))


@app.command()
def report(run_dirs: List[Path] = typer.Argument(..., help="a run directory; a folder of run directories "
                                                 "(r1 run --seeds); or several run directories of one spec"),
           out: Optional[Path] = typer.Option(None, "--out", help="where the replication report goes "
                                              "(default: the folder of run directories)")):
    """Write report.md and plots: of one run, or of the runs of one spec over seeds (replication.json)."""
    if len(run_dirs) == 1 and out is None:
        d = run_dirs[0]
        if (d / "spec.yaml").exists():
            from r1pipeline.pipeline.report import write_report

            typer.echo(str(write_report(d)))
            return
        from r1pipeline.pipeline.replication import seed_dirs

        found = seed_dirs(d) if d.is_dir() else []
        if not found:
            _fail(f"{d}: no spec.yaml and no run directories in it; fix: give a run directory written by 'r1 run', "
                  "or the --out folder of 'r1 run --seeds'")
        run_dirs, out = found, d
    elif out is None:
        _fail(f"{len(run_dirs)} run directories: where should the replication report go? fix: add --out DIR")
    _replicate(list(run_dirs), out)


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
