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
    >>> parse_math("")
    []
    """
    text = text.strip()
    if not text:
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

    parsed = parse_math(reference)
    if not any(isinstance(p, (Basic, MatrixBase)) for p in parsed):
        return None
    return tuple(parsed)


def math_equal(prediction: str, reference: str) -> bool:
    """Mathematical equivalence under math-verify; False when either side does not parse.

    math-verify's ``verify`` is not symmetric: the reference goes first (``verify(gold,
    answer)``), as it expects.

    >>> math_equal("0.5", "\\\\frac{1}{2}"), math_equal("\\\\dfrac{1}{2}", "1/2"), math_equal("5 cm", "5")
    (True, True, True)
    >>> math_equal("2", "3"), math_equal("2", "not parseable {")
    (False, False)
    """
    gold = parse_math_reference(reference)
    if gold is None:
        return False
    answer = parse_math(prediction)
    if not answer:
        return False
    return bool(_math_verify().verify(list(gold), answer, timeout_seconds=None))


VERIFIERS["math"] = math_equal
