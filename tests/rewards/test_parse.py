"""Reading completions: ends_clean (the completion stops at its summary)."""

from __future__ import annotations

import pytest

from r1pipeline.rewards.parse import ends_clean

CASES = [
    # (completion, truncated, clean?)
    ("<think>8*1=8</think><answer>8</answer> is the answer.", False, True),
    ("<think>8*1=8</think><answer>8</answer>", False, True),
    ("<think>8*1=8</think><answer>8</answer>  \n", False, True),
    ("<think>2*1=2</think><answer>2</answer> 2anso thhhhanso <think>2*1=2", False, False),
    ("<think>x</think><answer>8</answer> is the answer. <answer>8</answer>", False, False),
    ("<think>x</think><answer>8</answer> and so on and on and on past it", False, False),
    ("<think>x</think><answer>8</answer> is the answer.", True, False),
    ("<think>8*1=8</think> the answer is 8", False, False),
    ("", False, False),
]


@pytest.mark.parametrize("text,truncated,clean", CASES)
def test_ends_clean_table(text: str, truncated: bool, clean: bool):
    assert ends_clean(text, truncated) is clean


def test_a_run_on_after_the_summary_is_not_clean_even_when_short():
    assert not ends_clean("<answer>2</answer><think>", False)


def test_the_tail_allowance_is_counted_without_surrounding_whitespace():
    assert ends_clean("<answer>8</answer>" + " " * 40 + "x" * 24, False)
    assert not ends_clean("<answer>8</answer>" + "x" * 25, False)
