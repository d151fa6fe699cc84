"""The embedded world: correct answers, disjoint splits, a corpus that never shows held-out questions."""

from __future__ import annotations

import random

import pytest

from r1pipeline.rewards.builtin import accuracy_reward, format_reward
from r1pipeline.tasks.tiny_world import DIGITS, TinyProduct


@pytest.mark.parametrize("digits,answer", [([8, 1, 6, 3, 7], "8"), ([2, 3], "6"), ([9, 9, 9], "9"), ([7, 3, 1], "1")])
def test_answer_is_the_last_digit_of_the_product(digits, answer):
    assert TinyProduct(n_digits=len(digits)).answer(digits) == answer


def test_splits_are_disjoint_and_deterministic():
    task = TinyProduct()
    train = {r["question"] for r in task.load("train", 3000, seed=0)}
    test = {r["question"] for r in task.load("test", 300, seed=0)}
    assert not train & test
    assert task.load("test", 50, seed=0) == task.load("test", 50, seed=0)
    assert task.load("test", 50, seed=0) != task.load("test", 50, seed=1)


def test_digit_five_is_never_drawn_so_no_answer_is_a_safe_guess():
    rows = TinyProduct().load("test", 500, seed=0)
    assert all("5" not in r["question"] for r in rows)
    share_of_most_common = max(sum(r["answer"] == d for r in rows) for d in "0123456789") / len(rows)
    assert share_of_most_common < 0.35


def test_corpus_uses_only_training_questions():
    task = TinyProduct()
    test_questions = {r["question"] for r in task.load("test", 10_000, seed=0)}
    docs = task.corpus(2000, seed=0)
    asked = {d.split("User: ")[1].split(" Assistant:")[0] for d in docs}
    assert not asked & test_questions


def test_correct_worked_solutions_score_full_reward():
    task = TinyProduct()
    rng = random.Random(0)
    digits = [rng.choice(DIGITS) for _ in range(5)]
    steps, final = task.steps(digits, rng, p_wrong=0.0)
    completion = f"<think>{steps}</think><answer>{final}</answer>"
    assert accuracy_reward([completion], answer=[task.answer(digits)]) == [1.0]
    assert format_reward([completion]) == [1.0]


def test_corpus_mix_follows_the_requested_shares():
    docs = TinyProduct().corpus(4000, seed=0, mix={"r1": 0.5, "bare": 0.5})
    r1 = sum("<think>" in d for d in docs) / len(docs)
    assert 0.45 < r1 < 0.55


def test_a_range_of_lengths_draws_each_length_and_chains_follow_the_question():
    from collections import Counter

    from pydantic import ValidationError

    task = TinyProduct(n_digits=3, max_digits=6)
    lengths = Counter(len(r["question"].split("*")) for r in task.load("train", 2000, seed=0))
    assert set(lengths) == {3, 4, 5, 6} and min(lengths.values()) > 250  # 3 digits: ~460 distinct questions in all
    for doc in task.corpus(200, seed=0, mix={"r1": 1.0}, p_wrong=0.0):
        question = doc.split("User: ")[1].split(" Assistant:")[0]
        assert doc.count("=") == question.count("*")  # one worked step per multiplication
    with pytest.raises(ValidationError, match="max_digits"):
        TinyProduct(n_digits=5, max_digits=4)
