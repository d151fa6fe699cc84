"""The run directory: the contract between stages (see DESIGN.md).

```
runs/<pipeline>/
  spec.yaml                 the resolved spec that ran
  <stage>/
    manifest.json           kind, resolved config, hash, inputs' hashes, versions, seed, times, status
    model/                  save_pretrained directory, when the stage makes a model (+ README.md card)
    data/                   a datasets-loadable dataset, when it makes data
    checkpoints/            resumable training state (removed when the stage is done)
    metrics.jsonl           one JSON object per logged step
    summary.json            the stage's headline numbers
  cache/evaluate/            completions the evaluate stage generated, by model and job
                            (stages/eval_cache.py; safe to delete)
  report.md + *.png
```

Every file is written atomically (a temporary name in the same folder, then ``os.replace``), and
a directory artifact is built under ``<name>.tmp`` and renamed into place, so a killed run never
leaves a half-written artifact under a final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

MANIFEST, SUMMARY, METRICS = "manifest.json", "summary.json", "metrics.jsonl"


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, default=str) + "\n")


def read_json(path: Path) -> Any | None:
    """The JSON in ``path``, or None when it is missing or unreadable (a torn write elsewhere; a
    folder, bytes that are not UTF-8 or not JSON where a run directory was tampered with)."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None


def scratch_dir(path: Path) -> Path:
    """Where ``atomic_dir(path)`` builds the directory before renaming it into place."""
    return path.with_name(path.name + ".tmp")


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a scratch directory that replaces ``path`` only if the block finishes."""
    tmp = scratch_dir(path)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


class MetricsLog:
    """Appends one JSON object per line to ``metrics.jsonl``.

    On resume, ``truncate_after(step)`` drops lines logged after the checkpoint being resumed,
    so the file reads as one uninterrupted run.
    """

    def __init__(self, path: Path):
        self.path = path

    def log(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(record, default=float) + "\n")
            f.flush()

    def read(self) -> list[dict[str, Any]]:
        return read_metrics(self.path)

    def truncate_after(self, step: int) -> None:
        kept = [r for r in self.read() if r.get("step", 0) <= step]
        write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All complete lines of a metrics file (a torn last line from a kill is skipped)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
