"""The micro pipeline through the real CLI: every stage kind runs, reruns skip, kills resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from r1pipeline.tasks.tiny_general import REFUSAL
from tests.conftest import CONFIGS, MICRO_SETS

import yaml

R1 = [sys.executable, "-m", "r1pipeline.cli"]
MICRO = yaml.safe_load((CONFIGS / "micro.yaml").read_text())
STAGES = [s["name"] for s in MICRO["stages"]]
KINDS = {s["kind"] for s in MICRO["stages"]}
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "R1_NO_PROGRESS": "1"}


def r1(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*R1, *args], capture_output=True, text=True, env=ENV, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"r1 {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def manifest(run: Path, stage: str) -> dict:
    return json.loads((run / stage / "manifest.json").read_text())


def test_micro_covers_every_stage_kind():
    from r1pipeline.stages import KINDS as ALL_KINDS

    assert KINDS == set(ALL_KINDS)


def test_every_stage_finishes_and_writes_its_artifacts(micro_run: Path):
    for stage in STAGES:
        m = manifest(micro_run, stage)
        assert m["status"] == "done" and m["hash"] and m["versions"]["torch"]
        assert (micro_run / stage / "summary.json").exists()
        assert not (micro_run / stage / "checkpoints").exists()
    for stage in [s["name"] for s in MICRO["stages"] if s["kind"] in ("pretrain", "grpo", "sft", "reward_model")]:
        assert (micro_run / stage / "model" / "config.json").exists()
        assert any((micro_run / stage / "model").glob("*.safetensors"))
    steps = [json.loads(line)["step"] for line in (micro_run / "r1_zero" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2, 3, 4]
    assert (micro_run / "report.md").exists() and (micro_run / "r1_zero_curves.png").exists()
    assert (micro_run / "spec.yaml").exists()


def test_every_stage_records_the_work_it_did(micro_run: Path):
    """What bench/pipeline.py reads: CPU seconds, and tokens and FLOPs from each stage's own files."""
    from r1pipeline.pipeline.work import TRAINING_KINDS, params_resolver, stage_work

    params_of = params_resolver(micro_run)
    for stage in STAGES:
        m = manifest(micro_run, stage)
        work = stage_work(micro_run / stage, m, params_of)
        assert m["cpu_seconds"] > 0 and work.flops > 0 and not work.notes, (stage, work)
        assert (work.trained > 0) == (m["kind"] in TRAINING_KINDS), (stage, work)
        assert (work.generated > 0) == (m["kind"] in ("grpo", "sample", "evaluate")), (stage, work)


def test_evaluate_summary_has_the_documented_schema(micro_run: Path):
    s = json.loads((micro_run / "evaluate" / "summary.json").read_text())
    evaluated = next(st for st in MICRO["stages"] if st["kind"] == "evaluate")["models"]
    assert s["k"] == 2 and s["n_prompts"] == 16 and list(s["models"]) == evaluated
    for m in s["models"].values():
        lo, hi = m["pass@1_ci"]
        assert 0 <= lo <= m["pass@1"] <= hi <= 1
        for key in ("cons@k", "format_rate", "mean_length", "cot_rate", "pass@k", "language_consistency",
                    "oracle_helpfulness", "oracle_harmlessness", "rm_helpfulness", "reward_model_score"):
            assert key in m, key
    rows = [json.loads(line) for line in (micro_run / "evaluate" / "data" / "samples.jsonl").open()]
    assert sum(r["set"] == "heldout" for r in rows) == len(evaluated) * 16 * 2
    general = [r for r in rows if r["set"] == "general"]
    assert len(general) == len(evaluated) * 8 * 2 and all("oracle" in r and "objective" in r for r in general)


