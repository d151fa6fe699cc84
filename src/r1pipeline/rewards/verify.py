"""Checking a predicted answer against a reference: one function that RL and evaluation share.

``verify(prediction, reference, kind)`` returns True or False and never raises. The kind comes
from the task (a dataset's ``verifier`` column): ``exact`` compares stripped strings, ``numeric``
compares numbers with a relative tolerance. Further kinds register themselves in ``VERIFIERS``.
"""

from __future__ import annotations

import math
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
    if fn is None:
        raise KeyError(f"unknown verifier {kind!r}; known: {', '.join(sorted(VERIFIERS))}")
    try:
        return bool(fn(prediction, reference))
    except Exception:  # a verifier bug on odd input must not stop training
        return False
