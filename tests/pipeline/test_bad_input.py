"""Issue 13: every bad spec, override, flag and run directory of its table gets exit 2 and one
clear line (the place, the value shortened, the fix) before torch is imported; never a traceback.

One named test per row. The CLI cases run in one fresh interpreter (``run_cli_many``), which
also says whether torch was imported by then.
"""

from __future__ import annotations

import json
import shlex

import pytest
import yaml

from tests.conftest import CONFIGS
from tests.pipeline.test_run_failures import cli, fake_stages
from tests.pipeline.test_spec_errors import run_cli_many

MICRO_TEXT = (CONFIGS / "micro.yaml").read_text()
MICRO = str(CONFIGS / "micro.yaml")


def micro_text(old: str = "", new: str = "") -> str:
    """micro.yaml's text with ``old`` replaced by ``new`` once, its data paths still in configs/."""
    assert old in MICRO_TEXT
    return f"base_dir: {CONFIGS}\n" + MICRO_TEXT.replace(old, new, 1)


def after_steps(line: str) -> str:
    """micro.yaml with ``line`` added to r1_zero's block (after its ``steps: 4``)."""
    return micro_text("    steps: 4\n", f"    steps: 4\n    {line}\n")


BOMB = "".join([f"bomb0: &b0 [{', '.join(['lol'] * 9)}]\n"] +
               [f"bomb{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 9)}]\n" for i in range(1, 9)])

# name -> (spec text or bytes, extra CLI args, texts the one line of stderr must hold)
SPEC_CASES = {
    "utf16_with_bom": (micro_text().encode("utf-16"), [], ["UTF-16", "byte-order mark", "line 1", "iconv -f UTF-16"]),
    "utf16_without_bom": (micro_text().encode("utf-16-le"), [], ["looks like UTF-16", "byte 1", "line 1"]),
    "latin1_byte": (micro_text("Smoke-test", "Smoke-tést").encode("latin-1"), [],
                    ["not UTF-8", "byte 0xe9", "line 5", "column 21", "(byte ", "Latin-1", "iconv -f WINDOWS-1252"]),
    "integer_of_5000_digits": (micro_text("seed: 0", "seed: " + "7" * 5000), [],
                               ["line 6, column 7", "5000 characters is too large", "2**63 - 1"]),
    "nested_100000_brackets": (micro_text("seed: 0", "seed: " + "[" * 100_000), [],
                               ["line 6", "nested deeper than 64 levels"]),
    "alias_bomb_as_seed": (BOMB + micro_text("seed: 0", "seed: *b8"), [], ["alias bomb", "line 5", "10,000"]),
    "alias_bomb_as_reward_weight": (BOMB + micro_text("accuracy: 1.0", "accuracy: *b8"), [], ["alias bomb"]),
    "learning_rate_1e400": (after_steps("learning_rate: 1e400"), [],
                            ["stage 'r1_zero', field 'learning_rate'", "'1e400'", "not a finite number"]),
    "learning_rate_dot_inf": (after_steps("learning_rate: .inf"), [], ["line 27, column 20", "'.inf' is not a finite"]),
    "learning_rate_inf_as_text": (after_steps("learning_rate: inf"), [], ["field 'learning_rate'", "not a finite"]),
    "temperature_dot_inf": (after_steps("temperature: .inf"), [], ["line 27", "'.inf' is not a finite"]),
    "reward_weight_nan": (micro_text("accuracy: 1.0", "accuracy: .nan"), [], ["line 25", "'.nan' is not a finite"]),
    "reward_weight_inf": (micro_text("format: 0.5", "format: .inf"), [], ["line 25", "'.inf' is not a finite"]),
    "reward_weight_nan_as_text": (micro_text("format: 0.5", "format: nan"), [],
                                  ["field 'rewards.format'", "'nan' is not a number"]),
    "duplicate_key": (micro_text("    steps: 4\n", "    steps: 4\n    steps: 40\n"), [],
                      ["line 27, column 5", "key 'steps' appears twice", "lines 26 and 27", "keep one"]),
    "duplicate_top_level_key": (micro_text("seed: 0", "seed: 0\nseed: 1"), [], ["lines 6 and 7"]),
    "steps_true": (micro_text("    steps: 4\n", "    steps: true\n"), [],
                   ["stage 'r1_zero', field 'steps'", "got true, a boolean", "write the number"]),
    "count_false": (after_steps("mini_batches: true"), [], ["field 'mini_batches'", "got true, a boolean"]),
    "task_setting_true": (micro_text("n_digits: 3, weight: 0.8", "n_digits: 3, weight: true"), [],
                          ["stage 'base', field 'task.parts'", "parts[0].weight 'True' must be a positive finite"]),
    "seed_minus_one": (micro_text("seed: 0", "seed: -1"), [], ["field 'seed'", "-1 is outside 0 .. 4294967295"]),
    "seed_2_to_the_32": (micro_text("seed: 0", "seed: 4294967296"), [], ["field 'seed'", "4294967296 is outside"]),
    "stage_seed_minus_one": (after_steps("seed: -1"), [], ["stage 'r1_zero', field 'seed'", "outside"]),
}

