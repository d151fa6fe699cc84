"""Completions the evaluate stage has already generated, kept so that it never samples them twice.

An evaluation is a list of jobs per model (``evaluate.Job``: prompts, max_new_tokens, seed, k,
temperature, top-p). Each finished job's completions are written to
``<run>/cache/evaluate/<key>.json``, the key naming everything the completions depend on: the
model (the hash of the stage that made it and when it ended, from its manifest), the job, and the sampling
settings (engine, dtype, batch size). The next evaluation of the run reads what is there:

* a killed evaluate resumes after the last model it finished (today's 9 models x 2-5 min each);
* a changed evaluate config (a set added, a model added, another k for one set) samples only what
  changed: adding the ``hot`` split to tiny.yaml reran all 9 models (161 s a seed), now it samples
  one model on one set.

The folder sits beside the stages, not in the evaluate stage's own folder, because a changed
config gives the stage a new hash and the runner starts it from an empty folder. Deleting it is
always safe (the next evaluation samples again). Models that are not stages of the run (a hub
reference, a local path) are not cached: nothing names their weights as a stage hash does.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

from r1pipeline.rollout.base import Completion
from r1pipeline.rundir import MANIFEST, read_json, write_text_atomic

CACHE_DIR = Path("cache") / "evaluate"
VERSION = 1


def model_id(stage_dir: Path | None) -> str | None:
    """The hash of the finished stage that made a model and when it ended (a stage rerun with
    ``--from`` keeps its hash but may train other weights); None: not a finished stage."""
    manifest = read_json(stage_dir / MANIFEST) if stage_dir is not None else None
    if not isinstance(manifest, dict) or manifest.get("status") != "done" or not manifest.get("hash"):
        return None
    return f"{manifest['hash']}@{manifest.get('ended')}"


def job_key(model: str, job: Any, sampling: dict[str, Any]) -> str:
    """A file name for one model's completions of one job under ``sampling`` (top-p, engine, ...).

    >>> from collections import namedtuple
    >>> J = namedtuple("J", "prompts max_new_tokens seed k temperature")
    >>> a = job_key("h1", J(["p"], 8, 0, 4, 0.6), {"top_p": 0.95})
    >>> a == job_key("h1", J(["p"], 8, 0, 4, 0.6), {"top_p": 0.95}) != job_key("h1", J(["p"], 8, 0, 4, 1.5), {"top_p": 0.95})
    True
    """
    what = {"version": VERSION, "model": model, "prompts": list(job.prompts), "max_new_tokens": job.max_new_tokens,
            "seed": job.seed, "k": job.k, "temperature": job.temperature, **sampling}
    return hashlib.blake2b(json.dumps(what, sort_keys=True).encode(), digest_size=12).hexdigest()


def _encode(groups: Sequence[Sequence[Completion]]) -> list[list[list[Any]]]:
    return [[[c.text, c.n_tokens, c.truncated] for c in group] for group in groups]


def _decode(raw: Any, n_prompts: int, k: int) -> list[list[Completion]] | None:
    """The stored groups, or None where the file does not hold ``n_prompts`` groups of ``k``."""
    try:
        groups = [[Completion(str(t), int(n), bool(tr)) for t, n, tr in group] for group in raw]
    except (TypeError, ValueError):
        return None
    return groups if len(groups) == n_prompts and all(len(g) == k for g in groups) else None


def load(run_dir: Path, key: str, n_prompts: int, k: int) -> list[list[Completion]] | None:
    """A job's stored completions; None when absent, unreadable or of another shape."""
    raw = read_json(run_dir / CACHE_DIR / f"{key}.json")
    return _decode(raw.get("groups"), n_prompts, k) if isinstance(raw, dict) else None


def store(run_dir: Path, key: str, groups: Sequence[Sequence[Completion]], label: str) -> None:
    """Keep a job's completions (atomically: a killed write leaves no half file under the name)."""
    text = json.dumps({"label": label, "groups": _encode(groups)}, ensure_ascii=False, separators=(",", ":"))
    write_text_atomic(run_dir / CACHE_DIR / f"{key}.json", text + "\n")
