"""bench/processes.py's table on fake manifests: stages in the order they ran, ratios one/many."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("bench_processes", ROOT / "bench" / "processes.py")
bench = sys.modules["bench_processes"] = importlib.util.module_from_spec(spec)  # bench/ holds scripts
spec.loader.exec_module(bench)


def fake_run(root: Path, seconds: dict[str, float]) -> Path:
    for i, (stage, s) in enumerate(seconds.items()):
        (root / stage).mkdir(parents=True)
        (root / stage / "manifest.json").write_text(json.dumps(
            {"stage": stage, "seconds": s, "started": f"2026-12-07T12:00:{i:02d}+00:00"}))
    return root


def test_stage_seconds_keep_the_order_the_stages_ran(tmp_path: Path):
    run = fake_run(tmp_path / "one", {"zeta": 3.0, "alpha": 1.0, "mid": 2.0})
    assert list(bench.stage_seconds(run)) == ["zeta", "alpha", "mid"]


def test_table_gives_one_over_many_and_marks_a_missing_stage():
    lines = bench.table({"base": 10.0, "sft": 4.0}, {"base": 8.0}, 2)
    assert "2 processes s" in lines[0]
    assert lines[1].split()[-1] == "1.25x" and lines[1].split()[0] == "base"
    assert lines[2].split() == ["sft", "4.0", "-"]
