"""Reading YAML that a user wrote: a spec file, a ``--set`` value, a run's ``spec.yaml``.

PyYAML's ``safe_load`` is safe from code execution, not from input that hangs, exhausts memory or
silently means something else. ``read_yaml``/``load_yaml`` also refuse, as a ``YamlProblem``
naming the line and column (the byte offset too, for encodings) and the fix:

* text that is not UTF-8 (which encoding it looks like is named: UTF-16/32, Latin-1);
* a key given twice in one mapping (PyYAML keeps the last silently), with both lines, and a
  key that is not text (``on:`` reads as true, ``1:`` as a number: no setting has such a name);
* aliases that copy more than ``MAX_ALIASED`` values in all (a "billion laughs" bomb of 40 bytes
  expands to 10**9 values: validating it, copying it or printing it in an error hangs), and an
  alias inside the value it names (a cycle);
* nesting deeper than ``MAX_DEPTH`` (PyYAML's composer recurses: 100,000 ``[`` end in a
  RecursionError), files over ``MAX_BYTES``;
* integers beyond 64 bits (no setting takes one; past 4,300 digits Python refuses to read them)
  and non-finite floats (``.inf``, ``.nan``, ``1.0e400``): a learning rate of inf passes ``gt=0``;
* values PyYAML cannot build (``2024-02-30`` is read as a date and fails), named, not raised;
  text with an unpaired surrogate (``"\\ud800"``): it cannot be written back as UTF-8.

Nothing here imports pydantic or anything heavy.
"""

from __future__ import annotations

import codecs
import math
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 16 << 20  # the largest shipped spec is ~20 KB
MAX_DEPTH = 64  # the shipped specs nest 6 deep
MAX_ALIASED = 10_000  # values copied by aliases in one document (micro.yaml's copy ~20)
MAX_INT = 2**63 - 1  # the largest count, seed or size any setting takes


class YamlProblem(ValueError):
    """YAML we refuse: what is wrong, where (1-based line and column, byte offset), and the fix.

    ``syntax`` is True for text that is not valid YAML at all (a ``--set`` value of that kind is
    taken as plain text); False for valid YAML we refuse (a duplicate key, an alias bomb, ...).
    """

    def __init__(self, message: str, fix: str, line: int | None = None, column: int | None = None,
                 offset: int | None = None, syntax: bool = False):
        self.message, self.fix, self.line, self.column, self.offset = message, fix, line, column, offset
        self.syntax = syntax
        super().__init__(f"{self.text}; fix: {fix}")

    @property
    def place(self) -> str:
        """``line 3, column 5 (byte 41)``, as much as is known."""
        parts = [f"line {self.line}"] if self.line else []
        parts += [f"column {self.column}"] if self.column else []
        where = ", ".join(parts)
        return where + (f" (byte {self.offset})" if self.offset is not None else "")

    @property
    def text(self) -> str:
        return f"{self.place}: {self.message}" if self.place else self.message


def _at(mark: Any, message: str, fix: str, syntax: bool = False) -> YamlProblem:
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
    return YamlProblem(message, fix, line, col, syntax=syntax)


def short(value: Any, limit: int = 40) -> str:
    """A scalar's text, cut to ``limit`` characters, for messages."""
    s = str(value)
    return repr(s if len(s) <= limit else s[:limit] + "…")


