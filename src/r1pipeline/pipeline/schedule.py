"""Independent stages at once: ``r1 run SPEC [--seeds 0,1,2] --jobs N``.

The unit of work is one stage of one run directory. A unit is ready when the stages it reads,
in its own run directory, are done; up to N units run at once, each in its own process::

    python -m r1pipeline.cli run SPEC --out RUN_DIR --until STAGE --no-report [--set ...]

on ``cores // N`` threads (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``), its output in
``RUN_DIR/logs/STAGE.log``. ``--until STAGE`` finds every input done and runs (or resumes) just
STAGE; a stage that ``--from`` reruns gets ``--from STAGE --until STAGE`` instead. So each child is
an ordinary run of the ordinary runner: manifests, hashes, resumption and failure records are
the runner's, and a killed ``--jobs`` run resumes under ``--jobs`` or without it. When every unit
is done the caller runs the ordinary loop once more, which finds everything done and writes the
reports.

Of the ready units, the one with the most stages waiting on it goes first (the base models
before the reward models), then the spec's order, then the seeds' order.

Why processes and not threads: torch's intra-op pool is one per process, and the tiny world's
matrices are too small to keep two threads busy (a GRPO step is mostly decoding at batch 64):
three seeds on one thread each finish sooner than one after the other on two threads
(``bench/jobs.py`` measures it on the machine at hand). Each child pays the imports again
(~3-5 s of torch, transformers and TRL).

Not with ``--num-processes`` (a data-parallel stage wants every core itself).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from r1pipeline.rundir import MANIFEST, read_json
from r1pipeline.pipeline.launch import threads_per_process
from r1pipeline.pipeline.runner import plan_run, stage_hashes
from r1pipeline.pipeline.spec import Spec

POLL_SECONDS = 0.5


@dataclass
class Run:
    """One run directory of the command: its spec (seed applied) and the ``--set`` overrides that made it."""

    spec: Spec
    run_dir: Path
    overrides: list[str] = field(default_factory=list)


@dataclass
class Unit:
    run: Run
    stage: str
    deps: set[str]             # stages of the same run this one waits for
    forced: bool               # rerun although done (``--from``)
    label: str                 # ``seed-1/r1_zero``, or the stage's name for a single run
    priority: int = 0          # stages (of its run) that wait on it, directly or not


class UnitFailed(Exception):
    """A child ended with an error; ``manifest_error`` is what its manifest says, if anything."""

    def __init__(self, unit: Unit, code: int, manifest_error: str | None):
        why = manifest_error or f"exit status {code}"
        super().__init__(f"stage '{unit.stage}' of {unit.run.run_dir} failed: {why}")
        self.unit, self.code, self.why = unit, code, why


def plan_units(runs: Sequence[Run], only: str | None = None, from_: str | None = None,
               until: str | None = None) -> list[Unit]:
    """The units left to run over all runs (done stages left out), with what each waits for.

    Raises SpecError as ``plan_run`` does (an unknown stage name, ``--only`` with inputs not done).
    """
    units: list[Unit] = []
    for run in runs:
        spec = run.spec
        hashes = stage_hashes(spec)
        plan = plan_run(spec, run.run_dir, hashes, only=only, from_=from_, until=until)
        todo = {stage.name for stage, action in plan if action != "skip"}
        forced = set(_forced(spec, from_))
        names = set(spec.stage_names)
        mine = []
        for stage, action in plan:
            if action == "skip":
                continue
            label = f"{run.run_dir.name}/{stage.name}" if len(runs) > 1 else stage.name
            mine.append(Unit(run, stage.name, set(stage.inputs(names)) & todo, stage.name in forced, label))
        for u in mine:
            u.priority = sum(u.stage in _upstream(v, mine) for v in mine)
        units += mine
    return units


def _forced(spec: Spec, from_: str | None) -> list[str]:
    """The stages ``--from`` reruns even where done: it and every stage after it."""
    names = [s.name for s in spec.order()]
    return names[names.index(from_):] if from_ in names else []


def _upstream(unit: Unit, units: Sequence[Unit]) -> set[str]:
    """Every pending stage ``unit`` waits for, directly or not."""
    by_name = {u.stage: u for u in units}
    seen: set[str] = set()
    todo = list(unit.deps)
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo += by_name[n].deps if n in by_name else []
    return seen


def child_argv(spec_path: Path, unit: Unit, python: str | None = None) -> list[str]:
    """The command that runs one unit: an ordinary ``r1 run`` of just that stage.

    >>> from types import SimpleNamespace as NS
    >>> u = NS(run=NS(run_dir=Path("runs/x/seed-1"), overrides=["seed=1"]), stage="sft", forced=False)
    >>> child_argv(Path("s.yaml"), u, python="py")[4:]
    ['s.yaml', '--out', 'runs/x/seed-1', '--until', 'sft', '--no-report', '--set', 'seed=1']
    """
    select = ["--from", unit.stage, "--until", unit.stage] if unit.forced else ["--until", unit.stage]
    sets = [a for kv in unit.run.overrides for a in ("--set", kv)]
    return [python or sys.executable, "-m", "r1pipeline.cli", "run", str(spec_path), "--out", str(unit.run.run_dir),
            *select, "--no-report", *sets]


def child_env(threads: int) -> dict[str, str]:
    """This process's environment with the thread count of one job and plain progress lines."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), R1_NO_PROGRESS="1")
    return env


