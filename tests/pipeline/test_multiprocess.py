"""Two processes (gloo on CPU) against one, through ``r1 run --num-processes 2``.

The spec's batch sizes are global, so a 2-process run must make the same updates as a 1-process
run. SFT is compared as it runs. GRPO samples its completions, and sampled completions cannot be
equal across world sizes (TRL seeds each rank apart, and a sampled row depends on the batch it is
drawn in), so both runs get the same fixed rollouts from ``canned_rollout/sitecustomize.py``;
everything after generation (rewards, group advantages, the loss, DDP's gradient averaging,
checkpoints, resume) is the production code.

Measured on 2 CPU cores (float32): per-step loss and grad-norm differ by at most 5e-7 absolute,
~1e-7 relative (2e-6 relative for a GRPO loss of 0.003; the order of float sums in the
all-reduce), final weights by ~1e-8. The tolerance, ``rel=1e-5, abs=1e-6``, leaves room for other
CPUs' kernels and still catches a wrong batch split (a factor of 2 in the loss or the gradient)
or a wrong group normalisation (visibly different advantages).

The 2-process run is SIGKILLed (its whole process group) in the middle of the GRPO stage and run
again, so the comparison also shows that a resumed multi-process stage continues exactly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import CONFIGS, ROOT

R1 = [sys.executable, "-m", "r1pipeline.cli"]
CANNED = ROOT / "tests" / "pipeline" / "canned_rollout"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "R1_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join([str(CANNED), str(ROOT)])}
TOL = dict(rel=1e-5, abs=1e-6)
MICRO = {s["name"]: s for s in yaml.safe_load((CONFIGS / "micro.yaml").read_text())["stages"]}
STAGES = [
    {**MICRO["base"], "task": {"source": "tiny_product", "n_digits": 3}, "steps": 10},
    {**MICRO["r1_zero"], "steps": 4, "checkpoint_every": 2, "eval_every": 2, "eval_prompts": 8},
    {"name": "sft", "kind": "sft", "init": "base", "data": ["sft.jsonl"], "epochs": 1, "batch_size": 8},
    {"name": "sft_lora", "kind": "sft", "init": "base", "data": ["sft.jsonl"], "epochs": 1, "batch_size": 8,
     "learning_rate": 0.005, "lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
]


def r1(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*R1, *args], capture_output=True, text=True, env=ENV, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"r1 {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def metrics(run: Path, stage: str) -> list[dict]:
    return [json.loads(line) for line in (run / stage / "metrics.jsonl").read_text().splitlines()]


def manifest(run: Path, stage: str) -> dict:
    return json.loads((run / stage / "manifest.json").read_text())


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    """A small spec (pretrain, GRPO, SFT, LoRA SFT) and its SFT data, in a folder of its own."""
    from r1pipeline.tasks.templates import render

    folder = tmp_path_factory.mktemp("spec")
    rows = [json.loads(line) for line in (CONFIGS / "data" / "tiny_cold_start.jsonl").open()]
    (folder / "sft.jsonl").write_text("".join(
        json.dumps({"prompt": render("r1_zero_short", r["question"]), "completion": r["completion"]}) + "\n"
        for r in rows))
    path = folder / "ddp.yaml"
    path.write_text(yaml.safe_dump({"name": "ddp", "seed": 0, "stages": STAGES}, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def one(spec: Path) -> Path:
    out = spec.parent / "one"
    r1("run", str(spec), "--out", str(out), "--no-report")
    return out


def _ranks_alive(run: Path) -> list[int]:
    """Processes whose command line names this run directory."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(run).encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.fixture(scope="module")
