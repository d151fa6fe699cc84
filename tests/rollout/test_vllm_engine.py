"""The engine interface on vLLM (skipped where vLLM is not installed; an engine start takes ~10 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("vllm")
torch = pytest.importorskip("torch")

from r1pipeline.rollout.vllm_engine import VLLMEngine  # noqa: E402
from tests.rollout.helpers import token_ids  # noqa: E402

pytestmark = pytest.mark.slow
PROMPTS = ["User: 3*4 Assistant: ", "User: 1*2*3 Assistant: <think>"]


@pytest.fixture(scope="module")
def engine(tiny_dir):
    eng = VLLMEngine(tiny_dir, dtype="bfloat16", kv_cache_gb=1, enforce_eager=True, seed=0)
    yield eng
    eng.close()


def test_generate_gives_samples_token_ids_and_logprobs(engine):
    out = engine.generate(PROMPTS, num_samples=3, max_new_tokens=6, seed=0)
    assert [len(g) for g in out] == [3, 3]
    for c in (c for g in out for c in g):
        assert 1 <= c.n_tokens == len(c.token_ids) == len(c.logprobs) <= 6
        assert all(lp <= 0 for lp in c.logprobs)
        assert c.truncated == (engine.tokenizer.eos_token_id not in c.token_ids)


def test_same_seed_same_samples(engine):
    a = engine.generate(PROMPTS, num_samples=3, max_new_tokens=6, seed=5)
    b = engine.generate(PROMPTS, num_samples=3, max_new_tokens=6, seed=5)
    assert token_ids(a) == token_ids(b)


def test_update_weights_follows_the_policy(engine, tiny_dir):
    from transformers import AutoModelForCausalLM

    policy = AutoModelForCausalLM.from_pretrained(tiny_dir)
    engine.update_weights(policy)
    before = engine.generate(PROMPTS, num_samples=2, max_new_tokens=8, seed=1)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    engine.update_weights(policy)
    changed = engine.generate(PROMPTS, num_samples=2, max_new_tokens=8, seed=1)
    assert token_ids(changed) != token_ids(before)


def test_weight_sync_leaves_no_file_behind(engine, tiny_dir):
    from transformers import AutoModelForCausalLM

    engine.update_weights(AutoModelForCausalLM.from_pretrained(tiny_dir))
    assert not list(Path("/dev/shm").glob("r1-vllm-weights-*"))


def test_close_ends_the_server(tiny_dir):
    eng = VLLMEngine(tiny_dir, dtype="bfloat16", kv_cache_gb=1, enforce_eager=True)
    proc = eng._proc
    eng.close()
    eng.close()  # idempotent
    assert proc.poll() is not None


def test_grpo_trainer_trains_on_vllm(tiny_dir, tmp_path, monkeypatch):
    """Two GRPO steps of TRL with vLLM behind the hook: synced at steps 0 and 1, log-probs handed over."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from r1pipeline.rollout.trl_hook import EngineRollout

    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    hook = EngineRollout(lambda: VLLMEngine(tiny_dir, dtype="bfloat16", kv_cache_gb=1, enforce_eager=True))
    args = GRPOConfig(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, num_generations=2,
                      max_completion_length=6, learning_rate=1e-2, logging_steps=1, report_to="none",
                      save_strategy="no", use_cpu=True, disable_tqdm=True, beta=0.0, seed=0)
    data = Dataset.from_list([{"prompt": f"User: {i}*{i} Assistant: "} for i in range(8)])
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_dir),
                          reward_funcs=lambda completions, **_: [float(len(c)) for c in completions],
                          args=args, train_dataset=data, processing_class=tok, rollout_func=hook)
    try:
        trainer.train()
    finally:
        hook.close()
    logged = [r for r in trainer.state.log_history if "rollout/sync_seconds" in r]
    assert len(logged) == 2
