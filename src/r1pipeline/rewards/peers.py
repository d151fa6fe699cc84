"""Rewards from the open replications that users bring by name: open-r1's step count, Kimi 1.5's
group length reward, and open-r1's code format check.

None of these is in the DeepSeek-R1 paper. They are here so that an open-r1 recipe's reward list
means the same thing in a spec (``registry.ALIASES`` maps open-r1's and TRL's names onto these).
"""

from __future__ import annotations

import json
import re

from r1pipeline.rewards.answers import check_answer
from r1pipeline.rewards.parse import split_think
from r1pipeline.rewards.registry import register
from r1pipeline.rewards.shaping import _check_unit, _lengths
from r1pipeline.rewards.verify import VERIFIERS

# open-r1's markers: "Step 3:", a numbered list item, a "-" or "*" bullet, four transition words.
# Departure: ``^`` is per line here (re.M); open-r1 compiles without it, so its "numbered lists at
# start of line" only ever matched a number at the very start of the completion.
_STEP_RE = re.compile(r"(Step \d+:|^\d+\.|\n-|\n\*|First,|Second,|Next,|Finally,)", re.MULTILINE)
STEPS_FOR_FULL_CREDIT = 3  # open-r1's "magic number 3": three steps or more earn 1.0


@register("reasoning_steps", failure=0.0)
def reasoning_steps_reward(completions: list[str], **_) -> list[float]:
    """Partial credit for visible step-by-step reasoning: min(1, markers / 3).

    Formula: r = min(1, k / 3), k the number of step markers in the completion: ``Step N:``,
    a numbered list item ``N.`` at the start of a line, a line starting with ``-`` or ``*``, and
    the words ``First,`` ``Second,`` ``Next,`` ``Finally,``. Source: open-r1
    ``reasoning_steps_reward`` (same markers, same 3). Departure: open-r1's ``^`` lacks the
    multiline flag, so it counts a numbered item only at the very start of the text; here every
    line's counts, as its docstring intends.

    >>> reasoning_steps_reward(["Step 1: add\\nStep 2: carry\\nStep 3: done", "First, add.",
    ...                         "1. add\\n2. carry", "no steps here"])
    [1.0, 0.3333333333333333, 0.6666666666666666, 0.0]
    """
    return [min(1.0, len(_STEP_RE.findall(c)) / STEPS_FOR_FULL_CREDIT) for c in completions]


def _group_key(prompt) -> str:
    """A hashable key for a prompt (a string, or a chat prompt: a list of messages)."""
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, default=str)


def kimi_lambdas(lengths: list[int]) -> list[float]:
    """Kimi 1.5's lambda per completion of one group: 0.5 - (len - min) / (max - min); all 0.0
    when every length is the same.

    >>> kimi_lambdas([10, 20, 30]), kimi_lambdas([7, 7])
    ([0.5, 0.0, -0.5], [0.0, 0.0])
    """
    lo, hi = min(lengths), max(lengths)
    if hi == lo:
        return [0.0] * len(lengths)
    return [0.5 - (n - lo) / (hi - lo) for n in lengths]


