"""What math-verify may be shown: cheap bounds checked before any parsing.

math-verify (its LaTeX grammar, then sympy) is exponential or worse on a few shapes that a
policy finds quickly, and some of its work cannot be interrupted (sympy computing
``9**(9**9)`` exactly holds the GIL in C). Measured on a busy 2-core Xeon (bench/rewards.py
``--hostile``): bare nested braces cost ~0.5 s at depth 8 and grow ~1.6x per level (depth 100
runs for minutes); nested ``(``/``[`` cost 4-5 s at depth 30; 5,000 letters or 6,000
characters of ``x+x+...`` take over 10 s; ``10^{9999999}`` takes 13 s and ``9^{9^{9}}`` never
returns. Every answer we have seen in a math data set is far inside these bounds, so refusing
what lies outside them (the answer counts as unparseable: wrong for a prediction, not
checkable for a reference) costs nothing and keeps hostile samples from ever reaching the
worker's time limit. One linear scan, microseconds.
"""

from __future__ import annotations

import re

MAX_CHARS = 1000  # an answer, not a derivation; 'a' * 1000 still parses in ~0.6 s
MAX_DEPTH = 10  # nested {, (, [ together; bare braces are exponential past this
MAX_COMMANDS = 40  # \frac, \sqrt and friends in one answer (nested \sqrt{...} 100 deep: ~1 s)
MAX_TOWER = 2  # stacked exponents: a^{b^{c}} has height 2; x^{x^{x^{x}}} is refused
MAX_EXPONENT_DIGITS = 5  # 10^{99999} is fine; 10^{9999999} takes 13 s
MAX_FACTORIAL_DIGITS = 3  # 999! is fine; 10^{10^{10}}! is not

_OPEN, _CLOSE = "{([", "})]"
_COMMAND_RE = re.compile(r"\\(?:[dt]?frac|sqrt|binom|root)")
_NUMBER_RE = re.compile(r"\d+")
_FACTORIAL_RE = re.compile(r"(\d+|[)}\]])\s*!")


def nesting_depth(text: str) -> int:
    """The deepest nesting of brackets of any kind (unbalanced ones count as they open).

    >>> nesting_depth("\\\\frac{1}{(2+3)}"), nesting_depth("{{{1"), nesting_depth("1")
    (2, 3, 0)
    """
    depth = best = 0
    for ch in text:
        if ch in _OPEN:
            depth += 1
            best = max(best, depth)
        elif ch in _CLOSE and depth:
            depth -= 1
    return best


def _exponents(text: str) -> list[tuple[str, int]]:
    """Each exponent's text (a braced group, or the single token after ``^``) and the height
    of the tower it sits in (1 for ``x^2``, 2 for the ``2`` in ``e^{x^2}`` and in ``x^x^2``)."""
    out = []
    stack: list[int] = []  # per open brace: the height of the exponent it opened (0: none)
    chained = 0  # height of the unbraced exponent just read when another ^ follows it (x^x^x)
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "^":
            base = chained or next((h for h in reversed(stack) if h), 0)
            chained = 0
            j = i + 1
            while j < n and text[j] == " ":
                j += 1
            if j < n and text[j] == "{":
                depth, close = 0, n
                for k in range(j, n):
                    depth += (text[k] == "{") - (text[k] == "}")
                    if depth == 0:
                        close = k
                        break
                out.append((text[j + 1:close], base + 1))
                stack.append(base + 1)
                i = j + 1
                continue
            m = _NUMBER_RE.match(text, j)
            token = m.group() if m else text[j:j + 1]
            out.append((token, base + 1))
            i = j + max(len(token), 1)
            if i < n and text[i] == "^":
                chained = base + 1
            continue
        if ch == "{":
            stack.append(0)
        elif ch == "}" and stack:
            stack.pop()
        i += 1
    return out


def tower_height(text: str) -> int:
    """How many exponents stack: 0 for ``12``, 1 for ``x^2``, 2 for ``e^{-x^2}``, 3 for ``x^x^x^x``.

    >>> tower_height("12"), tower_height("x^2+y^3"), tower_height("e^{-x^{2}}"), tower_height("x^x^x^x")
    (0, 1, 2, 3)
    """
    return max((h for _, h in _exponents(text)), default=0)


def _numeric_tower_digits(exponent: str) -> float:
    """Decimal digits of a tower of plain integers like ``9^{9}`` (inf past ~10**7); 0 when
    the exponent is not such a tower (a letter in it keeps sympy from evaluating it)."""
    parts = [p.strip("{} ") for p in exponent.split("^")]
    if len(parts) < 2 or not all(p.isdigit() for p in parts):
        return 0.0
    value = int(parts[-1])
    for p in reversed(parts[:-1]):
        if value * len(p) > 10 ** 7:  # p ** value would have over 10**7 digits
            return float("inf")
        value = int(p) ** value
    return float(len(str(value)))


def _group_before(text: str, close: int) -> str:
    """The bracketed group that ends at ``text[close]``, brackets included."""
    depth = 0
    for k in range(close, -1, -1):
        depth += (text[k] in _CLOSE) - (text[k] in _OPEN)
        if depth == 0:
            return text[k:close + 1]
    return text[:close + 1]


def math_input_problem(text: str) -> str | None:
    """Why ``text`` may not be shown to math-verify, or None when it may.

    >>> math_input_problem("\\\\frac{1}{2}") is None, math_input_problem("e^{-x^{2}}") is None
    (True, True)
    >>> math_input_problem("{" * 20 + "1" + "}" * 20)
    'brackets nested 20 deep (at most 10)'
    >>> math_input_problem("9^{9^{9}}"), math_input_problem("x^x^x^x")
    ('a numeric power tower 9^{9} in an exponent', 'a power tower 3 high (at most 2)')
    """
    if len(text) > MAX_CHARS:
        return f"{len(text)} characters (at most {MAX_CHARS})"
    depth = nesting_depth(text)
    if depth > MAX_DEPTH:
        return f"brackets nested {depth} deep (at most {MAX_DEPTH})"
    commands = len(_COMMAND_RE.findall(text))
    if commands > MAX_COMMANDS:
        return f"{commands} \\frac/\\sqrt commands (at most {MAX_COMMANDS})"
    for m in _FACTORIAL_RE.finditer(text):
        arg = m.group(1) if m.group(1).isdigit() else _group_before(text, m.start(1))
        if "^" in arg or "!" in arg or any(len(d) > MAX_FACTORIAL_DIGITS for d in _NUMBER_RE.findall(arg)):
            return f"a factorial of {arg[:20]!r} (numbers of at most {MAX_FACTORIAL_DIGITS} digits, no powers)"
    exponents = _exponents(text) if "^" in text else []
    height = max((h for _, h in exponents), default=0)
    if height > MAX_TOWER:
        return f"a power tower {height} high (at most {MAX_TOWER})"
    for exp, _ in exponents:
        if any(len(d) > MAX_EXPONENT_DIGITS for d in _NUMBER_RE.findall(exp)):
            return f"an exponent {exp[:20]!r} with over {MAX_EXPONENT_DIGITS} digits"
        if _numeric_tower_digits(exp) > MAX_EXPONENT_DIGITS:
            return f"a numeric power tower {exp[:20]} in an exponent"
    return None
