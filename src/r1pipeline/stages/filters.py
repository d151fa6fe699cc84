"""The sample filters of cold-start collection and rejection sampling (pure functions).

Each filter looks at one sample (its completion, whether it was truncated, whether it is
correct) and returns the reason it is dropped, or None. The order is the order of ``FILTERS``:
a sample is reported under the first reason that drops it. Source: DeepSeek-R1, "we filter out
chain-of-thought with mixed languages, long paragraphs, and code blocks" (rejection sampling),
and "readable" outputs for the cold start.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from r1pipeline.rewards.parse import split_think


class Filters(BaseModel):
    """Which samples to keep. Every check can be switched off (None or False)."""

    model_config = ConfigDict(extra="forbid")
    drop_truncated: bool = True
    require_correct: bool = True
    require_cot: bool = True
    language: str | None = Field("en", description="target language of the CoT (None: any)")
    min_language_consistency: float = Field(1.0, ge=0, le=1)
    max_paragraph_chars: int | None = Field(400, gt=0, description="longest allowed paragraph")
    drop_code_blocks: bool = True
    max_repeated_ngram_share: float | None = Field(0.5, gt=0, le=1, description="share of repeated 3-grams")
    dedupe: bool = True
    max_per_prompt: int | None = Field(None, gt=0)


_FENCE = re.compile(r"```")
_WORD = re.compile(r"\S+")


def repeated_ngram_share(text: str, n: int = 3) -> float:
    """Share of word n-grams that repeat an earlier one (0 for short texts).

    >>> repeated_ngram_share("a b c a b c a b c a b c")  # 10 trigrams, 3 distinct
    0.7
    >>> repeated_ngram_share("one two three four")
    0.0
    """
    words = _WORD.findall(text)
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if len(grams) < 2:
        return 0.0
    counts = Counter(grams)
    return sum(c - 1 for c in counts.values()) / len(grams)


def longest_paragraph(text: str) -> int:
    """Characters in the longest blank-line-separated paragraph.

    >>> longest_paragraph("ab\\n\\nabcd")
    4
    """
    return max((len(p) for p in re.split(r"\n\s*\n", text)), default=0)


class SampleFilter:
    """Applies ``Filters`` to samples one at a time, keeping the state de-duplication needs."""

    def __init__(self, cfg: Filters):
        self.cfg = cfg
        self._seen: set[tuple[str, str]] = set()
        self._per_prompt: Counter = Counter()
        self._language = None
        if cfg.language:
            from r1pipeline.rewards import registry

            self._language = registry.build("language_consistency", language=cfg.language)

    def reason(self, sample: dict[str, Any]) -> str | None:
        """Why ``sample`` is dropped (keys: prompt_id, completion, truncated, correct), else None."""
        c, text = self.cfg, sample["completion"]
        cot, _ = split_think(text)
        if c.drop_truncated and sample.get("truncated"):
            return "truncated"
        if c.require_correct and not sample.get("correct"):
            return "wrong_answer"
        if c.require_cot and (cot is None or not cot.strip()):
            return "no_reasoning"
        if self._language is not None and cot is not None \
                and self._language([text])[0] < c.min_language_consistency:
            return "mixed_language"
        if c.max_paragraph_chars and longest_paragraph(text) > c.max_paragraph_chars:
            return "long_paragraph"
        if c.drop_code_blocks and _FENCE.search(text):
            return "code_block"
        if c.max_repeated_ngram_share and repeated_ngram_share(text) > c.max_repeated_ngram_share:
            return "repetition"
        key = (sample["prompt_id"], text.strip())
        if c.dedupe and key in self._seen:
            return "duplicate"
        if c.max_per_prompt and self._per_prompt[sample["prompt_id"]] >= c.max_per_prompt:
            return "per_prompt_cap"
        self._seen.add(key)
        self._per_prompt[sample["prompt_id"]] += 1
        return None


def rewrite_r1(completion: str, answer: str, summary: str) -> str:
    """The R1 output format: the reasoning, then a short summary that states the answer.

    >>> rewrite_r1("<think> 2*3=6 </think><answer>6</answer>", "6", "The answer is <answer>{answer}</answer>.")
    '<think>2*3=6</think>The answer is <answer>6</answer>.'
    """
    cot, _ = split_think(completion)
    lead = completion[:len(completion) - len(completion.lstrip())]  # keep the prompt/completion seam
    return f"{lead}<think>{(cot or '').strip()}</think>{summary.format(answer=answer)}"