def test_sample_stages_write_provenance_and_counts_per_filter(micro_run: Path):
    summary = json.loads((micro_run / "rejection_sampling" / "summary.json").read_text())
    assert summary["offered"] == sum(summary["rejected"].values()) + summary["kept_reasoning"]
    rows = [json.loads(line) for line in (micro_run / "rejection_sampling" / "data" / "train.jsonl").open()]
    assert rows and all({"prompt", "completion", "source", "id", "decision"} <= set(r) for r in rows)
    assert summary["kept_non_reasoning"] == sum(r["domain"] == "general" for r in rows)
    harmful = [r for r in rows if r["domain"] == "general" and r["answer"] == REFUSAL]
    assert harmful and all(r["completion"] != f"<think></think>{REFUSAL}" for r in harmful)  # p_good_harmful: 0.0
    rejected = [json.loads(line) for line in (micro_run / "rejection_sampling" / "data" / "rejected.jsonl").open()]
    assert all(r["reason"] for r in rejected)


def test_checkpoints_load_in_plain_transformers(micro_run: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = micro_run / "r1_zero" / "model"
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    ids = tok("User: 2*3*4 Assistant:", return_tensors="pt", add_special_tokens=False)
    out = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > ids.input_ids.shape[1]


def test_rerun_skips_finished_stages_and_leaves_them_untouched(micro_run: Path):
    before = {s: (micro_run / s / "manifest.json").stat().st_mtime_ns for s in STAGES}
    proc = r1("run", str(CONFIGS / "micro.yaml"), "--out", str(micro_run), "--no-report", *MICRO_SETS)
    assert proc.stdout.count("done, skipped") == len(STAGES)
    after = {s: (micro_run / s / "manifest.json").stat().st_mtime_ns for s in before}
    assert after == before


def test_changed_setting_reruns_that_stage_and_downstream_only(micro_run: Path, tmp_path: Path):
    """The student's base: the stage with the fewest downstream stages that still reach evaluate
    through another stage (distill), so the teacher's chain must all be skipped."""
    run = tmp_path / "copy"
    shutil.copytree(micro_run, run)
    base_before = (run / "base" / "manifest.json").read_text()
    proc = r1("run", str(CONFIGS / "micro.yaml"), "--out", str(run), "--no-report", *MICRO_SETS,
              "--set", "student_base.learning_rate=1e-4")
    rerun = ["student_base", "distill", "student_zero", "evaluate"]
    kinds = {s["name"]: s["kind"] for s in MICRO["stages"]}
    for stage in STAGES:
        ran = f"[r1] {stage} ({kinds[stage]}) -> " in proc.stdout
        skipped = f"[r1] {stage}: done, skipped" in proc.stdout
        assert (ran, skipped) == ((True, False) if stage in rerun else (False, True)), stage
    assert (run / "base" / "manifest.json").read_text() == base_before
    assert manifest(run, "student_base")["config"]["learning_rate"] == 1e-4


def test_from_reruns_the_named_stage_and_after(micro_run: Path, tmp_path: Path):
    run = tmp_path / "copy"
    shutil.copytree(micro_run, run)
    proc = r1("run", str(CONFIGS / "micro.yaml"), "--out", str(run), "--no-report", *MICRO_SETS,
              "--from", "evaluate")
    assert "base: done, skipped" in proc.stdout and "r1_zero: done, skipped" in proc.stdout
    assert "evaluate (evaluate)" in proc.stdout


def test_only_refuses_a_stage_whose_inputs_have_not_run(tmp_path: Path):
    proc = r1("run", str(CONFIGS / "micro.yaml"), "--out", str(tmp_path / "fresh"), "--only", "evaluate", check=False)
    assert proc.returncode == 2
    assert "input stage 'base' has not finished" in proc.stderr


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"run ended before the kill point: {proc.stderr.read()[-3000:]}")
        if time.time() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError("kill point not reached in time")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("victim", ["base", "r1_zero"])
