"""Where prompts and reference answers come from.

A task source is a small pydantic model (its fields are the spec's settings, validated before
anything heavy loads) registered under a name; ``load(split, n, seed)`` returns rows with the
columns every stage relies on:

* ``id``: stable identifier of the item (the same question always gets the same id)
* ``question``: the user's prompt text, without any template
* ``answer``: the reference answer as a string
* ``verifier``: which checker in ``r1pipeline.rewards.verify`` judges an answer (``exact``...)
* ``answer_from`` (optional, default ``tags``): where the answer is read, ``tags`` or
  ``last_number`` (``rewards.parse.read_answer``); sources with numeric answers offer it as a setting

``split`` is ``train`` or ``test``; the two never share a question.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from r1pipeline.rewards.parse import ANSWER_FROM

# A source's ``answer_from`` setting (the rows' column of the same name).
AnswerFrom = Annotated[Literal[ANSWER_FROM], Field(
    description="where answers are read: tags (the paper) or last_number (a chat model's prose)")]

SPLITS = ("train", "test")


class TaskSource(BaseModel):
    """Base class of task sources; subclasses add their settings as fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: ClassVar[str] = ""

    def load(self, split: str, n: int, seed: int) -> list[dict[str, Any]]:
        raise NotImplementedError

    def files(self) -> list[str]:
        """Local files this source reads (validation checks they exist)."""
        return []


_TASKS: dict[str, type[TaskSource]] = {}


def register(name: str):
    def deco(cls: type[TaskSource]) -> type[TaskSource]:
        if name in _TASKS:
            raise ValueError(f"task source {name!r} registered twice")
        cls.name = name
        _TASKS[name] = cls
        return cls

    return deco


def _load_builtin() -> None:
    from r1pipeline.tasks import builtin  # noqa: F401  (runs the @register decorators)


def names() -> list[str]:
    _load_builtin()
    return sorted(_TASKS)


def source_class(name: str) -> type[TaskSource]:
    _load_builtin()
    if not isinstance(name, str) or name not in _TASKS:  # a list or mapping is unhashable: say unknown
        raise KeyError(f"unknown task source {name!r}; known: {', '.join(names())}")
    return _TASKS[name]


def build(config: dict[str, Any]) -> TaskSource:
    """Build a task source from its spec block ``{source: NAME, **settings}``."""
    params = dict(config)
    name = params.pop("source")
    return source_class(name)(**params)


def split_of(key: str, test_share: float = 0.1) -> str:
    """Deterministic train/test assignment of a question by hash, so splits never overlap.

    >>> split_of("3*4*5") == split_of("3*4*5")
    True
    """
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    return "test" if h < test_share else "train"
