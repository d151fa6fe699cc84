"""Answer-checking rewards: accuracy (any verifier), math_accuracy, exact_match, numeric_match."""

from __future__ import annotations

import pytest

from r1pipeline.rewards.answers import exact_match_reward, math_accuracy_reward, numeric_match_reward
from r1pipeline.rewards.builtin import accuracy_reward
from r1pipeline.rewards.verify import VERIFIERS, parse_math_reference, verify

T = "<think>some reasoning</think>"

MATH_CASES = [
    # (completion, gold, expected reward)
    (T + "<answer>7</answer>", "7", 1.0),
    (T + "<answer>8</answer>", "7", 0.0),
    (T + "The answer is \\boxed{7}.", "7", 1.0),
    (T + "<answer>\\boxed{7}</answer>", "7", 1.0),
    (T + "<answer>0.5</answer>", "\\frac{1}{2}", 1.0),
    (T + "<answer>1/2</answer>", "0.5", 1.0),
    (T + "<answer>\\frac12</answer>", "1/2", 1.0),
    (T + "<answer>\\dfrac{1}{2}</answer>", "$\\frac{1}{2}$", 1.0),
    (T + "<answer>5\\text{ cm}</answer>", "5", 1.0),
    (T + "<answer>1,000</answer>", "1000", 1.0),
    (T + "<answer>2\\sqrt{2}</answer>", "\\sqrt{8}", 1.0),
    (T + "<answer>2\\sqrt{2}</answer>", "2", 0.0),
    (T + "<answer>x = 3</answer>", "3", 1.0),
    (T + "<answer>the answer is $7$</answer>", "7", 1.0),
    ("<think>it is \\boxed{7}</think> I am not sure.", "7", 0.0),
    ("<think><answer>7</answer></think>", "7", 0.0),
    ("<think>a</think><think>b</think><answer>7</answer>", "7", 0.0),
    (T, "7", 0.0),
    ("", "7", 0.0),
    (T + "<answer>(1,2)</answer>", "1<x<2", 1.0),   # a set for a relation: allowed
    (T + "<answer>1<x<2</answer>", "(1,2)", 0.0),   # not the other way round (gold first)
    (T + "<answer>7</answer>", "}{", None),
    (T + "<answer>7</answer>", "", None),
    (T + "<answer>???</answer>", "???", None),
]
MATH_IDS = [
    "plain_correct", "plain_wrong", "boxed_after_think", "boxed_inside_answer",
    "decimal_for_frac", "slash_for_decimal", "short_frac_for_slash", "dfrac_for_dollar_frac",
    "units_dropped", "thousands_comma", "equivalent_surds", "surd_is_not_its_coefficient",
    "assignment_for_value", "prose_answer", "boxed_inside_think_only_scores_zero",
    "answer_inside_think_scores_zero", "second_think_block_scores_zero", "missing_answer_scores_zero",
    "empty_completion_scores_zero", "interval_answer_for_relation_gold",
    "relation_answer_for_interval_gold_gold_goes_first", "unparseable_gold_is_none",
    "empty_gold_is_none", "text_only_gold_is_none",
]


@pytest.mark.parametrize(("completion", "gold", "expected"), MATH_CASES, ids=MATH_IDS)
def test_math_accuracy(completion, gold, expected):
    assert math_accuracy_reward([completion], answer=[gold]) == [expected]


@pytest.mark.parametrize(("completion", "gold", "expected"),
                         [(c, g, e) for c, g, e in MATH_CASES if e is not None],
                         ids=[i for i, (_, _, e) in zip(MATH_IDS, MATH_CASES) if e is not None])
def test_accuracy_with_math_verifier_agrees(completion, gold, expected):
    assert accuracy_reward([completion], answer=[gold], verifier=["math"]) == [expected]


def test_accuracy_with_unparseable_math_gold_is_never_full_reward():
    assert accuracy_reward([T + "<answer>}{</answer>"], answer=["}{"], verifier=["math"]) == [0.0]


def test_math_verifier_gets_gold_first(monkeypatch):
    import math_verify

    seen = []
    real = math_verify.verify

    def spy(gold, target, **kw):
        seen.append((gold, target))
        return real(gold, target, **kw)

    monkeypatch.setattr(math_verify, "verify", spy)
    math_accuracy_reward([T + "<answer>0.5</answer>"], answer=["\\frac{1}{3}"])
    (gold, target), = seen
    assert "1/3" in map(str, gold) and "1/2" in map(str, target)