_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
         (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


def decode(raw: bytes, name: str = "spec.yaml") -> str:
    """``raw`` as UTF-8 text (a UTF-8 byte-order mark dropped), or a YamlProblem naming the
    encoding it looks like, the byte offset, the line and the column of the first bad byte."""
    stem = Path(name).stem or "spec"

    def fix(encoding: str) -> str:
        return f"save it as UTF-8, e.g. iconv -f {encoding} -t UTF-8 {name} > {stem}.utf8.yaml"

    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            raise YamlProblem(f"the file is {encoding} text (it starts with a {encoding} byte-order mark), "
                              "not UTF-8", fix(encoding), 1, 1, offset=0)
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    nul = raw.find(b"\x00")
    if nul >= 0:
        line, col = _line_col(raw, nul)
        if raw.count(b"\x00") * 4 >= len(raw):  # ASCII as UTF-16 is half NUL bytes, as UTF-32 three quarters
            encoding = "UTF-32" if raw.count(b"\x00") * 4 >= len(raw) * 3 - 4 else "UTF-16"
            raise YamlProblem(f"NUL bytes: the file looks like {encoding} without a byte-order mark, not UTF-8",
                              fix(encoding), line, col, offset=nul)
        raise YamlProblem("a NUL byte: a spec is text", "remove it (was a binary file joined in?)",
                          line, col, offset=nul)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line, col = _line_col(raw, e.start)
        try:
            seen, guess, encoding = raw.decode("cp1252"), "Latin-1 (Windows-1252)", "WINDOWS-1252"
        except UnicodeDecodeError:
            seen, guess, encoding = raw.decode("latin-1"), "an 8-bit encoding (perhaps Latin-1)", "LATIN1"
        text_line = seen.splitlines()[line - 1] if seen.splitlines() else ""
        raise YamlProblem(f"not UTF-8: byte 0x{raw[e.start]:02x} cannot be read; the file looks like {guess}: "
                          f"{text_line[max(0, col - 20):col + 20]!r}", fix(encoding), line, col,
                          offset=e.start) from None


def _line_col(raw: bytes, offset: int) -> tuple[int, int]:
    start = raw.rfind(b"\n", 0, offset) + 1
    return raw.count(b"\n", 0, offset) + 1, len(raw[start:offset].decode("utf-8", "replace")) + 1


class _Loader(yaml.SafeLoader):
    """SafeLoader with the limits of the module docstring."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._sizes: dict[int, int] = {}  # id(node) -> values it stands for, aliases expanded
        self._aliased = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)
            if id(node) not in self._sizes:
                raise _at(event.start_mark, f"alias *{event.anchor} is used inside the value it names (a cycle)",
                          "write the value out, or anchor a value outside it")
            self._aliased += self._sizes[id(node)]
            if self._aliased > MAX_ALIASED:
                raise _at(event.start_mark, f"aliases copy more than {MAX_ALIASED:,} values in all (*{event.anchor} "
                          f"alone stands for {self._sizes[id(node)]:,}): an alias bomb?",
                          "write the values out, or use aliases for small blocks only")
            return node
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _at(self.peek_event().start_mark, f"nested deeper than {MAX_DEPTH} levels",
                          "flatten it: no setting nests that deep")
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        children = node.value if isinstance(node.value, list) else []
        flat = [c for pair in children for c in (pair if isinstance(pair, tuple) else (pair,))]
        self._sizes[id(node)] = 1 + sum(self._sizes.get(id(c), 1) for c in flat)
        return node

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except YamlProblem:
            raise
        except (ValueError, TypeError, OverflowError, ArithmeticError) as e:
            tag = node.tag.rsplit(":", 1)[-1]
            shown = short(node.value) if isinstance(node.value, str) else f"this {tag}"
            raise _at(node.start_mark, f"{shown} cannot be read as a YAML {tag} ({str(e)[:80]})",
                      "quote it to keep it as text, or correct it") from None

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}  # key -> its mark
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, str) or not key:  # every setting, stage, reward and column name is text
                    raise _key_not_text(key_node, key)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: SafeLoader names it below
                    continue
                mark = key_node.start_mark
                if first is not None:
                    where = (f"line {first.line + 1}, columns {first.column + 1} and {mark.column + 1}"
                             if first.line == mark.line else f"lines {first.line + 1} and {mark.line + 1}")
                    raise _at(mark, f"key {short(key_node.value)} appears twice in one mapping ({where}); YAML would "
                              "keep the second silently", "keep one of the two")
                seen[key] = mark
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node: Any) -> int:
        text = str(node.value).replace("_", "")
        if len(text) > 80:
            raise _at(node.start_mark, f"an integer of {len(text)} characters is too large",
                      f"no setting takes a number past {MAX_INT} (2**63 - 1); write a smaller one")
        value = super().construct_yaml_int(node)
        if abs(value) > MAX_INT:
            raise _at(node.start_mark, f"integer {short(node.value, 24)} is too large",
                      f"no setting takes a number past {MAX_INT} (2**63 - 1); write a smaller one")
        return value

    def construct_yaml_float(self, node: Any) -> float:
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise _at(node.start_mark, f"{short(node.value, 24)} is not a finite number",
                      "write a finite number (YAML reads .inf, .nan and numbers past 1.8e308 as infinite)")
        return value


def _key_not_text(node: Any, key: Any) -> YamlProblem:
    if not isinstance(node, yaml.ScalarNode):
        return _at(node.start_mark, "a list or mapping is used as a key", "use a plain name as the key")
    if key == "":
        return _at(node.start_mark, "an empty key", "name the setting, or remove the line")
    what = {bool: f"the boolean {str(key).lower()}", type(None): "null"}.get(
        type(key), f"the number {key}" if isinstance(key, (int, float)) else f"a {type(key).__name__}")
    return _at(node.start_mark, f"key {short(node.value, 20)} reads as {what}, not as text",
               f"write it in quotes ('{str(node.value)[:20]}') if it is meant, or correct it")


def _construct_str(loader: _Loader, node: Any) -> str:
    value = loader.construct_scalar(node)
    at = surrogate_at(value)
    if at is not None:
        raise _at(node.start_mark, f"text with an unpaired surrogate escape (\\u{ord(value[at]):04x}, character "
                  f"{at + 1}): it cannot be written as UTF-8", "write the character itself, or a complete pair")
    return value


def surrogate_at(text: str) -> int | None:
    """Where ``text`` holds a lone surrogate (a ``\\ud800`` escape, or a non-UTF-8 byte of the
    command line, which Python reads as ``\\udcXX``), or None: such text cannot be written to
    spec.yaml or a manifest."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return e.start
    return None


_Loader.add_constructor("tag:yaml.org,2002:str", _construct_str)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_yaml_float)


