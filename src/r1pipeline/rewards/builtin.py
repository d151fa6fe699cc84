"""The built-in rewards of the paper (accuracy and format; more arrive in later modules)."""

from __future__ import annotations

import re

from r1pipeline.rewards.parse import read_answer
from r1pipeline.rewards.registry import register
from r1pipeline.rewards.verify import verify


@register("accuracy", failure=0.0)
def accuracy_reward(completions: list[str], answer: list[str], verifier: list[str] | None = None,
                    answer_from: list[str] | None = None, **_) -> list[float | None]:
    """1.0 when the completion's final answer matches the reference, else 0.0.

    Formula: r = 1[verify(extract_answer(o), reference)]. Source: DeepSeek-R1, "accuracy
    rewards" (rule-based, no neural model, against reward hacking). The answer is read from the
    ``<answer>`` block (or the last ``\\boxed{}``) after the chain of thought, or as the task says
    (column ``answer_from``: ``last_number`` falls back to the last number, ``parse.read_answer``);
    the check is the task's own verifier (column ``verifier``, default exact match). Rows whose
    verifier is ``none`` (general prompts without a reference answer) get None: the reward does
    not apply.

    >>> accuracy_reward(["<think>4*2=8</think><answer>8</answer>", "<answer>3</answer>",
    ...                  "<think><answer>8</answer></think>"], answer=["8", "8", "8"])
    [1.0, 0.0, 0.0]
    >>> accuracy_reward(["4*2 is 8.", "4*2 is 8."], answer=["8", "8"], answer_from=["tags", "last_number"])
    [0.0, 1.0]
    """
    n = len(completions)
    kinds, reads = verifier or ["exact"] * n, answer_from or ["tags"] * n
    return [None if k == "none" else float(verify(read_answer(c, r), a, k))
            for c, a, k, r in zip(completions, answer, kinds, reads)]


_R1_ZERO_FORMAT = re.compile(
    r"^\s*<think>(?:(?!<think>|</think>|<answer>|</answer>).)*</think>\s*"
    r"<answer>(?:(?!<think>|</think>|<answer>|</answer>).)*</answer>\s*$",
    re.DOTALL,
)


_R1_FORMAT = re.compile(
    r"^\s*<think>(?:(?!<think>|</think>|<answer>|</answer>).)*</think>"
    r"(?=.*\S)(?:(?!<think>|</think>).)*$",
    re.DOTALL,
)
_STYLES = {"r1_zero": (_R1_ZERO_FORMAT,), "r1": (_R1_FORMAT,), "any": (_R1_ZERO_FORMAT, _R1_FORMAT)}


@register("format", failure=0.0)
class Format:
    """1.0 when the completion has the output format of ``style``, else 0.0.

    Styles: ``r1_zero`` is exactly ``<think>...</think><answer>...</answer>`` (R1-Zero's
    template); ``r1`` is ``<think>...</think>`` followed by a non-empty summary (the R1 output
    format from the cold start on); ``any`` accepts either. Tags may not nest or repeat inside
    the reasoning. Source: DeepSeek-R1, "format rewards" (the reasoning must sit between
    ``<think>`` and ``</think>``).

    >>> f = Format()
    >>> f(["<think>a</think><answer>b</answer>", "<answer>b</answer>",
    ...    "<think>a<think>b</think></think><answer>c</answer>"])
    [1.0, 0.0, 0.0]
    >>> Format("r1")(["<think>a</think>The answer is <answer>4</answer>.", "<think>a</think>  "])
    [1.0, 0.0]
    """

    def __init__(self, style: str = "r1_zero"):
        if style not in _STYLES:
            raise ValueError(f"style must be one of {', '.join(_STYLES)}, got {style!r}")
        self.style = style
        self._patterns = _STYLES[style]
        self.__name__ = "format_reward"

    def __call__(self, completions: list[str], **_) -> list[float]:
        return [1.0 if any(p.match(c) for p in self._patterns) else 0.0 for c in completions]


format_reward = Format("r1_zero")
any_format_reward = Format("any")

# The rest of the library; importing registers it.
from r1pipeline.rewards import answers, code, language, model, oracle, peers, shaping  # noqa: E402,F401
