"""What math-verify may be shown: hostile shapes are refused before parsing, real answers pass."""

from __future__ import annotations

import pytest

from r1pipeline.rewards.answers import math_accuracy_reward
from r1pipeline.rewards.bounds import math_input_problem, nesting_depth, tower_height
from r1pipeline.rewards.verify import parse_math

HOSTILE = [
    ("\\frac{1}{" * 5000 + "2" + "}" * 5000, "characters"),
    ("\\sqrt{" * 10000 + "2" + "}" * 10000, "characters"),
    ("{" * 20 + "1" + "}" * 20, "nested 20 deep"),
    ("(" * 11 + "1" + ")" * 11, "nested 11 deep"),
    ("\\sqrt" * 41 + "2", "\\frac/\\sqrt commands"),
    ("x^x^x^x", "tower 3 high"),
    ("x^{x^{x^{x}}}", "tower 3 high"),
    ("^".join(["x"] * 400), "tower"),
    ("9^{9^{9}}", "numeric power tower"),
    ("10^{10^{10}}!", "factorial"),
    ("10^{9999999}", "over 5 digits"),
    ("100000!", "factorial"),
    ("a" * 1_000_000, "characters"),
]


@pytest.mark.parametrize(("text", "reason"), HOSTILE, ids=[
    "nested_frac_5000_deep", "nested_sqrt_10000_deep", "bare_braces_20_deep", "parens_11_deep",
    "unbraced_sqrt_chain", "unbraced_tower", "braced_tower", "long_unbraced_tower", "numeric_tower",
    "factorial_of_a_tower", "seven_digit_exponent", "six_digit_factorial", "megabyte_of_letters"])
def test_hostile_shape_is_refused_and_never_parsed(text, reason):
    assert reason in math_input_problem(text)
    assert parse_math(text) == []


@pytest.mark.parametrize("text", [
    "\\frac{1}{2}", "\\dfrac{\\sqrt{3}}{2}", "e^{-x^{2}}", "2^{2^{10}}", "x^2+y^2", "(n+1)!",
    "\\frac{(2n)!}{n!^2}", "100!", "10^{12}", "\\left(\\frac{1}{2}\\right)^{\\frac{1}{3}}",
    "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "x_{1}^{2}", "\\{1, 2, 3\\}", "(1,2]",
])
def test_ordinary_answers_pass_the_bounds(text):
    assert math_input_problem(text) is None


def test_hostile_prediction_scores_as_wrong_and_hostile_reference_is_skipped():
    tower = "9^{9^{9}}"
    assert math_accuracy_reward([f"<think>.</think><answer>{tower}</answer>"], answer=["2"]) == [0.0]
    assert math_accuracy_reward(["<think>.</think><answer>2</answer>"], answer=[tower]) == [None]


@pytest.mark.parametrize(("text", "depth", "height"), [
    ("1", 0, 0), ("\\frac{1}{(2+3)}", 2, 0), ("{{{1", 3, 0), ("x^2", 0, 1), ("x^x^x", 0, 2),
    ("e^{-x^{2}}", 2, 2), ("a^{b}c^{d}", 1, 1),
], ids=["plain", "frac_with_parens", "unbalanced_counts_as_opened", "square", "unbraced_chain",
        "braced_chain", "side_by_side_powers_do_not_stack"])
def test_depth_and_tower_height_are_measured(text, depth, height):
    assert (nesting_depth(text), tower_height(text)) == (depth, height)
