"""JSONL data files read and checked row by row: the one reader behind every kind of data file.

Task files (``tasks/files.py``), a ``sample`` stage's curated ``type: file`` data and its
few-shot ``exemplars``, an ``sft`` stage's JSONL files and a reward model's ``pairs.file`` all go
through ``check_row``, and all but task files through ``read_jsonl(path, columns)``. Each line must
be UTF-8 (a UTF-8 byte-order mark is skipped) holding one JSON object whose keys fit the file
kind's ``Column``s; extra keys are allowed. Whatever is wrong raises a ``DataError`` naming the
file, the line (and the character where JSON gives one), the column, the bad value shortened and
the fix, so that validation turns it into a ``Problem``; no other exception escapes, whatever the
bytes (``tests/tasks/test_rows_properties.py``).

JSON that Python reads but other tools refuse is refused too: ``NaN``/``Infinity``, numbers too
large for a float (``1e400`` would read as inf), integers longer than Python converts, a key
given twice, nesting deeper than the parser goes, strings with unpaired surrogate escapes (they
cannot be written back as UTF-8).
"""

from __future__ import annotations

import codecs
import difflib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

Check = Callable[[Any], "tuple[str, str] | None"]  # value -> (what is wrong, the fix), or None


class DataError(ValueError):
    """Bad data, named down to the file, line (row) and character, with one fix."""

    def __init__(self, file: str | Path, message: str, fix: str, row: int | None = None,
                 where: str = "line", char: int | None = None, droppable: bool = False):
        self.file, self.message, self.fix, self.row, self.where, self.char = str(file), message, fix, row, where, char
        self.droppable = droppable  # a bad row that ``on_bad_rows: drop`` may skip (not a bad file)
        super().__init__(f"{self.place}: {message}; fix: {fix}")

    @property
    def place(self) -> str:
        """``file, line 3, character 12`` (as much of it as is known)."""
        parts = [self.file] + ([f"{self.where} {self.row}"] if self.row is not None else [])
        return ", ".join(parts + ([f"character {self.char}"] if self.char is not None else []))

    def with_fix(self, fix: str) -> "DataError":
        return DataError(self.file, self.message, fix, self.row, self.where, self.char, self.droppable)


def type_name(value: Any) -> str:
    return {dict: "object", list: "array", type(None): "null", bool: "boolean", str: "string"}.get(
        type(value), type(value).__name__)


def shorten(value: Any, limit: int = 40) -> str:
    """``value`` as JSON, cut to about ``limit`` characters without ever building it whole.

    >>> shorten("x" * 100, 10), shorten({"a": [1, 2]}), shorten(10 ** 300)
    ('"xxxxxxxxx…', '{"a": [1, 2]}', 'a 301-digit integer')
    """
    out, size = [], 0
    for token in _tokens(value, limit, 0):
        out.append(token)
        size += len(token)
        if size > limit:
            return "".join(out)[:limit] + "…"
    return "".join(out)


def _tokens(v: Any, limit: int, depth: int) -> Iterator[str]:
    if depth > 8:
        yield "…"
    elif isinstance(v, dict):
        yield "{"
        for i, (k, x) in enumerate(v.items()):
            yield (", " if i else "") + _string(str(k), limit) + ": "
            yield from _tokens(x, limit, depth + 1)
        yield "}"
    elif isinstance(v, (list, tuple)):
        yield "["
        for i, x in enumerate(v):
            if i:
                yield ", "
            yield from _tokens(x, limit, depth + 1)
        yield "]"
    elif isinstance(v, str):
        yield _string(v, limit)
    elif isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 64:
        yield f"a {int(v.bit_length() * math.log10(2)) + 1}-digit integer"
    else:
        yield json.dumps(v, default=lambda o: type(o).__name__)


def _string(s: str, limit: int) -> str:
    """``s`` in JSON quotes, cut after ``limit`` characters; an unpaired surrogate as its escape."""
    quoted = json.dumps(s[:limit + 1], ensure_ascii=False)[:-1] + ('"' if len(s) <= limit else "")
    return quoted.encode("utf-8", "backslashreplace").decode("utf-8")


def _key(k: str) -> str:
    return repr(k[:30] + ("…" if len(k) > 30 else "")).encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(frozen=True)
class Column:
    """A key a row of some kind of file must (or may) have, and the check of its value."""

    name: str
    check: Check
    required: bool = True
    setting: str | None = None  # the task setting that names this column (question_field, ...)


