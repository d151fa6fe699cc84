"""Checking a predicted answer against a reference: one function that RL and evaluation share.

``verify(prediction, reference, kind)`` returns True or False and never raises. The kind comes
from the task (a dataset's ``verifier`` column): ``exact`` compares stripped strings, ``numeric``
compares numbers with a relative tolerance, ``math`` checks mathematical equivalence with
math-verify. Further kinds register themselves in ``VERIFIERS``; kinds that may hang on
pathological input are listed in ``SLOW_VERIFIERS``.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Callable

from r1pipeline.rewards.bounds import math_input_problem

Verifier = Callable[[str, str], bool]


def exact(prediction: str, reference: str) -> bool:
    """Stripped string equality.

    >>> exact(" 8 ", "8"), exact("8", "08")
    (True, False)
    """
    return prediction.strip() == reference.strip()


def numeric(prediction: str, reference: str, rel_tol: float = 1e-6) -> bool:
    """Numeric equality (commas and a trailing period ignored); False if either is not a number.

    >>> numeric("1,000", "1000.0"), numeric("0.5", "1/2"), numeric("x", "1")
    (True, False, False)
    """
    def to_float(s: str) -> float:
        return float(s.strip().rstrip(".").replace(",", ""))

    try:
        a, b = to_float(prediction), to_float(reference)
    except ValueError:
        return False
    if math.isnan(a) or math.isnan(b):
        return False
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=1e-12)


VERIFIERS: dict[str, Verifier] = {"exact": exact, "numeric": numeric}


def verify(prediction: str | None, reference: str, kind: str = "exact") -> bool:
    """True when ``prediction`` matches ``reference`` under verifier ``kind``; never raises.

    >>> verify("8", "8"), verify(None, "8"), verify("8.0", "8", "numeric")
    (True, False, True)
    """
    if prediction is None:
        return False
    fn = VERIFIERS.get(kind)
    if fn is None:  # task sources register their kinds on import (also in reward worker processes)
        import r1pipeline.tasks.builtin  # noqa: F401

        fn = VERIFIERS.get(kind)
    if fn is None:
        raise KeyError(f"unknown verifier {kind!r}; known: {', '.join(sorted(VERIFIERS))}")
    try:
        return bool(fn(prediction, reference))
    except Exception:  # a verifier bug on odd input must not stop training
        return False


# The "math" kind: symbolic equivalence with Hugging Face's math-verify (LaTeX, \boxed{},
# fractions vs decimals, units, sets, intervals). math-verify's own time limit is signal-based
# (SIGALRM), which only works in the main thread; it is switched off here and the caller bounds
# the time instead: the GRPO stage runs verifiers listed in SLOW_VERIFIERS through
# ``r1pipeline.rewards.safe.guard``, in a worker process that is killed on timeout.

SLOW_VERIFIERS: set[str] = {"math"}  # kinds that may hang on pathological input

_PROSE = re.compile(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}\s+[A-Za-z]{2,}")
_DELIMITED = ("$", "\\(", "\\[", "\\boxed")


def _math_verify():
    import math_verify
    import math_verify.grader
    import math_verify.parser

    # We pass timeout None on purpose (see above); silence the one-time warning about it.
    math_verify.parser.TIMEOUT_WARNING_SHOWN = True
    math_verify.grader.TIMEOUT_WARNING_SHOWN = True
    return math_verify


def parse_math(text: str) -> list:
    """Parse an answer string into math-verify's candidates (sympy objects, strings); [] if none.

    A bare answer (``1/2``, ``\\frac12``, ``5 cm``) is parsed as if it were ``\\boxed{...}``;
    text that brings its own delimiters (``$...$``, ``\\boxed{}``) or reads as prose ("the
    answer is 5") goes to math-verify's extraction as it is.

    >>> parse_math("\\\\frac12")[0], parse_math("0.5")[0], parse_math("the answer is $7$")[0]
    (1/2, 1/2, 7)
    >>> parse_math(""), parse_math("{" * 5000 + "1" + "}" * 5000), parse_math("9^{9^{9}}")
    ([], [], [])
    """
    text = text.strip()
    if not text or math_input_problem(text) is not None:  # hostile shapes never reach the parser
        return []
    mv = _math_verify()
    if not (any(d in text for d in _DELIMITED) or _PROSE.search(text)):
        text = "\\boxed{" + text + "}"
    return mv.parse(text, parsing_timeout=None)


@functools.lru_cache(maxsize=8192)
def parse_math_reference(reference: str) -> tuple | None:
    """The parsed reference answer, cached (a dataset repeats each reference once per
    generation); None when math-verify finds no mathematical object in it (it may still hand
    back the raw text, which is not a reference one can check an answer against).

    >>> parse_math_reference("\\\\frac{1}{2}")[0], parse_math_reference("???"), parse_math_reference("")
    (1/2, None, None)
    """
    from sympy import Basic, MatrixBase

    if word_reference(reference) is not None:  # math-verify reads "Paris" as a*i*p*r*s
        return None
    parsed = parse_math(reference)
    if not any(isinstance(p, (Basic, MatrixBase)) for p in parsed):
        return None
    return tuple(parsed)


_WORDS_RE = re.compile(r"[A-Za-z]+(?:[ '-][A-Za-z]+)*")
_TEXT_RE = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
# A reference naming a number in words cannot be checked: the answer "42" is right for
# "forty two" but equal neither as text nor (math-verify reads letters) as math.
NUMBER_WORDS = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty "
    "ninety hundred thousand million billion half halves third thirds quarter quarters".split())
NUMBER_WORDS_SKIPPED = "<names a number>"


def normalize_words(text: str) -> str:
    """Text as word answers are compared: ``\\text{}`` and ``$`` dropped, a final period
    dropped, case folded, hyphens and runs of whitespace made one space.

    >>> normalize_words(" $\\\\text{New-York}$. ")
    'new york'
    """
    text = _TEXT_RE.sub(r"\1", text).replace("$", "").strip().rstrip(".").replace("-", " ")
    return " ".join(text.casefold().split())


def word_reference(reference: str) -> str | None:
    """The normalised words of a reference that is words, not math (``Paris``, ``New York``);
    ``NUMBER_WORDS_SKIPPED`` when the words name a number (``forty two``: not checkable);
    None for anything else, a single letter included (``B``, ``x``: math-verify's symbols).

    A bare run of letters is all math-verify could read as a product of one-letter symbols
    (``Paris`` -> a*i*p*r*s), so any anagram would match. Written with an operator
    (``x\\cdot y``) a product stays math; ``xy`` is then compared as text.

    >>> word_reference("Paris"), word_reference("forty two"), word_reference("B"), word_reference("2x")
    ('paris', '<names a number>', None, None)
    """
    text = _TEXT_RE.sub(r"\1", reference).replace("$", "").strip().rstrip(".")
    if len(text) < 2 or not _WORDS_RE.fullmatch(text):
        return None
    words = normalize_words(text)
    return NUMBER_WORDS_SKIPPED if any(w in NUMBER_WORDS for w in words.split()) else words


def math_reference_checkable(reference: str) -> bool:
    """Whether an answer can be checked against ``reference`` under ``math``: it parses as
    math, or it is words that name no number.

    >>> math_reference_checkable("1/2"), math_reference_checkable("Paris"), math_reference_checkable("forty two")
    (True, True, False)
    """
    words = word_reference(reference)
    if words is not None:
        return words != NUMBER_WORDS_SKIPPED
    return parse_math_reference(reference) is not None


def math_equal(prediction: str, reference: str) -> bool:
    """Mathematical equivalence under math-verify; False when either side does not parse.

    math-verify's ``verify`` is not symmetric: the reference goes first (``verify(gold,
    answer)``), as it expects.

    >>> math_equal("0.5", "\\\\frac{1}{2}"), math_equal("\\\\dfrac{1}{2}", "1/2"), math_equal("5 cm", "5")
    (True, True, True)
    >>> math_equal("2", "3"), math_equal("2", "not parseable {")
    (False, False)

    A word reference is compared as text (``word_reference``): math-verify would read it as a
    product of letters, under which every anagram matches.

    >>> math_equal("paris", "Paris"), math_equal("Pairs", "Paris")
    (True, False)
    """
    words = word_reference(reference)
    if words is not None:
        return words not in NUMBER_WORDS_SKIPPED and normalize_words(prediction) == words
    gold = parse_math_reference(reference)
    if gold is None:
        return False
    answer = parse_math(prediction)
    if not answer:
        return False
    return bool(_math_verify().verify(list(gold), answer, timeout_seconds=None))


VERIFIERS["math"] = math_equal
