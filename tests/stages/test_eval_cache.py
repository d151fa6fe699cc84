"""The evaluate stage's completion cache: a changed evaluation samples only what changed, a killed
one resumes after its last finished model (generation replaced by canned completions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1pipeline.rundir import MANIFEST, write_json
from r1pipeline.stages import eval_cache, evaluate
from r1pipeline.stages.base import StageContext
from tests.conftest import CONFIGS
from tests.stages.test_evaluate_sets import canned, cfg

HARD = {"task": {"source": "tiny_product", "n_digits": 6}, "n_prompts": 3, "max_new_tokens": 40, "models": ["b"]}


def finished(stage_dir: Path, hash_: str, ended: str = "2026-12-07T00:00:00") -> Path:
    write_json(stage_dir / MANIFEST, {"stage": stage_dir.name, "hash": hash_, "status": "done", "ended": ended})
    return stage_dir


@pytest.fixture
def run(tmp_path, monkeypatch):
    """``run(config)``: the evaluate stage over two finished models a and b; returns (summary,
    the jobs sampled, per model, as (n_prompts, temperature), samples.jsonl's rows)."""
    dirs = {m: finished(tmp_path / m, f"hash-{m}") for m in ("a", "b")}

    def go(config, fail_on: str | None = None):
        calls: list = []

        def fake_sample_sets(c, path, jobs, label):
            model = Path(path).parent.name
            if model == fail_on:
                raise KeyboardInterrupt  # killed while sampling this model
            calls.append((model, [(len(j.prompts), j.temperature) for j in jobs]))
            return [canned(j.prompts, j.max_new_tokens) for j in jobs]

        monkeypatch.setattr(evaluate, "sample_sets", fake_sample_sets)
        ctx = StageContext(name="evaluate", dir=tmp_path / "evaluate", run_dir=tmp_path, seed=0, input_dirs=dirs)
        summary = evaluate.run(config.model_copy(update={"dtype": "float32"}), ctx, str(CONFIGS))
        rows = [json.loads(line) for line in (tmp_path / "evaluate" / "data" / "samples.jsonl").open()]
        return summary, calls, rows

    return go


def test_a_second_evaluation_samples_nothing_and_writes_the_same_rows(run):
    first, calls, rows = run(cfg(sets={"hard": HARD}))
    assert [m for m, _ in calls] == ["a", "b"] and first["reused_jobs"] == {}
    again, calls, rows_again = run(cfg(sets={"hard": HARD}))
    assert calls == [] and again["reused_jobs"] == {"a": 1, "b": 2}
    assert rows_again == rows and again["models"] == first["models"]


def test_a_set_added_or_resampled_hotter_samples_only_that_set(run):
    run(cfg())
    _, calls, _ = run(cfg(sets={"hard": HARD}))
    assert calls == [("b", [(3, 0.6)])]  # the main and general prompts of a and b came from the cache
    _, calls, _ = run(cfg(sets={"hard": {**HARD, "temperature": 1.5}}))
    assert calls == [("b", [(3, 1.5)])]


def test_a_killed_evaluation_resumes_after_its_last_finished_model(run):
    with pytest.raises(KeyboardInterrupt):
        run(cfg(), fail_on="b")
    _, calls, _ = run(cfg())
    assert [m for m, _ in calls] == ["b"]


def test_a_retrained_model_is_sampled_again(run, tmp_path):
    run(cfg())
    finished(tmp_path / "a", "hash-a", ended="2026-12-08T00:00:00")  # r1 run --from a: same hash, new weights
    _, calls, _ = run(cfg())
    assert [m for m, _ in calls] == ["a"]


def test_a_model_outside_the_run_or_unfinished_is_not_cached(tmp_path):
    assert eval_cache.model_id(None) is None and eval_cache.model_id(tmp_path / "nowhere") is None
    write_json(tmp_path / "x" / MANIFEST, {"hash": "h", "status": "running"})
    assert eval_cache.model_id(tmp_path / "x") is None


@pytest.mark.parametrize("garbage", ["{not json", '{"groups": [[["t", 3, false]]]}', '{"groups": 7}', "[]"])
def test_a_torn_or_foreign_cache_file_is_sampled_again(tmp_path, garbage):
    path = tmp_path / eval_cache.CACHE_DIR / "k.json"
    path.parent.mkdir(parents=True)
    path.write_text(garbage)
    assert eval_cache.load(tmp_path, "k", n_prompts=2, k=1) is None


def test_stored_completions_read_back_as_they_were(tmp_path):
    groups = canned(["User: 3*4 Assistant: "], 9)
    eval_cache.store(tmp_path, "k", groups, "a: job 0")
    assert eval_cache.load(tmp_path, "k", n_prompts=1, k=2) == groups
    assert eval_cache.load(tmp_path, "k", n_prompts=1, k=4) is None  # another k: not this job's