def text(what: str, empty_ok: bool = False) -> Check:
    """A string (non-blank unless ``empty_ok``) that can be written back as UTF-8."""
    def check(value: Any) -> tuple[str, str] | None:
        if not isinstance(value, str):
            return (f"must be a {'' if empty_ok else 'non-empty '}string, got {type_name(value)} "
                    f"{shorten(value)}", f"write the {what} there as text, in quotes")
        if not empty_ok and not value.strip():
            return "is empty", f"write the {what} there"
        return _unpaired_surrogate(value)
    return check


def answer(value: Any) -> tuple[str, str] | None:
    """A reference answer: a string or a finite number, not a boolean."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return (f"must be a string or a number, got {type_name(value)} {shorten(value)}",
                'write the reference answer as text (e.g. "[1, 2]")')
    if isinstance(value, float) and not math.isfinite(value):
        return f"is {value}, not a usable answer", "write the reference answer as a finite number or as text"
    if isinstance(value, str):
        if not value.strip():
            return "is empty", "write the reference answer there"
        return _unpaired_surrogate(value)
    return None


def identifier(value: Any) -> tuple[str, str] | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return f"must be a string or a whole number, got {type_name(value)} {shorten(value)}", \
            "give each row a short text id, or leave the column out"
    return _unpaired_surrogate(value) if isinstance(value, str) else None


def verifier_kind(value: Any) -> tuple[str, str] | None:
    from r1pipeline.rewards import verify
    from r1pipeline.tasks import builtin  # noqa: F401  (task modules add verifier kinds)

    if isinstance(value, str) and value in verify.VERIFIERS:
        return None
    known = [k for k in sorted(verify.VERIFIERS) if not k.startswith("rg:")]
    return (f"is {shorten(value)}, not a known verifier",
            f"use one of: {', '.join(known)}, rg:<dataset>, or leave the column out (exact)")


def _unpaired_surrogate(s: str) -> tuple[str, str] | None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as e:
        return (f"holds an unpaired surrogate escape (\\u{ord(s[e.start]):04x} at character {e.start + 1} "
                f"of the string)", "write the character itself, or a complete surrogate pair")
    return None


# The columns of each kind of file (task files name theirs in their settings: tasks/files.py).
CURATED = (Column("question", text("question")), Column("answer", answer),
           Column("completion", text("completion")), Column("id", identifier, required=False),
           Column("verifier", verifier_kind, required=False))
EXEMPLARS = (Column("question", text("question")), Column("completion", text("completion")))
SFT_ROWS = (Column("prompt", text("prompt")), Column("completion", text("completion", empty_ok=True)))
PAIRS = (Column("prompt", text("prompt")), Column("chosen", text("chosen response")),
         Column("rejected", text("rejected response")))


def check_row(record: Any, columns: Sequence[Column], file: str | Path, row: int,
              where: str = "line") -> dict[str, Any]:
    """``record`` when it is an object whose columns pass their checks, else a (droppable) DataError."""
    def bad(message: str, fix: str) -> DataError:
        return DataError(file, message, fix, row, where, droppable=True)

    if not isinstance(record, dict):
        example = ", ".join(f'"{c.name}": ...' for c in columns if c.required)
        shown = "" if record is None else f" {shorten(record)}"
        raise bad(f"expected a JSON object, got {type_name(record)}{shown}",
                  f"write one object per line, like {{{example}}}")
    for col in columns:
        if col.name not in record:
            if col.required:
                keys = ", ".join(_key(k) for k in list(record)[:10]) or "none"
                also = f", or set {col.setting} to the column that holds it" if col.setting else ""
                close = difflib.get_close_matches(col.name, [k for k in list(record)[:50]], n=1)
                fix = f"rename {_key(close[0])} to {col.name!r}" if close and not col.setting else f"add it{also}"
                raise bad(f"column {col.name!r} is missing (columns here: {keys})", fix)
            continue
        value = record[col.name]
        if value is None:
            raise bad(f"column {col.name!r} is null", "fill it in" + ("" if col.required else ", or leave the column out"))
        problem = col.check(value)
        if problem:
            raise bad(f"column {col.name!r} {problem[0]}", problem[1])
    return record


def read_jsonl(path: str | Path, columns: Sequence[Column]) -> list[dict[str, Any]]:
    """Every row of a JSONL file, each checked by ``check_row``; the first bad line raises."""
    rows = []
    for lineno, record in records(path):
        if isinstance(record, DataError):
            raise record
        rows.append(check_row(record, columns, path, lineno))
    if not rows:
        raise DataError(path, "the file has no rows", "write one JSON object per line")
    return rows


def records(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON or the line's DataError) of each non-blank line.

    A file that is not a readable UTF-8 file at all (missing, a folder, UTF-16) raises.
    """
    try:
        fh = open(path, "rb")
    except OSError as e:
        raise DataError(Path(path).absolute(), f"cannot be read ({e.strerror or e})",
                        "check the path and its permissions") from None
    with fh:
        try:
            first = fh.read(4)
        except OSError as e:
            raise DataError(path, f"cannot be read ({e.strerror or e})", "give a regular file") from None
        _check_bom(path, first)
        fh.seek(0)
        for lineno, raw in enumerate(fh, 1):
            if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            if not raw.strip():
                continue
            yield lineno, _parse_line(path, lineno, raw)


