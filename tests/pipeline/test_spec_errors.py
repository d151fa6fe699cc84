"""Bad specs fail fast: one line per problem naming stage, field and fix; exit 2; no torch loaded."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import CONFIGS

MICRO = yaml.safe_load((CONFIGS / "micro.yaml").read_text())

# Runs the CLI on each argument list of a JSON list (stdin), in one fresh interpreter, and reports
# per call its exit code, its stderr and whether torch has been imported by then (by that call or
# an earlier one: a call that imports it fails every later one too, so the first failure names it).
PROBE = """
import contextlib, io, json, sys
from r1pipeline.cli import app
out = []
for args in json.load(sys.stdin):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            app(args)
            code = 0
        except SystemExit as e:
            code = e.code
    out.append({"code": code, "torch": "torch" in sys.modules, "stderr": err.getvalue()})
print(json.dumps(out))
"""


def stage(spec, name):
    return next(s for s in spec["stages"] if s["name"] == name)


def run_cli_many(calls: list[list[str]]) -> list[tuple[dict, str]]:
    """(``{"code", "torch"}``, stderr) of each CLI call, all from one fresh interpreter (one
    interpreter per call spent ~0.8 s each starting up: 27 s for this file)."""
    proc = subprocess.run([sys.executable, "-c", PROBE], input=json.dumps(calls), capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == len(calls)
    return [({"code": r["code"], "torch": r["torch"]}, r["stderr"]) for r in results]


def run_cli(args: list[str]) -> tuple[dict, str]:
    return run_cli_many([args])[0]


def mutate(fn):
    spec = copy.deepcopy(MICRO)
    spec["base_dir"] = str(CONFIGS)  # the spec is written elsewhere; its data paths stay in configs/
    fn(spec)
    return spec


CASES = {
    "unknown_stage_key": (lambda s: stage(s, "r1_zero").update(learning_rat=1e-5),
                          ["stage 'r1_zero'", "field 'learning_rat'", "did you mean 'learning_rate'"]),
    "unknown_top_level_key": (lambda s: s.update(sede=3), ["field 'sede'", "did you mean 'seed'"]),
    "unknown_reward": (lambda s: stage(s, "r1_zero")["rewards"].update(acuracy=1.0),
                       ["stage 'r1_zero'", "field 'rewards.acuracy'", "did you mean 'accuracy'"]),
    "unknown_reward_param": (lambda s: stage(s, "r1_zero")["rewards"].update(format={"weight": 1, "strict": 1}),
                             ["field 'rewards.format'", "unknown parameter(s) strict"]),
    "reward_weight_not_number": (lambda s: stage(s, "r1_zero")["rewards"].update(format="high"),
                                 ["field 'rewards.format'", "not a number"]),
    "unknown_stage_reference": (lambda s: stage(s, "r1_zero").update(init="bse"),
                                ["stage 'r1_zero'", "field 'init'", "did you mean 'base'"]),
    "cycle": (lambda s: s["stages"].extend([
        {"name": "a", "kind": "grpo", "init": "b", "task": {"source": "tiny_product"}},
        {"name": "b", "kind": "grpo", "init": "a", "task": {"source": "tiny_product"}}]),
        ["cycle: a -> b -> a", "field 'inputs'"]),
    "wrong_type": (lambda s: stage(s, "base").update(steps="many"), ["stage 'base'", "field 'steps'", "'many'"]),
    "zero_size": (lambda s: stage(s, "r1_zero").update(steps=0), ["field 'steps'", "greater than 0"]),
    "negative_size": (lambda s: stage(s, "base").update(batch_size=-4), ["field 'batch_size'", "greater than 0"]),
    "batch_not_divisible": (lambda s: stage(s, "r1_zero").update(generation_batch_size=12, num_generations=8),
                            ["field 'generation_batch_size'", "12 must be divisible by num_generations 8"]),
    "mini_batches_not_divisor": (lambda s: stage(s, "r1_zero").update(mini_batches=5),
                                 ["field 'mini_batches'", "divisible by mini_batches 5"]),
    "missing_model_path": (lambda s: stage(s, "r1_zero").update(init="./no/such/model"),
                           ["field 'init'", "no/such/model"]),
    "unknown_kind": (lambda s: stage(s, "base").update(kind="pretrian"), ["field 'kind'", "did you mean 'pretrain'"]),
    "duplicate_names": (lambda s: s["stages"].append(copy.deepcopy(stage(s, "evaluate"))),
                        ["stage 'evaluate'", "field 'name'", "rename"]),
    "unknown_task_source": (lambda s: stage(s, "evaluate").update(task={"source": "tiny_prodcut"}),
                            ["field 'task.source'", "did you mean 'tiny_product'"]),
    "bad_task_setting": (lambda s: stage(s, "evaluate").update(task={"source": "tiny_product", "n_digits": 1}),
                         ["stage 'evaluate'", "field 'task.n_digits'", "greater than or equal to 2"]),
    "unknown_template": (lambda s: stage(s, "r1_zero").update(template="r1zero"), ["field 'template'", "use one of"]),
    "top_p_above_one": (lambda s: stage(s, "evaluate").update(top_p=1.5), ["field 'top_p'", "less than or equal to 1"]),
    "evaluate_a_stage_without_model": (lambda s: stage(s, "evaluate")["models"].append("evaluate2") or
                                       s["stages"].append({"name": "evaluate2", "kind": "evaluate", "models": ["base"],
                                                           "task": {"source": "tiny_product"}}),
                                       ["field 'models[9]'", "makes no model"]),
    "warmup_not_below_steps": (lambda s: stage(s, "base").update(warmup_steps=50), ["field 'warmup_steps'", "fewer"]),
    "empty_stages": (lambda s: s.update(stages=[]), ["field 'stages'", "add a list of stages"]),
    "missing_required_field": (lambda s: stage(s, "r1_zero").pop("task"), ["field 'task'", "required", "add it"]),
    "trl_option_misspelled": (lambda s: stage(s, "r1_zero").update(trl={"mask_truncated_complections": True}),
                              ["stage 'r1_zero'", "field 'trl.mask_truncated_complections'", "GRPOConfig",
                               "did you mean 'mask_truncated_completions'"]),
    "trl_option_wrong_type": (lambda s: stage(s, "sft").update(trl={"packing": "yes"}),
                              ["stage 'sft'", "field 'trl.packing'", "'yes'", "takes bool"]),
    "trl_option_ours": (lambda s: stage(s, "reward_helpful").update(trl={"num_train_epochs": 3}),
                        ["field 'trl.num_train_epochs'", "our field 'epochs'", "set epochs in the stage"]),
    "unknown_tracker": (lambda s: s.update(report_to=["tensorbord"]),
                        ["field 'report_to'", "did you mean 'tensorboard'", "none"]),
}


@pytest.fixture(scope="module")
def case_results(tmp_path_factory) -> dict[str, tuple[dict, str]]:
    """``r1 validate`` on every case's spec, in one interpreter."""
    folder = tmp_path_factory.mktemp("cases")
    calls = []
    for case, (fn, _) in CASES.items():
        path = folder / f"{case}.yaml"
        path.write_text(yaml.safe_dump(mutate(fn)))
        calls.append(["validate", str(path)])
    return dict(zip(CASES, run_cli_many(calls), strict=True))


