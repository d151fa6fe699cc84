"""The pipeline spec: a YAML list of named stages, typed and validated before anything heavy loads.

``load_spec(path, overrides)`` reads the YAML, applies ``--set`` overrides, validates every stage
against its kind's ``Config`` and then checks what needs the whole spec (references, cycles,
rewards, files, divisibility). Every problem becomes one line that names the stage, the field,
the value and the fix; all of them are reported at once, as a ``SpecError``.

Nothing here imports torch, transformers or TRL: ``r1 validate`` answers in about a second.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from r1pipeline.pipeline.findings import Finding, check_findings, eval_block, parse_findings
from r1pipeline.stages import KINDS
from r1pipeline.stages.base import Problem, StageConfig, did_you_mean, validation_problems


class SpecError(Exception):
    """A spec that cannot run; ``problems`` holds one fixable line each."""

    def __init__(self, problems: list[Problem], source: str = "spec"):
        self.problems = problems
        self.source = source
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


class Spec(BaseModel):
    """A resolved, validated pipeline spec."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    seed: int = 0
    base_dir: str = Field(".", description="folder that relative paths in the spec are read from")
    stages: list[Any]  # StageConfig subclasses, validated one by one in load_spec
    findings: list[Finding] | None = None  # the claims the report judges (pipeline/findings.py); None: defaults

    def stage(self, name: str) -> StageConfig:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    def path(self, p: str) -> Path:
        """A path from the spec, relative to the spec file's folder unless absolute."""
        q = Path(p).expanduser()
        return q if q.is_absolute() else Path(self.base_dir) / q

    def stage_seed(self, stage: StageConfig) -> int:
        return self.seed if stage.seed is None else stage.seed

    def order(self) -> list[StageConfig]:
        """Stages in dependency order (file order where there is a choice)."""
        names = set(self.stage_names)
        done: list[str] = []
        pending = list(self.stages)
        while pending:
            for s in pending:
                if all(i in done for i in s.inputs(names)):
                    done.append(s.name)
                    pending.remove(s)
                    break
            else:  # unreachable after check_graph; kept as a guard
                raise SpecError([Problem(None, "stages", "cycle between stages", "break the cycle")])
        return [self.stage(n) for n in done]

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json", exclude={"stages", "findings"})
        data["stages"] = [s.model_dump(mode="json", exclude_none=True) for s in self.stages]
        if self.findings is not None:
            data["findings"] = [f.model_dump(mode="json", exclude_none=True) for f in self.findings]
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> list[Problem]:
    """Apply ``--set key=value`` overrides in place: ``seed=1``, ``r1_zero.learning_rate=1e-5``,
    ``r1_zero.task.n_digits=4``. Returns problems for overrides that name nothing."""
    problems = []
    stages = {s.get("name"): s for s in raw.get("stages") or [] if isinstance(s, dict)}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            problems.append(Problem(None, "--set", f"malformed override {item!r}", "write KEY=VALUE"))
            continue
        parts = key.split(".")
        if parts[0] in stages and len(parts) > 1:
            target, parts = stages[parts[0]], parts[1:]
        elif len(parts) == 1:
            target = raw
        else:
            problems.append(Problem(None, "--set", f"no stage named {parts[0]!r} in {item!r}",
                                    f"{did_you_mean(parts[0], list(stages))}use one of: {', '.join(stages)}"))
            continue
        for p in parts[:-1]:
            target = target.setdefault(p, {})
            if not isinstance(target, dict):
                problems.append(Problem(None, "--set", f"{key!r} goes through a non-mapping", "check the key"))
                break
        else:
            target[parts[-1]] = _parse_value(value)
    return problems


