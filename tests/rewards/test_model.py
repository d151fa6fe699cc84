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
    eos = rm._tokenizer.eos_token
    assert eos and seen == ["Q:  The answer is 4." + eos] * 2


def test_scores_are_read_where_trls_reward_trainer_trains_them(tiny_rm_path, tmp_path):
    """TRL's RewardTrainer appends EOS to plain-text pairs and learns the score there; the reward
    and the stage's held-out accuracy must tokenize a (prompt, response) the same way."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from r1pipeline.stages.reward_model import view_text

    tok = AutoTokenizer.from_pretrained(tiny_rm_path)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_rm_path, num_labels=1)
    prompt, chosen, rejected = "User: sort cab Assistant: ", "<think>x</think>abc", "<think></think>sorry"
    pair = {"chosen": view_text(prompt, chosen, "summary"), "rejected": view_text(prompt, rejected, "summary")}
    trainer = RewardTrainer(model=model, processing_class=tok, train_dataset=Dataset.from_list([pair]),
                            args=RewardConfig(output_dir=str(tmp_path), report_to=[], max_length=64,
                                                           bf16=False, use_cpu=True))
    trained_on = trainer.train_dataset[0]["chosen_ids"]

    rm = RewardModel(path=str(tiny_rm_path), summary_only=True, max_length=64)
    rm._load()
    seen = []
    real = rm._tokenizer.__class__.__call__
    rm._tokenizer.__class__.__call__ = lambda self, texts, **kw: seen.extend(texts) or real(self, texts, **kw)
    try:
        rm([chosen], prompts=[prompt])
    finally:
        rm._tokenizer.__class__.__call__ = real
    assert tok(seen[0])["input_ids"] == trained_on


def test_batches_agree_with_single_samples(tiny_rm_path):
    together = RewardModel(path=str(tiny_rm_path), batch_size=4, max_length=64)(COMPLETIONS)
    alone = RewardModel(path=str(tiny_rm_path), batch_size=1, max_length=64)(COMPLETIONS)
    assert together == pytest.approx(alone, abs=1e-4)


def test_pickles_without_weights(tiny_rm_path):
    rm = RewardModel(path=str(tiny_rm_path), max_length=64)
    rm(COMPLETIONS[:1])
    clone = pickle.loads(pickle.dumps(rm))
    assert clone._model is None and clone.__name__ == "reward_model_reward"
