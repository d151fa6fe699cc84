"""The pipeline spec: a YAML list of named stages, typed and validated before anything heavy loads.

``load_spec(path, overrides)`` reads the YAML, applies ``--set`` overrides, validates every stage
against its kind's ``Config`` and then checks what needs the whole spec (references, cycles,
rewards, files, divisibility). Every problem becomes one line that names the stage, the field,
the value and the fix; all of them are reported at once, as a ``SpecError``.

The YAML is read by ``yaml_load`` (encodings, duplicate keys, alias bombs, nesting, huge and
non-finite numbers: refused with their line), ``--set`` values too; after pydantic, ``values``
names what lax validation let through (``steps: true``, ``learning_rate: 1e400``, seeds outside
0 .. 2**32 - 1). No message prints a value whole (``stages.base.shown``).

Nothing here imports torch, transformers or TRL: ``r1 validate`` answers in about a second.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from r1pipeline import trackers
from r1pipeline.pipeline.findings import Finding, check_findings, eval_block, parse_findings
from r1pipeline.pipeline.values import task_value_problems, value_problems
from r1pipeline.pipeline.yaml_load import YamlProblem, load_yaml, read_yaml, surrogate_at
from r1pipeline.stages import KINDS
from r1pipeline.stages.base import Problem, StageConfig, did_you_mean, shown, validation_problems

MAX_KEY_PARTS = 12  # ``--set a.b.c=...``: the deepest setting is a few levels down


class SpecError(Exception):
    """A spec that cannot run; ``problems`` holds one fixable line each."""

    def __init__(self, problems: list[Problem], source: str = "spec"):
        self.problems = [_bounded(p) for p in problems]
        self.source = source
        super().__init__("\n".join(f"{source}: {p}" for p in self.problems))


def _bounded(p: Problem, limit: int = 600) -> Problem:
    """A guard: no line of a message runs past about ``3 * limit`` characters, whichever check
    wrote it (a field named by a 20,000-character key included)."""
    def cut(text: str | None, n: int) -> str | None:
        return text if text is None or len(text) <= n else text[:n] + "…"

    return Problem(cut(p.stage, 80), cut(p.field, 120), cut(p.message, limit), cut(p.fix, 2 * limit))


class Spec(BaseModel):
    """A resolved, validated pipeline spec."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    seed: int = 0
    base_dir: str = Field(".", description="folder that relative paths in the spec are read from")
    stages: list[Any]  # StageConfig subclasses, validated one by one in load_spec
    findings: list[Finding] | None = None  # the claims the report judges (pipeline/findings.py); None: defaults
    # experiment trackers every stage logs to (trackers.py); not part of any stage's hash
    report_to: list[str] = Field(default_factory=list)

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
        data = self.model_dump(mode="json", exclude={"stages", "findings", "report_to"})
        if self.report_to:
            data["report_to"] = self.report_to
        data["stages"] = [s.model_dump(mode="json", exclude_none=True) for s in self.stages]
        if self.findings is not None:
            data["findings"] = [f.model_dump(mode="json", exclude_none=True) for f in self.findings]
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _parse_value(item: str, text: str) -> tuple[Any, Problem | None]:
    """A ``--set`` value read as YAML (``3``, ``1e-5``, ``[a, b]``); text that is no YAML at all
    stays text; YAML that the loader refuses (``.inf``, an alias bomb, ...) is a Problem."""
    at = surrogate_at(text)
    if at is not None:  # Python reads a byte that is not UTF-8 in argv as a lone surrogate
        return None, Problem(None, "--set", f"{shown(item)}: the value is not UTF-8 text (character {at + 1})",
                             "write it in UTF-8 (check the terminal's encoding)")
    try:
        return load_yaml(text), None
    except YamlProblem as e:
        if e.syntax:
            return text, None
        return None, Problem(None, "--set", f"{shown(item)}: {e.message}", e.fix)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> list[Problem]:
    """Apply ``--set key=value`` overrides in place: ``seed=1``, ``r1_zero.learning_rate=1e-5``,
    ``r1_zero.task.n_digits=4``. Returns problems for overrides that name nothing."""
    problems = []
    listed = raw.get("stages") if isinstance(raw.get("stages"), list) else []
    stages = {s["name"]: s for s in listed if isinstance(s, dict) and isinstance(s.get("name"), str)}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            problems.append(Problem(None, "--set", f"malformed override {shown(item)}", "write KEY=VALUE"))
            continue
        parts = key.split(".")
        if len(parts) > MAX_KEY_PARTS or not all(parts):
            why = f"{len(parts)} parts" if len(parts) > MAX_KEY_PARTS else "an empty part (two dots, or one at an end)"
            problems.append(Problem(None, "--set", f"key {shown(key)} has {why}",
                                    "name a setting as STAGE.FIELD or STAGE.FIELD.SUBFIELD, e.g. r1_zero.steps"))
            continue
        if parts[0] in stages and len(parts) > 1:
            target, parts = stages[parts[0]], parts[1:]
        elif len(parts) == 1:
            target = raw
        else:
            problems.append(Problem(None, "--set", f"no stage named {shown(parts[0])} in {shown(item)}",
                                    f"{did_you_mean(parts[0], list(stages))}use one of: {', '.join(stages)}"))
            continue
        for p in parts[:-1]:
            target = target.setdefault(p, {})
            if not isinstance(target, dict):
                problems.append(Problem(None, "--set", f"{shown(key)} goes through a non-mapping", "check the key"))
                break
        else:
            parsed, problem = _parse_value(item, value)
            if problem:
                problems.append(problem)
            else:
                target[parts[-1]] = parsed
    return problems


