"""The runner: executes a spec's stages in order, skipping finished ones, resuming killed ones.

A stage's hash covers its kind, its resolved config (less the fields that do not change its
result, such as the checkpoint interval) and the hashes of the stages it reads, so a change
anywhere upstream invalidates everything downstream, and nothing else. Per stage:

* manifest ``done`` and hash equal: skipped, its files untouched;
* manifest ``running``/``failed`` and hash equal: run again with ``ctx.resume`` set; the stage
  continues from its last checkpoint;
* anything else (no manifest, another hash): the stage folder is cleared and the stage runs.

``--from STAGE`` reruns STAGE and everything after it; ``--only STAGE`` runs just STAGE, whose
inputs must be done already; ``--until STAGE`` runs STAGE and only the stages it depends on.

On several processes (``r1 run --num-processes N``) every process runs this loop. Rank 0 takes
the skip/resume decisions and broadcasts them, and it alone writes spec.yaml, manifests,
summaries and the report. A stage module that sets ``DISTRIBUTED = True`` (sft, grpo,
reward_model) runs on all ranks, data-parallel; the others run on rank 0 while the rest wait at
a barrier. If a process dies, the launcher ends the others; without a launcher that does (bare
``srun`` or ``mpirun`` per rank), the survivors wait up to ``distributed.COLLECTIVE_TIMEOUT``.
A stage that failed on a rank other than 0 keeps the status ``running`` (rank 0 was ended, not
told), so the next run resumes it, as after a kill.

A stage that raises is marked ``failed`` in its manifest, with ``error`` (``Type: message``),
``error_type`` and ``error_message``, and the runner raises ``StageFailed`` naming it (the CLI's
last line then says which stage failed, why, and the command that resumes it:
``resume_command``); Ctrl-C marks it ``failed`` too (``interrupted: true``) and goes on as a
KeyboardInterrupt. The manifest never stays ``running`` on rank 0 for a stage that ended.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from r1pipeline import distributed, trackers
from r1pipeline.rundir import MANIFEST, SUMMARY, read_json, write_json, write_text_atomic
from r1pipeline.pipeline.model_card import write_cards
from r1pipeline.pipeline.spec import Spec, SpecError
from r1pipeline.stages.base import Problem, StageConfig, StageContext


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (files over 256 MiB: size and modification time instead)."""
    st = path.stat()
    if st.st_size > 256 << 20:
        return f"size={st.st_size},mtime={st.st_mtime_ns}"
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def stage_hashes(spec: Spec) -> dict[str, str]:
    """Hash of each stage: kind + result-relevant config + the contents of the files it reads
    + the hashes of the stages it reads."""
    hashes: dict[str, str] = {}
    names = set(spec.stage_names)
    for stage in spec.order():
        payload = {
            "kind": stage.kind,
            "config": stage.hashed_config(),
            "seed": spec.stage_seed(stage),
            "files": {f: file_digest(spec.path(f)) for f in stage.data_files(names)},
            "inputs": {i: hashes[i] for i in stage.inputs(names)},
        }
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        hashes[stage.name] = hashlib.sha256(blob).hexdigest()[:16]
    return hashes


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("r1pipeline", "torch", "transformers", "trl", "datasets", "accelerate", "tokenizers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def stage_status(run_dir: Path, stage: str, expected_hash: str) -> str:
    """``done``, ``resumable``, or ``fresh`` for a stage of this run."""
    m = read_json(run_dir / stage / MANIFEST)
    if not isinstance(m, dict) or m.get("hash") != expected_hash:  # missing, torn, or not a manifest
        return "fresh"
    return "done" if m.get("status") == "done" else "resumable"


def ancestors(spec: Spec, name: str) -> set[str]:
    """``name`` and every stage it reads from, directly or not."""
    names, todo, seen = set(spec.stage_names), [name], set()
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo += spec.stage(n).inputs(names)
    return seen


def select(spec: Spec, only: str | None, from_: str | None,
           until: str | None = None) -> tuple[list[StageConfig], set[str]]:
    """(stages to consider in order, names to rerun even if done)."""
    order = spec.order()
    names = [s.name for s in order]
    for flag, value in (("--only", only), ("--from", from_), ("--until", until)):
        if value is not None and value not in names:
            raise SpecError([Problem(None, flag, f"no stage named {value!r}", f"use one of: {', '.join(names)}")])
    if only:
        return [spec.stage(only)], set()
    if until:
        keep = ancestors(spec, until)
        order = [s for s in order if s.name in keep]
    if from_:
        i = names.index(from_)
        return order, set(names[i:])
    return order, set()


def _quiet_libraries() -> None:
    """Our progress bars and metrics replace the libraries' per-call bars and log dumps."""
    import datasets
    import huggingface_hub.utils as hf_utils
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    hf_utils.disable_progress_bars()
    datasets.disable_progress_bars()  # TRL's dataset preparation (tokenizing, ...)


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_stage(spec: Spec, stage: StageConfig, run_dir: Path, hashes: dict[str, str], resume: bool,
              log=print) -> dict[str, Any]:
    """Run one stage: rank 0 clears or keeps its folder and writes its manifest and summary; the
    stage's code runs on every rank when its module is ``DISTRIBUTED``, else on rank 0 alone."""
    from r1pipeline.stages import module

    main = distributed.is_main()
    stage_dir = run_dir / stage.name
    names = set(spec.stage_names)
    inputs = stage.inputs(names)
    seed = spec.stage_seed(stage)
    manifest = {
        "stage": stage.name, "kind": stage.kind, "config": stage.model_dump(mode="json"),
        "hash": hashes[stage.name], "inputs": {i: hashes[i] for i in inputs}, "seed": seed,
        "versions": library_versions(), "status": "running",
        "started": datetime.now(timezone.utc).isoformat(), "resumed": resume,
        "command": " ".join(sys.argv), "attempts": 1, "processes": distributed.world_size(),
        **({"report_to": spec.report_to} if spec.report_to else {}),
    }
    ctx = StageContext(name=stage.name, dir=stage_dir, run_dir=run_dir, seed=seed,
                       input_dirs={i: run_dir / i for i in inputs}, resume=resume,
                       pipeline=spec.name, report_to=tuple(spec.report_to))
    t0, cpu0 = time.time(), cpu_seconds()
    try:  # from here on, whatever ends the stage is written in its manifest
        if main:
            _prepare_stage_dir(stage_dir, resume, manifest)
        distributed.barrier()  # the folder is ready before any rank writes into it
        _quiet_libraries()
        _seed_everything(seed)
        t0, cpu0 = time.time(), cpu_seconds()  # the stage's own time, not the libraries' imports
        stage_module = module(stage.kind)
        runs_here = main or getattr(stage_module, "DISTRIBUTED", False)
        log(f"[r1] {stage.name} ({stage.kind}){' resuming' if resume else ''} -> {stage_dir}")
        with trackers.stage_env(ctx.report_to, spec.name, stage_dir), ctx.tracker:  # one tracker run per stage
            summary = stage_module.run(stage, ctx, spec.base_dir) if runs_here else {}
        # ranks idle here while rank 0 runs a single-process stage; the CPU time is every rank's
        cpu = sum(distributed.gather_object(cpu_seconds() - cpu0))
        if main:
            write_json(stage_dir / SUMMARY, summary)
            write_cards(spec, stage, run_dir, log)  # model/README.md; evaluate: its models' cards
            shutil.rmtree(ctx.checkpoint_dir, ignore_errors=True)  # the final artifacts supersede them
            manifest.update(status="done", ended=datetime.now(timezone.utc).isoformat(),
                            seconds=round(time.time() - t0, 2), cpu_seconds=round(cpu, 2),
                            **_precision(ctx))
            write_json(stage_dir / MANIFEST, manifest)
    except BaseException as exc:
        if main:
            _record_failure(stage_dir, manifest, exc, round(time.time() - t0, 2), ctx)
        if isinstance(exc, Exception):
            raise StageFailed(stage.name, exc) from exc
        exc.r1_stage = stage.name  # KeyboardInterrupt, SystemExit: go on as they are, naming the stage
        raise
    log(f"[r1] {stage.name} done in {time.time() - t0:.1f}s")
    return summary


class StageFailed(Exception):
    """A stage raised ``error`` (its manifest says ``failed`` and why); ``__cause__`` is the error."""

    def __init__(self, stage: str, error: BaseException):
        super().__init__(f"stage '{stage}' failed: {error_text(error)}")
        self.stage, self.error = stage, error


def error_text(exc: BaseException, limit: int = 500) -> str:
    """``Type: message``, cut to ``limit`` characters (an interrupt says so)."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (KeyboardInterrupt)"
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "…"


def _record_failure(stage_dir: Path, manifest: dict[str, Any], exc: BaseException, seconds: float,
                    ctx: StageContext) -> None:
    """The manifest says ``failed``, with the error's type and message; a stage folder that
    cannot be written (the error itself, perhaps) leaves the error to the caller alone."""
    manifest.update(status="failed", error=error_text(exc, 2000), error_type=type(exc).__name__,
                    error_message=str(exc)[:2000], interrupted=isinstance(exc, KeyboardInterrupt),
                    ended=datetime.now(timezone.utc).isoformat(), seconds=seconds, **_precision(ctx))
    try:
        write_json(stage_dir / MANIFEST, manifest)
    except OSError:
        pass


def resume_command(argv: list[str], stage: str, world: int = 1) -> tuple[str, str]:
    """(what it does, the ``r1`` command line) that picks a failed run up again: the same
    command resumes the failed stage from its checkpoint, finished stages skipped; after
    ``--from``, ``--from STAGE`` reruns the failed stage and everything after it.

    >>> resume_command(["run", "s.yaml", "--out", "runs/x"], "sft")
    ('resume', 'r1 run s.yaml --out runs/x')
    >>> resume_command(["run", "s.yaml", "--from", "base"], "sft")
    ('rerun from it', 'r1 run s.yaml --from sft')
    """
    args, verb = list(argv), "resume"
    for i, a in enumerate(args):
        if a == "--from" and i + 1 < len(args):
            args[i + 1], verb = stage, "rerun from it"
        elif a.startswith("--from="):
            args[i], verb = f"--from={stage}", "rerun from it"
    if world > 1 and not any(a == "--num-processes" or a.startswith("--num-processes=") for a in args):
        args += ["--num-processes", str(world)]
    import shlex

    return verb, "r1 " + shlex.join(args)


def _precision(ctx: StageContext) -> dict[str, Any]:
    """The manifest's ``precision`` entry: the dtype the stage resolved and computed in, and why
    (``precision.py``); not part of the hash, so ``dtype: auto`` hashes alike on every machine."""
    return {"precision": ctx.precision} if ctx.precision else {}


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its children that have ended (a vLLM
    server, sandbox workers): next to wall seconds, it says whether a stage kept the cores busy.

    On several processes it is one rank's alone (the launcher, not rank 0, starts the others):
    ``run_stage`` adds up the ranks'.
    """
    import resource

    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def _prepare_stage_dir(stage_dir: Path, resume: bool, manifest: dict[str, Any]) -> None:
    """A fresh stage starts from an empty folder; a resumed one keeps its checkpoints and counts attempts."""
    if not resume and stage_dir.exists():
        shutil.rmtree(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    previous = read_json(stage_dir / MANIFEST) if resume else None
    if previous:
        manifest["attempts"] = previous.get("attempts", 1) + 1
        manifest["first_started"] = previous.get("first_started", previous.get("started"))
    write_json(stage_dir / MANIFEST, manifest)


Plan = list[tuple[StageConfig, str]]  # (stage, "skip" | "fresh" | "resume") in run order


def plan_run(spec: Spec, run_dir: Path, hashes: dict[str, str], only: str | None = None,
             from_: str | None = None, until: str | None = None) -> Plan:
    """What each considered stage will do, judged from the manifests on disk.

    Raises SpecError for unknown stage names, and for ``--only`` when the stage's inputs are not done.
    """
    stages, force = select(spec, only, from_, until)
    plan: Plan = []
    for stage in stages:
        status = stage_status(run_dir, stage.name, hashes[stage.name])
        if only:
            for dep in stage.inputs(set(spec.stage_names)):
                if stage_status(run_dir, dep, hashes[dep]) != "done":
                    raise SpecError([Problem(stage.name, "inputs", f"input stage {dep!r} has not finished in {run_dir}",
                                             f"run it first (r1 run ... --only {dep}) or drop --only")])
        if status == "done" and stage.name not in force:
            plan.append((stage, "skip"))
        else:
            plan.append((stage, "resume" if status == "resumable" and stage.name not in force else "fresh"))
    return plan


def _agreed_plan(spec: Spec, run_dir: Path, hashes: dict[str, str], **selection: str | None) -> Plan:
    """Rank 0's plan on every rank, so that all processes skip and resume the same stages."""
    problems: list[Problem] = []
    names: list[tuple[str, str]] = []
    if distributed.is_main():
        try:
            names = [(s.name, action) for s, action in plan_run(spec, run_dir, hashes, **selection)]
        except SpecError as exc:
            problems = exc.problems
        else:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(run_dir / "spec.yaml", spec.to_yaml())
    names, problems = distributed.broadcast_object((names, problems))
    if problems:
        raise SpecError(problems)
    return [(spec.stage(name), action) for name, action in names]


def run_pipeline(spec: Spec, run_dir: Path, only: str | None = None, from_: str | None = None,
                 report: bool = True, log=print, until: str | None = None) -> dict[str, str]:
    """Run the spec into ``run_dir``; returns each considered stage's outcome.

    On several processes (``distributed.init()`` called before) every process calls this: rank 0
    decides what to skip and resume and writes every file; only rank 0 logs.
    """
    hashes = stage_hashes(spec)
    plan = _agreed_plan(spec, run_dir, hashes, only=only, from_=from_, until=until)
    if not distributed.is_main():
        log = _silent
    outcome: dict[str, str] = {}
    for stage, action in plan:
        if action == "skip":
            log(f"[r1] {stage.name}: done, skipped (hash {hashes[stage.name]})")
            outcome[stage.name] = "skipped"
            continue
        run_stage(spec, stage, run_dir, hashes, resume=action == "resume", log=log)
        outcome[stage.name] = "ran"
    if report and distributed.is_main():
        from r1pipeline.pipeline.report import write_report

        path = write_report(run_dir)
        log(f"[r1] report: {path}")
    return outcome


def _silent(*_: Any, **__: Any) -> None:
    """The log of ranks other than 0."""