def test_reference_is_parsed_once():
    parse_math_reference.cache_clear()
    math_accuracy_reward([T + f"<answer>{i}</answer>" for i in range(8)], answer=["\\frac{7}{1}"] * 8)
    info = parse_math_reference.cache_info()
    assert info.misses == 1 and info.hits >= 7


def test_existing_verifiers_unchanged():
    assert {"exact", "numeric", "math"} <= set(VERIFIERS)
    assert verify("0.5", "1/2", "numeric") is False and verify("0.5", "1/2", "math") is True


@pytest.mark.parametrize(("completion", "gold", "expected"), [
    (T + "<answer> B </answer>", "B", 1.0),
    (T + "<answer>b</answer>", "B", 0.0),
    (T + "\\boxed{Paris}", "Paris", 1.0),
    ("<think><answer>B</answer></think>", "B", 0.0),
    ("B", "B", 0.0),
], ids=["stripped_equal", "case_matters", "boxed_counts", "answer_inside_think_scores_zero",
        "bare_text_is_no_answer"])
def test_exact_match(completion, gold, expected):
    assert exact_match_reward([completion], answer=[gold]) == [expected]


@pytest.mark.parametrize(("completion", "gold", "expected"), [
    (T + "<answer>1,000</answer>", "1000", 1.0),
    (T + "<answer>1000.0000001</answer>", "1000", 1.0),
    (T + "<answer>1001</answer>", "1000", 0.0),
    (T + "<answer>1/2</answer>", "0.5", 0.0),
    (T + "<answer>nan</answer>", "nan", None),
    (T + "<answer>5</answer>", "five", None),
], ids=["thousands_comma", "within_tolerance", "off_by_one", "fraction_is_not_a_number",
        "nan_gold_is_none", "word_gold_is_none"])
def test_numeric_match(completion, gold, expected):
    assert numeric_match_reward([completion], answer=[gold]) == [expected]


@pytest.mark.parametrize(("completion", "expected"), [
    ("<think>a</think><answer>b</answer>", 1.0),
    ("  <think>a\nb</think>\n<answer>b</answer>\n", 1.0),
    ("<answer>b</answer>", 0.0),
    ("<think>a</think>", 0.0),
    ("<think>a</think><answer>b</answer> trailing text", 0.0),
    ("<think>a<think>b</think></think><answer>c</answer>", 0.0),
    ("<think>a</think><answer>b</answer><answer>c</answer>", 0.0),
    ("<answer>b</answer><think>a</think>", 0.0),
], ids=["strict_template", "whitespace_between_blocks", "missing_think", "missing_answer",
        "text_after_answer", "nested_think", "repeated_answer", "wrong_order"])
def test_format(completion, expected):
    from r1pipeline.rewards.builtin import format_reward

    assert format_reward([completion]) == [expected]


WORD_CASES = [
    # (answer, gold, expected reward under the math verifier)
    ("Paris", "Paris", 1.0),
    ("paris.", "Paris", 1.0),
    ("\\text{Paris}", "Paris", 1.0),
    ("Paris", "\\text{Paris}", 1.0),
    ("Pairs", "Paris", 0.0),
    ("sirap", "Paris", 0.0),
    ("new york", "New York", 1.0),
    ("York New", "New York", 0.0),
    ("42", "forty two", None),
    ("forty two", "forty two", None),
    ("seven", "seven", None),
    ("b", "B", 1.0),
    ("2x", "2x", 1.0),
]


@pytest.mark.parametrize(("answer", "gold", "expected"), WORD_CASES, ids=[
    "same_word_scores_one", "word_case_and_period_ignored", "text_wrapped_answer_matches_word",
    "text_wrapped_gold_is_a_word", "anagram_scores_zero", "reversed_word_scores_zero",
    "two_words_match_as_text", "reordered_words_score_zero", "number_in_words_is_skipped",
    "number_in_words_is_skipped_even_if_equal", "single_number_word_is_skipped",
    "single_letter_stays_math", "letters_with_digits_stay_math"])
def test_word_reference_under_math(answer, gold, expected):
    completion = f"<think>.</think><answer>{answer}</answer>"
    assert math_accuracy_reward([completion], answer=[gold]) == [expected]
