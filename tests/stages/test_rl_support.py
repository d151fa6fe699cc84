"""Reward plumbing of the RL stages: labels, stage references, the last-N-steps gate, guards."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from r1pipeline.stages.common import reward_stage_refs, reward_uses
from r1pipeline.stages.rl_support import LastSteps, reward_functions

REWARDS = {
    "accuracy": 1.0,
    "format": {"weight": 0.5, "style": "r1"},
    "helpful": {"reward": "reward_model", "path": "reward_helpful", "summary_only": True, "last_steps": 10},
}


def test_labels_name_the_functions_and_reward_picks_the_registry_entry():
    uses = {u.label: u for u in reward_uses(REWARDS)}
    assert uses["helpful"].name == "reward_model" and uses["helpful"].last_steps == 10
    assert uses["format"].params == {"style": "r1"} and uses["accuracy"].weight == 1.0


def test_stage_named_in_a_reward_parameter_is_an_input():
    assert reward_stage_refs(REWARDS, {"base", "reward_helpful"}) == ["reward_helpful"]


def test_functions_are_named_by_label_and_read_stage_models(tmp_path: Path):
    funcs, weights = reward_functions(REWARDS, {"reward_helpful": tmp_path / "rm"}, max_steps=100)
    assert [f.__name__ for f in funcs] == ["accuracy_reward", "format_reward", "helpful_reward"]
    assert weights == [1.0, 0.5, 1.0]
    assert isinstance(funcs[2], LastSteps) and funcs[2].start == 90
    assert funcs[2].fn.fn.path == str(tmp_path / "rm" / "model")  # LastSteps -> guard -> RewardModel


def test_last_steps_gate_skips_samples_before_its_start():
    calls = []

    def fn(completions, **_):
        calls.append(len(completions))
        return [1.0] * len(completions)

    gated = LastSteps(fn, start=90)
    assert gated(["a", "b"], trainer_state=SimpleNamespace(global_step=10)) == [None, None]
    assert gated(["a", "b"], trainer_state=SimpleNamespace(global_step=95)) == [1.0, 1.0]
    assert calls == [2]


def test_every_reward_is_guarded_and_counts_its_events():
    funcs, _ = reward_functions({"accuracy": 1.0, "format": 0.5})
    assert all(hasattr(f, "stats") for f in funcs)
    funcs[0](["<answer>1</answer>"] * 2, answer=["1", "2"])
    assert funcs[0].stats["samples"] == 2


def test_scoring_only_completion_tokens_on_cpu_gives_the_same_log_probs_and_gradients():
    import pytest

    torch = pytest.importorskip("torch")
    trl_utils = pytest.importorskip("trl.trainer.utils")
    from r1pipeline.models.tiny import TinyModelConfig, build_model, build_tokenizer
    from r1pipeline.stages import rl_support

    model = build_model(TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                                        max_length=64), build_tokenizer(), seed=0)
    trl_utils.add_fused_lm_head(model, temperature=0.7)
    ids = torch.randint(3, 30, (3, 20))
    labels = ids.clone()
    labels[:, :12] = -100  # the prompt
    labels[0, 17:] = -100  # a shorter completion, padded

    def run():
        model.zero_grad()
        lp = model(input_ids=ids, labels=labels, fused_lm_head=True).log_probs
        lp.sum().backward()
        return lp.detach(), [p.grad.clone() for p in model.parameters()]

    original = trl_utils._use_triton
    try:
        full = run()
        assert rl_support.score_completion_tokens_only() and rl_support.score_completion_tokens_only()
        assert trl_utils._use_triton(torch.device("cpu"))
        compact = run()
    finally:
        trl_utils._use_triton = original
    assert torch.allclose(full[0], compact[0], atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(full[1], compact[1]))
