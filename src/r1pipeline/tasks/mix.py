"""A mixture of task sources: the prompt mix of RL for all scenarios (reasoning + general)."""

from __future__ import annotations

import random
from typing import Any

from pydantic import Field, field_validator

from r1pipeline.tasks.registry import TaskSource, build, register

# Columns every row of a mix has, so that rows of different sources fit one dataset.
DEFAULTS = {"verifier": "exact", "answer_from": "tags", "domain": "reasoning", "harmful": False, "payload": ""}


@register("mix")
class Mix(TaskSource):
    """Rows drawn from several sources in proportion to their weights, shuffled."""

    parts: list[dict[str, Any]] = Field(min_length=1, description="task blocks, each with an optional 'weight'")

    @field_validator("parts")
    @classmethod
    def _parts_are_sources(cls, parts):
        for i, p in enumerate(parts):
            if "source" not in p:
                raise ValueError(f"parts[{i}] has no 'source'")
            w = p.get("weight", 1.0)  # a share: a positive finite number, not true or "nan"
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 < w < float("inf"):
                raise ValueError(f"parts[{i}].weight {str(w)[:30]!r} must be a positive finite number")
            try:
                _source(p)  # validates the part's settings
            except KeyError as e:  # an unknown source: a ValueError, so that pydantic reports it
                raise ValueError(f"parts[{i}]: {e.args[0]}") from None
        return parts

    def resolve_paths(self, base) -> "Mix":
        """A copy whose parts' relative file paths are taken from ``base``."""
        from pathlib import Path

        def part(p: dict[str, Any]) -> dict[str, Any]:
            return {k: str(Path(base) / v) if k in ("path", "test_path") and v and not Path(v).is_absolute() else v
                    for k, v in p.items()}

        return self.model_copy(update={"parts": [part(p) for p in self.parts]})

    def files(self) -> list[str]:
        return [f for p in self.parts for f in _source(p).files()]

    def _shares(self, n: int) -> list[tuple[TaskSource, int]]:
        """Each part's source and its share of ``n`` items, in proportion to the weights."""
        weights = [float(p.get("weight", 1.0)) for p in self.parts]
        total = sum(weights)
        return [(_source(p), round(n * w / total)) for p, w in zip(self.parts, weights)]

    def load(self, split: str, n: int, seed: int) -> list[dict[str, Any]]:
        rows = [{**DEFAULTS, **r} for src, k in self._shares(n) for r in src.load(split, k, seed)]
        random.Random(f"{seed}-mix-{split}").shuffle(rows)
        return rows

    def corpus(self, n: int, seed: int, **kw) -> list[str]:
        """Pretraining documents from every part, in proportion, shuffled."""
        docs = [d for src, k in self._shares(n) for d in src.corpus(k, seed, **kw)]
        random.Random(f"{seed}-mix-corpus").shuffle(docs)
        return docs[:n]


def _source(part: dict[str, Any]) -> TaskSource:
    """The task source of one part (its ``weight`` is the mix's business, not the source's)."""
    return build({k: v for k, v in part.items() if k != "weight"})
