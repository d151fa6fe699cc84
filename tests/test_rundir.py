"""Atomic writes: a failure part-way never leaves a finished-looking artifact."""

from __future__ import annotations

import pytest

from r1pipeline.rundir import MetricsLog, atomic_dir, read_json, write_json


def test_atomic_dir_leaves_nothing_when_the_block_fails(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "weights").write_text("half")
            raise RuntimeError("killed")
    assert not target.exists() and not (tmp_path / "model.tmp").exists()


def test_atomic_dir_replaces_an_older_artifact(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old").write_text("x")
    with atomic_dir(target) as tmp:
        (tmp / "new").write_text("y")
    assert [p.name for p in target.iterdir()] == ["new"]


def test_json_round_trip_and_unreadable_json_reads_as_missing(tmp_path):
    write_json(tmp_path / "m.json", {"a": 1})
    assert read_json(tmp_path / "m.json") == {"a": 1}
    (tmp_path / "torn.json").write_text('{"a": ')
    assert read_json(tmp_path / "torn.json") is None
    assert not list(tmp_path.glob(".*.tmp"))


def test_metrics_truncate_after_a_resumed_step_and_skip_a_torn_last_line(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    for step in range(1, 6):
        log.log({"step": step, "loss": 1.0 / step})
    with log.path.open("a") as f:
        f.write('{"step": 6, "lo')  # a kill mid-write
    assert [r["step"] for r in log.read()] == [1, 2, 3, 4, 5]
    log.truncate_after(3)
    assert [r["step"] for r in log.read()] == [1, 2, 3]


def test_a_changed_data_file_changes_the_hash_of_the_stages_that_read_it(tmp_path):
    import yaml

    from r1pipeline.pipeline.runner import stage_hashes
    from r1pipeline.pipeline.spec import validate_raw
    from tests.conftest import CONFIGS

    data = tmp_path / "data"
    data.mkdir()
    (data / "tiny_cold_start.jsonl").write_text((CONFIGS / "data" / "tiny_cold_start.jsonl").read_text())
    raw = yaml.safe_load((CONFIGS / "micro.yaml").read_text())
    before = stage_hashes(validate_raw(raw, base_dir=tmp_path))
    with (data / "tiny_cold_start.jsonl").open("a") as f:
        f.write('{"question": "2*3", "answer": "6", "completion": "<think>2*3=6</think><answer>6</answer>"}\n')
    after = stage_hashes(validate_raw(raw, base_dir=tmp_path))
    changed = {name for name in before if before[name] != after[name]}
    assert "cold_start" in changed and "cold_start_sft" in changed
    assert "base" not in changed and "r1_zero" not in changed


def test_an_unset_p_good_harmful_leaves_the_sample_stage_hash_as_before_the_field_existed():
    from r1pipeline.stages.sample import Config

    stage = {"name": "rs", "kind": "sample", "task": {"source": "tiny_product"},
             "sources": [{"type": "model", "model": "m", "prompts": 4, "k": 1}],
             "non_reasoning": {"task": {"source": "tiny_general"}, "n": 8, "p_good": 0.6}}
    assert "p_good_harmful" not in Config(**stage).hashed_config()["non_reasoning"]
    set_it = {**stage, "non_reasoning": {**stage["non_reasoning"], "p_good_harmful": 0.3}}
    assert Config(**set_it).hashed_config()["non_reasoning"]["p_good_harmful"] == 0.3
