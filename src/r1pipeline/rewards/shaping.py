"""Shaping rewards: partial format credit, length shaping, repetition penalty.

These come from the open replications of R1 (open-r1, Kimi 1.5, DAPO), not from the paper,
which uses only accuracy, format and language rewards. They help small models: ``tag_count``
gives a gradient towards the R1-Zero format before ``format`` is ever 1.0, the length rewards
keep completions from growing without end, and ``repetition`` punishes loops.

Lengths are in tokens (``unit="tokens"``, the default: TRL passes the ``completion_ids`` column)
or in characters (``unit="chars"``, for use without a tokenizer); ``max_len`` and friends are in
that unit.
"""

from __future__ import annotations

import math

from r1pipeline.rewards.answers import check_answer
from r1pipeline.rewards.parse import TAGS, ends_clean
from r1pipeline.rewards.registry import register
from r1pipeline.rewards.verify import SLOW_VERIFIERS, VERIFIERS

UNITS = ("tokens", "chars")
REPETITION_UNITS = ("words", "chars")


def _lengths(completions: list[str], completion_ids: list | None, unit: str) -> list[int]:
    if unit == "chars":
        return [len(c) for c in completions]
    if completion_ids is None:
        raise ValueError("unit='tokens' needs the completion_ids column (TRL passes it); "
                         "use unit='chars' without a tokenizer")
    return [len(ids) for ids in completion_ids]


def _check_unit(unit: str) -> None:
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")


@register("tag_count", failure=0.0)
def tag_count_reward(completions: list[str], **_) -> list[float]:
    """Partial format credit: 0.25 for each of the four R1-Zero tags used exactly once.

    Formula: r = 0.25 * sum over t in (<think>, </think>, <answer>, </answer>) of
    1[count(t, o) == 1]. Source: open-r1 ``tag_count_reward``; unlike open-r1 it does not
    require the tags on lines of their own, matching our ``format`` reward.

    >>> tag_count_reward(["<think>a</think><answer>b</answer>", "<think>a</think> b",
    ...                   "<think><think>a</think></think><answer>b</answer>", "no tags"])
    [1.0, 0.5, 0.5, 0.0]
    """
    return [0.25 * sum(c.count(t) == 1 for t in TAGS) for c in completions]


@register("cosine_length", failure=lambda r: min(r.min_value_wrong, r.max_value_wrong,
                                                     r.min_value_correct, r.max_value_correct))
class CosineLength:
    """Length-shaped accuracy (cosine): correct short > correct long > wrong long > wrong short.

    Think less when you are right, think longer when you are wrong.

    Formula, with L = min(length, max_len) and c = cos(pi * L / max_len):
    correct: r = min_value_correct + (max_value_correct - min_value_correct) * (1 + c) / 2,
    wrong:   r = max_value_wrong + (min_value_wrong - max_value_wrong) * (1 + c) / 2,
    None when the reference cannot be checked against (see ``answers.check_answer``).
    Correctness is the task's verifier (the ``verifier`` parameter, else the ``verifier``
    column, else ``exact``). Source: Kimi k1.5 length penalty; open-r1
    ``get_cosine_scaled_reward``. Departures from open-r1: lengths past ``max_len`` are clamped
    (open-r1's cosine turns back up), an unparseable gold is None (open-r1 gives 1.0), and
    the answer is checked against the gold, not the other way round.

    >>> r = CosineLength(max_len=100, unit="chars")
    >>> [round(x, 2) for x in r(["<answer>4</answer>", "<answer>4</answer>" + "." * 82,
    ...                          "<answer>5</answer>", "<answer>5</answer>" + "." * 82],
    ...                         answer=["4"] * 4)]
    [0.96, 0.5, -0.96, -0.5]
    """

    def __init__(self, min_value_wrong: float = -1.0, max_value_wrong: float = -0.5,
                 min_value_correct: float = 0.5, max_value_correct: float = 1.0,
                 max_len: int = 1000, unit: str = "tokens", verifier: str | None = None):
        _check_unit(unit)
        if max_len <= 0:
            raise ValueError(f"max_len must be > 0, got {max_len}")
        if verifier is not None and verifier not in VERIFIERS:
            raise ValueError(f"unknown verifier {verifier!r}; known: {', '.join(sorted(VERIFIERS))}")
        self.min_value_wrong, self.max_value_wrong = min_value_wrong, max_value_wrong
        self.min_value_correct, self.max_value_correct = min_value_correct, max_value_correct
        self.max_len, self.unit, self.verifier = max_len, unit, verifier
        self.may_hang = verifier in SLOW_VERIFIERS
        self.__name__ = "cosine_length_reward"

    def __call__(self, completions: list[str], answer: list[str], verifier: list[str] | None = None,
                 completion_ids: list | None = None, answer_from: list[str] | None = None,
                 **_) -> list[float | None]:
        lengths = _lengths(completions, completion_ids, self.unit)
        n = len(completions)
        kinds = [self.verifier] * n if self.verifier else verifier or ["exact"] * n
        reads = answer_from or ["tags"] * n
        out = []
        for c, a, k, r, n in zip(completions, answer, kinds, reads, lengths, strict=True):
            ok = check_answer(c, a, k, r)
            if ok is None:
                out.append(None)
                continue
            cos = math.cos(math.pi * min(n, self.max_len) / self.max_len)
            lo, hi = ((self.min_value_correct, self.max_value_correct) if ok
                      else (self.max_value_wrong, self.min_value_wrong))
            out.append(lo + (hi - lo) * 0.5 * (1.0 + cos))
        return out