def _parse_stage(raw: Any, index: int) -> tuple[StageConfig | None, list[Problem]]:
    if not isinstance(raw, dict):
        return None, [Problem(f"#{index + 1}", None, f"a stage must be a mapping, got {shown(raw)}",
                              "write 'name: ..., kind: ...' for each stage")]
    name = raw.get("name") if isinstance(raw.get("name"), str) and raw.get("name") else f"#{index + 1}"
    name = name if len(name) <= 60 else name[:60] + "…"
    kind = raw.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        close = did_you_mean(kind, list(KINDS)) if isinstance(kind, str) else ""
        return None, [Problem(name, "kind", f"unknown kind {shown(kind)}", f"{close}use one of: {', '.join(KINDS)}")]
    cls = KINDS[kind]
    try:
        cfg = cls.model_validate(raw)
    except ValidationError as exc:
        return None, validation_problems(name, exc, cls)
    problems = value_problems(cfg.name, raw, cfg) + task_value_problems(cfg.name, raw)
    return (None, problems) if problems else (cfg, [])


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
    report_to, errs = report_to_names(raw.pop("report_to", None))
    problems += errs
    raw_findings = raw.pop("findings", None)
    findings, errs = parse_findings(raw_findings) if raw_findings is not None else (None, [])
    problems += errs or value_problems(None, raw_findings, findings, "findings")
    try:
        spec = Spec.model_validate({**raw, "stages": []})
    except ValidationError as exc:
        problems += validation_problems(None, exc, Spec)
        raise SpecError(problems, source) from None
    problems += value_problems(None, {k: v for k, v in raw.items() if k != "stages"}, spec)
    spec.stages = stages
    spec.findings = findings
    spec.report_to = report_to
    if problems:  # stage-level checks need every stage parsed
        raise SpecError(problems, source)
    problems = check_graph(spec)
    if not problems:
        for s in spec.stages:
            problems += _guarded(s.name, lambda: s.check(spec))
        problems += _guarded(None, lambda: check_findings(spec.findings or [], eval_block(spec.stages)))
    if problems:
        raise SpecError(problems, source)
    return spec


def report_to_names(value: Any) -> tuple[list[str], list[Problem]]:
    """The spec's ``report_to`` (a list of tracker names, or one name; ``none`` or nothing: no
    tracker) as a list, and the problems with it: a name we do not know, a tracker whose package
    is not installed.

    >>> report_to_names(["tensorboard", "none"])[1][0].message
    "'none' cannot be combined with trackers"
    """
    names = [value] if isinstance(value, str) else value
    if names is None or names == ["none"]:
        return [], []
    known = ", ".join((*trackers.NAMES, "none"))
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return [], [Problem(None, "report_to", f"got {shown(value)}", f"give a list of tracker names ({known})")]
    problems = []
    for n in names:
        if n == "none":
            problems.append(Problem(None, "report_to", "'none' cannot be combined with trackers",
                                    "drop 'none', or write report_to: [none]"))
        elif n not in trackers.NAMES:
            problems.append(Problem(None, "report_to", f"unknown tracker {shown(n)}",
                                    f"{did_you_mean(n, list(trackers.NAMES))}use one of: {known}"))
        elif trackers.missing(n):
            problems.append(Problem(None, "report_to", f"{n} is not installed",
                                    f"pip install 'r1pipeline[{n}]', or drop {n} from report_to"))
    return list(dict.fromkeys(names)), problems


CHECK_BUG = "a check of r1 itself failed on this stage"


def _guarded(stage: str | None, check) -> list[Problem]:
    """``check()``'s problems; an exception in a check (a bug of ours, on input nobody foresaw)
    becomes a Problem naming the stage, so that validation still exits 2, without a traceback."""
    try:
        return check()
    except Exception as exc:  # noqa: BLE001
        return [Problem(stage, None, f"{CHECK_BUG} ({type(exc).__name__}: {shown(str(exc), 120)})",
                        "look for an odd value in this stage (a key that is not text, a list where one value "
                        "goes), and please report this message")]


def check_processes(spec: Spec, n: int) -> list[Problem]:
    """Problems with running ``spec`` on ``n`` data-parallel processes: its batch sizes are global,
    and each process takes ``batch / n``."""
    return [p for s in spec.stages for p in s.check_processes(n)] if n > 1 else []


def load_spec(path: str | Path, overrides: list[str] = ()) -> Spec:
    """Read and validate the spec at ``path`` (relative paths inside it are relative to it)."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a spec file" if path.is_dir() else "no spec file there"
        raise SpecError([Problem(None, None, f"{what} ({path.absolute()})",
                                 "check the path (specs live in configs/)")], str(path))
    return validate_raw(read_spec_yaml(path), str(path), path.parent.resolve(), overrides)


def read_spec_yaml(path: Path) -> Any:
    """The parsed YAML of the spec file at ``path``; a SpecError naming the line where it is refused."""
    try:
        return read_yaml(path)
    except YamlProblem as e:
        raise SpecError([Problem(None, None, e.text, e.fix)], str(path)) from None