@register("kimi_length", failure=-0.5)
class KimiLength:
    """Kimi 1.5's length reward: in a prompt's group, short correct answers gain, long wrong lose.

    Formula, within the group of completions of one prompt, lambda = 0.5 - (len - min_len) /
    (max_len - min_len): correct: r = lambda, wrong: r = min(0, lambda); every r = 0 when all
    lengths are equal; r in [-0.5, 0.5]. Source: Kimi k1.5 (arXiv 2501.12599, section 2.3.3
    "Length penalty"), as open-r1 ``len_reward`` computes it. Correctness is the check the
    ``accuracy`` reward makes (``answers.check_answer``: the task's ``verifier`` and
    ``answer_from`` columns, default ``exact``). Groups are the completions with the same
    ``prompts`` entry (TRL passes it); without prompts the batch is one group, as in open-r1.
    Departures from open-r1: an unparseable reference gives None (open-r1 counts it correct);
    lengths are tokens by default (``unit="chars"`` is open-r1's characters); the batch is
    scored as a whole (``whole_batch``: the guard never splits it into one-sample calls, and
    math answers are bounded by ``bounds`` before math-verify sees them). Under several
    processes TRL may split one prompt's group across them: each part is a group here.

    >>> r = KimiLength(unit="chars")
    >>> r(["<answer>4</answer>", "<answer>4</answer>....", "<answer>5</answer>..",
    ...    "<answer>5</answer>........"], answer=["4"] * 4)
    [0.5, 0.0, 0.0, -0.5]
    """

    whole_batch = True  # a score depends on the other completions of its prompt

    def __init__(self, unit: str = "tokens", verifier: str | None = None):
        _check_unit(unit)
        if verifier is not None and verifier not in VERIFIERS:
            raise ValueError(f"unknown verifier {verifier!r}; known: {', '.join(sorted(VERIFIERS))}")
        self.unit, self.verifier = unit, verifier
        self.__name__ = "kimi_length_reward"

    def __call__(self, completions: list[str], answer: list[str], prompts: list | None = None,
                 completion_ids: list | None = None, verifier: list[str] | None = None,
                 answer_from: list[str] | None = None, **_) -> list[float | None]:
        n = len(completions)
        lengths = _lengths(completions, completion_ids, self.unit)
        kinds = [self.verifier] * n if self.verifier else verifier or ["exact"] * n
        reads = answer_from or ["tags"] * n
        groups: dict[str, list[int]] = {}
        for i, p in enumerate(prompts if prompts is not None else [""] * n):
            groups.setdefault(_group_key(p), []).append(i)
        out: list[float | None] = [None] * n
        for idx in groups.values():
            for i, lam in zip(idx, kimi_lambdas([lengths[i] for i in idx])):
                ok = check_answer(completions[i], answer[i], kinds[i], reads[i])
                out[i] = None if ok is None else (lam if ok else min(0.0, lam)) + 0.0
        return out


_FENCE = r"```{lang}[ \t]*\r?\n.*?```"


@register("code_format", failure=0.0)
class CodeFormat:
    """1.0 when a closed think block is followed by a fenced code block in the task's language.

    Formula: r = 1[the completion has ``<think>...</think>`` and, after it, a block
    ```` ```<language> ```` ... ```` ``` ````]; the language is the row's ``code_language``
    column when the task gives one (not ``language``: tasks may name a natural language there),
    else the ``language`` parameter (default ``python``, what the
    ``code`` reward runs). Source: open-r1 ``get_code_format_reward`` (think, then answer, with a
    fenced block of ``language`` inside it). Departure: the block may sit in the R1 summary after
    ``</think>`` with or without ``<answer>`` tags, as ``code.extract_program`` reads it; no
    newlines are required around the tags, matching our ``format`` reward; the fence's tag is
    the whole word (open-r1's ``{language}.*?`` lets ```` ```c ```` match ```` ```cpp ````). The
    column is ``code_language``, open-r1's name for the setting.

    >>> r = CodeFormat()
    >>> r(["<think>loop</think>```python\\nprint(1)\\n```", "<think>```python\\nx\\n```</think>none",
    ...    "<think>t</think>```cpp\\nint main(){}\\n```"])
    [1.0, 0.0, 0.0]
    """

    def __init__(self, language: str = "python"):
        if not re.fullmatch(r"[\w+#.-]+", language or ""):
            raise ValueError(f"language must be a fence tag such as python or cpp, got {language!r}")
        self.language = language
        self.__name__ = "code_format_reward"

    def __call__(self, completions: list[str], code_language: list[str] | None = None,
                 **_) -> list[float]:
        langs = code_language or [self.language] * len(completions)
        out = []
        for c, lang in zip(completions, langs, strict=True):
            cot, rest = split_think(c)
            fence = re.compile(_FENCE.format(lang=re.escape(str(lang or self.language))), re.DOTALL)
            out.append(float(cot is not None and fence.search(rest) is not None))
        return out