# name -> (extra CLI args on micro.yaml, texts the one line of stderr must hold)
SET_CASES = {
    "set_non_finite": (["--set", "r1_zero.learning_rate=.inf"], ["field '--set'", "'.inf' is not a finite"]),
    "set_non_finite_text": (["--set", "r1_zero.learning_rate=1e400"], ["field 'learning_rate'", "not a finite"]),
    "set_reward_weight_nan": (["--set", "r1_zero.rewards.format=.nan"], ["field '--set'", "not a finite"]),
    "set_bool_for_int": (["--set", "r1_zero.steps=true"], ["field 'steps'", "boolean"]),
    "set_huge_integer": (["--set", "seed=" + "9" * 5000], ["field '--set'", "too large", "…"]),
    "set_deep_nesting": (["--set", "seed=" + "[" * 100_000], ["field '--set'", "nested deeper"]),
    "set_deep_key": (["--set", "r1_zero." + ".".join(["a"] * 50_000) + "=1"], ["field '--set'", "50001 parts"]),
    "set_duplicate_key": (["--set", "r1_zero.task={source: tiny_product, source: x}"], ["appears twice"]),
    "set_seed_out_of_range": (["--set", "seed=-1"], ["field 'seed'", "outside"]),
    "set_bytes_not_utf8": (["--set", "description=caf\udce9"], ["field '--set'", "not UTF-8 text (character 4)"]),
}

FLAG_CASES = {
    "only_nosuch": (["run", MICRO, "--only", "nosuch"], ["field '--only'", "no stage named 'nosuch'", "use one of"]),
    "from_misspelled": (["run", MICRO, "--from", "r1_zer"], ["field '--from'", "'r1_zer'"]),
    "until_empty": (["run", MICRO, "--until", ""], ["field '--until'", "no stage named ''"]),
    "seeds_minus_one": (["run", MICRO, "--seeds", "0,-1"], ["--seeds", "-1 is outside"]),
    "seeds_2_to_the_32": (["run", MICRO, "--seeds", "4294967296"], ["--seeds", "outside"]),
    "seeds_of_5000_digits": (["run", MICRO, "--seeds", "9" * 5000], ["--seeds '999", "…: not a comma-separated"]),
    "accelerate_config_missing": (["run", MICRO, "--num-processes", "2", "--accelerate-config", "nosuch.yaml"],
                                  ["--accelerate-config nosuch.yaml: no such file"]),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, tuple[dict, str]]:
    """Every case of this file's tables, run in one interpreter: name -> (exit code and torch, stderr)."""
    folder = tmp_path_factory.mktemp("bad")
    calls, names = [], []
    for name, (text, args, _) in SPEC_CASES.items():
        path = folder / f"{name}.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        calls.append(["validate", str(path), *args])
        names.append(name)
    for name, (args, _) in SET_CASES.items():
        calls.append(["validate", MICRO, *args])
        names.append(name)
    for name, (args, _) in FLAG_CASES.items():
        calls.append([*args, "--out", str(folder / "runs" / name)])
        names.append(name)
    return dict(zip(names, run_cli_many(calls), strict=True))


