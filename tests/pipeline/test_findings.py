"""Findings as data: declared findings parsed and checked, measured from samples, judged over seeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1pipeline.pipeline.findings import (DEFAULT_FINDINGS, Finding, evaluate_findings, parse_findings, passes,
                                          spec_findings, verdict)
from r1pipeline.pipeline.spec import SpecError, load_spec
from tests.conftest import CONFIGS
from tests.pipeline import fake_runs

GAIN = {"name": "gain", "claim": "RL beats the base", "left": {"model": "r1_zero", "metric": "pass@1"},
        "right": {"model": "base", "metric": "pass@1"}, "test": "greater", "margin": 0.1}


def problems(findings: str) -> list:
    with pytest.raises(SpecError) as err:
        load_spec(CONFIGS / "micro.yaml", [f"findings={findings}"])
    return err.value.problems


def fields(found) -> set[str]:
    return {p.field for p in found}


def test_a_declared_finding_is_parsed_into_the_spec():
    spec = load_spec(CONFIGS / "micro.yaml", ["findings=[{name: gain, claim: c, left: {model: r1_zero, metric: pass@1},"
                                              " right: 0.5}]"])
    (f,) = spec.findings
    assert f.right == 0.5 and f.test == "greater" and f.left.set_name == "heldout"
    assert "findings:" in spec.to_yaml()


def test_a_misspelled_field_names_the_finding_and_suggests_the_field():
    found = problems("[{name: gain, claim: c, left: {modle: r1_zero, metric: pass@1}, right: 0.5}]")
    assert "findings.gain.left.modle" in fields(found)
    assert any("did you mean 'model'" in p.fix for p in found)


def test_a_right_side_mapping_reports_its_own_errors_not_the_number_branch():
    found, errs = parse_findings([{"name": "g", "claim": "c", "left": {"model": "a", "metric": "pass@1"},
                                   "right": {"model": "b"}}])
    assert not found and fields(errs) == {"findings.g.right.metric"}


def test_bad_test_and_negative_margin_are_problems():
    found = problems("[{name: g, claim: c, left: {model: base, metric: pass@1}, right: 0.5, test: bigger, margin: -1}]")
    assert {"findings.g.test", "findings.g.margin"} <= fields(found)


@pytest.mark.parametrize("left,field,fix", [
    ("{model: bsae, metric: pass@1}", "findings.g.left.model", "did you mean 'base'"),
    ("{model: base, metric: pass1}", "findings.g.left.metric", "did you mean 'pass@1'"),
    ("{model: base, metric: pass@1, set: hard}", "findings.g.left.set", "heldout"),
    ("{model: base, metric: oracle_helpfulness, set: heldout}", "findings.g.left.set", "drop set"),
])
def test_sides_must_name_what_the_evaluate_stage_measures(left: str, field: str, fix: str):
    found = problems(f"[{{name: g, claim: c, left: {left}, right: 0.5}}]")
    assert any(p.field == field and fix in p.fix for p in found), [str(p) for p in found]


def test_a_model_outside_a_sets_models_is_a_problem():
    with pytest.raises(SpecError) as err:
        load_spec(CONFIGS / "micro.yaml", ["evaluate.sets={hard: {task: {source: tiny_product}, models: [base]}}",
                                           "findings=[{name: g, claim: c, left: {model: r1_zero, metric: cons@k, "
                                           "set: hard}, right: 0.5}]"])
    assert any(p.field == "findings.g.left.model" and "'hard'" in p.message for p in err.value.problems)


def test_two_findings_with_one_name_are_a_problem():
    one = "{name: g, claim: c, left: {model: base, metric: pass@1}, right: 0.5}"
    assert "findings.g" in fields(problems(f"[{one}, {one}]"))


def test_defaults_keep_only_the_findings_whose_models_are_evaluated():
    assert [f.name for f in spec_findings(fake_runs.spec())] == ["r1_zero_gain", "r1_zero_length"]
    micro = load_spec(CONFIGS / "micro.yaml")
    names = [f.name for f in spec_findings({"stages": [s.model_dump() for s in micro.stages]})]
    assert names == [f.name for f in DEFAULT_FINDINGS]
    assert spec_findings({**fake_runs.spec(), "findings": []}) == []


def test_the_tests_criterion_and_its_margin():
    assert passes("greater", 0.0, 0.01) and not passes("greater", 0.0, 0.0)
    assert passes("non_inferior", 0.03, -0.029) and not passes("non_inferior", 0.03, -0.031)


def test_verdict_rules():
    assert verdict([True, True, True], [0.05, 0.2], "greater", 0.0) == "holds"
    assert verdict([True, True, True], [-0.01, 0.2], "greater", 0.0) == "mixed"  # seeds hold, the mean is unsure
    assert verdict([True, False, True], [0.05, 0.2], "greater", 0.0) == "mixed"
    assert verdict([False, False], [0.05, 0.2], "greater", 0.0) == "fails"
    assert verdict([True], None, "greater", 0.0) == "holds"
    assert verdict([True, None], None, "greater", 0.0) == "not measured"


def judged(tmp_path: Path, accuracies: dict[int, dict[str, float]], finding: dict = GAIN) -> dict:
    runs = fake_runs.seeds_runs(tmp_path, accuracies, findings=[finding])
    spec = {**fake_runs.spec(findings=[finding])}
    (result,) = evaluate_findings(spec, [(seed, d) for seed, d in zip(accuracies, runs)])
    return result


def test_a_clear_effect_on_every_seed_holds(tmp_path: Path):
    r = judged(tmp_path, {s: {"base": 0.2, "r1_zero": 0.9} for s in (0, 1, 2)})
    assert r["verdict"] == "holds" and all(p["holds"] for p in r["per_seed"])
    assert [p["seed"] for p in r["per_seed"]] == [0, 1, 2]
    for p in r["per_seed"]:
        assert p["ci"][0] <= p["effect"] <= p["ci"][1] and p["ci"][0] > 0.1
    lo, hi = r["ci_over_seeds"]
    assert lo <= r["mean"] <= hi and r["mean"] == pytest.approx(sum(p["effect"] for p in r["per_seed"]) / 3)


def test_a_seed_whose_samples_fail_makes_the_finding_mixed(tmp_path: Path):
    r = judged(tmp_path, {0: {"base": 0.2, "r1_zero": 0.9}, 1: {"base": 0.2, "r1_zero": 0.0},
                          2: {"base": 0.2, "r1_zero": 0.9}})
    assert [p["holds"] for p in r["per_seed"]] == [True, False, True] and r["verdict"] == "mixed"


def test_no_effect_on_any_seed_fails(tmp_path: Path):
    r = judged(tmp_path, {s: {"base": 0.5, "r1_zero": 0.5} for s in (0, 1)})
    assert r["verdict"] == "fails"


def test_the_per_seed_effect_is_the_difference_of_the_summary_numbers(tmp_path: Path):
    import json

    r = judged(tmp_path, {0: {"base": 0.3, "r1_zero": 0.8}})
    summary = json.loads((tmp_path / "seed-0" / "evaluate" / "summary.json").read_text())["models"]
    assert r["per_seed"][0]["effect"] == pytest.approx(summary["r1_zero"]["pass@1"] - summary["base"]["pass@1"])
    assert r["ci_over_seeds"] is None and r["verdict"] in ("holds", "fails")


def test_scale_and_constant_sides(tmp_path: Path):
    length = {"name": "longer", "claim": "c", "left": {"model": "r1_zero", "metric": "mean_length"},
              "right": {"model": "base", "metric": "mean_length", "scale": 2.0}}
    assert judged(tmp_path / "a", {0: {"base": 0.5, "r1_zero": 0.5}}, length)["per_seed"][0]["effect"] == \
        pytest.approx(11.5 - 2 * 11.5)  # both 10..13 tokens
    const = {"name": "high", "claim": "c", "left": {"model": "r1_zero", "metric": "pass@1"}, "right": 0.5}
    r = judged(tmp_path / "b", {0: {"base": 0.5, "r1_zero": 0.95}}, const)
    assert r["verdict"] == "holds" and r["effect"] == "r1_zero pass@1 - 0.5"


def test_findings_on_samples_a_run_lacks_are_not_measured(tmp_path: Path):
    # a run from before sets and general rows: rows without "set" or "ends_clean", no oracle rows
    rows = [r for m, a in (("base", 0.2), ("r1_zero", 0.9)) for r in
            fake_runs.reasoning_rows(m, a, 0, with_new_columns=False)]
    run = fake_runs.write_run(tmp_path / "old", fake_runs.spec(), rows)
    declared = [GAIN, {"name": "clean", "claim": "c", "left": {"model": "r1_zero", "metric": "ends_clean_rate"},
                       "right": 0.9},
                {"name": "helpful", "claim": "c", "left": {"model": "r1_zero", "metric": "oracle_helpfulness"},
                 "right": {"model": "base", "metric": "oracle_helpfulness"}},
                {"name": "vote", "claim": "c", "left": {"model": "r1_zero", "metric": "cons@k", "set": "hard"},
                 "right": {"model": "r1_zero", "metric": "pass@1", "set": "hard"}}]
    results = {r["name"]: r for r in evaluate_findings(fake_runs.spec(findings=declared), [(0, run)])}
    assert results["gain"]["verdict"] == "holds"
    assert results["clean"]["verdict"] == "holds"  # ends_clean recomputed from the text
    assert results["helpful"]["verdict"] == results["vote"]["verdict"] == "not measured"
    assert results["vote"]["per_seed"] == [{"seed": 0, "effect": None, "ci": None, "holds": None}]


def test_oracle_findings_read_the_general_rows_of_their_objective(tmp_path: Path):
    rows = [r for m, h in (("base", 0.3), ("r1_zero", 0.95)) for r in fake_runs.general_rows(m, h, 0)]
    rows += fake_runs.reasoning_rows("base", 0.5, 0) + fake_runs.reasoning_rows("r1_zero", 0.5, 0)
    run = fake_runs.write_run(tmp_path / "g", fake_runs.spec(general=True), rows)
    f = {"name": "helpful", "claim": "c", "left": {"model": "r1_zero", "metric": "oracle_helpfulness"},
         "right": {"model": "base", "metric": "oracle_helpfulness"}}
    (r,) = evaluate_findings(fake_runs.spec(general=True, findings=[f]), [(0, run)])
    helpful = [x for x in rows if x.get("objective") == "helpfulness"]
    by_model = {m: sum(x["oracle"] for x in helpful if x["model"] == m) / sum(x["model"] == m for x in helpful)
                for m in ("base", "r1_zero")}
    assert r["per_seed"][0]["effect"] == pytest.approx(by_model["r1_zero"] - by_model["base"])


def test_default_findings_are_valid_declarations():
    for f in DEFAULT_FINDINGS:
        assert Finding.model_validate(f.model_dump()) == f
