from __future__ import annotations

import math
import pickle

import pytest

from r1pipeline.rewards import build
from r1pipeline.rewards.shaping import CleanEnd, CosineLength, Repetition, SoftOverlong, tag_count_reward


@pytest.mark.parametrize(("completion", "expected"), [
    ("<think>a</think><answer>b</answer>", 1.0),
    ("<think>\na\n</think>\n<answer>\nb\n</answer>", 1.0),
    ("<think>a</think> b", 0.5),
    ("<answer>b</answer>", 0.5),
    ("<think>a", 0.25),
    ("<think><think>a</think></think><answer>b</answer>", 0.5),
    ("<think>a</think><answer>b</answer><answer>c</answer>", 0.5),
    ("plain text", 0.0),
], ids=["all_four_tags", "tags_on_own_lines", "missing_answer_tags", "missing_think_tags",
        "unclosed_think", "nested_think_loses_think_credit", "repeated_answer_loses_answer_credit",
        "no_tags"])
def test_tag_count(completion, expected):
    assert tag_count_reward([completion]) == [expected]


RIGHT, WRONG = "<answer>4</answer>", "<answer>5</answer>"


@pytest.mark.parametrize(("completion", "length", "expected"), [
    (RIGHT, 0, 1.0),
    (RIGHT, 100, 0.5),
    (RIGHT, 50, 0.75),
    (RIGHT, 500, 0.5),
    (WRONG, 0, -1.0),
    (WRONG, 100, -0.5),
    (WRONG, 500, -0.5),
    ("no answer", 0, -1.0),
], ids=["correct_short_gets_max", "correct_at_max_len_gets_min", "correct_half_way",
        "correct_past_max_len_is_clamped", "wrong_short_gets_most_negative",
        "wrong_long_gets_least_negative", "wrong_past_max_len_is_clamped", "missing_answer_is_wrong"])
def test_cosine_length_in_tokens(completion, length, expected):
    r = CosineLength(max_len=100)
    assert r([completion], answer=["4"], completion_ids=[[0] * length]) == [pytest.approx(expected)]


def test_cosine_length_orders_as_promised():
    r = CosineLength(max_len=1000, unit="chars")
    pad = lambda c, n: c + " " * n  # noqa: E731
    short_right, long_right, short_wrong, long_wrong = r(
        [pad(RIGHT, 10), pad(RIGHT, 800), pad(WRONG, 10), pad(WRONG, 800)], answer=["4"] * 4)
    assert short_right > long_right > long_wrong > short_wrong


def test_cosine_length_unparseable_math_gold_is_none():
    r = CosineLength(max_len=100, verifier="math")
    assert r.may_hang
    assert r([RIGHT], answer=["}{"], completion_ids=[[0]]) == [None]


def test_cosine_length_uses_verifier_column():
    r = CosineLength(max_len=100, unit="chars")
    expected = 0.5 + 0.5 * 0.5 * (1 + math.cos(math.pi * 20 / 100))  # correct, 20 of 100 chars
    assert r(["<answer>0.5</answer>"], answer=["1/2"], verifier=["math"]) == [pytest.approx(expected)]


def test_tokens_without_completion_ids_is_an_error():
    with pytest.raises(ValueError, match="completion_ids"):
        CosineLength()([RIGHT], answer=["4"])


@pytest.mark.parametrize(("length", "expected"), [
    (0, 0.0), (80, 0.0), (90, -0.5), (100, -1.0), (101, -1.0), (10_000, -1.0),
], ids=["empty", "at_start_of_cache", "half_way_into_cache", "at_max_len", "just_over", "far_over"])
def test_soft_overlong(length, expected):
    r = SoftOverlong(max_completion_len=100, cache_len=20)
    assert r(["x"], completion_ids=[list(range(length))]) == [expected]


@pytest.mark.parametrize(("completion", "expected"), [
    ("the cat sat on the mat", 0.0),
    ("go go go go go", -0.75),
    ("The Cat the cat THE CAT", -0.6),
    ("", 0.0),
    ("one", 0.0),
], ids=["no_repeats", "one_word_loop", "case_insensitive", "empty_is_free", "shorter_than_ngram"])
def test_repetition(completion, expected):
    assert Repetition(ngram_size=2, max_penalty=-1.0)([completion]) == [pytest.approx(expected)]


@pytest.mark.parametrize(("name", "params", "message"), [
    ("repetition", {"max_penalty": 0.5}, "max_penalty must be <= 0"),
    ("repetition", {"ngram_size": 0}, "ngram_size"),
    ("soft_overlong", {"max_completion_len": 10, "cache_len": 20}, "cache_len"),
    ("cosine_length", {"unit": "words"}, "unit must be one of"),
    ("cosine_length", {"verifier": "fuzzy"}, "unknown verifier"),
    ("clean_end", {"max_tail": -1}, "max_tail"),
], ids=["positive_penalty", "zero_ngram", "cache_longer_than_max", "unknown_unit", "unknown_verifier",
        "negative_tail"])
def test_bad_parameters_fail_at_build(name, params, message):
    with pytest.raises(ValueError, match=message):
        build(name, **params)


@pytest.mark.parametrize("name", ["cosine_length", "soft_overlong", "repetition", "tag_count", "clean_end"])
def test_pickles_under_its_name(name):
    fn = pickle.loads(pickle.dumps(build(name)))
    assert fn.__name__ == f"{name}_reward"


def test_cosine_length_row_without_reference_is_none():
    r = CosineLength(max_len=100, unit="chars")
    first, second = r([RIGHT, RIGHT], answer=["4", ""], verifier=["exact", "none"])
    assert first == pytest.approx(0.5 + 0.25 * (1 + math.cos(math.pi * 0.18))) and second is None


@pytest.mark.parametrize(("completion", "expected"), [
    ("<think>8*1=8</think><answer>8</answer> is the answer.", 1.0),
    ("<think>8*1=8</think><answer>8</answer>", 1.0),
    ("<think>2*1=2</think><answer>2</answer> 2anso thhhhanso 2anso thhh", 0.0),
    ("<think>2*1=2</think><answer>2</answer> is the answer.<think>", 0.0),
    ("<think>2*1=2</think> the answer is 2", 0.0),
], ids=["summary", "bare_answer", "runs_on", "second_tag", "no_answer_tag"])
def test_clean_end(completion, expected):
    assert CleanEnd()([completion]) == [expected]
