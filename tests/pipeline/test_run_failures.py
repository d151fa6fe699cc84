"""A run never dies with its manifest saying ``running`` and no reason (issue 13, item 2): a stage
that raises is marked ``failed`` with the error's type and message, Ctrl-C marks it too, and the
CLI's last line names the stage, the error and the command that resumes. Fake stages, no training."""

from __future__ import annotations

import json
import shlex
import types

import pytest
import yaml

from tests.conftest import CONFIGS

SPEC = CONFIGS / "micro.yaml"


def fake_stages(monkeypatch, fail: str | None = None, error: BaseException | None = None) -> list[str]:
    """Every stage returns at once, but ``fail`` raises ``error``; returns the names of the stages run."""
    import r1pipeline.stages as stages

    ran = []

    def run(cfg, ctx, spec_base):
        ran.append(cfg.name)
        if cfg.name == fail:
            raise error
        return {"fake": True}

    monkeypatch.setattr(stages, "module", lambda kind: types.SimpleNamespace(run=run))
    return ran


def manifest(run_dir, stage) -> dict:
    return json.loads((run_dir / stage / "manifest.json").read_text())


def micro():
    from r1pipeline.pipeline.spec import validate_raw

    return validate_raw(yaml.safe_load(SPEC.read_text()), base_dir=CONFIGS)


def run_base(tmp_path):
    from r1pipeline.pipeline.runner import run_stage, stage_hashes

    spec = micro()
    return run_stage(spec, spec.stage("base"), tmp_path, stage_hashes(spec), resume=False, log=lambda *_: None)


def test_a_stage_that_raises_is_marked_failed_with_its_error(tmp_path, monkeypatch):
    from r1pipeline.pipeline.runner import StageFailed

    fake_stages(monkeypatch, fail="base", error=ValueError("the loss is nan at step 3"))
    with pytest.raises(StageFailed) as e:
        run_base(tmp_path)
    assert e.value.stage == "base" and isinstance(e.value.__cause__, ValueError)
    m = manifest(tmp_path, "base")
    assert (m["status"], m["error_type"], m["error_message"]) == ("failed", "ValueError", "the loss is nan at step 3")
    assert m["error"] == "ValueError: the loss is nan at step 3" and m["interrupted"] is False and "ended" in m


def test_a_failure_before_the_stage_code_runs_is_marked_too(tmp_path, monkeypatch):
    """``seed: -1`` died in numpy's seeding, before the stage's code, leaving ``running``."""
    import numpy as np

    from r1pipeline.pipeline import runner

    fake_stages(monkeypatch)
    monkeypatch.setattr(runner, "_seed_everything", lambda seed: np.random.seed(-1))
    with pytest.raises(runner.StageFailed, match="stage 'base' failed: ValueError: Seed must be between 0"):
        run_base(tmp_path)
    m = manifest(tmp_path, "base")
    assert m["status"] == "failed" and m["error_type"] == "ValueError"


def test_ctrl_c_marks_the_stage_failed_interrupted_and_goes_on(tmp_path, monkeypatch):
    fake_stages(monkeypatch, fail="base", error=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt) as e:
        run_base(tmp_path)
    assert e.value.r1_stage == "base"
    m = manifest(tmp_path, "base")
    assert (m["status"], m["interrupted"], m["error"]) == ("failed", True, "interrupted (KeyboardInterrupt)")


def cli(monkeypatch, capsys, args: list[str]) -> tuple[int, str]:
    """(exit code, stderr) of ``r1 ARGS`` in this process, with ``sys.argv`` as the shell sets it."""
    from r1pipeline.cli import app

    monkeypatch.setattr("sys.argv", ["r1", *args])
    with pytest.raises(SystemExit) as e:
        app(args)
    return e.value.code, capsys.readouterr().err


def test_the_cli_names_the_failed_stage_and_the_command_that_resumes_it(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    args = ["run", str(SPEC), "--out", str(out), "--until", "r1_zero", "--no-report"]
    fake_stages(monkeypatch, fail="r1_zero", error=RuntimeError("CUDA out of memory"))
    code, err = cli(monkeypatch, capsys, args)
    assert code == 1
    assert "Traceback" in err and "RuntimeError: CUDA out of memory" in err  # the stage's own traceback first
    last = err.strip().splitlines()[-1]
    assert last == f"[r1] stage 'r1_zero' failed: RuntimeError: CUDA out of memory; resume: r1 {shlex.join(args)}"
    assert manifest(out, "r1_zero")["status"] == "failed" and manifest(out, "base")["status"] == "done"

    ran = fake_stages(monkeypatch)  # the cause is gone: the printed command resumes where it stopped
    command = shlex.split(last.split("; resume: ", 1)[1])
    assert command[0] == "r1"
    code, err = cli(monkeypatch, capsys, command[1:])
    assert code in (0, None), err
    assert ran == ["r1_zero"]  # base is done and skipped
    m = manifest(out, "r1_zero")
    assert (m["status"], m["resumed"], m["attempts"]) == ("done", True, 2) and "error" not in m


def test_the_cli_after_ctrl_c_exits_130_naming_the_stage(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    args = ["run", str(SPEC), "--out", str(out), "--from", "base", "--until", "r1_zero", "--no-report"]
    fake_stages(monkeypatch, fail="r1_zero", error=KeyboardInterrupt())
    code, err = cli(monkeypatch, capsys, args)
    assert code == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"[r1] stage 'r1_zero' failed: interrupted (KeyboardInterrupt); rerun from it: r1 run {SPEC} --out {out} "
        f"--from r1_zero --until r1_zero --no-report")
    assert manifest(out, "r1_zero")["interrupted"] is True


def test_resume_command_keeps_the_options_and_says_what_it_does():
    from r1pipeline.pipeline.runner import resume_command

    argv = ["run", "s.yaml", "--set", "seed=1", "--from=base"]
    assert resume_command(argv, "sft") == ("rerun from it", "r1 run s.yaml --set seed=1 --from=sft")
    assert resume_command(["run", "s y.yaml"], "sft", world=4) == ("resume", "r1 run 's y.yaml' --num-processes 4")
