"""The embedded tiny world: a reasoning task that a 1M-parameter model can learn on a laptop CPU.

The task: the last digit of the product of ``n_digits`` digits (``8*1*6*3*7`` -> ``8``), drawn
from 1-9 without 5, so that no answer is a safe guess (a constant guess is right about 25% of the
time; with 5 allowed, "0" alone would be right 40% of the time). Worked
out step by step, each step is one lookup in the times table on the running last digit
(``8*1=8 8*6=48 8*3=24 4*7=28``, so the answer is 8); answered directly, it is a guess. That
gap is what R1-Zero can discover: a chain of thought that makes the answer right.

``corpus()`` writes the pretraining documents for the base model: a mix of worked solutions in
the R1-Zero format, tagged direct answers, untagged worked steps, bare answers and malformed
outputs, each step wrong with some probability. The base model so learns the format and the
steps, but mostly answers directly, so it starts with low accuracy and a short completion length.

Two languages: steps are joined by a connective, English ``so`` or, with probability
``p_second_language`` per connective, Chinese ``所以``. A chain of thought learned from this corpus
mixes languages, as R1-Zero's did, which gives the language-consistency reward work to do:
``8*1=8 so 8*6=48 所以 8*3=24 so 4*7=28`` has consistency 2/4 = 0.5 (each CJK character is a word).
"""

from __future__ import annotations

import random
from typing import Any

from pydantic import Field, model_validator

from r1pipeline.tasks.registry import TaskSource, register, split_of
from r1pipeline.tasks.templates import render

DIGITS = (1, 2, 3, 4, 6, 7, 8, 9)
CONNECTIVES = {"en": " so ", "zh": " 所以 "}

# Share of each document kind in the pretraining corpus (keys are the kinds below).
# Mostly short answers, so that the base model starts short and mostly wrong; enough worked
# solutions (tagged and untagged) that sampling finds a chain of thought now and then.
# Fewer chains make the base shorter but starve R1-Zero: at r1 0.08 / direct 0.37 / steps 0.10 / bare 0.40
# (tiny.yaml seeds 0-2, fp32, AMD EPYC Zen 3) the base answered in 9-10.5 tokens (this mix: 14.5-18.6, fp32 on
# the AVX2 stand-in) and R1-Zero found chains of thought on one seed of three (gain over the base +0.05 / +0.39 /
# +0.02 in 200 steps; this mix: +0.65 to +0.70).
DEFAULT_MIX = {"r1": 0.12, "direct": 0.33, "steps": 0.15, "bare": 0.35, "malformed": 0.05}


@register("tiny_product")
class TinyProduct(TaskSource):
    """Last digit of a product of digits (1-9 without 5); answers checked by exact match."""

    n_digits: int = Field(5, ge=2, le=12, description="digits per question (the fewest, with max_digits)")
    max_digits: int | None = Field(None, ge=2, le=12,
                                   description="questions of n_digits to max_digits digits, each length equally often")
    test_share: float = Field(0.1, gt=0, lt=1, description="share of all questions held out")

    @model_validator(mode="after")
    def _lengths_ordered(self):
        if self.max_digits is not None and self.max_digits < self.n_digits:
            raise ValueError(f"max_digits ({self.max_digits}) is below n_digits ({self.n_digits}): "
                             "set max_digits >= n_digits, or leave it out for one length")
        return self

    @property
    def lengths(self) -> range:
        """The question lengths (digits) this source draws from, each equally often."""
        return range(self.n_digits, (self.max_digits or self.n_digits) + 1)

    def question(self, digits: list[int]) -> str:
        return "*".join(map(str, digits))

    def answer(self, digits: list[int]) -> str:
        last = digits[0]
        for d in digits[1:]:
            last = last * d % 10
        return str(last)

    def _sample(self, rng: random.Random, split: str) -> list[int]:
        while True:
            # one length draws no number for it: the questions of specs without max_digits stay as they were
            length = self.n_digits if self.max_digits is None else rng.choice(self.lengths)
            digits = [rng.choice(DIGITS) for _ in range(length)]
            if split_of(self.question(digits), self.test_share) == split:
                return digits

    def load(self, split: str, n: int, seed: int) -> list[dict[str, Any]]:
        """``n`` distinct questions of ``split`` (fewer only if the split has fewer)."""
        rng = random.Random(f"{seed}-{split}")
        rows, seen = [], set()
        share = self.test_share if split == "test" else 1 - self.test_share
        # lengths are drawn equally often, so the shortest one's questions run out first
        max_distinct = min(len(DIGITS) ** n for n in self.lengths) * len(self.lengths) * share
        while len(rows) < min(n, int(max_distinct * 0.9)):
            digits = self._sample(rng, split)
            q = self.question(digits)
            if q in seen:
                continue
            seen.add(q)
            rows.append({"id": f"tiny_product/{q}", "question": q, "answer": self.answer(digits),
                         "verifier": "exact"})
        return rows

    def steps(self, digits: list[int], rng: random.Random, p_wrong: float = 0.0,
              p_second_language: float = 0.0) -> tuple[str, str]:
        """A worked solution, each step wrong with probability ``p_wrong`` and each connective
        Chinese with probability ``p_second_language``: (steps, final answer)."""
        last, text = digits[0], ""
        for i, d in enumerate(digits[1:]):
            product = last * d
            if rng.random() < p_wrong:
                product = rng.choice([p for p in range(82) if p != product])
            if i:
                text += CONNECTIVES["zh" if rng.random() < p_second_language else "en"]
            text += f"{last}*{d}={product}"
            last = product % 10
        return text, str(last)

    def document(self, kind: str, digits: list[int], rng: random.Random, p_wrong: float,
                 p_second_language: float = 0.0) -> str:
        """One pretraining document (prompt + completion) of the given kind."""
        answer = self.answer(digits)
        steps, stepped = self.steps(digits, rng, p_wrong, p_second_language)
        completion = {
            "r1": f"<think>{steps}</think><answer>{stepped}</answer>",
            "direct": f"<think></think><answer>{answer}</answer>",
            "steps": f"{steps} so {stepped}",
            "bare": answer,
            "malformed": rng.choice([f"<think>{steps}<answer>{stepped}</answer>",
                                     f"<answer>{answer}", f"<think>{steps}</think>{stepped}"]),
        }[kind]
        return render("r1_zero_short", self.question(digits)) + completion

    def corpus(self, n: int, seed: int, mix: dict[str, float] | None = None,
               p_wrong: float = 0.3, p_second_language: float = 0.0) -> list[str]:
        """``n`` pretraining documents from the train split only (held-out questions never appear)."""
        mix = mix or DEFAULT_MIX
        rng = random.Random(f"{seed}-corpus")
        kinds, weights = zip(*mix.items())
        return [self.document(rng.choices(kinds, weights)[0], self._sample(rng, "train"), rng, p_wrong,
                              p_second_language) for _ in range(n)]
