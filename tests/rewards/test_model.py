from __future__ import annotations

import math
import pickle

import pytest

from r1pipeline.rewards import build
from r1pipeline.rewards.model import RewardModel

COMPLETIONS = ["<think>a long chain of thought</think> The answer is 4.",
               "<think>different reasoning here</think> The answer is 4."]


def test_scores_are_finite_and_deterministic(tiny_rm_path):
    rm = build("reward_model", path=str(tiny_rm_path), batch_size=1, max_length=64)
    first = rm(COMPLETIONS + ["no think"], prompts=["2+2? "] * 3)
    assert len(first) == 3 and all(math.isfinite(x) for x in first)
    assert rm(COMPLETIONS + ["no think"], prompts=["2+2? "] * 3) == pytest.approx(first)


@pytest.mark.parametrize(("summary_only", "same_score"), [(True, True), (False, False)],
                         ids=["summary_only_ignores_the_reasoning", "full_response_sees_the_reasoning"])
def test_summary_only_changes_what_is_scored(tiny_rm_path, summary_only, same_score):
    rm = RewardModel(path=str(tiny_rm_path), summary_only=summary_only, max_length=64)
    a, b = rm(COMPLETIONS)
    assert (a == pytest.approx(b)) is same_score


def test_texts_passed_to_the_model(tiny_rm_path, monkeypatch):
    rm = RewardModel(path=str(tiny_rm_path), summary_only=True, max_length=64)
    seen = []
    rm._load()
    real = rm._tokenizer.__class__.__call__
    monkeypatch.setattr(rm._tokenizer.__class__, "__call__",
                        lambda self, texts, **kw: seen.extend(texts) or real(self, texts, **kw))
    rm(COMPLETIONS, prompts=["Q: ", "Q: "])
    assert seen == ["Q:  The answer is 4.", "Q:  The answer is 4."]


def test_batches_agree_with_single_samples(tiny_rm_path):
    together = RewardModel(path=str(tiny_rm_path), batch_size=4, max_length=64)(COMPLETIONS)
    alone = RewardModel(path=str(tiny_rm_path), batch_size=1, max_length=64)(COMPLETIONS)
    assert together == pytest.approx(alone, abs=1e-4)


def test_pickles_without_weights(tiny_rm_path):
    rm = RewardModel(path=str(tiny_rm_path), max_length=64)
    rm(COMPLETIONS[:1])
    clone = pickle.loads(pickle.dumps(rm))
    assert clone._model is None and clone.__name__ == "reward_model_reward"
