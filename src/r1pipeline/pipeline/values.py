"""Values that pydantic lets through but no stage can use: the checks after validation.

Pydantic's lax mode reads ``true`` as 1 for an int field, and ``"1e400"``, ``"inf"`` and
``"nan"`` as floats (PyYAML leaves ``1e400`` a string: a YAML 1.1 float needs a dot), and
``gt=0`` passes inf. Rather than a strict type on every field of every stage kind,
``value_problems(stage, raw, validated)`` walks the values as the user wrote them beside the
validated ones and names each field where

* a boolean became a number (``steps: true``: counts are whole numbers, not flags);
* a number is not finite (whatever it was written as);
* a ``seed`` lies outside 0 .. 2**32 - 1, the range that numpy's and torch's seeding both take
  (numpy refuses -1 and 2**32; a run died there, after loading torch).

The YAML loader (``yaml_load.py``) has refused ``.inf``/``.nan`` and huge integers already,
with their line; this catches what reached a field in another form, from ``--set`` too.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

from pydantic import BaseModel

from r1pipeline.stages.base import Problem, shown

SEED_MAX = 2**32 - 1  # numpy.random.seed and torch.manual_seed both take 0 .. 2**32 - 1


def value_problems(stage: str | None, raw: Any, validated: Any, path: str = "") -> list[Problem]:
    """Problems of the fields of ``validated`` (a pydantic model, or plain values) whose value
    ``raw`` was written as; fields that ``raw`` does not mention keep their checked defaults."""
    return list(_walk(stage, raw, validated, path, 0))


def _walk(stage: str | None, raw: Any, val: Any, path: str, depth: int) -> Iterator[Problem]:
    if depth > 80:  # the loader caps nesting at 64; a guard for specs built in Python
        return
    if isinstance(val, (int, float)) and not isinstance(val, bool):
        problem = _number_problem(stage, raw, val, path)
        if problem:
            yield problem
        return
    if isinstance(raw, dict):
        fields = type(val).model_fields if isinstance(val, BaseModel) else None
        for key, r in raw.items():
            if fields is not None:
                if key not in fields:
                    continue
                v = getattr(val, key)
            elif isinstance(val, dict) and key in val:
                v = val[key]
            else:
                continue
            yield from _walk(stage, r, v, f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(raw, (list, tuple)) and isinstance(val, (list, tuple)):
        for i, (r, v) in enumerate(zip(raw, val)):
            yield from _walk(stage, r, v, f"{path}[{i}]", depth + 1)


def _number_problem(stage: str | None, raw: Any, val: int | float, path: str) -> Problem | None:
    if isinstance(raw, bool):
        return Problem(stage, path, f"got {str(raw).lower()}, a boolean, where a number goes",
                       "write the number itself (YAML reads true and false as booleans, not 1 and 0)")
    if isinstance(val, float) and not math.isfinite(val):
        return Problem(stage, path, f"got {shown(raw)}, which reads as {val}, not a finite number",
                       "write a finite number")
    if path.rsplit(".", 1)[-1] == "seed" and isinstance(val, int) and not 0 <= val <= SEED_MAX:
        return Problem(stage, path, f"seed {shown(val)} is outside 0 .. {SEED_MAX}",
                       f"use a seed from 0 to {SEED_MAX} (2**32 - 1), the range numpy and torch both take")
    return None


def task_blocks(raw: Any, path: str = "", depth: int = 0) -> Iterator[tuple[str, dict[str, Any]]]:
    """(field path, block) of each task block inside a stage's raw values: a mapping whose
    ``source`` is a registered task source (a mix's parts are blocks of their own)."""
    from r1pipeline.tasks import registry

    if depth > 80:
        return
    if isinstance(raw, dict):
        if isinstance(raw.get("source"), str) and raw["source"] in registry.names():
            yield path, raw
        for key, v in raw.items():
            yield from task_blocks(v, f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(raw, list):
        for i, v in enumerate(raw):
            yield from task_blocks(v, f"{path}[{i}]", depth + 1)


def task_value_problems(stage: str, raw_stage: dict[str, Any]) -> list[Problem]:
    """``value_problems`` of each task block of a stage, validated by its source's own settings
    model (a stage keeps its task block as a plain mapping; ``check_task`` reports other errors)."""
    from r1pipeline.tasks import registry

    problems = []
    for path, block in task_blocks(raw_stage):
        params = {k: v for k, v in block.items() if k != "source"}
        try:
            src = registry.source_class(block["source"]).model_validate(params)
        except Exception:  # noqa: BLE001  (check_task reports why the block is bad; here only what it let through)
            continue
        problems += value_problems(stage, params, src, path)
    return problems
