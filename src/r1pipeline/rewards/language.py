"""The language consistency reward of DeepSeek-R1 (against language mixing in the CoT)."""

from __future__ import annotations

import re

from r1pipeline.rewards.parse import split_think
from r1pipeline.rewards.registry import register

# CJK unified ideographs (+ extension A, compatibility, extensions B-F): each is a word.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
_CJK_RE = re.compile(f"[{_CJK}]")
# Everything that is neither a letter nor whitespace (digits, _, symbols, punctuation, marks).
_NOT_LETTER_RE = re.compile(r"[^\w\s]|[\d_]")
# Everything that is neither a Latin letter nor whitespace (× and ÷ are not letters).
_NOT_LATIN_RE = re.compile(r"[^\sA-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff]")

# ASCII: delete what is neither a letter nor whitespace; \x1c-\x1f are whitespace to ``str``
# (and ``re``) but not to ``bytes.split``, so they become spaces.
_ASCII_NOT_LETTER = bytes(i for i in range(128) if not (chr(i).isalpha() or chr(i).isspace()))
_ASCII_SPACES = bytes.maketrans(b"\x1c\x1d\x1e\x1f", b"    ")

LANGUAGES = ("en", "zh")


def count_words(text: str) -> tuple[int, int, int]:
    """(Latin-script words, CJK words, all words) of ``text``.

    A word is a whitespace-separated token with at least one letter, except that each CJK
    ideograph is a word of its own (CJK text has no spaces); tokens without letters (``8*1=8``)
    are not words. A token with a Latin letter is a Latin-script word. All work is done by
    ``re`` and ``str.split`` in C: no Python loop over words.

    >>> count_words("8 times 1 is 8, 8乘6得48")
    (2, 2, 4)
    >>> count_words("x乘y  αβ  42 + 7")
    (2, 1, 4)
    """
    if text.isascii():  # the common case, ~8x faster: every letter is Latin, no CJK
        n = len(text.encode("ascii").translate(_ASCII_SPACES, _ASCII_NOT_LETTER).split())
        return n, 0, n
    return _count_words_unicode(text)


def _count_words_unicode(text: str) -> tuple[int, int, int]:
    n_cjk = len(_CJK_RE.findall(text))
    spaced = _CJK_RE.sub(" ", text) if n_cjk else text  # a CJK char ends the token around it
    n_words = len(_NOT_LETTER_RE.sub("", spaced).split())
    n_latin = len(_NOT_LATIN_RE.sub("", spaced).split())
    return n_latin, n_cjk, n_words + n_cjk


@register("language_consistency", failure=0.0)
class LanguageConsistency:
    """The share of the chain of thought's words that are in the target language.

    Formula: r = (words of the target language in the CoT) / (words in the CoT); 0.0 without a
    closed think block, 1.0 when the CoT has no words (only numbers and symbols). Languages:
    ``en`` counts Latin-script words, ``zh`` counts CJK ideographs (one word each); a word is a
    whitespace-separated token with a letter (see ``count_words``). Source: DeepSeek-R1,
    "language consistency reward" (added to the reward in reasoning RL; it costs a little
    accuracy and makes the CoT readable).

    >>> r = LanguageConsistency(language="en")
    >>> r(["<think>8 times 1 is 8, 8乘6得48</think><answer>48</answer>",
    ...    "<think>2+2=4</think> 4", "<think>unclosed", "<think>八乘六</think>"])
    [0.5, 1.0, 0.0, 0.0]
    >>> LanguageConsistency(language="zh")(["<think>8 times 1 is 8, 8乘6得48</think>"])
    [0.5]
    """

    def __init__(self, language: str = "en"):
        if language not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}, got {language!r}")
        self.language = language
        self.__name__ = "language_consistency_reward"

    def __call__(self, completions: list[str], **_) -> list[float]:
        out = []
        for c in completions:
            cot, _rest = split_think(c)
            if cot is None:
                out.append(0.0)
                continue
            latin, cjk, total = count_words(cot)
            if total == 0:
                out.append(1.0)
            else:
                out.append((latin if self.language == "en" else cjk) / total)
        return out