def assert_one_clear_line(result: tuple[dict, str], expected: list[str], one: bool = True) -> None:
    """Exit 2 before torch, no traceback, one short line (``one=False``: one line per problem,
    the first holding ``expected``) with a fix."""
    (outcome, stderr) = result
    assert outcome == {"code": 2, "torch": False}, stderr[-2000:]
    lines = stderr.strip().splitlines()
    assert (len(lines) == 1 or not one) and "Traceback" not in stderr, stderr[-2000:]
    assert all("fix: " in line and len(line) < 600 for line in lines), stderr[:2000]  # values shortened
    for text in expected:
        assert text in lines[0], f"{text!r} not in {lines[0]!r}"


@pytest.mark.parametrize("case", list(SPEC_CASES))
def test_bad_spec_is_refused_naming_the_place(case, results):
    assert_one_clear_line(results[case], SPEC_CASES[case][2])


@pytest.mark.parametrize("case", list(SET_CASES))
def test_set_overrides_get_the_same_checks(case, results):
    assert_one_clear_line(results[case], SET_CASES[case][1])


@pytest.mark.parametrize("case", list(FLAG_CASES))
def test_bad_flags_are_refused_before_torch(case, results):
    assert_one_clear_line(results[case], FLAG_CASES[case][1])


def test_largest_seed_numpy_and_torch_take_is_accepted():
    (outcome, stderr), = run_cli_many([["validate", MICRO, "--set", "seed=4294967295", "--set", "base.seed=0"]])
    assert outcome == {"code": 0, "torch": False}, stderr


def test_out_naming_a_regular_file(tmp_path):
    (tmp_path / "taken").write_text("not a folder")
    calls = [["run", MICRO, "--out", str(tmp_path / "taken")], ["run", MICRO, "--out", str(tmp_path / "taken" / "x")],
             ["run", MICRO, "--seeds", "0,1", "--out", str(tmp_path / "taken")]]
    for result in run_cli_many(calls):
        assert_one_clear_line(result, ["--out", "taken", "a file, not a folder", "give a folder"])


def test_out_in_a_folder_that_cannot_be_written(tmp_path, monkeypatch, capsys):
    """As root every folder is writable; ``os.access`` stands in for a read-only one."""
    import os

    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(tmp_path) else real(p, mode, **kw))
    code, err = cli(monkeypatch, capsys, ["run", MICRO, "--out", str(tmp_path / "run")])
    assert code == 2 and "Traceback" not in err
    assert f"{tmp_path} cannot be written (permission denied)" in err and "fix: give a folder you can write" in err


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_out_where_no_folder_can_be_made_even_as_root():
    """/proc takes no new folders, whoever asks: the check tries, as the run would."""
    (result,) = run_cli_many([["run", MICRO, "--out", "/proc/r1-no-such-run"]])
    assert_one_clear_line(result, ["--out /proc/r1-no-such-run: cannot be written", "give a folder you can write"])


JUNK_SPECS = {
    "invalid_yaml": (b"stages: [1,\n", ["spec.yaml: line 2", "invalid YAML"]),
    "not_utf8": ("name: caf\xe9\n".encode("latin-1"), ["not UTF-8", "Latin-1"]),
    "no_stages": (b"name: x\n", ["spec.yaml: no stages", "r1 run"]),
    "empty_stages": (b"name: x\nstages: []\n", ["no stages"]),
    "not_a_mapping": (b"- 1\n- 2\n", ["not a pipeline spec"]),
    "stages_not_mappings": (b"stages: [1, two]\n", ["not a pipeline spec"]),
    "stage_without_kind": (b"stages: [{name: a}]\n", ["stage 'a', field 'kind'", "unknown kind None"]),
}


@pytest.mark.parametrize("command", ["eval", "report"])
def test_eval_and_report_of_a_run_whose_spec_is_junk(command, tmp_path):
    calls = []
    for name, (content, _) in JUNK_SPECS.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "spec.yaml").write_bytes(content)
        calls.append([command, str(tmp_path / name)])
    for name, result in zip(JUNK_SPECS, run_cli_many(calls), strict=True):
        if name == "stage_without_kind":  # eval: the stage and its own block miss fields; a report needs none
            if command == "eval":
                assert_one_clear_line(result, JUNK_SPECS[name][1], one=False)
            continue
        assert_one_clear_line(result, JUNK_SPECS[name][1])