def two(spec: Path) -> dict:
    """The 2-process run: killed once the GRPO stage wrote its step-2 checkpoint, then run again."""
    out = spec.parent / "two"
    args = ["run", str(spec), "--out", str(out), "--no-report", "--num-processes", "2"]
    proc = subprocess.Popen([*R1, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV, start_new_session=True)
    ready = out / "r1_zero" / "checkpoints" / "checkpoint-2" / "trainer_state.json"
    deadline = time.time() + 300
    while not ready.exists():
        if proc.poll() is not None:
            raise AssertionError(f"run ended before the kill point:\n{proc.stderr.read()[-3000:]}")
        assert time.time() < deadline, "kill point not reached in time"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # r1 and the launcher; the ranks live in sessions of their own
    proc.wait()
    deadline = time.time() + 30
    while _ranks_alive(out) and time.time() < deadline:
        time.sleep(0.1)
    killed = {"orphans": _ranks_alive(out), "r1_zero": manifest(out, "r1_zero"),
              "base": (out / "base" / "manifest.json").read_text()}
    second = r1(*args)
    return {"run": out, "killed": killed, "stdout": second.stdout}


@pytest.mark.parametrize("stage,keys", [("base", ("loss",)), ("sft", ("loss", "grad_norm")), ("sft_lora", ("loss", "grad_norm")),
                                        ("r1_zero", ("loss", "grad_norm", "reward", "reward_std"))])
def test_two_processes_follow_the_one_process_curves(one: Path, two: dict, stage: str, keys: tuple):
    a, b = metrics(one, stage), metrics(two["run"], stage)
    assert [r["step"] for r in a] == [r["step"] for r in b]
    trained = [r for r in a if "loss" in r]
    assert trained and any(r.get("grad_norm", 1) > 0 for r in trained) and len({r["loss"] for r in trained}) > 1
    for ra, rb in zip(a, b):
        for key in keys:
            if key in ra:
                assert rb[key] == pytest.approx(ra[key], **TOL), (stage, ra["step"], key)
        assert rb.get("num_tokens") == ra.get("num_tokens"), "the global batch is the same"


def test_final_models_match(one: Path, two: dict):
    from safetensors.torch import load_file

    for stage in ("base", "r1_zero", "sft", "sft_lora"):
        wa, wb = (load_file(run / stage / "model" / "model.safetensors") for run in (one, two["run"]))
        assert wa.keys() == wb.keys()
        assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-5, stage


def test_sigkill_of_a_two_process_stage_resumes_from_its_checkpoint(two: dict):
    run, killed = two["run"], two["killed"]
    assert killed["orphans"] == [], "the ranks die with their launcher"
    assert killed["r1_zero"]["status"] == "running"
    assert "base: done, skipped" in two["stdout"] and "r1_zero (grpo) resuming" in two["stdout"]
    assert (run / "base" / "manifest.json").read_text() == killed["base"]
    m = manifest(run, "r1_zero")
    assert m["status"] == "done" and m["attempts"] == 2 and m["processes"] == 2
    assert json.loads((run / "r1_zero" / "summary.json").read_text())["resumed_from_step"] >= 2


def test_only_rank0_writes_and_logs(one: Path, two: dict):
    for stage in ("base", "r1_zero", "sft", "sft_lora"):
        steps = [r["step"] for r in metrics(two["run"], stage)]
        assert steps == sorted(set(steps)) == [r["step"] for r in metrics(one, stage)], stage
    assert two["stdout"].count("[r1] sft done") == 1
    assert not list(two["run"].rglob("*.tmp"))


def test_lora_stage_saves_a_plain_merged_checkpoint(one: Path):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    model_dir = one / "sft_lora" / "model"
    assert not (model_dir / "adapter_config.json").exists()
    _, info = AutoModelForCausalLM.from_pretrained(model_dir, output_loading_info=True)
    assert not any(info.values())
    base, tuned = load_file(one / "base" / "model" / "model.safetensors"), load_file(model_dir / "model.safetensors")
    assert tuned.keys() == base.keys() and any((tuned[k] != base[k]).any() for k in base)


def test_print_launch_shows_the_accelerate_command_without_running(spec: Path, tmp_path: Path):
    proc = r1("run", str(spec), "--out", str(tmp_path / "x"), "--num-processes", "2", "--print-launch",
              "--only", "sft")
    assert proc.stdout.strip() == (f"accelerate launch --multi_gpu --num_processes 2 --num_machines 1 "
                                   f"--mixed_precision no --dynamo_backend no --main_process_port 0 --module "
                                   f"r1pipeline.cli run {spec} --out {tmp_path / 'x'} --only sft")
    assert not (tmp_path / "x").exists()
    proc = r1("run", str(spec), "--num-processes", "2", "--print-launch", "--accelerate-config", "z3.yaml")
    assert proc.stdout.startswith("accelerate launch --config_file z3.yaml --num_processes 2 --module r1pipeline.cli")


def test_a_batch_that_does_not_split_fails_before_anything_starts(spec: Path, tmp_path: Path):
    for command in (["run", str(spec), "--out", str(tmp_path / "x")], ["validate", str(spec)]):
        proc = r1(*command, "--num-processes", "3", check=False)
        assert proc.returncode == 2 and not (tmp_path / "x").exists()
        assert ("stage 'sft', field 'batch_size': 8 cannot be split evenly over 3 processes; "
                "fix: use a multiple of 3 (e.g. 9)") in proc.stderr
        assert "stage 'r1_zero', field 'generation_batch_size'" in proc.stderr