def load_yaml(text: str) -> Any:
    """One YAML document from ``text``; a YamlProblem for anything this module refuses."""
    loader = None
    try:
        loader = _Loader(text)  # the reader refuses control characters here already
        return loader.get_single_data()
    except YamlProblem:
        raise
    except yaml.constructor.ConstructorError as e:
        raise _at(e.problem_mark, f"invalid YAML ({e.problem})", "write plain YAML values: no tags (!!...), no lists "
                  "or mappings as keys", syntax=True) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or e.context or "unreadable"
        raise _at(mark, f"invalid YAML ({problem})", "fix the YAML syntax there", syntax=True) from None
    except yaml.reader.ReaderError as e:
        before = text[:e.position]
        line, col = before.count("\n") + 1, e.position - (before.rfind("\n") + 1) + 1
        raise YamlProblem(f"invalid YAML (character #x{e.character:04x} is not allowed in YAML text)",
                          "remove it, or write it as an escape inside double quotes", line, col,
                          syntax=True) from None
    except yaml.YAMLError as e:
        raise YamlProblem(f"invalid YAML ({str(e)[:200]})", "fix the YAML syntax", syntax=True) from None
    except RecursionError:  # a guard: MAX_DEPTH stops nesting well before Python's limit
        raise YamlProblem("nested too deeply to read", "flatten it") from None
    finally:
        if loader is not None:
            loader.dispose()


def read_yaml(path: str | Path) -> Any:
    """The YAML document in the file at ``path``: checked as ``decode`` and ``load_yaml`` check."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise YamlProblem(f"the file is {size / 2**20:.0f} MiB; a spec is a few KB",
                              "check that this is the spec file")
        raw = path.read_bytes()
    except OSError as e:
        raise YamlProblem(f"cannot be read ({e.strerror or e})", "check the path and its permissions") from None
    return load_yaml(decode(raw, path.name))