def test_eval_of_a_folder_that_is_no_run(tmp_path):
    (tmp_path / "file").write_text("x")
    calls = [["eval", str(tmp_path / "nosuch")], ["eval", str(tmp_path / "file")], ["eval", str(tmp_path)]]
    expected = [["no such folder"], ["is a file, not a folder"], ["no spec.yaml"]]
    for result, texts in zip(run_cli_many(calls), expected, strict=True):
        assert_one_clear_line(result, texts)


def test_eval_whose_stage_fails_ends_with_the_stage_the_error_and_the_command(tmp_path, monkeypatch, capsys):
    """Like ``r1 run`` (test_run_failures.py): the stage's traceback, then the last line."""
    out = tmp_path / "run"
    fake_stages(monkeypatch)
    code, err = cli(monkeypatch, capsys, ["run", MICRO, "--out", str(out), "--until", "base", "--no-report"])
    assert code in (0, None), err
    fake_stages(monkeypatch, fail="eval", error=RuntimeError("CUDA out of memory"))
    args = ["eval", str(out), "--models", "base", "--k", "1"]
    code, err = cli(monkeypatch, capsys, args)
    assert code == 1
    assert err.strip().splitlines()[-1] == (f"[r1] stage 'eval' failed: RuntimeError: CUDA out of memory; "
                                            f"resume: r1 {shlex.join(args)}")
    assert json.loads((out / "eval" / "manifest.json").read_text())["status"] == "failed"


def test_the_run_dir_spec_written_by_r1_run_is_read_back_by_eval(tmp_path, monkeypatch, capsys):
    """The stricter reader still reads what ``Spec.to_yaml`` writes (the happy path of ``r1 eval``)."""
    from r1pipeline.pipeline.yaml_load import read_yaml

    out = tmp_path / "run"
    fake_stages(monkeypatch)
    cli(monkeypatch, capsys, ["run", MICRO, "--out", str(out), "--until", "base", "--no-report"])
    assert read_yaml(out / "spec.yaml") == yaml.safe_load((out / "spec.yaml").read_text())


def test_report_of_a_run_whose_manifests_are_tampered_with(tmp_path):
    """Manifests that are a folder, not UTF-8, or JSON of the wrong shape: exit 2 naming the run."""
    from r1pipeline.rundir import read_json

    (tmp_path / "spec.yaml").write_text("name: x\nstages:\n  - {name: base, kind: pretrain}\n"
                                        "  - {name: evaluate, kind: evaluate}\n")
    for stage in ("base", "evaluate"):
        (tmp_path / stage).mkdir()
    (tmp_path / "base" / "manifest.json").write_bytes(b"\xff\xfe{")
    (tmp_path / "base" / "summary.json").mkdir()
    (tmp_path / "evaluate" / "manifest.json").write_text('"done"')
    assert read_json(tmp_path / "base" / "manifest.json") is None and read_json(tmp_path / "base" / "summary.json") is None
    (outcome, stderr), = run_cli_many([["report", str(tmp_path)]])
    if outcome["code"] != 0:  # the report may also cope with them; it must not end in a traceback
        assert_one_clear_line((outcome, stderr), [f"{tmp_path}: the report could not be written", "rerun 'r1 run"])
    assert "Traceback" not in stderr


def test_a_manifest_that_is_not_a_manifest_is_run_again(tmp_path, monkeypatch, capsys):
    """A run directory tampered with (a manifest that is a JSON list, or not UTF-8) reruns the stage."""
    out = tmp_path / "run"
    (out / "base").mkdir(parents=True)
    (out / "base" / "manifest.json").write_text("[1, 2]")
    ran = fake_stages(monkeypatch)
    code, err = cli(monkeypatch, capsys, ["run", MICRO, "--out", str(out), "--until", "base", "--no-report"])
    assert code in (0, None), err
    assert ran == ["base"] and json.loads((out / "base" / "manifest.json").read_text())["status"] == "done"
