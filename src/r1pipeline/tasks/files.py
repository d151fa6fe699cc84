"""Tasks from your own files: JSONL (one JSON object a line) or Parquet, chosen by extension.

```yaml
task:
  source: jsonl
  path: data/my_math.jsonl        # .jsonl / .ndjson, or .parquet / .pq
  question_field: problem          # default "question"
  answer_field: solution           # default "answer"; a string or a number
  verifier: numeric                # a kind in rewards.verify.VERIFIERS (default "exact")
  answer_from: last_number         # default "tags": <answer> or \boxed{}; rewards/parse.py
  test_path: data/my_math_test.jsonl   # optional; else a hash split of the questions
  on_bad_rows: drop                # default "error"
```

Without ``test_path``, each question goes to ``train`` or ``test`` by a hash of its text
(``registry.split_of``, about ``test_share`` of them in test). With it, ``path`` is the train
split and ``test_path`` the test split, and a question found in both is a bad row of the train
file. ``load(split, n, seed)`` returns ``n`` rows of the split drawn without replacement in a
seeded order, or all of them when the split has fewer.

Bad data fails before training with a ``DataError`` (a ValueError, ``tasks/rows.py``) that
names the file, the row (the 1-based line number in JSONL, the 1-based row in Parquet), the
column and the fix: a line that is not UTF-8 or not JSON, a line that is not an object, a
missing or null question or answer, a question that is not a non-empty string, an answer that
is not a string or a finite number, a Parquet column of the wrong type, an empty split. With
``on_bad_rows: drop`` bad rows are skipped instead (a missing file, a file that is not UTF-8
throughout, a wrong column type or an empty split still fails): after ``load``,
``source.dropped`` is the number of rows skipped and ``source.drop_reasons`` the first few
messages, also logged.
"""

from __future__ import annotations

import hashlib
import logging
import random
from pathlib import Path
from typing import Any, Iterator, Literal

from pydantic import Field, PrivateAttr, field_validator

from r1pipeline.rewards import verify
from r1pipeline.tasks.registry import SPLITS, AnswerFrom, TaskSource, register, split_of
from r1pipeline.tasks.rows import Column, DataError, answer, check_row, records, text

__all__ = ["DataError", "FileSource"]

log = logging.getLogger(__name__)

JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
MAX_REASONS = 20
_DROP_HINT = ", or set on_bad_rows: drop to skip such rows"