@pytest.mark.parametrize("case", list(CASES))
def test_bad_spec_fails_fast_with_one_line_per_problem(case, case_results):
    _, expected = CASES[case]
    result, stderr = case_results[case]
    assert result["code"] == 2, stderr
    assert not result["torch"], "validation imported torch"
    lines = [line for line in stderr.strip().splitlines() if line]
    assert len(lines) == 1, stderr
    assert "fix: " in lines[0]
    for text in expected:
        assert text in lines[0], f"{text!r} not in {lines[0]!r}"


def test_invalid_yaml_names_the_line(tmp_path: Path):
    path = tmp_path / "spec.yaml"
    path.write_text("name: x\nstages:\n  - name: base\n    kind: [pretrain\n")
    result, stderr = run_cli(["validate", str(path)])
    assert result["code"] == 2 and not result["torch"]
    assert "spec.yaml: line 5, column 1: invalid YAML (" in stderr and "fix:" in stderr


def test_missing_spec_file(tmp_path: Path):
    result, stderr = run_cli(["validate", str(tmp_path / "nope.yaml")])
    assert result["code"] == 2 and "no spec file" in stderr


def test_override_of_unknown_stage_is_an_error():
    result, stderr = run_cli(["validate", str(CONFIGS / "micro.yaml"), "--set", "r1_zeroo.steps=3"])
    assert result["code"] == 2
    assert "no stage named 'r1_zeroo'" in stderr and "did you mean 'r1_zero'" in stderr


def test_several_problems_are_all_reported(tmp_path: Path):
    spec = mutate(lambda s: (stage(s, "base").update(steps=0), stage(s, "r1_zero").update(top_p=2)))
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    result, stderr = run_cli(["validate", str(path)])
    assert result["code"] == 2
    assert len(stderr.strip().splitlines()) == 2


SPECS = sorted(p.name for p in CONFIGS.glob("*.yaml"))  # configs/accelerate/ holds launcher configs


def test_the_known_specs_are_shipped():
    assert {"micro.yaml", "tiny.yaml", "smol-gpu.yaml"} <= set(SPECS)


@pytest.fixture(scope="module")
def shipped_results() -> dict[str, tuple[dict, str]]:
    return dict(zip(SPECS, run_cli_many([["validate", str(CONFIGS / name)] for name in SPECS]), strict=True))


@pytest.mark.parametrize("name", SPECS)
def test_shipped_configs_validate_without_torch(name, shipped_results):
    result, stderr = shipped_results[name]
    assert result == {"code": 0, "torch": False}, stderr


def test_a_bad_data_row_fails_validation_naming_file_line_and_column(tmp_path: Path):
    good = "".join(json.dumps({"question": f"{i}+1", "answer": str(i + 1)}) + "\n" for i in range(60))
    (tmp_path / "qa.jsonl").write_text('{"question": "1+1", "answer": "2"}\n{"question": "2+2"}\n' + good)
    spec = mutate(lambda s: stage(s, "evaluate").update(task={"source": "jsonl", "path": "qa.jsonl"}))
    spec["base_dir"] = str(tmp_path)
    spec["stages"] = [s for s in spec["stages"] if s["name"] in ("base", "r1_zero", "evaluate")]
    stage(spec, "evaluate").update(models=["base", "r1_zero"], reward_models={})
    stage(spec, "evaluate").pop("general_task")
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    result, stderr = run_cli(["validate", str(path)])
    assert result["code"] == 2 and not result["torch"], stderr
    assert "stage 'evaluate', field 'task'" in stderr and "qa.jsonl, line 2" in stderr and "answer" in stderr
    assert "on_bad_rows: drop" in stderr

    stage(spec, "evaluate")["task"]["on_bad_rows"] = "drop"
    path.write_text(yaml.safe_dump(spec))
    result, stderr = run_cli(["validate", str(path)])
    assert result["code"] == 0, stderr
