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
    _check_selection(spec, s, only, from_, until)
    options = [*(a for flag, v in (("--only", only), ("--from", from_), ("--until", until)) if v for a in (flag, v)),
               *([] if report else ["--no-report"])]
    here = not print_launch  # a printed command may run on another machine: its files are checked there
    if here and accelerate_config is not None and not accelerate_config.is_file():
        _fail(f"--accelerate-config {accelerate_config}: no such file; fix: give an accelerate config file "
              "(configs/accelerate/ holds some), or drop the option")
    launch = dict(n=num_processes, launcher=launcher, accelerate_config=accelerate_config, print_only=print_launch)
    if seed_list is None:
        run_dir = out or Path("runs") / s.name
        if here:
            _check_out(run_dir, out is not None)
        if relaunch:
            _launch(spec, run_dir, options=[*_set_args(set_), *options], **launch)
        else:
            if jobs > 1:
                _run_concurrently(spec, [(s, run_dir, list(set_ or []))], jobs, only, from_, until)
            _run_here(spec, [(s, run_dir)], only, from_, until, report)
        return
    root = out or Path("runs") / f"{s.name}-seeds"
    runs = [(_load(spec, [*(set_ or []), f"seed={seed}"]), root / f"seed-{seed}") for seed in seed_list]
    if here:
        for _, run_dir in runs:
            _check_out(run_dir, out is not None)
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
        _fail(f"--seeds {_short(text)}: not a comma-separated list of integers; fix: write e.g. --seeds 0,1,2")
    if not seeds or len(set(seeds)) != len(seeds):
        _fail(f"--seeds {_short(text)}: give at least one seed, each once; fix: write e.g. --seeds 0,1,2")
    from r1pipeline.pipeline.values import SEED_MAX

    bad = [x for x in seeds if not 0 <= x <= SEED_MAX]
    if bad:
        _fail(f"--seeds: seed {bad[0]} is outside 0 .. {SEED_MAX}; fix: use seeds from 0 to {SEED_MAX} (2**32 - 1), "
              "the range numpy and torch both take")
    return seeds


def _short(text: str, limit: int = 40) -> str:
    return repr(text[:limit]) + ("…" if len(text) > limit else "")


def _check_selection(spec_path: Path, s, only, from_, until) -> None:
    """``--only``/``--from``/``--until`` name stages of the spec: said before torch loads."""
    from r1pipeline.pipeline.runner import select
    from r1pipeline.pipeline.spec import SpecError

    try:
        select(s, only, from_, until)
    except SpecError as exc:
        _print_problems(spec_path, exc)


def _check_out(run_dir: Path, given: bool) -> None:
    """The run directory is (or can be made) a folder this user may write in: a regular file in
    its place, or a folder without write permission, exits 2 here, not with a traceback after torch."""
    flag = "--out" if given else "the run directory (default for --out)"
    try:
        existing = run_dir
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        is_dir = existing.is_dir()
    except (OSError, ValueError) as exc:
        _fail(f"{flag} {run_dir}: cannot be used as a path ({exc}); fix: give a shorter, plain folder path")
    if not is_dir:
        what = "is" if existing == run_dir else f"is inside {existing}, which is"
        _fail(f"{flag} {run_dir}: {what} a file, not a folder; fix: give a folder for the run (e.g. --out "
              f"runs/NAME), or move the file away")
    if not os.access(existing, os.W_OK | os.X_OK):
        _fail(f"{flag} {run_dir}: {existing.absolute()} cannot be written (permission denied); fix: give a "
              "folder you can write in (e.g. --out runs/NAME), or change its permissions")
    try:  # the run makes it anyway; a read-only file system, or /proc, says no only when tried
        import tempfile

        run_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=run_dir, prefix=".r1-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        _fail(f"{flag} {run_dir}: cannot be written ({exc.strerror or exc}); fix: give a folder you can write in "
              "(e.g. --out runs/NAME)")


def _print_problems(source, exc) -> None:
    """A SpecError's problems, one line each, then exit 2."""
    for p in exc.problems:
        typer.echo(f"{source}: {p}", err=True)
    raise typer.Exit(2)


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
    from r1pipeline.pipeline.runner import StageFailed, run_pipeline
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
        _stage_failed(exc, ["run", str(spec_path)])


def _stage_failed(exc: BaseException, default_argv: List[str]) -> None:
    """The end of a command whose stage failed (``runner.StageFailed``) or was interrupted: the
    stage's own traceback, then a last line naming the stage, the error and the command that
    resumes; exit 1 (130 on Ctrl-C). ``default_argv``: the command when ``app()`` is called in-process."""
    from r1pipeline import distributed
    from r1pipeline.pipeline.runner import StageFailed, error_text, resume_command

    stage = exc.stage if isinstance(exc, StageFailed) else getattr(exc, "r1_stage", None)
    if stage is None:
        raise exc  # interrupted outside any stage: nothing is marked, nothing to resume
    if isinstance(exc, StageFailed):
        import traceback

        traceback.print_exception(exc.error, file=sys.stderr)  # the stage's own error, for its fix
    argv = sys.argv[1:] if sys.argv[1:2] == default_argv[:1] else default_argv
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
    code = relaunch(argv, n)
    if code:
        raise typer.Exit(code)