def test_sigkill_mid_stage_resumes_from_its_last_checkpoint(victim: str, tmp_path: Path):
    run = tmp_path / "run"
    args = ["run", str(CONFIGS / "micro.yaml"), "--out", str(run), "--no-report", "--until", victim,
            "--set", "r1_zero.steps=6", "--set", "base.steps=30"]  # --until: resuming is the point, not the rest
    ready = {
        "base": lambda: (run / "base" / "checkpoints" / "step-10" / "state.pt").exists(),
        "r1_zero": lambda: (run / "r1_zero" / "checkpoints" / "checkpoint-2" / "trainer_state.json").exists(),
    }[victim]
    proc = subprocess.Popen([*R1, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV, start_new_session=True)
    _kill_when(proc, ready)
    assert manifest(run, victim)["status"] == "running"
    earlier = {}
    if victim == "r1_zero":
        earlier["base"] = (run / "base" / "manifest.json").read_text()

    proc2 = r1(*args)
    assert f"{victim} (" in proc2.stdout and "resuming" in proc2.stdout
    for stage, text in earlier.items():  # finished stages are not redone
        assert (run / stage / "manifest.json").read_text() == text
        assert f"{stage}: done, skipped" in proc2.stdout
    m = manifest(run, victim)
    assert m["status"] == "done" and m["attempts"] == 2
    steps = [json.loads(line)["step"] for line in (run / victim / "metrics.jsonl").read_text().splitlines()]
    n = 30 if victim == "base" else 6
    expected = list(range(1, n + 1)) if victim == "base" else list(range(0, n + 1))
    assert steps == expected, "metrics must read as one uninterrupted run"
    if victim == "r1_zero":
        assert json.loads((run / "r1_zero" / "summary.json").read_text())["resumed_from_step"] >= 2


def test_until_runs_a_stage_and_only_what_it_needs(tmp_path: Path):
    run = tmp_path / "until"
    proc = r1("run", str(CONFIGS / "micro.yaml"), "--out", str(run), "--until", "r1_zero", "--no-report",
              "--set", "r1_zero.steps=1", "--set", "base.steps=4")
    assert "base (pretrain)" in proc.stdout and "r1_zero (grpo)" in proc.stdout
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == ["base", "r1_zero"]


def test_report_states_the_papers_findings(micro_run: Path):
    text = (micro_run / "report.md").read_text()
    assert "### The paper's findings, on this run" in text
    for phrase in ("R1-Zero: pass@1", "Distillation:", "Majority vote", "All-scenario RL: oracle helpfulness"):
        assert phrase in text
    assert (micro_run / "all_scenario_rl_curves.png").exists()


def test_micro_batches_accumulate_to_the_same_grpo_update(micro_run: Path, tmp_path: Path):
    """micro_batch_size splits each optimizer step into accumulated micro-steps: same losses, same
    weights. The one-pass side is the micro run's own r1_zero (16 completions per optimizer step);
    the other reruns it on a copy in four micro-steps of 4."""
    from safetensors.torch import load_file

    out = tmp_path / "micro-4"
    shutil.copytree(micro_run, out)
    r1("run", str(CONFIGS / "micro.yaml"), "--out", str(out), "--from", "r1_zero", "--until", "r1_zero",
       "--no-report", *MICRO_SETS, "--set", "r1_zero.micro_batch_size=4")
    assert manifest(out, "r1_zero")["config"]["micro_batch_size"] == 4
    models = {}
    for run in (micro_run, out):
        rows = [json.loads(line) for line in (run / "r1_zero" / "metrics.jsonl").read_text().splitlines()]
        models[run] = ([m["loss"] for m in rows if "loss" in m], rows,
                       load_file(run / "r1_zero" / "model" / "model.safetensors"))
    (one, rows, w1), (acc, _, w4) = models[micro_run], models[out]
    assert any(m.get("reward_std", 0) > 0 for m in rows), "rewards without spread: all advantages are zero"
    base = load_file(micro_run / "base" / "model" / "model.safetensors")
    assert len(one) == MICRO["stages"][1]["steps"] and one == pytest.approx(acc, rel=1e-5, abs=1e-7)
    moved = max((w1[k] - base[k]).abs().max().item() for k in w1)
    assert moved > 1e-5  # the step did something
    assert max((w1[k] - w4[k]).abs().max().item() for k in w1) < moved * 1e-2
