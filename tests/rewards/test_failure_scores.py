"""A sample that errors or times out never scores more than the worst score its reward gives a
wrong answer: each reward declares its failure score in the registry and the guard uses it."""

from __future__ import annotations

import pytest

from r1pipeline.rewards import build, entry, names
from r1pipeline.rewards.safe import guard
from tests.rewards.helpers import misbehaving_reward

T = "<think>some reasoning here</think>"
BATTERY = [  # right, wrong, malformed, short and long, tagged and not
    T + "<answer>7</answer>", T + "<answer>8</answer>", "<answer>8</answer>", "8", "",
    T + "<answer>8</answer>" + " again and again" * 300, "<think>" + "x " * 3000, "a b a b a b a b",
    T + "<answer>7</answer> and then it runs on <think>", "<think>八乘六</think><answer>48</answer>",
    T + "```python\nprint(7)\n```", T + "sorry, I cannot help with that",
]
PARAMS = {"cosine_length": {"unit": "chars", "max_len": 200}, "soft_overlong": {"unit": "chars"},
          "code": {"time_limit_s": 2.0}}


def columns(n: int, kind: str) -> dict:
    return {"answer": ["7"] * n, "verifier": [kind] * n, "tests": [[{"input": "", "output": "7"}]] * n,
            "payload": ["abc"] * n, "harmful": [i % 2 == 0 for i in range(n)], "domain": ["general"] * n,
            "completion_ids": [[0] * (len(c) // 4) for c in BATTERY][:n], "prompts": ["Q: "] * n}


@pytest.mark.parametrize("name", [n for n in names() if n != "reward_model"])
def test_failure_score_is_at_most_every_score_the_reward_gives(name):
    fn = build(name, **PARAMS.get(name, {}))
    failure = fn.failure_score
    assert isinstance(failure, float), name
    for kind in ("exact", "math"):
        scores = [s for s in fn(list(BATTERY), **columns(len(BATTERY), kind)) if s is not None]
        assert scores and failure <= min(scores), (name, kind, failure, min(scores))


def test_unbounded_reward_model_fails_to_its_batch_minimum():
    assert build("reward_model", path="unused").failure_score == "batch_min"


@pytest.mark.parametrize(("params", "worst"), [
    ({}, -1.0), ({"min_value_wrong": -2.0}, -2.0), ({"max_value_wrong": -3.0, "min_value_wrong": -0.1}, -3.0),
], ids=["default_is_min_value_wrong", "follows_min_value_wrong", "follows_whichever_wrong_bound_is_lower"])
def test_cosine_length_failure_follows_its_parameters(params, worst):
    assert build("cosine_length", unit="chars", **params).failure_score == worst


def test_erroring_cosine_length_sample_scores_below_a_wrong_answer():
    g = guard(build("cosine_length"), timeout_s=1.0)  # unit tokens without completion_ids: an error
    assert g([T + "<answer>8</answer>"], answer=["7"]) == [-1.0]
    assert g.stats["errors"] == 1
    wrong_long = build("cosine_length", unit="chars", max_len=10)([T + "<answer>8</answer>"], answer=["7"])
    assert wrong_long == [-0.5]  # the score a timeout used to beat (it got 0.0)


def test_timed_out_sample_gets_the_declared_failure_score():
    misbehaving_reward.failure_score = -0.75
    try:
        with guard(misbehaving_reward, timeout_s=0.5) as g:
            assert g(["a", "hang"]) == [1.0, -0.75]
            assert g.stats["timeouts"] == 1
    finally:
        del misbehaving_reward.failure_score


def test_batch_min_failure_gets_the_lowest_score_of_its_batch():
    def scores(completions, **_):
        if "boom" in completions:
            raise RuntimeError("boom")
        return [float(len(c)) - 5 for c in completions]

    scores.failure_score = "batch_min"
    g = guard(scores, timeout_s=1.0)
    assert g(["abcdefg", "boom", "ab"]) == [2.0, -3.0, -3.0]
    assert g(["boom"]) == [None]  # nothing scored: left out


def test_a_reward_cannot_be_registered_without_a_failure_score():
    from r1pipeline.rewards.registry import register

    with pytest.raises(TypeError):
        register("undeclared_reward")
