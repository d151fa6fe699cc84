"""What every stage kind shares: its config base class and the context the runner hands it.

A stage kind is a module in ``stages/`` with a ``Config`` (a pydantic model, importable without
torch so that ``r1 validate`` stays fast) and ``run(cfg, ctx) -> summary dict``. Heavy imports
live inside ``run``. The runner does everything else: ordering, hashing, manifests, seeding,
skipping finished stages, writing ``summary.json``.

In a run on several processes, a module that sets ``DISTRIBUTED = True`` has its ``run`` called
on every process (data-parallel training: the spec's batch sizes stay global, each process takes
``batch / N``; only rank 0 writes files); any other kind runs on rank 0 while the rest wait.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from r1pipeline.rundir import METRICS, MetricsLog

if TYPE_CHECKING:
    from r1pipeline.precision import Decision


@dataclass
class Problem:
    """One thing wrong with a spec, phrased so that the user can fix it."""

    stage: str | None
    field: str | None
    message: str
    fix: str

    def __str__(self) -> str:
        where = []
        if self.stage:
            where.append(f"stage '{self.stage}'")
        if self.field:
            where.append(f"field '{self.field}'")
        prefix = ", ".join(where) + ": " if where else ""
        return f"{prefix}{self.message}; fix: {self.fix}"


def did_you_mean(value: str, options: list[str]) -> str:
    close = difflib.get_close_matches(value, options, n=1)
    return f"did you mean '{close[0]}'? " if close else ""


def fix_for(err: dict[str, Any]) -> tuple[str, str]:
    """(message, fix) for one pydantic error."""
    kind, msg, value = err["type"], err["msg"], err.get("input")
    if kind == "extra_forbidden":
        return "unknown field", "remove it or correct its spelling"
    if kind == "missing":
        return "required field is missing", "add it"
    return f"got {shown(value) if not isinstance(value, dict) else 'a mapping'}", msg[0].lower() + msg[1:]


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)`` for a message, cut to about ``limit`` characters, never built whole (a value
    from YAML aliases can expand to thousands of items; a 4,000-digit integer prints as 4,000 digits).

    >>> shown("x" * 100, 5), shown(10 ** 100), shown([1, [2]])
    ("'xxxxx'…", 'a 101-digit integer', '[1, [2]]')
    """
    if isinstance(value, str):
        return repr(value[:limit]) + ("…" if len(value) > limit else "")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"a {len(str(value)) if value.bit_length() < 10_000 else 'many'}-digit integer"
    if isinstance(value, (dict, list, tuple)):
        from r1pipeline.tasks.rows import shorten

        return shorten(value, limit)
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def validation_problems(stage: str | None, exc: ValidationError, model: type[BaseModel],
                        prefix: str = "") -> list[Problem]:
    """One Problem per pydantic error of ``model``, its field path under ``prefix``."""
    problems = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        message, fix = fix_for(err)
        if err["type"] == "extra_forbidden":
            fix = did_you_mean(str(err["loc"][-1]), list(model.model_fields)) + fix
        problems.append(Problem(stage, prefix + loc, message, fix))
    return problems


class SpecView(Protocol):
    """What a stage's whole-spec checks read of the spec (``pipeline.spec.Spec`` is one; stages
    never import the pipeline layer above them)."""

    base_dir: str

    @property
    def stage_names(self) -> list[str]: ...

    def stage(self, name: str) -> "StageConfig": ...

    def path(self, p: str) -> Path: ...


class StageConfig(BaseModel):
    """Fields every stage has. Subclasses pin ``kind`` to a literal and add their settings."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$", description="unique stage name")
    kind: str
    seed: int | None = Field(None, description="defaults to the spec's seed")

    # Fields that do not change what the stage produces (excluded from its hash).
    non_result_fields: ClassVar[frozenset[str]] = frozenset()
    # Fields added after runs were made: left out of the hash while they hold their default, so
    # that those runs keep their hash.
    late_fields: ClassVar[frozenset[str]] = frozenset()
    makes_model: ClassVar[bool] = False
    makes_data: ClassVar[bool] = False

    def inputs(self, stage_names: set[str]) -> list[str]:
        """Names of the stages whose artifacts this stage reads."""
        return []

    def check(self, spec: SpecView) -> list[Problem]:
        """Checks that need the rest of the spec (references, files, divisibility)."""
        return []

    def check_processes(self, n: int) -> list[Problem]:
        """Problems with splitting this stage's batches over ``n`` data-parallel processes."""
        return []

    def data_files(self, stage_names: set[str]) -> list[str]:
        """Local files the stage reads (their contents are part of its hash)."""
        return []

    def hashed_config(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        return {k: v for k, v in data.items() if k not in self.non_result_fields
                and not (k in self.late_fields and getattr(self, k) == type(self).model_fields[k].default)}


@dataclass
class StageContext:
    """What the runner hands a stage: where to write, what it may read, how to log."""

    name: str
    dir: Path
    run_dir: Path
    seed: int
    input_dirs: dict[str, Path] = field(default_factory=dict)
    resume: bool = False  # True when an earlier attempt of this exact stage was interrupted
    # what -> precision.Decision.record(): the dtype each part of the stage computes in, for the
    # manifest ("train"; "rollout"; evaluate: one per model); kept out of the stage's hash
    precision: dict[str, dict[str, Any]] = field(default_factory=dict)
    pipeline: str = ""  # the spec's name: trackers group a run's stages by it
    report_to: tuple[str, ...] = ()  # the spec's trackers (trackers.py); () logs to none
    _tracker: Any = field(default=None, repr=False)

    @property
    def run_name(self) -> str:
        """The stage's tracker run: ``<pipeline>/<stage>``."""
        return f"{self.pipeline}/{self.name}" if self.pipeline else self.name

    @property
    def tracker(self):
        """The stage's ``trackers.Tracker`` (for stages that TRL does not train): ``ctx.tracker.log(
        {"train/loss": 0.7}, step)``; the runner closes it."""
        if self._tracker is None:
            from r1pipeline.trackers import Tracker

            self._tracker = Tracker(self.report_to, self.run_name, self.pipeline, self.dir)
        return self._tracker

    def record_precision(self, what: str, decision: "Decision") -> str:
        """Keep ``decision`` for the manifest's ``precision`` entry; returns its concrete dtype, so
        that a stage uses exactly what its manifest says."""
        self.precision[what] = decision.record()
        return decision.dtype

    @property
    def metrics(self) -> MetricsLog:
        return MetricsLog(self.dir / METRICS)

    @property
    def model_dir(self) -> Path:
        return self.dir / "model"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def checkpoint_dir(self) -> Path:
        return self.dir / "checkpoints"

    def model_path(self, ref: str) -> str:
        """A loadable model directory for ``ref``: a stage of this run, or a model reference."""
        if ref in self.input_dirs:
            return str(self.input_dirs[ref] / "model")
        from r1pipeline.models.catalog import resolve_model

        return str(resolve_model(ref))
