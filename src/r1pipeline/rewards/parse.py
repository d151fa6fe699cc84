"""Reading the parts of a completion: the chain of thought, the answer, the summary.

Two output formats appear in the paper:

* R1-Zero: ``<think> reasoning </think> <answer> answer </answer>``
* R1 (cold start on): ``<think> reasoning </think> summary``, the summary stating the answer.
"""

from __future__ import annotations

import re

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)

_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_BOXED_RE = re.compile(r"\\boxed\{")
_NUMBER_RE = re.compile(r"(?<![\w.])-?\d+(?:,\d{3})*(?:\.\d+)?")
ANSWER_FROM = ("tags", "last_number")  # how a task's answers are read: see read_answer


def split_think(text: str) -> tuple[str | None, str]:
    """Split a completion into (chain of thought, the rest after ``</think>``).

    The chain of thought is None when the completion has no closed think block.

    >>> split_think("<think>2*3=6</think><answer>6</answer>")
    ('2*3=6', '<answer>6</answer>')
    >>> split_think("just 6")
    (None, 'just 6')
    """
    start = text.find(THINK_OPEN)
    end = text.find(THINK_CLOSE)
    if start == -1 or end == -1 or end < start:
        return None, text
    return text[start + len(THINK_OPEN):end], text[end + len(THINK_CLOSE):]


def extract_answer(text: str) -> str | None:
    """The final answer of a completion, or None if it states none.

    Looks, in order, for the last ``<answer>`` block after the chain of thought, then for the
    last ``\\boxed{...}`` in the part after ``</think>``. An answer written only inside the
    chain of thought does not count.

    >>> extract_answer("<think>..</think><answer> 42 </answer>")
    '42'
    >>> extract_answer("<think><answer>4</answer></think>")
    >>> extract_answer("<think>x</think> so the answer is \\\\boxed{7}.")
    '7'
    """
    _, rest = split_think(text)
    if THINK_OPEN in rest:  # a second think block: malformed, refuse to guess
        return None
    found = _ANSWER_RE.findall(rest)
    if found:
        return found[-1].strip()
    return last_boxed(rest)


def read_answer(text: str, answer_from: str = "tags") -> str | None:
    """The final answer of a completion as the task reads it (a row's ``answer_from`` column).

    ``tags`` (the default, the paper's rule): ``extract_answer``. ``last_number``: the tagged or
    boxed answer when there is one, else the last number after the chain of thought (commas of
    thousands dropped). It serves a pretrained chat model that answers in prose and almost never
    writes tags unprompted (SmolLM2: bench/smol_prompts.py), so that R1-Zero has a reward to learn
    from before the format reward is earned.

    >>> read_answer("5 + 7 = 12, so the answer is 12.", "last_number")
    '12'
    >>> read_answer("<think>2+2 is 4</think> The total is -1,250 apples.", "last_number")
    '-1250'
    >>> read_answer("<think>12</think><answer>13</answer> (not 14)", "last_number")
    '13'
    >>> read_answer("5 + 7 = 12", "tags") is None
    True
    """
    if answer_from == "tags":
        return extract_answer(text)
    if answer_from != "last_number":
        raise ValueError(f"answer_from must be one of {', '.join(ANSWER_FROM)}, got {answer_from!r}")
    found = extract_answer(text)
    if found is not None:
        return found
    _, rest = split_think(text)
    numbers = _NUMBER_RE.findall(rest)
    return numbers[-1].replace(",", "") if numbers else None


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}``, braces balanced; None if absent or unclosed.

    >>> last_boxed(r"\\boxed{\\frac{1}{2}}")
    '\\\\frac{1}{2}'
    """
    matches = list(_BOXED_RE.finditer(text))
    if not matches:
        return None
    i = matches[-1].end()
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j].strip()
    return None


def has_chain_of_thought(text: str, min_chars: int = 1) -> bool:
    """True when the completion has a closed think block with some reasoning in it.

    >>> has_chain_of_thought("<think></think><answer>3</answer>")
    False
    >>> has_chain_of_thought("<think>1*3=3</think><answer>3</answer>")
    True
    """
    cot, _ = split_think(text)
    return cot is not None and len(cot.strip()) >= min_chars


def ends_clean(text: str, truncated: bool = False, max_tail: int = 24) -> bool:
    """True when a completion stops at its summary: not cut at the length limit, and after the
    first ``</answer>`` no further tag and at most ``max_tail`` characters (whitespace aside).

    The R1 format ends with a summary that states the answer; a policy that runs on past it
    (``<answer>2</answer> 2anso thhhhanso <think>...``) or is cut at the limit has not. A
    completion with no closed answer has not ended with its summary either.

    >>> ends_clean("<think>8*1=8</think><answer>8</answer> is the answer.")
    True
    >>> ends_clean("<think>2*1=2</think><answer>2</answer> 2anso thhhhanso <think>2*1")
    False
    >>> ends_clean("<answer>8</answer> is the answer.", truncated=True), ends_clean("<answer>8")
    (False, False)
    """
    if truncated:
        return False
    end = text.find(ANSWER_CLOSE)
    if end == -1:
        return False
    tail = text[end + len(ANSWER_CLOSE):]
    return not any(tag in tail for tag in TAGS) and len(tail.strip()) <= max_tail
