"""Config pieces that several stage kinds share, and their whole-spec checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from r1pipeline.stages.base import Problem, SpecView, did_you_mean, validation_problems

# bfloat16: bf16 autocast (training) or bf16 weights (generation); auto: bfloat16 where it is clearly
# faster on this machine, measured once and cached (precision.py), else float32
Dtype = Literal["float32", "bfloat16", "auto"]


class Sampling(BaseModel):
    """How completions are sampled (the paper's evaluation defaults)."""

    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(0.6, gt=0, le=5)
    top_p: float = Field(0.95, gt=0, le=1)
    max_new_tokens: int = Field(64, gt=0)


class Lora(BaseModel):
    """LoRA adapters instead of full fine-tuning (Hu et al. 2021): W + alpha/r * B A, with A, B of rank r.

    Needs ``peft`` (``pip install 'r1pipeline[lora]'``). The stage still saves a plain transformers
    checkpoint: the adapters are merged into the weights before saving.
    """

    model_config = ConfigDict(extra="forbid")
    r: int = Field(16, gt=0, description="rank of the update")
    alpha: float = Field(32.0, gt=0, description="the update is scaled by alpha / r")
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="module names (e.g. [q_proj, v_proj]), or all-linear: every linear layer "
                                  "but the output head")

    def peft_config(self, task_type: Literal["CAUSAL_LM", "SEQ_CLS"]):
        """PEFT's ``LoraConfig``; for SEQ_CLS, PEFT also trains the new score head in full."""
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=self.target_modules, task_type=task_type)


def check_lora(stage: str, lora: Lora | None) -> list[Problem]:
    """A ``lora`` block needs peft installed (checked without importing it)."""
    import importlib.util

    if lora is None or importlib.util.find_spec("peft") is not None:
        return []
    return [Problem(stage, "lora", "LoRA needs the peft package, which is not installed",
                    "pip install 'r1pipeline[lora]' (or pip install peft), or remove the lora block")]


def check_task(stage: str, field: str, block: dict[str, Any], spec: SpecView) -> list[Problem]:
    """The task block names a registered source with valid settings and existing files."""
    from r1pipeline.tasks import registry

    source = block.get("source")
    if source not in registry.names():
        return [Problem(stage, f"{field}.source", f"unknown task source {source!r}",
                        f"{did_you_mean(str(source), registry.names())}use one of: {', '.join(registry.names())}")]
    cls = registry.source_class(source)
    params = {k: v for k, v in block.items() if k != "source"}
    try:
        src = cls(**params)
    except ValidationError as exc:
        return validation_problems(stage, exc, cls, prefix=f"{field}.")
    missing = [p for f in src.files() for p in missing_file(stage, field, f, spec)]
    if missing or not src.files():
        return missing
    return check_rows(stage, field, src, spec)


def check_rows(stage: str, field: str, src, spec: SpecView) -> list[Problem]:
    """Read a file-backed source once, so that a bad row fails validation, not a training stage."""
    from r1pipeline.tasks.rows import DataError

    if hasattr(src, "resolve_paths"):
        src = src.resolve_paths(Path(spec.base_dir))
    try:
        for split in ("train", "test"):
            src.load(split, 1, 0)
    except DataError as exc:
        return [data_problem(stage, field, exc)]
    return []


def missing_file(stage: str, field: str, path: str, spec: SpecView) -> list[Problem]:
    """A Problem when ``path`` (relative: to the spec's folder) is not a file, naming the path tried."""
    try:
        tried = spec.path(path)
        if tried.is_file():
            return []
    except (OSError, ValueError) as exc:  # a NUL byte in the path, a name too long
        return [Problem(stage, field, f"{path!r} cannot be used as a path ({exc})", "check the path")]
    what = "is a folder, not a file" if tried.is_dir() else "not found"
    where = "" if Path(path).is_absolute() else f" (a relative path is read from the spec's folder, {spec.base_dir})"
    return [Problem(stage, field, f"file {what}: {tried.absolute()}{where}", "check the path")]


def data_problem(stage: str, field: str, exc) -> Problem:
    """A ``tasks.rows.DataError`` as a Problem: the place and message, then its one fix."""
    return Problem(stage, field, f"{exc.place}: {exc.message}", exc.fix)


def check_data_file(stage: str, field: str, path: str, spec: SpecView, columns, min_rows: int = 1,
                    why: str = "", fix: str = "add rows to the file") -> list[Problem]:
    """A JSONL file of some kind (``tasks.rows``: CURATED, EXEMPLARS, SFT_ROWS, PAIRS) exists, every
    row of it fits ``columns``, and it has ``min_rows`` rows at least (``why``: what needs them)."""
    from r1pipeline.tasks.rows import DataError, read_jsonl

    missing = missing_file(stage, field, path, spec)
    if missing:
        return missing
    try:
        n = len(read_jsonl(spec.path(path), columns))
    except DataError as exc:
        return [data_problem(stage, field, exc)]
    if n < min_rows:
        return [Problem(stage, field, f"{spec.path(path)}: {n} rows, {min_rows} needed{why}", fix)]
    return []


def task_files(*blocks: dict[str, Any] | None) -> list[str]:
    """The local files that task blocks read."""
    from r1pipeline.tasks import registry

    return [f for b in blocks if b for f in registry.build(b).files()]


