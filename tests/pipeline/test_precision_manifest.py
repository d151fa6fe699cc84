"""The manifest says which dtype a stage computed in and why (``precision``), outside its hash."""

from __future__ import annotations

import json

from r1pipeline import precision
from r1pipeline.pipeline.runner import run_stage, stage_hashes
from r1pipeline.pipeline.spec import load_spec
from tests.conftest import CONFIGS


def test_a_stage_records_the_precision_it_resolved_and_keeps_its_hash(monkeypatch, tmp_path):
    monkeypatch.setenv(precision.ENV_FORCE, "bfloat16")  # auto -> bf16 without measuring
    spec = load_spec(CONFIGS / "micro.yaml", ["base.steps=2", "base.warmup_steps=1"])
    hashes = stage_hashes(spec)
    run_stage(spec, spec.stage("base"), tmp_path, hashes, resume=False, log=lambda *_: None)
    manifest = json.loads((tmp_path / "base" / "manifest.json").read_text())
    assert manifest["status"] == "done" and manifest["config"]["dtype"] == "auto"
    train = manifest["precision"]["train"]
    assert (train["requested"], train["dtype"], train["source"]) == ("auto", "bfloat16", "env")
    assert "R1_DTYPE_AUTO" in train["reason"]
    monkeypatch.setenv(precision.ENV_FORCE, "float32")
    assert manifest["hash"] == stage_hashes(spec)["base"]  # what auto resolved to is not hashed