@app.command("eval")
def eval_(run_dir: Path = typer.Argument(..., help="a run directory"),
          models: Optional[str] = typer.Option(None, help="comma-separated stages or model paths (default: the spec's evaluate stage's)"),
          k: Optional[int] = typer.Option(None, min=1, help="samples per prompt"),
          n_prompts: Optional[int] = typer.Option(None, "--n-prompts", min=1, help="held-out prompts"),
          name: str = typer.Option("eval", help="stage folder to write into under the run directory")):
    """Evaluate checkpoints of a run on the same held-out prompts and seed (paper protocol)."""
    from r1pipeline.pipeline.runner import StageFailed, run_pipeline
    from r1pipeline.pipeline.spec import SpecError, validate_raw

    spec_file = run_dir / "spec.yaml"
    raw = _run_spec(run_dir)
    evals = [st for st in raw["stages"] if st.get("kind") == "evaluate"]
    block = dict(evals[-1]) if evals else {"task": next((st["task"] for st in raw["stages"] if "task" in st), {})}
    block.update(name=name, kind="evaluate")
    if models:
        block["models"] = [m.strip() for m in models.split(",") if m.strip()]
    if isinstance(block.get("reward_models"), dict):  # scores only from reward models this run has finished
        block["reward_models"] = {key: v for key, v in block["reward_models"].items()
                                  if isinstance(v, str) and _status(run_dir / v / "manifest.json") == "done"}
    if k:
        block["k"] = k
    if n_prompts:
        block["n_prompts"] = n_prompts
    raw["stages"] = [st for st in raw["stages"] if st.get("name") != name] + [block]
    base_dir = raw.get("base_dir") if isinstance(raw.get("base_dir"), str) else "."
    try:
        s = validate_raw(raw, str(spec_file), base_dir=Path(base_dir))
        run_pipeline(s, run_dir, only=name, report=False)
    except SpecError as exc:
        _print_problems(spec_file, exc)
    except (StageFailed, KeyboardInterrupt) as exc:
        _stage_failed(exc, ["eval", str(run_dir)])
    from r1pipeline.pipeline.report import eval_table
    from r1pipeline.rundir import read_json

    typer.echo(eval_table(read_json(run_dir / name / "summary.json")))


def _run_spec(run_dir: Path) -> dict:
    """The parsed ``spec.yaml`` of a run directory, checked to be a spec with a list of stages
    (``r1 eval`` and ``r1 report`` read it); anything else exits 2 naming the file and the fix."""
    from r1pipeline.pipeline.spec import SpecError, read_spec_yaml

    spec_file = run_dir / "spec.yaml"
    if not run_dir.is_dir():
        what = "is a file, not a folder" if run_dir.exists() else "no such folder"
        _fail(f"{run_dir}: {what}; fix: give a run directory written by 'r1 run'")
    if not spec_file.is_file():
        _fail(f"{run_dir}: no spec.yaml; fix: give a run directory written by 'r1 run'")
    try:
        raw = read_spec_yaml(spec_file)
    except SpecError as exc:
        _print_problems(spec_file, exc)
    stages = raw.get("stages") if isinstance(raw, dict) else None
    if not isinstance(stages, list) or not stages or not all(isinstance(st, dict) for st in stages):
        what = "no stages" if isinstance(raw, dict) and not stages else "not a pipeline spec"
        _fail(f"{spec_file}: {what} (the spec of a run lists its stages under 'stages:'); fix: give a run "
              "directory written by 'r1 run', or rerun 'r1 run SPEC --out DIR' to write it again")
    return raw


def _status(manifest: Path) -> Optional[str]:
    """A stage's status from its manifest; None when it is missing or unreadable."""
    import json

    try:
        status = json.loads(manifest.read_bytes()).get("status")
    except (OSError, ValueError, AttributeError):
        return None
    return status if isinstance(status, str) else None


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

            _run_spec(d)  # junk exits 2 here, not in the report's code
            try:
                typer.echo(str(write_report(d)))
            except Exception as exc:  # noqa: BLE001  (a tampered manifest or summary: no traceback)
                _fail(f"{d}: the report could not be written ({type(exc).__name__}: {_short(str(exc), 200)}); fix: "
                      f"check the run's files (spec.yaml, each stage's manifest.json and summary.json), or rerun "
                      f"'r1 run SPEC --out {d}' to write them again")
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
