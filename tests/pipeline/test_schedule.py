"""``r1 run --jobs N`` (pipeline/schedule.py): which stages wait for which, at most N at once, a
failure stops what depends on it; children faked by a shell script, plus one real run of two
seeds' student bases at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import CONFIGS

SPEC = CONFIGS / "micro.yaml"


def micro(seed: int = 0):
    from r1pipeline.pipeline.spec import validate_raw

    raw = yaml.safe_load(SPEC.read_text())
    raw["seed"] = seed
    return validate_raw(raw, base_dir=CONFIGS)


def mark_done(spec, run_dir: Path, stage: str) -> None:
    from r1pipeline.pipeline.runner import stage_hashes

    (run_dir / stage).mkdir(parents=True, exist_ok=True)
    (run_dir / stage / "manifest.json").write_text(json.dumps({"hash": stage_hashes(spec)[stage], "status": "done"}))


def units_of(tmp_path, **selection):
    from r1pipeline.pipeline.schedule import Run, plan_units

    return {u.stage: u for u in plan_units([Run(micro(), tmp_path / "run")], **selection)}


def test_each_stage_waits_for_the_stages_it_reads(tmp_path):
    units = units_of(tmp_path)
    assert units["base"].deps == set() and units["student_base"].deps == set()
    assert units["r1_zero"].deps == {"base"}
    assert units["distill"].deps == {"student_base", "rejection_sampling"}
    assert units["all_scenario_rl"].deps >= {"sft", "reward_helpful", "reward_harmless"}


def test_the_stage_more_stages_wait_on_goes_first(tmp_path):
    units = units_of(tmp_path)
    assert units["base"].priority > units["student_base"].priority > units["evaluate"].priority == 0


def test_done_stages_are_left_out_and_waited_for_by_no_one(tmp_path):
    spec, run_dir = micro(), tmp_path / "run"
    mark_done(spec, run_dir, "base")
    units = units_of(tmp_path)
    assert "base" not in units and units["r1_zero"].deps == set()


def test_from_forces_the_stages_it_reruns(tmp_path):
    spec, run_dir = micro(), tmp_path / "run"
    for name in spec.stage_names:
        mark_done(spec, run_dir, name)
    units = units_of(tmp_path, from_="sft")
    assert "rejection_sampling" not in units and units["sft"].forced and units["evaluate"].forced


FAKE_CHILD = """#!/bin/sh
# argv: -m r1pipeline.cli run SPEC --out DIR [--from S] --until STAGE ...: log start/end, fail on $FAIL
while [ "$1" != "--until" ]; do shift; done
stage=$2
echo "start $stage" >> "$EVENTS"
sleep 0.2
echo "end $stage" >> "$EVENTS"
[ "$stage" != "$FAIL" ]
"""


def fake_python(tmp_path, monkeypatch, fail: str = "") -> Path:
    exe = tmp_path / "fake-python"
    exe.write_text(FAKE_CHILD)
    exe.chmod(0o755)
    monkeypatch.setenv("EVENTS", str(tmp_path / "events"))
    monkeypatch.setenv("FAIL", fail)
    return exe


def events(tmp_path) -> list[tuple[str, str]]:
    return [tuple(line.split()) for line in (tmp_path / "events").read_text().splitlines()]


def test_at_most_jobs_run_at_once_and_each_after_its_inputs(tmp_path, monkeypatch):
    from r1pipeline.pipeline.schedule import run_units

    units = list(units_of(tmp_path).values())
    run_units(SPEC, units, jobs=2, log=lambda _: None, python=str(fake_python(tmp_path, monkeypatch)))
    running, ended, most = set(), set(), 0
    for what, stage in events(tmp_path):
        if what == "start":
            assert {d for u in units if u.stage == stage for d in u.deps} <= ended, stage
            running.add(stage)
            most = max(most, len(running))
        else:
            running.discard(stage)
            ended.add(stage)
    assert ended == {u.stage for u in units} and most == 2


def test_a_failed_stage_stops_what_depends_on_it_and_is_named(tmp_path, monkeypatch):
    from r1pipeline.pipeline.schedule import UnitFailed, run_units

    units = list(units_of(tmp_path).values())
    with pytest.raises(UnitFailed) as e:
        run_units(SPEC, units, jobs=1, log=lambda _: None, python=str(fake_python(tmp_path, monkeypatch, fail="base")))
    assert e.value.unit.stage == "base" and "exit status 1" in e.value.why
    assert [s for what, s in events(tmp_path) if what == "start"] == ["base"]


def test_two_seeds_at_once_each_in_its_own_run_directory(tmp_path):
    """A real ``r1 run --seeds 0,1 --jobs 2`` of the student base models (3 steps each)."""
    out = tmp_path / "seeds"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "r1pipeline.cli", "run", str(SPEC), "--seeds", "0,1", "--jobs", "2",
           "--until", "student_base", "--set", "student_base.steps=3", "--out", str(out), "--no-report"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for seed in (0, 1):
        m = json.loads((out / f"seed-{seed}" / "student_base" / "manifest.json").read_text())
        assert m["status"] == "done" and m["seed"] == seed
        assert "--until student_base" in (out / f"seed-{seed}" / "logs" / "student_base.log").read_text()
    assert "seed-1/student_base: done" in proc.stdout
