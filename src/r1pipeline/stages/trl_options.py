"""A stage's ``trl:`` block: any option of TRL's config class, checked before TRL is imported.

``grpo``, ``sft`` and ``reward_model`` stages build a ``GRPOConfig``, ``SFTConfig`` or
``RewardConfig`` from their own fields (each module's ``trl_args`` shows the mapping). An option
our config does not name (``mask_truncated_completions``, ``top_entropy_quantile``, ...) goes in
``trl: {NAME: VALUE}``; its values are applied last, so they override what we fix ourselves
(``shuffle_dataset``, GRPO's ``ref_model_mixup_alpha``, ...), and the block is part of the
stage's hash and its manifest like any field.

``r1 validate`` checks each key against the fields of the installed TRL's class, read from TRL's
and transformers' source with ``ast`` (importing ``trl.trainer.grpo_config`` imports torch and
costs seconds; ``tests/stages/test_trl_options.py`` checks the names and types read here against
``dataclasses.fields`` of the real classes). A key that is not a field is refused with the
closest name; a value whose type the field's annotation does not admit (``true`` for an int,
``0.5`` for a bool, text for a number) is refused; a field that our config already sets is
refused with the name of our field, so that each setting has one place.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1pipeline.stages.base import Problem, did_you_mean, shown

# class -> (package, source file inside it); a class's bases are followed while they are listed here
SOURCES = {
    "GRPOConfig": ("trl", "trainer/grpo_config.py"),
    "SFTConfig": ("trl", "trainer/sft_config.py"),
    "RewardConfig": ("trl", "trainer/reward_config.py"),
    "_BaseConfig": ("trl", "trainer/base_config.py"),
    "TrainingArguments": ("transformers", "training_args.py"),
}

# TRL fields that every stage sets from the spec (``rl_support.trainer_args``): our field's name
# (report_to is the spec's, at its top level)
SPEC_FIELDS = {"save_steps": "checkpoint_every", "seed": "seed", "data_seed": "seed", "bf16": "dtype",
               "fp16": "dtype", "report_to": "report_to"}
# TRL fields the runner sets from the run itself: why
RUNNER_FIELDS = {
    "output_dir": "the stage folder's checkpoints/ (r1 run --out moves the run)",
    "save_strategy": "checkpoints every checkpoint_every steps, for resuming",
    "save_total_limit": "the last two checkpoints, for resuming",
    "logging_steps": "metrics.jsonl has one line per step",
    "run_name": "trackers name the run <pipeline>/<stage>",
    "project": "the tracker project (WANDB_PROJECT / TRACKIO_PROJECT)",
    "disable_tqdm": "r1 shows one progress bar",
    "use_cpu": "the machine decides",
}
BASIC = {"int", "float", "bool", "str", "dict", "list", "tuple", "None"}


@dataclass(frozen=True)
class TrlField:
    """A field of a TRL config class: its name, the basic types its annotation admits (None: any
    value, e.g. an enum or ``Any``) and its default as written (``...`` where it is no literal)."""

    name: str
    types: frozenset[str] | None
    default: Any = ...


@functools.cache
def trl_fields(cls: str) -> dict[str, TrlField]:
    """The ``__init__`` fields of TRL's config class ``cls``, its bases' included, read from source."""
    node = _class_node(cls)
    fields: dict[str, TrlField] = {}
    for base in node.bases:
        if isinstance(base, ast.Name) and base.id in SOURCES:
            fields.update(trl_fields(base.id))
    for stmt in node.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            f = _field(stmt)
            if f is None:
                fields.pop(stmt.target.id, None)
            else:
                fields[f.name] = f
    return fields


def _class_node(cls: str) -> ast.ClassDef:
    package, rel = SOURCES[cls]
    spec = importlib.util.find_spec(package)  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{package} is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / rel
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            return node
    raise ImportError(f"no class {cls} in {path}")


def _field(stmt: ast.AnnAssign) -> TrlField | None:
    """The field an annotated class attribute declares; None for ``ClassVar`` and ``init=False``."""
    ann = stmt.annotation
    if "ClassVar" in ast.unparse(ann):
        return None
    default: Any = ...
    value = stmt.value
    if isinstance(value, ast.Call) and getattr(value.func, "id", getattr(value.func, "attr", "")) == "field":
        kw = {k.arg: k.value for k in value.keywords}
        if "init" in kw and isinstance(kw["init"], ast.Constant) and kw["init"].value is False:
            return None
        if "default" in kw:
            default = _literal(kw["default"])
        elif "default_factory" in kw:
            default = {"list": [], "dict": {}}.get(getattr(kw["default_factory"], "id", ""), ...)
    elif value is not None:
        default = _literal(value)
    return TrlField(stmt.target.id, _types(ann), default)


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        return ...


def _types(node: ast.expr | None) -> frozenset[str] | None:
    """The basic types an annotation admits; None when it admits something we cannot check.

    >>> sorted(_types(ast.parse("dict[str, Any] | str | None", mode="eval").body))
    ['None', 'dict', 'str']
    """
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = _types(node.left), _types(node.right)
        return None if left is None or right is None else left | right
    if isinstance(node, ast.Constant):
        if node.value is None:
            return frozenset({"None"})
        if isinstance(node.value, str):  # a quoted annotation
            return _types(ast.parse(node.value, mode="eval").body)
        return None
    if isinstance(node, ast.Name):
        name = {"List": "list", "Dict": "dict", "Tuple": "tuple"}.get(node.id, node.id)
        return frozenset({name}) if name in BASIC else None
    if isinstance(node, ast.Subscript):
        outer = getattr(node.value, "id", getattr(node.value, "attr", ""))
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if outer == "Optional":
            inner = _types(items[0])
            return None if inner is None else inner | {"None"}
        if outer == "Union":
            parts = [_types(i) for i in items]
            return None if any(p is None for p in parts) else frozenset().union(*parts)
        if outer == "Literal":
            return frozenset(type(i.value).__name__ if i.value is not None else "None"
                             for i in items if isinstance(i, ast.Constant))
        return _types(node.value)  # list[str] -> list
    return None


def fits(value: Any, f: TrlField) -> bool:
    """Whether a YAML value suits field ``f``: a bool only where a bool goes, an int where an int
    or a float goes, a float where a float goes, None where None is the default or admitted."""
    types = f.types
    if types is None:
        return True
    if value is None:
        return "None" in types or f.default is None
    if isinstance(value, bool):
        return "bool" in types
    if isinstance(value, int):
        return bool(types & {"int", "float"})
    if isinstance(value, float):
        return "float" in types
    if isinstance(value, str):
        return "str" in types
    if isinstance(value, list):
        return bool(types & {"list", "tuple"})
    if isinstance(value, dict):
        return "dict" in types
    return False


def check_trl_block(stage: str, cls: str, block: dict[str, Any], ours: dict[str, str]) -> list[Problem]:
    """Problems with a stage's ``trl:`` block for TRL's class ``cls``; ``ours``: TRL field -> the
    field of our stage config that sets it."""
    if not block:
        return []
    try:
        fields = trl_fields(cls)
    except (ImportError, OSError, SyntaxError) as exc:
        return [Problem(stage, "trl", f"cannot read TRL's {cls} fields ({exc})", "check the TRL install (pip install trl)")]
    named = {**SPEC_FIELDS, **ours}
    problems = []
    for key, value in block.items():
        where = f"trl.{key}"
        if not isinstance(key, str) or key not in fields:
            close = did_you_mean(str(key), list(fields))
            problems.append(Problem(stage, where, f"{shown(key)} is not an option of TRL's {cls}",
                                    f"{close}see TRL's {cls} for the options"))
        elif key in named:
            ours_name = named[key].split(" ")[0]
            place = "at the top of the spec" if key in ("report_to",) else "in the stage"
            problems.append(Problem(stage, where, f"TRL's {key} is set from our field {ours_name!r}",
                                    f"set {ours_name} {place} and drop trl.{key} (one place for each setting)"))
        elif key in RUNNER_FIELDS:
            problems.append(Problem(stage, where, f"the runner sets TRL's {key}: {RUNNER_FIELDS[key]}",
                                    f"drop trl.{key}"))
        elif not fits(value, fields[key]):
            f = fields[key]
            admits = " or ".join(sorted(f.types or ()))
            default = f" (its default: {shown(f.default)})" if f.default is not ... else ""
            problems.append(Problem(stage, where, f"got {shown(value)}, TRL's {cls}.{key} takes {admits}",
                                    f"give a value of that type{default}"))
    return problems
