"""The built-in rewards of the paper (accuracy and format; more arrive in later modules)."""

from __future__ import annotations

import re

from r1pipeline.rewards.parse import extract_answer
from r1pipeline.rewards.registry import register
from r1pipeline.rewards.verify import verify


@register("accuracy")
def accuracy_reward(completions: list[str], answer: list[str], verifier: list[str] | None = None,
                    **_) -> list[float]:
    """1.0 when the completion's final answer matches the reference, else 0.0.

    Formula: r = 1[verify(extract_answer(o), reference)]. Source: DeepSeek-R1, "accuracy
    rewards" (rule-based, no neural model, against reward hacking). The answer is read from the
    ``<answer>`` block (or the last ``\\boxed{}``) after the chain of thought; the check is the
    task's own verifier (column ``verifier``, default exact match).

    >>> accuracy_reward(["<think>4*2=8</think><answer>8</answer>", "<answer>3</answer>",
    ...                  "<think><answer>8</answer></think>"], answer=["8", "8", "8"])
    [1.0, 0.0, 0.0]
    """
    kinds = verifier or ["exact"] * len(completions)
    return [float(verify(extract_answer(c), a, k)) for c, a, k in zip(completions, answer, kinds)]


_R1_ZERO_FORMAT = re.compile(
    r"^\s*<think>(?:(?!<think>|</think>|<answer>|</answer>).)*</think>\s*"
    r"<answer>(?:(?!<think>|</think>|<answer>|</answer>).)*</answer>\s*$",
    re.DOTALL,
)


@register("format")
def format_reward(completions: list[str], **_) -> list[float]:
    """1.0 when the completion is exactly ``<think>...</think><answer>...</answer>``, else 0.0.

    Formula: r = 1[o matches the R1-Zero template, no nested or repeated tags]. Source:
    DeepSeek-R1, "format rewards" (the reasoning must sit between ``<think>`` and ``</think>``).

    >>> format_reward(["<think>a</think><answer>b</answer>", "<answer>b</answer>",
    ...                "<think>a<think>b</think></think><answer>c</answer>"])
    [1.0, 0.0, 0.0]
    """
    return [1.0 if _R1_ZERO_FORMAT.match(c) else 0.0 for c in completions]
