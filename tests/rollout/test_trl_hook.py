"""The GRPO rollout_func hook: what TRL expects back, grouping, and when weights are synced."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest

from r1pipeline.rollout.base import Completion
from r1pipeline.rollout.hf import HFEngine
from r1pipeline.rollout.trl_hook import EngineRollout, group_prompts, tokenize_like_trl

PROMPTS = ["User: 3*4 Assistant: ", "User: 2*2 Assistant: "]


class FakeEngine:
    """Records calls; each completion is the prompt's first token, n_tokens long, with log-probs."""

    kind = "fake"

    def __init__(self, logprobs: bool = True):
        self.synced, self.calls, self.closed, self.logprobs = [], [], False, logprobs

    def generate(self, prompts, *, num_samples=1, temperature=1.0, top_p=1.0, max_new_tokens=64, seed=0):
        self.calls.append(dict(prompts=prompts, n=num_samples, temperature=temperature, top_p=top_p,
                               max_new_tokens=max_new_tokens, seed=seed))
        return [[Completion("x", 2, True, (p[0], p[0]), (-0.5, -0.25) if self.logprobs else None)
                 for _ in range(num_samples)] for p in prompts]

    def update_weights(self, model):
        self.synced.append(model)

    def close(self):
        self.closed = True


def fake_trainer(tokenizer, model, g=2, step=0):
    model.train()  # TRL asks for num_generations in training, num_generations_eval otherwise
    return SimpleNamespace(
        state=SimpleNamespace(global_step=step), processing_class=tokenizer, model=model,
        num_generations=g, num_generations_eval=1, temperature=0.9, top_p=0.95, max_completion_length=7,
        args=SimpleNamespace(seed=3), _metrics={"train": defaultdict(list), "eval": defaultdict(list)})


@pytest.fixture
def tokenizer(tiny_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_dir)


def repeated(prompts, g):
    return [p for p in prompts for _ in range(g)]


def test_output_has_what_trl_asks_for_one_row_per_incoming_prompt(tokenizer, policy):
    engine = FakeEngine()
    hook = EngineRollout(lambda: engine)
    out = hook(repeated(PROMPTS, 4), fake_trainer(tokenizer, policy, g=4))
    assert {"prompt_ids", "completion_ids", "logprobs"} <= out.keys()
    assert len(out["prompt_ids"]) == len(out["completion_ids"]) == len(out["logprobs"]) == 8
    assert out["prompt_ids"][:4] == [tokenizer(PROMPTS[0])["input_ids"]] * 4
    assert all(len(c) == len(lp) for c, lp in zip(out["completion_ids"], out["logprobs"]))


def test_engine_is_asked_for_g_samples_of_each_distinct_prompt(tokenizer, policy):
    engine = FakeEngine()
    EngineRollout(lambda: engine)(repeated(PROMPTS, 4), fake_trainer(tokenizer, policy, g=4))
    call = engine.calls[0]
    assert call["n"] == 4 and len(call["prompts"]) == 2
    assert (call["temperature"], call["top_p"], call["max_new_tokens"]) == (0.9, 0.95, 7)


def test_weights_sync_on_the_first_call_and_after_each_optimizer_step(tokenizer, policy):
    engine = FakeEngine()
    hook = EngineRollout(lambda: engine)
    trainer = fake_trainer(tokenizer, policy)
    for step in (0, 0, 1, 1, 1, 2):
        trainer.state.global_step = step
        hook(repeated(PROMPTS, 2), trainer)
    assert engine.synced == [policy] * 3
    assert len(trainer._metrics["train"]["rollout/sync_seconds"]) == 3
    assert len(trainer._metrics["train"]["rollout/generate_seconds"]) == 6
    seeds = [c["seed"] for c in engine.calls]
    assert len(set(seeds)) == len(seeds)


def test_logprobs_are_none_when_the_engine_has_none(tokenizer, policy):
    out = EngineRollout(lambda: FakeEngine(logprobs=False))(repeated(PROMPTS, 2), fake_trainer(tokenizer, policy))
    assert out["logprobs"] is None


def test_engine_is_built_lazily_and_closed(tokenizer, policy):
    built = []
    hook = EngineRollout(lambda: built.append(FakeEngine()) or built[-1])
    assert built == []
    hook(repeated(PROMPTS, 2), fake_trainer(tokenizer, policy))
    hook.close()
    assert len(built) == 1 and built[0].closed and hook.engine is None


def test_prompts_that_are_not_in_groups_get_one_sample_each():
    assert group_prompts(["a", "b", "a", "b"], 2) == (["a", "b", "a", "b"], 1)
    assert group_prompts(["a", "a"], 1) == (["a", "a"], 1)


def test_chat_prompts_are_rendered_with_a_generation_prompt(tokenizer):
    tokenizer.chat_template = ("{% for m in messages %}<{{ m['content'] }}>{% endfor %}"
                               "{% if add_generation_prompt %}!{% endif %}")
    trainer = SimpleNamespace(processing_class=tokenizer, chat_template=None, chat_template_kwargs={})
    ids = tokenize_like_trl(trainer, [[{"role": "user", "content": "hi"}]])
    assert tokenizer.decode(ids[0]) == "<hi>!"


def test_hf_engine_through_the_hook(tokenizer, policy, tiny_dir):
    hook = EngineRollout(lambda: HFEngine(tiny_dir, dtype="float32"))
    out = hook(repeated(PROMPTS, 2), fake_trainer(tokenizer, policy))
    hook.close()
    assert len(out["completion_ids"]) == 4 and out["logprobs"] is None
    assert all(1 <= len(c) <= 7 for c in out["completion_ids"])


def test_grpo_trainer_trains_on_our_engine(tiny_dir, tmp_path, monkeypatch):
    """Two GRPO steps of TRL with the hook: TRL takes what it returns, the engine follows the policy."""
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    engines = []

    def make():
        engines.append(HFEngine(tiny_dir, dtype="float32"))
        return engines[-1]

    hook = EngineRollout(make)
    args = GRPOConfig(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, num_generations=2,
                      max_completion_length=6, learning_rate=1e-2, logging_steps=1, report_to="none",
                      save_strategy="no", use_cpu=True, disable_tqdm=True, beta=0.0, seed=0)
    data = Dataset.from_list([{"prompt": f"User: {i}*{i} Assistant: "} for i in range(8)])
    trainer = GRPOTrainer(model=model, reward_funcs=lambda completions, **_: [float(len(c)) for c in completions],
                          args=args, train_dataset=data, processing_class=tok, rollout_func=hook)
    trainer.train()
    hook.close()
    logged = [r for r in trainer.state.log_history if "rollout/generate_seconds" in r]
    assert len(engines) == 1 and len(logged) == 2
    assert all("rollout/sync_seconds" in r for r in logged)
