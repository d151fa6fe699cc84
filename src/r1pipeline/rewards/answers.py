"""Answer-checking rewards: math equivalence (math-verify), exact and numeric match.

All read the final answer the same way as ``accuracy`` (``parse.extract_answer``: the
``<answer>`` block or the last ``\\boxed{}`` after ``</think>``; an answer only inside the chain
of thought does not count), and all follow one rule for a reference they cannot check against
(math-verify cannot parse it, a numeric reference that is no number): the reward is None, so
the sample is left out, never a free 1.0.

``math_accuracy`` may hang on pathological input (sympy); it carries ``may_hang = True`` so that
``safe.guard`` scores it in a worker process under a time limit.
"""

from __future__ import annotations

from r1pipeline.rewards.parse import read_answer
from r1pipeline.rewards.registry import register
from r1pipeline.rewards.verify import math_reference_checkable, numeric, verify


def _is_number(text: str) -> bool:
    return numeric(text, text)


def check_answer(completion: str, reference: str | None, kind: str = "exact",
                 answer_from: str = "tags") -> bool | None:
    """Whether the completion's final answer matches ``reference`` under verifier ``kind``;
    None when the reference cannot be checked against (unparseable for ``math``, or words that
    name a number, ``forty two``; not a number for ``numeric``; missing; or kind ``none``). A
    word reference under ``math`` (``Paris``) is compared as text (``verify.word_reference``).

    >>> check_answer("<think>.</think><answer>0.5</answer>", "\\\\frac{1}{2}", "math")
    True
    >>> check_answer("<think>.</think><answer>3</answer>", "three", "numeric") is None
    True
    """
    if reference is None or kind == "none":  # "none": a row without a reference (general prompts)
        return None
    reference = str(reference)
    if kind == "math" and not math_reference_checkable(reference):
        return None
    if kind == "numeric" and not _is_number(reference):
        return None
    return verify(read_answer(completion, answer_from), reference, kind)


def _scores(completions: list[str], answer: list[str], kind: str) -> list[float | None]:
    out = []
    for c, a in zip(completions, answer, strict=True):
        ok = check_answer(c, a, kind)
        out.append(None if ok is None else float(ok))
    return out


@register("math_accuracy", failure=0.0)
def math_accuracy_reward(completions: list[str], answer: list[str], **_) -> list[float | None]:
    """1.0 when the final answer is mathematically equal to the reference (math-verify), else 0.0.

    None when the reference cannot be parsed.
    Formula: r = 1[math_verify.verify(parse(gold), parse(extract_answer(o)))], the reference
    first as math-verify expects (its check is not symmetric), each reference parsed once
    (cached). Equivalent forms count: ``1/2``, ``0.5``, ``\\frac{1}{2}``, ``\\dfrac12``; units
    and ``\\text{}`` are dropped. Source: DeepSeek-R1, "accuracy rewards" (math answers in a
    box, checked for equivalence); math-verify as in open-r1's ``accuracy_reward``, without its
    two bugs (gold and answer swapped; 1.0 when the gold does not parse).

    >>> math_accuracy_reward(["<think>1/2</think><answer>0.5</answer>",
    ...                       "<think>..</think> so it is \\\\boxed{\\\\frac{1}{2}}",
    ...                       "<think>it is \\\\boxed{1/2}</think>", "<answer>1/3</answer>",
    ...                       "<answer>7</answer>"],
    ...                      answer=["1/2", "0.5", "1/2", "1/2", "}{"])
    [1.0, 1.0, 0.0, 0.0, None]
    """
    return _scores(completions, answer, "math")


math_accuracy_reward.may_hang = True  # sympy on hostile input: score it under safe.guard


@register("exact_match", failure=0.0)
def exact_match_reward(completions: list[str], answer: list[str], **_) -> list[float]:
    """1.0 when the final answer equals the reference as a string (both stripped), else 0.0.

    Formula: r = 1[strip(extract_answer(o)) == strip(gold)]. Source: DeepSeek-R1, rule-based
    accuracy rewards, for tasks with one canonical answer string (multiple choice, names).

    >>> exact_match_reward(["<think>.</think><answer> B </answer>", "<answer>b</answer>"],
    ...                    answer=["B", "B"])
    [1.0, 0.0]
    """
    return _scores(completions, answer, "exact")


@register("numeric_match", failure=0.0)
def numeric_match_reward(completions: list[str], answer: list[str], **_) -> list[float | None]:
    """1.0 when the final answer is the reference number (relative tolerance 1e-6), else 0.0.

    None when the reference is not a number.
    Formula: r = 1[|a - g| <= 1e-6 * max(|a|, |g|)], commas and a trailing period ignored.
    Source: DeepSeek-R1, rule-based accuracy rewards (GSM8K-style integer answers).

    >>> numeric_match_reward(["<answer>1,000</answer>", "<answer>999</answer>", "<answer>1</answer>"],
    ...                      answer=["1000", "1000", "n/a"])
    [1.0, 0.0, None]
    """
    return _scores(completions, answer, "numeric")