def _parse_stage(raw: Any, index: int) -> tuple[StageConfig | None, list[Problem]]:
    if not isinstance(raw, dict):
        return None, [Problem(f"#{index + 1}", None, f"a stage must be a mapping, got {raw!r}",
                              "write 'name: ..., kind: ...' for each stage")]
    name = str(raw.get("name") or f"#{index + 1}")
    kind = raw.get("kind")
    if kind not in KINDS:
        return None, [Problem(name, "kind", f"unknown kind {kind!r}",
                              f"{did_you_mean(str(kind), list(KINDS))}use one of: {', '.join(KINDS)}")]
    cls = KINDS[kind]
    try:
        return cls.model_validate(raw), []
    except ValidationError as exc:
        return None, validation_problems(name, exc, cls)


def check_graph(spec: Spec) -> list[Problem]:
    """Duplicate names, references to stages that do not exist, and cycles."""
    problems, seen = [], set()
    names = spec.stage_names
    for s in spec.stages:
        if s.name in seen:
            problems.append(Problem(s.name, "name", "two stages share this name", "rename one of them"))
        seen.add(s.name)
    if problems:
        return problems
    graph = {s.name: s.inputs(set(names)) for s in spec.stages}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished

    def visit(n: str, path: list[str]) -> None:
        state[n] = 1
        for m in graph[n]:
            if state.get(m) == 1:
                cycle = path[path.index(m):] + [m] if m in path else [n, m]
                problems.append(Problem(n, "inputs", f"cycle: {' -> '.join(cycle)}",
                                        "a stage may only read stages that do not read it"))
            elif m not in state:
                visit(m, path + [m])
        state[n] = 2

    for n in names:
        if n not in state:
            visit(n, [n])
    return problems


def validate_raw(raw: Any, source: str = "spec", base_dir: Path | None = None,
                 overrides: list[str] = ()) -> Spec:
    """Validate a spec given as parsed YAML; raises ``SpecError`` listing every problem."""
    if not isinstance(raw, dict):
        raise SpecError([Problem(None, None, "the spec must be a YAML mapping",
                                 "start with 'name:' and 'stages:'")], source)
    raw = copy.deepcopy(raw)
    problems = apply_overrides(raw, list(overrides))
    raw_stages = raw.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise SpecError(problems + [Problem(None, "stages", "no stages given",
                                            "add a list of stages under 'stages:'")], source)
    raw.setdefault("name", Path(source).stem if source != "spec" else "pipeline")
    raw.setdefault("base_dir", str(base_dir or Path.cwd()))
    stages = []
    for i, rs in enumerate(raw_stages):
        cfg, errs = _parse_stage(rs, i)
        problems += errs
        if cfg is not None:
            stages.append(cfg)
    findings, errs = parse_findings(raw.pop("findings")) if raw.get("findings") is not None else (None, [])
    problems += errs
    try:
        spec = Spec.model_validate({**raw, "stages": []})
    except ValidationError as exc:
        problems += validation_problems(None, exc, Spec)
        raise SpecError(problems, source) from None
    spec.stages = stages
    spec.findings = findings
    if problems:  # stage-level checks need every stage parsed
        raise SpecError(problems, source)
    problems = check_graph(spec)
    if not problems:
        for s in spec.stages:
            problems += s.check(spec)
        problems += check_findings(spec.findings or [], eval_block(spec.stages))
    if problems:
        raise SpecError(problems, source)
    return spec


def check_processes(spec: Spec, n: int) -> list[Problem]:
    """Problems with running ``spec`` on ``n`` data-parallel processes: its batch sizes are global,
    and each process takes ``batch / n``."""
    return [p for s in spec.stages for p in s.check_processes(n)] if n > 1 else []


def load_spec(path: str | Path, overrides: list[str] = ()) -> Spec:
    """Read and validate the spec at ``path`` (relative paths inside it are relative to it)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError([Problem(None, None, f"no spec file at {str(path)!r}",
                                 "check the path (specs live in configs/)")], str(path))
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError([Problem(None, None, f"invalid YAML{where}: {getattr(exc, 'problem', exc)}",
                                 "fix the YAML syntax there")], str(path)) from None
    return validate_raw(raw, str(path), path.parent.resolve(), overrides)