_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
         (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


def _check_bom(path: str | Path, head: bytes) -> None:
    for bom, name in _BOMS:
        if head.startswith(bom):
            raise DataError(path, f"the file is {name} text (it starts with a {name} byte-order mark), not UTF-8",
                            f"save it as UTF-8, e.g. iconv -f {name} -t UTF-8 {Path(path).name} > "
                            f"{Path(path).stem}.utf8.jsonl", row=1)


def _parse_line(path: str | Path, lineno: int, raw: bytes) -> Any:
    if b"\x00" in raw and raw.count(b"\x00") * 4 >= len(raw.strip()):  # UTF-16 ASCII text is half NULs
        return DataError(path, "the line holds NUL bytes: the file looks like UTF-16 or UTF-32 without a "
                               "byte-order mark, not UTF-8",
                         f"save it as UTF-8, e.g. iconv -f UTF-16 -t UTF-8 {Path(path).name} > "
                         f"{Path(path).stem}.utf8.jsonl", lineno, char=raw.index(b"\x00") + 1)
    if raw.startswith(codecs.BOM_UTF8):
        return DataError(path, "a UTF-8 byte-order mark starts this line (were files joined together?)",
                         "remove those three bytes (EF BB BF)", lineno, char=1, droppable=True)
    try:
        line = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as e:
        return _not_utf8(path, lineno, raw, e)
    try:
        return json.loads(line, parse_constant=_constant, parse_float=_float, parse_int=_int,
                          object_pairs_hook=_object)
    except json.JSONDecodeError as e:
        msg = e.msg[:-3] + " here" if e.msg.endswith(" at") else e.msg  # "Unterminated string starting at"
        return DataError(path, f"invalid JSON ({msg[:1].lower() + msg[1:]})", "correct the JSON at that character",
                         lineno, char=e.pos + 1, droppable=True)
    except _BadJSON as e:
        at = line.rfind(e.token) + 1 if e.token else 0  # the last: a key given twice is named twice
        return DataError(path, e.message, e.fix, lineno, char=at or None, droppable=True)
    except RecursionError:
        return DataError(path, "invalid JSON (nested deeper than the parser can read)",
                         "flatten the row", lineno, droppable=True)


def _not_utf8(path: str | Path, lineno: int, raw: bytes, e: UnicodeDecodeError) -> DataError:
    char = len(raw[:e.start].decode("utf-8", "replace")) + 1
    try:
        raw.decode("cp1252")
        guess, iconv, codec = "Latin-1 (Windows-1252)", "WINDOWS-1252", "cp1252"
    except UnicodeDecodeError:
        guess, iconv, codec = "an 8-bit encoding (perhaps Latin-1)", "LATIN1", "latin-1"
    at = len(raw[:e.start].decode(codec))
    seen = raw.decode(codec)
    return DataError(path, f"not UTF-8: byte 0x{raw[e.start]:02x} cannot be read; the line looks like {guess}: "
                           f"{seen[max(0, at - 15):at + 15]!r}",
                     f"save the file as UTF-8, e.g. iconv -f {iconv} -t UTF-8 {Path(path).name} > "
                     f"{Path(path).stem}.utf8.jsonl", lineno, char=char, droppable=True)


class _BadJSON(Exception):
    def __init__(self, message: str, fix: str, token: str = ""):
        super().__init__(message)
        self.message, self.fix, self.token = message, fix, token


def _constant(name: str) -> Any:
    raise _BadJSON(f"invalid JSON ({name} is not a JSON value)", "write a finite number, or the text in quotes", name)


def _float(s: str) -> float:
    v = float(s)
    if not math.isfinite(v):
        raise _BadJSON(f"number {s[:30]} is too large for a float", "write a smaller number, "
                       "or the number in quotes", s)
    return v


def _int(s: str) -> int:
    limit = sys.get_int_max_str_digits()
    if limit and len(s.lstrip("-")) > limit:
        raise _BadJSON(f"an integer of {len(s.lstrip('-'))} digits is too long to read (the limit is {limit})",
                       "write it in quotes, as text", s[:50])
    return int(s)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _BadJSON(f"invalid JSON (key {_key(k)} appears twice in one object)",
                           "keep one of the two", json.dumps(k))
        out[k] = v
    return out