def build_task(block: dict[str, Any], spec_base: str):
    """The task source of a stage, with relative paths resolved against the spec's folder."""
    from r1pipeline.tasks import registry

    src = registry.build(block)
    if hasattr(src, "resolve_paths"):
        src = src.resolve_paths(Path(spec_base))
    return src


@dataclass
class RewardUse:
    """One entry of a stage's ``rewards`` block.

    ``{label: weight}`` or ``{label: {weight: w, reward: NAME, last_steps: N, **params}}``: the
    label names the function in logs (``<label>_reward``); ``reward`` is the registry name
    (default: the label), so one reward can appear twice with different parameters;
    ``last_steps`` limits it to the last N steps of the stage (the paper's preference rewards);
    a parameter whose value names a stage of the spec (e.g. ``path: reward_helpful``) reads that
    stage's model.
    """

    label: str
    name: str
    weight: Any
    params: dict[str, Any]
    last_steps: int | None = None


def reward_uses(rewards: dict[str, Any]) -> list[RewardUse]:
    uses = []
    for label, value in rewards.items():
        if isinstance(value, dict):
            params = dict(value)
            weight = params.pop("weight", 1.0)
            name = params.pop("reward", label)
            last = params.pop("last_steps", None)
            uses.append(RewardUse(label, str(name), weight, params, last))
        else:
            uses.append(RewardUse(label, label, value, {}))
    return uses


def reward_stage_refs(rewards: dict[str, Any], stage_names: set[str]) -> list[str]:
    """Stages that reward parameters name (their models become inputs of the stage)."""
    return [v for u in reward_uses(rewards) for v in u.params.values() if isinstance(v, str) and v in stage_names]


def check_rewards(stage: str, rewards: dict[str, Any], spec: "SpecView | None" = None) -> list[Problem]:
    """Reward names exist in the registry; weights are numbers; parameters fit the reward."""
    from r1pipeline.rewards import registry

    problems, known = [], registry.names()
    if not rewards:
        return [Problem(stage, "rewards", "no rewards given", "name at least one, e.g. {accuracy: 1.0}")]
    for use in reward_uses(rewards):
        field = f"rewards.{use.label}"
        if use.name not in known and use.name not in registry.ALIASES:  # open-r1/TRL names too
            what = "reward" if use.name == use.label else "reward name in 'reward:'"
            problems.append(Problem(stage, field, f"unknown {what} {use.name!r}",
                                    f"{did_you_mean(use.name, known)}use one of: {', '.join(known)}"))
            continue
        if not isinstance(use.weight, (int, float)) or isinstance(use.weight, bool):
            problems.append(Problem(stage, field, f"weight {use.weight!r} is not a number",
                                    "give a number, or {weight: 1.0, <params>}"))
        if use.last_steps is not None and (not isinstance(use.last_steps, int) or use.last_steps <= 0):
            problems.append(Problem(stage, f"{field}.last_steps", f"got {use.last_steps!r}",
                                    "give a positive whole number of steps"))
        bad = registry.param_problem(use.name, use.params)  # builds the reward once, as training does
        if bad:
            key, message, fix = bad
            problems.append(Problem(stage, f"{field}.{key}" if key else field,
                                    f"reward {use.name!r}: {message}", fix))
        if spec is not None:
            for key, value in use.params.items():
                if isinstance(value, str) and value in spec.stage_names and not spec.stage(value).makes_model:
                    problems.append(Problem(stage, f"{field}.{key}", f"stage {value!r} makes no model",
                                            "name a reward_model stage"))
    return problems


def check_model_ref(stage: str, field: str, ref: str, spec: SpecView,
                    needs_model: bool = True) -> list[Problem]:
    """``ref`` is a stage of this spec that makes a model, a known model name, or a local path."""
    names = spec.stage_names
    if ref in names:
        if needs_model and not spec.stage(ref).makes_model:
            return [Problem(stage, field, f"stage {ref!r} makes no model",
                            "name a pretrain, sft or grpo stage, a model name or a path")]
        return []
    from r1pipeline.models.catalog import check_model_ref as check_catalog

    err = check_catalog(str(spec.path(ref)) if ("/" in ref or ref.startswith(".")) else ref)
    if err is None:
        return []
    return [Problem(stage, field, f"{ref!r} is neither a stage of this spec nor a model: {err}",
                    f"{did_you_mean(ref, names)}name a stage ({', '.join(names)}), a model, or a path")]


def check_split(stage: str, field: str, total: int, n: int) -> list[Problem]:
    """A global batch of ``total`` must split evenly over ``n`` processes.

    >>> [p.fix for p in check_split("sft", "batch_size", 16, 3)]
    ['use a multiple of 3 (e.g. 18), or a process count that divides 16']
    """
    if total % n == 0:
        return []
    up = -(-total // n) * n
    return [Problem(stage, field, f"{total} cannot be split evenly over {n} processes",
                    f"use a multiple of {n} (e.g. {up}), or a process count that divides {total}")]


def per_process(stage: str, field: str, total: int, n: int) -> int:
    """``total / n``; a ValueError in the words of ``check_split`` when it does not divide."""
    problems = check_split(stage, field, total, n)
    if problems:
        raise ValueError(str(problems[0]))
    return total // n
