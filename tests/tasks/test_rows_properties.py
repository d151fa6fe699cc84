"""Property: whatever the bytes of a JSONL data file, validation accepts it or gives a Problem that
names the file and the line, short and printable; never another exception (issue 13, item 4).

Files are mutated from good rows of each kind (task, curated sample data, exemplars, SFT data,
preference pairs): wrong types, missing and extra keys, non-UTF-8 bytes and UTF-16 lines,
truncated JSON, huge values, NaN/Infinity, deep nesting, duplicate keys, unpaired surrogates.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from r1pipeline.stages.common import check_data_file, check_task
from r1pipeline.tasks import rows

GOOD = {
    "task": {"question": "What is 2+2?", "answer": "4"},
    "curated": {"question": "2*3", "answer": "6", "completion": "<think>2*3=6</think><answer>6</answer>",
                "id": "q1", "verifier": "exact"},
    "exemplars": {"question": "2*3", "completion": "<think>2*3=6</think><answer>6</answer>"},
    "sft": {"prompt": "User: 2*3?", "completion": "<think>6</think><answer>6</answer>"},
    "pairs": {"prompt": "User: hi", "chosen": "Hello!", "rejected": "Go away."},
}
COLUMNS = {"curated": rows.CURATED, "exemplars": rows.EXEMPLARS, "sft": rows.SFT_ROWS, "pairs": rows.PAIRS}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10 ** 30, max_value=10 ** 60)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30) | st.just("x" * 5000),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)

HOSTILE_LINES = [
    b'{"question": NaN, "answer": Infinity}', b'{"answer": -Infinity}', b'[' * 100_000, b'{"a":' * 5000,
    b'{"question": "q", "answer": ' + b"1" * 5000 + b"}", b'{"question": "q", "answer": 1e400}',
    b'{"question": "q", "question": "r", "answer": 1}', b'{"question": "\\ud800", "answer": "\\udfff"}',
    '{"question": "2+2?", "answer": 4}'.encode("utf-16"), '{"question": "caf\u00e9"}'.encode("latin-1"),
    b"\xff\xfe\x00", b"\x00\x00", b'{"question": "q\x00", "answer": 1}', b"\xef\xbb\xbf{}", b"}", b"null", b"\"",
]


@dataclass
class FakeSpec:
    """What the stage checks read of a spec: its folder and paths in it."""

    base_dir: str

    def path(self, p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() else Path(self.base_dir) / q


@st.composite
def mutated_line(draw, good: dict) -> bytes:
    row = dict(good)
    how = draw(st.sampled_from(["keep", "drop", "extra", "retype", "truncate", "bytes", "hostile", "not_object"]))
    if how == "drop" and row:
        row.pop(draw(st.sampled_from(sorted(row))))
    elif how == "extra":
        row[draw(st.text(max_size=10))] = draw(json_values)
    elif how == "retype":
        row[draw(st.sampled_from(sorted(row)))] = draw(json_values)
    elif how == "not_object":
        return json.dumps(draw(json_values)).encode()
    elif how == "hostile":
        return draw(st.sampled_from(HOSTILE_LINES))
    line = json.dumps(row, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    if how == "truncate":
        return line[:draw(st.integers(0, max(0, len(line) - 1)))]
    if how == "bytes":
        at = draw(st.integers(0, len(line)))
        return line[:at] + draw(st.binary(min_size=1, max_size=4)) + line[at:]
    return line


@st.composite
def jsonl_file(draw, kind: str) -> bytes:
    lines = draw(st.lists(mutated_line(GOOD[kind]), min_size=0, max_size=6))
    blank = draw(st.sampled_from([b"", b"\n", b"\r\n", b"   \n"]))
    return b"\n".join(lines) + blank


def assert_names_file_and_line(problems, path: Path, n_lines: int) -> None:
    for p in problems:
        text = str(p)
        assert str(path) in text, text
        text.encode("utf-8")  # printable: no unpaired surrogate reaches stderr
        assert len(text) < 1200, text  # bad values are shortened, never printed whole


def line_of(problem) -> int | None:
    """The line number a Problem names, if any."""
    import re

    m = re.search(r", line (\d+)", problem.message)
    return int(m.group(1)) if m else None


FILE_LEVEL = ("the file has no rows", "no usable rows", "byte-order mark", "rows, ", "needed")


def check_property(problems, path: Path, data: bytes) -> None:
    assert_names_file_and_line(problems, path, data.count(b"\n") + 1)
    for p in problems:
        line = line_of(p)
        if line is None:
            assert any(s in p.message for s in FILE_LEVEL), p.message
        else:
            assert 1 <= line <= data.count(b"\n") + 1, p.message


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])


@SETTINGS
@given(kind=st.sampled_from(sorted(COLUMNS)), data=st.data())
def test_any_data_file_is_accepted_or_a_problem_naming_file_and_line(tmp_path, kind, data):
    contents = data.draw(jsonl_file(kind))
    path = tmp_path / f"{kind}.jsonl"
    path.write_bytes(contents)
    problems = check_data_file("s", "file", str(path), FakeSpec(str(tmp_path)), COLUMNS[kind])
    check_property(problems, path, contents)
    if not problems:  # accepted rows read back as the stage reads them, every column there
        read = rows.read_jsonl(path, COLUMNS[kind])
        assert all(c.name in r for r in read for c in COLUMNS[kind] if c.required)


@SETTINGS
@given(data=st.data(), drop=st.booleans(), fields=st.sampled_from([("question", "answer"), ("q", "a")]))
def test_any_task_file_is_accepted_or_a_problem_naming_file_and_line(tmp_path, data, drop, fields):
    good = GOOD["task"] if fields[0] == "question" else {"q": "What is 2+2?", "a": 4}
    lines = data.draw(st.lists(mutated_line(good), min_size=0, max_size=8))
    contents = b"\n".join(lines) + b"\n"
    path = tmp_path / "task.jsonl"
    path.write_bytes(contents)
    block = {"source": "jsonl", "path": "task.jsonl", "question_field": fields[0], "answer_field": fields[1],
             "on_bad_rows": "drop" if drop else "error", "test_share": 0.5}
    problems = check_task("s", "task", block, FakeSpec(str(tmp_path)))
    check_property(problems, path, contents)
    for p in problems:
        assert p.fix.count("on_bad_rows") <= (0 if drop else 1), p.fix


@settings(max_examples=40, deadline=None)
@given(value=json_values)
def test_shorten_is_short_and_printable(value):
    text = rows.shorten(value)
    assert len(text) <= 41
    text.encode("utf-8")


@settings(max_examples=40, deadline=None)
@given(raw=st.binary(max_size=64))
def test_arbitrary_bytes_never_escape_as_another_exception(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("raw") / "x.jsonl"
    path.write_bytes(raw)
    for kind, columns in COLUMNS.items():
        problems = check_data_file("s", "file", str(path), FakeSpec(str(path.parent)), columns)
        check_property(problems, path, raw)


def test_keys_and_values_print_short_whatever_their_size():
    huge = {"".join(string.ascii_letters) * 100: ["x" * 10_000] * 100}
    assert len(rows.shorten(huge)) <= 41
    assert rows.shorten(float("nan")) == "NaN" and rows.shorten(10 ** 5000).endswith("-digit integer")