@register("clean_end", failure=0.0)
class CleanEnd:
    """1.0 when the completion stops at its summary, else 0.0: nothing runs on past the answer.

    Formula: r = 1[the first ``</answer>`` is followed by no tag and at most ``max_tail``
    characters] (``parse.ends_clean``, the same check as evaluation's ``ends_clean_rate``). A
    completion cut at the length limit after running on fails it too, since its tail is long.
    Source: ours; not in the paper, whose format reward asks for the summary but not that the output stop
    there. Without it the tiny world's reasoning RL drifted to ``<answer>2</answer> 2anso thhh``
    in 7% of samples: accuracy and format rewards read only the first answer, so nothing
    pushed back.

    >>> CleanEnd()(["<think>8*1=8</think><answer>8</answer> is the answer.",
    ...             "<think>2*1=2</think><answer>2</answer> 2anso thhhhanso <think>2*1", "<answer>8"])
    [1.0, 0.0, 0.0]
    """

    def __init__(self, max_tail: int = 24):
        if max_tail < 0:
            raise ValueError(f"max_tail must be >= 0, got {max_tail}")
        self.max_tail = max_tail
        self.__name__ = "clean_end_reward"

    def __call__(self, completions: list[str], **_) -> list[float]:
        return [float(ends_clean(c, max_tail=self.max_tail)) for c in completions]


@register("soft_overlong", failure=-1.0)
class SoftOverlong:
    """DAPO's soft overlong punishment: 0 until near the length limit, then down to -1.

    0 up to ``max_completion_len - cache_len``, a linear ramp down to -1 at
    ``max_completion_len``, and -1 beyond.

    Formula, with L the length and L_max = max_completion_len, L_c = cache_len:
    r = 0 if L <= L_max - L_c; ((L_max - L_c) - L) / L_c if L_max - L_c < L <= L_max; -1 otherwise.
    Source: DAPO (Yu et al. 2025), section 3.4 "Overlong reward shaping"; TRL
    ``get_soft_overlong_punishment``.

    >>> SoftOverlong(max_completion_len=100, cache_len=20, unit="chars")(["a" * 50, "a" * 90, "a" * 120])
    [0.0, -0.5, -1.0]
    >>> SoftOverlong(max_completion_len=4, cache_len=2)(["", ""], completion_ids=[[1, 2, 3], [1]])
    [-0.5, 0.0]
    """

    def __init__(self, max_completion_len: int = 4096, cache_len: int = 1024, unit: str = "tokens"):
        _check_unit(unit)
        if not 0 < cache_len <= max_completion_len:
            raise ValueError("need 0 < cache_len <= max_completion_len, "
                             f"got {cache_len}, {max_completion_len}")
        self.max_completion_len, self.cache_len, self.unit = max_completion_len, cache_len, unit
        self.__name__ = "soft_overlong_reward"

    def __call__(self, completions: list[str], completion_ids: list | None = None, **_) -> list[float]:
        start = self.max_completion_len - self.cache_len
        out = []
        for n in _lengths(completions, completion_ids, self.unit):
            if n <= start:
                out.append(0.0)
            elif n <= self.max_completion_len:
                out.append((start - n) / self.cache_len)
            else:
                out.append(-1.0)
        return out


@register("repetition", failure=lambda r: r.max_penalty)
class Repetition:
    """N-gram repetition penalty: the share of repeated n-grams, scaled to ``max_penalty``.

    Formula: r = max_penalty * (1 - distinct n-grams / all n-grams) over the lowercased
    completion's units; 0 for completions shorter than one n-gram. Units: ``words``
    (whitespace-split, open-r1's) or ``chars`` (each non-space character, for Chinese and
    Japanese text, which has no spaces: a CJK loop is one "word" and never repeats). Source:
    open-r1 ``get_repetition_penalty_reward`` (after Yeo et al. 2025, "Demystifying long CoT");
    open-r1's ``language="zh"`` splits with jieba, a word segmenter we do not ship: characters
    need none.

    >>> r = Repetition(ngram_size=2, max_penalty=-1.0)
    >>> r(["a b c d", "a b a b a b", "a"])
    [0.0, -0.6, 0.0]
    >>> Repetition(ngram_size=2, unit="chars")(["我们我们我们", "我们今天去"])
    [-0.6, 0.0]
    """

    def __init__(self, ngram_size: int = 3, max_penalty: float = -1.0, unit: str = "words"):
        if ngram_size < 1:
            raise ValueError(f"ngram_size must be >= 1, got {ngram_size}")
        if max_penalty > 0:
            raise ValueError(f"max_penalty must be <= 0 (it is a penalty), got {max_penalty}")
        if unit not in REPETITION_UNITS:
            raise ValueError(f"unit must be one of {', '.join(REPETITION_UNITS)}, got {unit!r}")
        self.ngram_size, self.max_penalty, self.unit = ngram_size, max_penalty, unit
        self.__name__ = "repetition_reward"

    def __setstate__(self, state):  # pickles made before ``unit`` existed count words
        self.__dict__.update({"unit": "words", **state})

    def _units(self, text: str) -> list[str]:
        text = text.lower()
        return text.split() if self.unit == "words" else [ch for ch in text if not ch.isspace()]

    def __call__(self, completions: list[str], **_) -> list[float]:
        out = []
        n = self.ngram_size
        for c in completions:
            units = self._units(c)
            total = len(units) - n + 1
            if total <= 0:
                out.append(0.0)
                continue
            distinct = len(set(zip(*(units[i:] for i in range(n)))))
            out.append(self.max_penalty * (1.0 - distinct / total) + 0.0)  # + 0.0: no -0.0
        return out
