"""The engine interface on the HF backend: shapes, seeds, weight sync, truncation, engine choice."""

from __future__ import annotations

import pytest
import torch

from r1pipeline.rollout import base
from r1pipeline.rollout.base import Completion, make_engine, resolve_kind
from r1pipeline.rollout.hf import HFEngine, SeededSampler, generate
from tests.rollout.helpers import force_token, token_ids

PROMPTS = ["User: 3*4 Assistant: ", "User: 1*2*3 Assistant: <think>"]


@pytest.fixture
def engine(tiny_dir):
    eng = HFEngine(tiny_dir, dtype="float32")
    yield eng
    eng.close()


def test_generate_gives_num_samples_per_prompt_in_prompt_order(engine):
    out = engine.generate(PROMPTS, num_samples=3, max_new_tokens=6, seed=0)
    assert [len(g) for g in out] == [3, 3]
    for c in (c for g in out for c in g):
        assert isinstance(c, Completion) and 1 <= c.n_tokens <= 6
        assert len(c.token_ids) == c.n_tokens
        assert c.text == engine.tokenizer.decode(list(c.token_ids), skip_special_tokens=True)


def test_token_id_prompts_equal_text_prompts(engine):
    ids = [engine.tokenizer(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    by_text = engine.generate(PROMPTS, num_samples=2, max_new_tokens=5, seed=4)
    by_ids = engine.generate(ids, num_samples=2, max_new_tokens=5, seed=4)
    assert token_ids(by_text) == token_ids(by_ids)


def test_same_seed_same_samples_other_seed_other_samples(engine):
    a = engine.generate(PROMPTS, num_samples=3, max_new_tokens=6, seed=1)
    b = engine.generate(PROMPTS, num_samples=3, max_new_tokens=6, seed=1)
    c = engine.generate(PROMPTS, num_samples=3, max_new_tokens=6, seed=2)
    assert token_ids(a) == token_ids(b) != token_ids(c)


def test_generate_leaves_the_global_rng_alone(engine):
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    engine.generate(PROMPTS, max_new_tokens=3, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_update_weights_follows_the_policy(engine, policy):
    before = engine.generate(PROMPTS, num_samples=2, max_new_tokens=8, seed=0)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    engine.update_weights(policy)
    after = engine.generate(PROMPTS, num_samples=2, max_new_tokens=8, seed=0)
    assert token_ids(after) != token_ids(before)
    assert all(torch.equal(a, b) for a, b in zip(engine.model.parameters(), policy.parameters()))


def test_update_weights_casts_to_the_engine_dtype(tiny_dir, policy):
    eng = HFEngine(tiny_dir, dtype="bfloat16")
    eng.update_weights(policy)
    assert {p.dtype for p in eng.model.parameters()} == {torch.bfloat16}
    assert len(eng.generate(PROMPTS, max_new_tokens=4)[0]) == 1


def test_end_of_sequence_ends_a_completion_untruncated(engine):
    eos = engine.tokenizer.eos_token_id
    handle = force_token(engine.model, eos, 1e4)
    out = engine.generate(PROMPTS, num_samples=2, max_new_tokens=6)
    handle.remove()
    assert all(c.token_ids == (eos,) and c.n_tokens == 1 and not c.truncated and c.text == ""
               for g in out for c in g)


def test_length_limit_marks_a_completion_truncated(engine):
    handle = force_token(engine.model, engine.tokenizer.eos_token_id, -1e4)
    out = engine.generate(PROMPTS, num_samples=2, max_new_tokens=5)
    handle.remove()
    assert all(c.truncated and c.n_tokens == 5 for g in out for c in g)


def test_function_api_still_returns_completions(tiny_dir, policy):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    out = generate(policy, tok, PROMPTS, num_samples=2, max_new_tokens=4, seed=0)
    again = generate(policy, tok, PROMPTS, num_samples=2, max_new_tokens=4, seed=0)
    assert [[(c.text, c.n_tokens, c.truncated) for c in g] for g in out] == \
        [[(c.text, c.n_tokens, c.truncated) for c in g] for g in again]
    assert all(len(c.token_ids) == c.n_tokens for g in out for c in g)
    greedy = generate(policy, tok, PROMPTS, greedy=True, max_new_tokens=4)
    assert [len(g) for g in greedy] == [1, 1]


def test_auto_picks_vllm_only_when_installed(monkeypatch, tiny_dir):
    monkeypatch.setattr(base, "vllm_available", lambda: False)
    assert resolve_kind("auto") == "hf"
    with pytest.raises(ImportError, match="vllm"):
        resolve_kind("vllm")
    assert make_engine("auto", tiny_dir, dtype="float32").kind == "hf"
    monkeypatch.setattr(base, "vllm_available", lambda: True)
    assert resolve_kind("auto") == "vllm"  # no model to measure: the engine built for speed


def test_unknown_engine_kind_is_refused():
    with pytest.raises(ValueError, match="unknown rollout engine"):
        resolve_kind("sglang")  # type: ignore[arg-type]


def test_default_dtype_follows_the_measurement_at_the_models_shapes(monkeypatch, tiny_dir):
    from r1pipeline import precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv(precision.ENV_FORCE, "measure")  # measure every time: no cache hits
    seen = []
    for speedup, expected in ((4.0, "bfloat16"), (1 / 60, "float32")):
        def probe(shapes, device="cpu", threads=None, speedup=speedup):
            seen.append(tuple(shapes))
            return precision.Measurement(tuple(shapes), {"float32": [1.0] * len(shapes),
                                                         "bfloat16": [1.0 / speedup] * len(shapes)}, 1, 0.0)
        monkeypatch.setattr(precision, "probe", probe)
        assert base.default_dtype(tiny_dir) == expected
    assert seen[0] == precision.config_shapes(tiny_dir, base.GENERATION_ROWS)  # the model's, not defaults


def test_ignore_eos_generates_exactly_max_new_tokens(engine):
    handle = force_token(engine.model, engine.tokenizer.eos_token_id, 1e4)
    out = engine.generate(PROMPTS, num_samples=2, max_new_tokens=5, ignore_eos=True)
    handle.remove()
    assert all(c.n_tokens == 5 and c.truncated for g in out for c in g)


def test_auto_leaves_vllm_for_head_sizes_its_cpu_kernels_lack(monkeypatch, tmp_path):
    import json

    monkeypatch.setattr(base, "vllm_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 64, "num_attention_heads": 4}))  # 16
    assert resolve_kind("auto", tmp_path) == "hf"
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 576, "num_attention_heads": 9}))  # 64
    monkeypatch.setenv("R1_ENGINE_AUTO", "vllm")  # taken: then it is measured (tests/rollout/test_choice.py)
    assert resolve_kind("auto", tmp_path) == "vllm"


def test_a_sample_does_not_depend_on_its_batch(tiny_dir, policy):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    kw = dict(num_samples=3, max_new_tokens=8, temperature=0.9, top_p=0.9, seed=5)
    one_by_one = generate(policy, tok, PROMPTS, batch_size=1, **kw)
    all_at_once = generate(policy, tok, PROMPTS, batch_size=6, **kw)
    straddling = generate(policy, tok, PROMPTS, batch_size=4, **kw)  # prompt 2's samples in two batches
    assert token_ids(one_by_one) == token_ids(all_at_once) == token_ids(straddling)


@pytest.mark.parametrize("temperature, top_p", [(1.0, 1.0), (2.0, 0.9), (0.5, 0.8)])
def test_seeded_sampler_draws_from_the_warped_distribution(temperature, top_p):
    from transformers import TemperatureLogitsWarper, TopPLogitsWarper

    n = 20_000
    logits = torch.tensor([[0.0, 1.0, 2.0, -1.0, float("-inf")]])
    picked = SeededSampler(range(n), temperature, top_p)(None, logits.repeat(n, 1))
    assert torch.isinf(picked).sum(-1).eq(4).all(), "one token kept per row"
    freq = torch.bincount(picked.argmax(-1), minlength=5) / n
    expected = TopPLogitsWarper(top_p)(None, TemperatureLogitsWarper(temperature)(None, logits)).softmax(-1)[0]
    assert torch.allclose(freq, expected, atol=0.01)
    assert freq[expected == 0].sum() == 0, "a token outside top-p (or at -inf) is never drawn"
