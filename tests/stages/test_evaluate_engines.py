"""The evaluate stage's generation on both engines (vLLM's case skips where it is not installed)."""

from __future__ import annotations

import pytest

from r1pipeline.stages.evaluate import Config, sample
from tests.rollout.conftest import tiny_dir  # noqa: F401  (the engines' tiny model, a fixture)

PROMPTS = ["User: 3*4 Assistant: ", "User: 1*2 Assistant: "]


def cfg(**kw) -> Config:
    return Config(name="evaluate", kind="evaluate", models=["m"], task={"source": "tiny_world"}, k=3,
                  max_new_tokens=5, **kw)


def test_hf_engine_in_bf16_gives_k_seeded_samples_per_prompt(tiny_dir):
    a = sample(cfg(dtype="bfloat16"), tiny_dir, PROMPTS, seed=0, label="t")
    b = sample(cfg(dtype="bfloat16", batch_size=2), tiny_dir, PROMPTS, seed=0, label="t")
    assert [len(g) for g in a] == [3, 3]
    assert [[c.text for c in g] for g in a] == [[c.text for c in g] for g in b]  # batch-independent
    assert all(1 <= c.n_tokens <= 5 for g in a for c in g)


def test_auto_without_vllm_is_hf(tiny_dir, monkeypatch):
    from r1pipeline.rollout import base

    monkeypatch.setattr(base, "vllm_available", lambda: False)
    auto = sample(cfg(engine="auto"), tiny_dir, PROMPTS, seed=1, label="t")
    hf = sample(cfg(engine="hf"), tiny_dir, PROMPTS, seed=1, label="t")
    assert [[c.text for c in g] for g in auto] == [[c.text for c in g] for g in hf]


def test_asking_for_vllm_where_it_is_missing_is_a_spec_problem(monkeypatch):
    from r1pipeline.rollout import base

    from r1pipeline.pipeline.spec import SpecError, load_spec
    from tests.conftest import CONFIGS

    monkeypatch.setattr(base, "vllm_available", lambda: False)
    with pytest.raises(SpecError) as err:
        load_spec(CONFIGS / "micro.yaml", ["evaluate.engine=vllm"])
    assert any(p.stage == "evaluate" and p.field == "engine" for p in err.value.problems)


def test_default_engine_and_dtype_keep_the_hash_of_earlier_runs():
    assert not {"engine", "dtype"} & set(cfg().hashed_config())
    assert cfg(dtype="bfloat16").hashed_config() != cfg().hashed_config()


@pytest.mark.slow
def test_vllm_engine_gives_k_samples_per_prompt(tiny_dir):
    pytest.importorskip("vllm")
    out = sample(cfg(engine="vllm", dtype="bfloat16"), tiny_dir, PROMPTS, seed=0, label="t")
    assert [len(g) for g in out] == [3, 3]
    assert all(1 <= c.n_tokens <= 5 for g in out for c in g)
