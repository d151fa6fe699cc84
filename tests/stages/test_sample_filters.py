"""Cold-start and rejection-sampling filters: each bad sample is dropped for the right reason."""

from __future__ import annotations

import pytest

from r1pipeline.stages.filters import Filters, SampleFilter, rewrite_r1

GOOD = "<think>8*1=8 so 8*6=48 so 8*3=24</think><answer>4</answer>"


def sample(completion: str, **kw) -> dict:
    return {"prompt_id": kw.pop("prompt_id", "q1"), "completion": completion,
            "truncated": kw.pop("truncated", False), "correct": kw.pop("correct", True)}


BAD = {
    "truncated": sample("<think>8*1=8 so 8*6=", truncated=True, correct=False),
    "wrong_answer": sample(GOOD.replace(">4<", ">6<"), correct=False),
    "no_reasoning": sample("<think></think><answer>4</answer>"),
    "mixed_language": sample("<think>8*1=8 so 8*6=48 所以 8*3=24</think><answer>4</answer>"),
    "long_paragraph": sample("<think>" + "so 8*1=8 " * 60 + "</think><answer>8</answer>"),
    "code_block": sample("<think>```python\nprint(8)\n```</think><answer>8</answer>"),
    "repetition": sample("<think>" + "so 8*1=8 " * 20 + "</think><answer>8</answer>"),
}


@pytest.mark.parametrize("reason", list(BAD))
def test_each_bad_sample_is_dropped_for_its_reason(reason):
    filt = SampleFilter(Filters(max_paragraph_chars=300))
    assert filt.reason(BAD[reason]) == reason


def test_good_samples_survive_and_duplicates_and_caps_do_not():
    filt = SampleFilter(Filters(max_per_prompt=2))
    assert filt.reason(sample(GOOD)) is None
    assert filt.reason(sample(GOOD)) == "duplicate"
    assert filt.reason(sample(GOOD.replace("8*3=24", "8*3=24 so 4*1=4"))) is None
    assert filt.reason(sample(GOOD.replace("8*3=24", "8*3=24 so 4*1=4 so 4*1=4"))) == "per_prompt_cap"
    assert filt.reason(sample(GOOD, prompt_id="q2")) is None


def test_filters_can_be_switched_off():
    filt = SampleFilter(Filters(language=None, require_correct=False, drop_code_blocks=False,
                                max_paragraph_chars=None, max_repeated_ngram_share=None))
    for reason in ("mixed_language", "wrong_answer", "code_block", "long_paragraph", "repetition"):
        assert filt.reason(BAD[reason]) is None, reason


def test_rewrite_puts_a_summary_that_states_the_answer_after_the_reasoning():
    out = rewrite_r1(" <think> 8*1=8 </think><answer>8</answer>", "8", "The answer is <answer>{answer}</answer>.")
    assert out == " <think>8*1=8</think>The answer is <answer>8</answer>."