def log_path(unit: Unit) -> Path:
    return unit.run.run_dir / "logs" / f"{unit.stage}.log"


def _failure_reason(unit: Unit) -> str | None:
    manifest = read_json(unit.run.run_dir / unit.stage / MANIFEST) or {}
    return manifest.get("error") if manifest.get("status") == "failed" else None


def run_units(spec_path: Path, units: list[Unit], jobs: int, log: Callable[[str], None] = print,
              cores: int | None = None, python: str | None = None) -> None:
    """Run ``units`` at most ``jobs`` at a time, each when the stages it waits for are done.

    On a failure no new unit starts; the running ones finish, then ``UnitFailed`` names the first
    that failed. On Ctrl-C (which reaches the children too: they share the terminal's process
    group and mark their manifests interrupted) it waits for them and re-raises.
    """
    threads = threads_per_process(jobs, cores)
    pending = list(units)
    running: dict[int, tuple[Unit, subprocess.Popen, float]] = {}
    done: set[tuple[Path, str]] = set()
    failed: UnitFailed | None = None
    total = len(units)
    try:
        while pending or running:
            while failed is None and len(running) < jobs:
                ready = [u for u in pending if all((u.run.run_dir, d) in done for d in u.deps)]
                if not ready:
                    break
                unit = max(ready, key=lambda u: u.priority)  # max keeps the first of equals: spec order
                pending.remove(unit)
                proc = _start(spec_path, unit, threads, python)
                running[proc.pid] = (unit, proc, time.time())
                log(f"[r1] {unit.label}: started ({threads} thread{'s' * (threads > 1)}; log {log_path(unit)})")
            if failed is not None and not running:
                break
            if not running and pending:  # nothing ready and nothing running: a dependency never ran
                raise RuntimeError(f"no runnable stage among {[u.label for u in pending]}")
            time.sleep(POLL_SECONDS)
            for pid, (unit, proc, t0) in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                del running[pid]
                if code == 0:
                    done.add((unit.run.run_dir, unit.stage))
                    log(f"[r1] {unit.label}: done in {time.time() - t0:.1f}s ({len(done)} of {total})")
                else:
                    err = UnitFailed(unit, code, _failure_reason(unit))
                    log(f"[r1] {unit.label}: failed: {err.why} (log {log_path(unit)})")
                    failed = failed or err
    except KeyboardInterrupt:
        for unit, proc, _ in running.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        raise
    if failed is not None:
        raise failed


def _start(spec_path: Path, unit: Unit, threads: int, python: str | None) -> subprocess.Popen:
    path = log_path(unit)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        argv = child_argv(spec_path, unit, python)
        f.write(f"$ {' '.join(argv)}   (OMP_NUM_THREADS={threads})\n")
        f.flush()
        return subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=child_env(threads))