@register("jsonl")
class FileSource(TaskSource):
    """Question/answer rows from a JSONL or Parquet file (by extension)."""

    path: str
    question_field: str = "question"
    answer_field: str = "answer"
    verifier: str = "exact"
    answer_from: AnswerFrom = "tags"
    test_path: str | None = None
    test_share: float = Field(0.1, gt=0, lt=1, description="share of questions in test "
                                                               "(hash split, no test_path)")
    on_bad_rows: Literal["error", "drop"] = "error"
    _dropped: int = PrivateAttr(default=0)
    _reasons: list[str] = PrivateAttr(default_factory=list)

    @field_validator("path", "test_path")
    @classmethod
    def _known_format(cls, v: str | None) -> str | None:
        if v is not None and not v.lower().endswith(JSONL_SUFFIXES + PARQUET_SUFFIXES):
            raise ValueError(f"{v}: unknown file type; use a .jsonl/.ndjson (one JSON object a "
                             f"line) or .parquet file")
        return v

    @field_validator("verifier")
    @classmethod
    def _known_verifier(cls, v: str) -> str:
        from r1pipeline.tasks import builtin  # noqa: F401  (task modules add verifier kinds)

        if v not in verify.VERIFIERS:
            known = [k for k in sorted(verify.VERIFIERS) if not k.startswith("rg:")]
            raise ValueError(f"unknown verifier {v!r}; known: {', '.join(known)}, rg:<dataset>")
        return v

    def files(self) -> list[str]:
        return [self.path] + ([self.test_path] if self.test_path else [])

    def resolve_paths(self, base: Path) -> "FileSource":
        """A copy whose relative paths are taken from ``base`` (the spec file's folder)."""
        def resolve(p: str | None) -> str | None:
            return p if p is None or Path(p).is_absolute() else str(base / p)

        return self.model_copy(update={"path": resolve(self.path), "test_path": resolve(self.test_path)})

    @property
    def dropped(self) -> int:
        """Rows skipped as bad in the last ``load`` (``on_bad_rows: drop``)."""
        return self._dropped

    @property
    def drop_reasons(self) -> list[str]:
        """The first messages about skipped rows in the last ``load``."""
        return list(self._reasons)

    def load(self, split: str, n: int, seed: int) -> list[dict[str, Any]]:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self._dropped, self._reasons = 0, []
        if self.test_path is None:
            rows = [r for r in self._read(self.path) if split_of(r[1], self.test_share) == split]
            file = self.path
        elif split == "test":
            rows, file = self._read(self.test_path), self.test_path
        else:
            rows, file = self._train_without_test(), self.path
        if self._dropped:
            log.warning("%s: dropped %d bad rows, first: %s", file, self._dropped, self._reasons[0])
        if not rows:
            raise self._empty(split, file)
        random.Random(seed).shuffle(rows)
        stem = Path(file).stem
        return [{"id": f"{stem}:{hashlib.sha256(q.encode()).hexdigest()[:16]}", "question": q,
                 "answer": a, "verifier": self.verifier, "answer_from": self.answer_from} for _, q, a in rows[:n]]

    def _empty(self, split: str, file: str) -> DataError:
        dropped = (f", after dropping {self._dropped} bad rows (first: {self._reasons[0]})"
                   if self._dropped else "")
        if self.test_path is None:
            return DataError(file, f"no usable rows for the {split} split (the hash split puts about "
                                   f"{self.test_share:.0%} of the questions in test){dropped}",
                             "add rows, or give a test_path")
        return DataError(file, f"no usable rows for the {split} split{dropped}", "add rows to the file")

    def _train_without_test(self) -> list[tuple[int, str, str]]:
        test = {q: row for row, q, _ in self._read(self.test_path)}
        kept = []
        for row, q, a in self._read(self.path):
            if q in test:
                where = f"{self._where(self.test_path)} {test[q]}"
                self._bad(DataError(self.path, f"question also in {self.test_path} ({where}); train "
                                               f"and test must not share questions",
                                    "remove it from one of them", row, droppable=True))
                continue
            kept.append((row, q, a))
        return kept

    @staticmethod
    def _where(file: str) -> str:
        return "line" if file.lower().endswith(JSONL_SUFFIXES) else "row"

    def _bad(self, error: DataError) -> None:
        """Raise ``error`` (offering ``on_bad_rows: drop`` where it applies), or count it as dropped."""
        if self.on_bad_rows == "error" or not error.droppable:
            raise error.with_fix(error.fix + _DROP_HINT) if error.droppable else error
        self._dropped += 1
        if len(self._reasons) < MAX_REASONS:
            self._reasons.append(f"{error.place}: {error.message}")

    def _columns(self) -> tuple[Column, Column]:
        return (Column(self.question_field, text("question"), setting="question_field"),
                Column(self.answer_field, answer, setting="answer_field"))

    def _read(self, file: str) -> list[tuple[int, str, str]]:
        """(row number, question, answer) of every good row of ``file``."""
        if not Path(file).is_file():
            raise DataError(Path(file).absolute(), "no such file",
                            "check the path (a relative path is read from the spec file's folder)")
        jsonl = file.lower().endswith(JSONL_SUFFIXES)
        rows = records(file) if jsonl else self._parquet_records(file)
        columns, out = self._columns(), []
        for row, record in rows:
            try:
                if isinstance(record, DataError):
                    raise record
                check_row(record, columns, file, row, self._where(file))
            except DataError as e:
                self._bad(e)
                continue
            out.append((row, record[self.question_field], str(record[self.answer_field])))
        return out

    def _parquet_records(self, file: str) -> Iterator[tuple[int, Any]]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(file)
        except (pa.ArrowException, OSError) as e:
            raise DataError(file, f"not a readable Parquet file ({e})",
                            "write it again with pyarrow or pandas, or use a .jsonl file") from e
        schema = table.schema
        checks = ((self.question_field, "question_field", "a string", pa.types.is_string,
                   pa.types.is_large_string),
                  (self.answer_field, "answer_field", "a string or number", pa.types.is_string,
                   pa.types.is_large_string, pa.types.is_integer, pa.types.is_floating))
        for field, setting, wanted, *ok in checks:
            if field not in schema.names:
                raise DataError(file, f"column {field!r} is missing (columns: {', '.join(schema.names)})",
                                f"set {setting} to the column that holds it")
            typ = schema.field(field).type
            if not any(f(typ) for f in ok):
                raise DataError(file, f"column {field!r} has type {typ}, expected {wanted}",
                                f"convert the column or point {setting} at another")
        cols = [self.question_field, self.answer_field]
        for i, record in enumerate(table.select(cols).to_pylist(), 1):
            yield i, record
