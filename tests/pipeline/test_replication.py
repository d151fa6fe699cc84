"""Replication over seeds: r1 run --seeds, r1 report on run directories, replication.json's schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from r1pipeline.cli import app
from r1pipeline.pipeline.replication import ReplicationError, check_runs, mean_curve, spec_difference
from tests.conftest import CONFIGS, ROOT
from tests.pipeline import fake_runs

ACC = {0: {"base": 0.05, "r1_zero": 1.0}, 1: {"base": 0.08, "r1_zero": 1.0}}  # a gain far above 0.40


def r1(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_report_on_two_run_directories_of_one_spec_writes_the_replication(tmp_path: Path):
    runs = fake_runs.seeds_runs(tmp_path / "runs", ACC)
    code, out = r1("report", *map(str, runs), "--out", str(tmp_path / "rep"))
    assert code == 0, out
    rep = json.loads((tmp_path / "rep" / "replication.json").read_text())
    assert rep["seeds"] == [0, 1] and rep["runs"] == [str(r) for r in runs] and rep["spec"] == "fake"
    gain = next(f for f in rep["findings"] if f["name"] == "r1_zero_gain")
    assert [p["seed"] for p in gain["per_seed"]] == [0, 1] and gain["verdict"] == "holds"
    pass1 = rep["metrics"]["heldout"]["base"]["pass@1"]
    assert pass1["mean"] == pytest.approx(sum(pass1["per_seed"]) / 2) and pass1["sd"] > 0
    assert rep["wall_minutes"]["per_seed"] == {"0": 2.0, "1": 2.0} and rep["wall_minutes"]["total"] == 4.0
    text = (tmp_path / "rep" / "report.md").read_text()
    first_table = text[text.index("|"):]
    assert first_table.startswith("| finding | claim | paper |") and "r1_zero_gain" in first_table.split("\n\n")[0]
    assert "| r1_zero | 1.000 ± 0.000 |" in text  # the metrics table: mean ± sd over seeds
    assert (tmp_path / "rep" / "r1_zero_seeds.png").exists()


def test_report_on_a_folder_of_seed_runs_writes_into_that_folder(tmp_path: Path):
    fake_runs.seeds_runs(tmp_path / "tiny-seeds", ACC)
    code, out = r1("report", str(tmp_path / "tiny-seeds"))
    assert code == 0, out
    assert json.loads((tmp_path / "tiny-seeds" / "replication.json").read_text())["seeds"] == [0, 1]


def test_runs_of_different_specs_are_refused_naming_the_difference(tmp_path: Path):
    a = fake_runs.write_run(tmp_path / "a", fake_runs.spec(0), fake_runs.reasoning_rows("base", 0.5, 0))
    b = fake_runs.write_run(tmp_path / "b", fake_runs.spec(1, k=8), fake_runs.reasoning_rows("base", 0.5, 1))
    code, out = r1("report", str(a), str(b), "--out", str(tmp_path / "rep"))
    assert code == 2 and "different specs" in out and "stages[1].k: 4 vs 8" in out and "fix:" in out
    assert not (tmp_path / "rep" / "replication.json").exists()


def test_two_runs_of_one_seed_and_missing_out_are_refused(tmp_path: Path):
    a = fake_runs.write_run(tmp_path / "a", fake_runs.spec(0), fake_runs.reasoning_rows("base", 0.5, 0))
    b = fake_runs.write_run(tmp_path / "b", fake_runs.spec(0), fake_runs.reasoning_rows("base", 0.5, 0))
    with pytest.raises(ReplicationError, match="seed 0 appears in more than one"):
        check_runs([a, b])
    code, out = r1("report", str(a), str(b))
    assert code == 2 and "--out" in out


def test_spec_differences_ignore_seed_base_dir_and_empty_defaults():
    a = {"seed": 0, "base_dir": "/x", "stages": [{"name": "e", "sets": {}}]}
    assert spec_difference(a, {"seed": 2, "base_dir": "/y", "stages": [{"name": "e"}]}) is None
    assert spec_difference(a, {"seed": 0, "stages": [{"name": "f"}]}) == "stages[0].name: 'e' vs 'f'"
    assert spec_difference(a, {"stages": [{"name": "e"}, {"name": "f"}]}) == "stages: 1 entries vs 2"


def test_the_mean_curve_is_taken_where_every_seed_logged():
    assert mean_curve([{1: 1.0, 2: 3.0}, {1: 3.0, 2: 5.0, 3: 9.0}]) == ([1, 2], [2.0, 4.0])


def test_a_single_run_report_begins_with_its_findings_and_survives_an_old_run(tmp_path: Path):
    rows = [r for m, a in ACC[0].items() for r in fake_runs.reasoning_rows(m, a, 0, with_new_columns=False)]
    declared = [{"name": "vote", "claim": "majority vote wins", "left": {"model": "r1_zero", "metric": "cons@k",
                                                                          "set": "hard"},
                 "right": {"model": "r1_zero", "metric": "pass@1", "set": "hard"}}]
    run = fake_runs.write_run(tmp_path / "old", fake_runs.spec(0, findings=declared), rows)
    code, out = r1("report", str(run))
    assert code == 0, out
    text = (run / "report.md").read_text()
    assert text.index("## Findings (seed 0)") < text.index("## Evaluation") and "**not measured**" in text


def test_run_with_seeds_runs_the_pipeline_once_per_seed_into_its_folder(tmp_path: Path, monkeypatch):
    from r1pipeline.pipeline import runner

    calls = []

    def fake_run_pipeline(spec, run_dir, only=None, from_=None, report=True, until=None, **kw):
        calls.append((spec.seed, Path(run_dir), only, spec.stage("r1_zero").learning_rate))
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        (Path(run_dir) / "spec.yaml").write_text(spec.to_yaml())
        return {}

    monkeypatch.setattr(runner, "run_pipeline", fake_run_pipeline)
    out = tmp_path / "micro-seeds"
    code, text = r1("run", str(CONFIGS / "micro.yaml"), "--seeds", "0,1,2", "--out", str(out),
                    "--only", "evaluate", "--set", "r1_zero.learning_rate=1e-4")
    assert code == 0, text
    assert calls == [(s, out / f"seed-{s}", "evaluate", 1e-4) for s in (0, 1, 2)]
    rep = json.loads((out / "replication.json").read_text())
    assert rep["seeds"] == [0, 1, 2] and all(f["verdict"] == "not measured" for f in rep["findings"])
    assert (out / "report.md").exists()


def test_run_with_seeds_defaults_to_a_seeds_folder_and_rejects_bad_lists(tmp_path: Path, monkeypatch):
    from r1pipeline.pipeline import runner

    dirs = []
    monkeypatch.setattr(runner, "run_pipeline", lambda spec, run_dir, **kw: dirs.append(Path(run_dir)) or {})
    monkeypatch.chdir(tmp_path)
    code, _ = r1("run", str(CONFIGS / "micro.yaml"), "--seeds", "3", "--no-report")
    assert dirs == [Path("runs") / "micro-seeds" / "seed-3"] and code == 2  # no spec.yaml written: no replication
    for bad in ("0,0", "0,x", ","):
        code, out = r1("run", str(CONFIGS / "micro.yaml"), "--seeds", bad)
        assert code == 2 and "--seeds" in out and "fix:" in out


def test_replication_json_schema_is_the_documented_one(tmp_path: Path):
    runs = fake_runs.seeds_runs(tmp_path / "runs", ACC)
    r1("report", *map(str, runs), "--out", str(tmp_path / "rep"))
    rep = json.loads((tmp_path / "rep" / "replication.json").read_text())
    assert set(rep) == {"spec", "seeds", "runs", "findings", "metrics", "wall_minutes"}
    f = rep["findings"][0]
    assert set(f) == {"name", "claim", "paper", "test", "margin", "effect", "per_seed", "mean", "ci_over_seeds",
                      "verdict"}
    assert set(f["per_seed"][0]) == {"seed", "effect", "ci", "holds"} and len(f["ci_over_seeds"]) == 2
    assert set(rep["metrics"]["heldout"]["base"]["pass@1"]) == {"per_seed", "mean", "sd"}
    assert set(rep["wall_minutes"]) == {"per_seed", "per_stage", "total"}
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Replication over seeds"):]
    for key in [*rep, *f, *f["per_seed"][0], "per_stage", "sd"]:
        assert f'"{key}"' in section, key
