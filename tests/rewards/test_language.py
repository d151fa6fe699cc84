from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r1pipeline.rewards import build
from r1pipeline.rewards.language import LanguageConsistency, _count_words_unicode, count_words


@pytest.mark.parametrize(("completion", "language", "expected"), [
    ("<think>8 times 1 is 8, 8乘6得48</think><answer>48</answer>", "en", 0.5),
    ("<think>8 times 1 is 8, 8乘6得48</think><answer>48</answer>", "zh", 0.5),
    ("<think>all english words here</think> 4", "en", 1.0),
    ("<think>all english words here</think> 4", "zh", 0.0),
    ("<think>八乘六得四十八</think>", "zh", 1.0),
    ("<think>2+2=4, 8*1=8</think>", "en", 1.0),
    ("<think></think><answer>1</answer>", "en", 1.0),
    ("<think>unclosed reasoning", "en", 0.0),
    ("no think block at all", "en", 0.0),
    ("<think>so the answer</think> 答案是四十八", "en", 1.0),
    ("<think>один two</think>", "en", 0.5),
    ("<think>café naïve</think>", "en", 1.0),
    ("<think>x乘y</think>", "en", 2 / 3),
], ids=["mixed_cot_en", "mixed_cot_zh", "english_cot", "english_cot_scored_for_zh", "chinese_cot",
        "symbols_only_cot_is_consistent", "empty_cot_is_consistent", "unclosed_think_scores_zero",
        "no_think_scores_zero", "summary_language_ignored", "cyrillic_word_is_not_english",
        "accented_latin_is_english", "ideograph_splits_a_token"])
def test_language_consistency(completion, language, expected):
    assert LanguageConsistency(language=language)([completion]) == [pytest.approx(expected)]


def test_words_are_whitespace_tokens_with_letters():
    assert count_words("the value x^2 is 4 ; done.") == (5, 0, 5)


def test_unknown_language_is_rejected_at_build():
    with pytest.raises(ValueError, match="language must be one of"):
        build("language_consistency", language="fr")


def test_builds_under_its_registered_name():
    assert build("language_consistency", language="zh").__name__ == "language_consistency_reward"


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(max_codepoint=127), max_size=60))
def test_ascii_fast_path_counts_like_the_unicode_path(text):
    assert count_words(text) == _count_words_unicode(text)
