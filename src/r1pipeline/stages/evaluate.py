"""Evaluation in the paper's protocol: pass@1 from k samples, cons@k, with 95% intervals.

Every model named in ``models`` (stages of this run, or model references) answers the same
held-out prompts with the same seed: k samples per prompt at temperature 0.6, top-p 0.95 (the
paper: "no greedy decoding, it repeats itself"). Per model:

* ``pass@1`` = mean over prompts of (1/k) * sum_i p_i, p_i the correctness of sample i (the
  same check as the RL accuracy reward), with a bootstrap 95% interval over prompts;
* ``cons@k`` = correctness of the majority answer over the k samples;
* ``pass@k`` = share of prompts with at least one correct sample;
* ``format_rate`` (R1-Zero or R1 format), ``cot_rate`` (a non-empty ``<think>`` block),
  ``mean_length`` (tokens), ``language_consistency`` (the language reward, averaged);
* with ``general_task``: ``oracle_helpfulness`` (benign prompts) and ``oracle_harmlessness``
  (harmful prompts) from the world's ground truth, and the learned reward models' scores of the
  same responses (``rm_helpfulness``, ``rm_harmlessness``, ``reward_model_score``);
* ``ends_clean_rate``: share of samples that stop at their summary (``rewards.parse.ends_clean``).

``general_models`` (default: all) limits the general prompts to the models whose oracle scores
are read: in the tiny world those prompts are two thirds of the evaluation's completions.

Extra evaluation sets (``sets: {hard: {task: ..., n_prompts: 256, max_new_tokens: 112, models:
[...]}}``) are scored the same way beside the main held-out set (a harder split keeps headroom
where the main one sits at the ceiling); the main set keeps its place in the summary, so numbers
of earlier runs stay comparable.

``summary.json``: ``{"k", "n_prompts", "seed", "models": {"<stage>": {"pass@1", "pass@1_ci",
"cons@k", ...}}, "sets": {"<set>": {"n_prompts", "max_new_tokens", "models": {...}}}, "reused_jobs":
{"<stage>": n}}`` (``sets`` only when declared; ``reused_jobs``: jobs read from ``eval_cache``).
Every sample is kept in ``data/samples.jsonl``, one row each with its ``set``: ``heldout`` (the
main set), ``general`` (with its ``objective`` and ``oracle`` score) or an extra set's name. The
arithmetic lives in ``stages/eval_metrics.py``.

Generation: ``engine: hf`` (default) is our HF engine in ``dtype``; ``vllm`` is vLLM in a child
process (``bench/rollout.py`` compares them on the machine at hand); ``auto`` is whichever
``rollout/choice.py`` measured faster here (rank 0 decides for every rank). Several processes (``accelerate launch``): with HF, every process
generates its share of the batches and rank 0 scores and writes; the metrics equal one
process's (per-sequence sampling seeds, ``rollout/hf.py``); with vLLM, rank 0 generates it all.

Departures from the paper: k = 4 and completions of at most 64 tokens by default (paper: k up to
64, 32,768 tokens), sized for the tiny world. Run alone: ``r1 run SPEC --only evaluate`` or
``r1 eval RUN_DIR``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from r1pipeline import distributed
from r1pipeline.stages.base import Problem, StageConfig, StageContext
from r1pipeline.stages.common import Dtype, check_model_ref, check_task, task_files
from r1pipeline.stages.eval_metrics import (bootstrap_ci, majority, oracle_samples, score_general,  # noqa: F401
                                            score_model, score_samples)

DISTRIBUTED = True  # runs on every process of a multi-process run; generation is sharded
MAIN_SET, GENERAL_SET = "heldout", "general"  # the ``set`` of the main and the general rows


class EvalSet(BaseModel):
    """An extra held-out set, evaluated beside the main one with the stage's sampling settings."""

    model_config = ConfigDict(extra="forbid")
    task: dict[str, Any]
    n_prompts: int = Field(256, gt=0, description="held-out prompts of this set")
    max_new_tokens: int | None = Field(None, gt=0, description="default: the stage's max_new_tokens")
    models: list[str] | None = Field(None, min_length=1, description="a subset of the stage's models "
                                                                     "(default: all of them)")
    k: int | None = Field(None, gt=0, description="samples per prompt; default: the stage's k")
    temperature: float | None = Field(None, gt=0, description="default: the stage's temperature")
    top_p: float | None = Field(None, gt=0, le=1, description="default: the stage's top_p")

    optional: ClassVar[tuple[str, ...]] = ("k", "temperature", "top_p")  # left out of the stage's hash while unset (earlier runs keep theirs)


class Config(StageConfig):
    kind: Literal["evaluate"]
    models: list[str] = Field(min_length=1, description="stages of this spec or model references")
    task: dict[str, Any]
    template: str = "r1_zero"
    n_prompts: int = Field(256, gt=0, description="held-out prompts")
    k: int = Field(4, gt=0, description="samples per prompt (paper: 4 to 64)")
    temperature: float = Field(0.6, gt=0, description="paper: 0.6")
    top_p: float = Field(0.95, gt=0, le=1, description="paper: 0.95")
    max_new_tokens: int = Field(64, gt=0)
    batch_size: int = Field(256, gt=0, description="sequences per generate call")
    bootstrap: int = Field(1000, gt=0, description="resamples for the 95% intervals")
    language: str = Field("en", description="target language of language_consistency")
    general_task: dict[str, Any] | None = Field(None, description="general prompts scored by an oracle")
    n_general_prompts: int = Field(128, gt=0)
    general_models: list[str] | None = Field(None, min_length=1,
                                             description="the models that also answer the general prompts "
                                                         "(default: all of them)")
    reward_models: dict[str, str] = Field(default_factory=dict,
                                          description="helpfulness/harmlessness -> reward_model stage")
    engine: Literal["auto", "hf", "vllm"] = Field(
        "hf", description="generation: hf = transformers; vllm = vLLM (pip install r1pipeline[vllm]); "
                          "auto = whichever of the two measured faster on this machine and model "
                          "(rollout/choice.py; GPU: vLLM when installed)")
    dtype: Dtype = Field("auto", description="weights of the generating model (auto: bf16 where it measured "
                                             "faster, per model: manifest.json's precision)")
    sets: dict[str, EvalSet] = Field({}, description="extra held-out sets: name -> {task, n_prompts, "
                                                     "max_new_tokens, models, k, temperature, top_p}")

    non_result_fields = frozenset({"batch_size"})
    # engine hf, dtype auto (the default that replaced float32) and no extra sets keep the hash of
    # earlier runs; whatever auto resolves to is in the manifest, not the hash
    late_fields = frozenset({"engine", "dtype", "sets", "general_models"})
    makes_data = True

    def hashed_config(self) -> dict[str, Any]:
        out = super().hashed_config()
        for es in out.get("sets", {}).values():
            for name in EvalSet.optional:
                if es.get(name) is None:
                    es.pop(name, None)
        return out

    def set_sampling(self, name: str) -> tuple[int, float, float]:
        """(k, temperature, top_p) of the extra set ``name``: its own where it sets them, else the stage's."""
        es = self.sets[name]
        return es.k or self.k, es.temperature or self.temperature, es.top_p or self.top_p

    def inputs(self, stage_names: set[str]) -> list[str]:
        refs = [*self.models, *self.reward_models.values()]
        return list(dict.fromkeys(m for m in refs if m in stage_names))

    def data_files(self, stage_names: set[str]) -> list[str]:
        return task_files(self.task, self.general_task, *(es.task for es in self.sets.values()))

    def answers_general(self, model: str) -> bool:
        """Whether ``model`` answers the general prompts (there are some, and it is among ``general_models``)."""
        return self.general_task is not None and (self.general_models is None or model in self.general_models)

    def set_models(self, name: str) -> list[str]:
        """The models that answer the extra set ``name``, in the stage's order."""
        chosen = self.sets[name].models
        return [m for m in self.models if chosen is None or m in chosen]

    def check(self, spec) -> list[Problem]:
        from r1pipeline.tasks.templates import TEMPLATES

        problems = check_task(self.name, "task", self.task, spec)
        if self.general_task is not None:
            problems += check_task(self.name, "general_task", self.general_task, spec)
        for key, ref in self.reward_models.items():
            if key not in ("helpfulness", "harmlessness"):
                problems.append(Problem(self.name, f"reward_models.{key}", "unknown objective",
                                        "use helpfulness or harmlessness"))
            problems += check_model_ref(self.name, f"reward_models.{key}", ref, spec)
        for i, m in enumerate(self.models):
            problems += check_model_ref(self.name, f"models[{i}]", m, spec)
        if self.template not in TEMPLATES:
            problems.append(Problem(self.name, "template", f"unknown template {self.template!r}",
                                    f"use one of: {', '.join(TEMPLATES)}"))
        problems += self.check_sets(spec)
        for i, m in enumerate(self.general_models or []):
            if m not in self.models:
                problems.append(Problem(self.name, f"general_models[{i}]", f"{m!r} is not evaluated by this stage",
                                        f"use some of: {', '.join(self.models)}, or add it to models"))
        if self.general_models and self.general_task is None:
            problems.append(Problem(self.name, "general_models", "there are no general prompts to answer",
                                    "add general_task, or drop general_models"))
        if self.engine == "vllm":
            from r1pipeline.rollout.base import vllm_available

            if not vllm_available():
                problems.append(Problem(self.name, "engine", "vllm is not installed",
                                        "pip install 'r1pipeline[vllm]', or use engine: auto or hf"))
        return problems

    def check_sets(self, spec) -> list[Problem]:
        """Each extra set: a usable name, a valid task block, models that this stage evaluates."""
        import re

        problems = []
        for name, es in self.sets.items():
            where = f"sets.{name}"
            if name in (MAIN_SET, GENERAL_SET) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", name):
                problems.append(Problem(self.name, where, f"set name {name!r} is reserved or not an identifier",
                                        f"rename it (not {MAIN_SET} or {GENERAL_SET}; letters, digits, _ or -)"))
            problems += check_task(self.name, f"{where}.task", es.task, spec)
            for i, m in enumerate(es.models or []):
                if m not in self.models:
                    problems.append(Problem(self.name, f"{where}.models[{i}]", f"{m!r} is not evaluated by this stage",
                                            f"use some of: {', '.join(self.models)}, or add it to models"))
        return problems


def load_reward_models(cfg: Config, ctx: StageContext) -> dict[str, Any]:
    """The ``reward_model`` rewards of the named stages, judging what they were trained to judge."""
    from r1pipeline.rundir import read_json
    from r1pipeline.rewards import registry

    out = {}
    for objective, ref in cfg.reward_models.items():
        path = ctx.model_path(ref)
        view = (read_json(Path(path) / "r1pipeline_reward.json") or {}).get("view", "full")
        out[objective] = registry.build("reward_model", path=path, summary_only=view == "summary")
    return out




def sample(cfg: Config, path: str, prompts: list[str], seed: int, label: str, max_new_tokens: int | None = None):
    """``cfg.k`` completions per prompt from the model at ``path``, on the configured engine.

    HF: a collective, every process generates its share and gets all completions. vLLM: rank 0
    generates everything (one engine per machine), the other processes get None.
    """
    job = Job(prompts, max_new_tokens or cfg.max_new_tokens, seed, cfg.k, cfg.temperature, cfg.top_p)
    out = sample_sets(cfg, path, [job], label)
    return None if out is None else out[0]


class Job(NamedTuple):
    """One call's worth of sampling: ``k`` completions of each prompt at ``temperature`` and ``top_p``."""

    prompts: list[str]
    max_new_tokens: int
    seed: int
    k: int
    temperature: float
    top_p: float


def cached_sample_sets(cfg: Config, ctx: StageContext, name: str, jobs: list[Job], reused: dict[str, int]):
    """``sample_sets`` for the jobs ``eval_cache`` does not hold yet (rank 0 decides which, every
    rank samples its share of those); rank 0 gets every job's completions, in order."""
    from r1pipeline.stages import eval_cache

    main = distributed.is_main()
    model = eval_cache.model_id(ctx.input_dirs.get(name))
    sampling = {"engine": cfg.engine, "dtype": cfg.dtype, "batch_size": cfg.batch_size}
    keys = [eval_cache.job_key(model, j, {**sampling, "top_p": j.top_p}) if model else None for j in jobs]
    have = [eval_cache.load(ctx.run_dir, key, len(j.prompts), j.k) if key and main else None
            for key, j in zip(keys, jobs)]
    todo = distributed.broadcast_object([i for i, h in enumerate(have) if h is None])
    new = sample_sets(cfg, ctx.model_path(name), [jobs[i] for i in todo], f"{ctx.name}: {name}") if todo else []
    if not main:
        return None
    for i, groups in zip(todo, new):
        have[i] = groups
        if keys[i]:
            eval_cache.store(ctx.run_dir, keys[i], groups, f"{name}: job {i} of {len(jobs)}")
    if len(todo) < len(jobs):
        reused[name] = len(jobs) - len(todo)
    return have


def sample_sets(cfg: Config, path: str, jobs: list[Job], label: str):
    """``sample`` for several jobs, loading the model once (engine and dtype: the stage's)."""
    from r1pipeline.progress import progress_bar
    from r1pipeline.rollout.base import make_engine, resolve_kind

    total = sum(len(j.prompts) * j.k for j in jobs)
    tokens = sum(len(j.prompts) * j.max_new_tokens * j.k for j in jobs)  # at most
    kind = resolve_kind(cfg.engine, path, tokens) if distributed.is_main() else None
    if distributed.broadcast_object(kind) == "vllm":
        if not distributed.is_main():
            return None
        engine = make_engine("vllm", path, dtype=cfg.dtype)
        try:
            with progress_bar(label, total=total) as bar:
                out = []
                for j in jobs:
                    out.append(engine.generate(j.prompts, max_new_tokens=j.max_new_tokens, seed=j.seed,
                                               num_samples=j.k, temperature=j.temperature, top_p=j.top_p))
                    bar.update(len(j.prompts) * j.k)
            return out
        finally:
            engine.close()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r1pipeline.rollout.base import resolve_dtype
    from r1pipeline.rollout.hf import generate

    dtype = resolve_dtype(cfg.dtype, path, distributed.device(), cfg.batch_size)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(distributed.device())
    with progress_bar(label, total=total) as bar:
        return [generate(model, tokenizer, j.prompts, batch_size=cfg.batch_size, shard=True, progress=bar,
                         max_new_tokens=j.max_new_tokens, seed=j.seed, num_samples=j.k,
                         temperature=j.temperature, top_p=j.top_p) for j in jobs]


def set_seed(seed: int, name: str) -> int:
    """The sampling seed of an extra set: its own streams, not those of the main set's prompts.

    >>> set_seed(0, "hard") == set_seed(0, "hard") != set_seed(1, "hard")
    True
    """
    return int.from_bytes(hashlib.blake2b(f"{seed}:{name}".encode(), digest_size=4).digest(), "big")


def sample_rows(model: str, set_name: str, groups: list[list[dict]]) -> list[dict]:
    """The ``samples.jsonl`` rows of one model on one set."""
    return [{"model": model, "set": set_name, **s} for group in groups for s in group]


def run(cfg: Config, ctx: StageContext, spec_base: str) -> dict[str, Any]:
    """Generate, score, write; on a process other than rank 0, generate its share and return {}."""
    import json

    from r1pipeline import precision
    from r1pipeline.rundir import atomic_dir
    from r1pipeline.stages.common import build_task
    from r1pipeline.tasks.templates import render

    task = build_task(cfg.task, spec_base)
    rows = task.load("test", cfg.n_prompts, ctx.seed)
    prompts = [render(cfg.template, r["question"]) for r in rows]
    general = build_task(cfg.general_task, spec_base).load("test", cfg.n_general_prompts, ctx.seed) \
        if cfg.general_task else []
    general_prompts = [render(cfg.template, r["question"]) for r in general]
    extra = {name: build_task(es.task, spec_base).load("test", es.n_prompts, ctx.seed) for name, es in cfg.sets.items()}
    main = distributed.is_main()
    rms = load_reward_models(cfg, ctx) if main else {}
    results, sets, written, reused = {}, {name: {} for name in cfg.sets}, [], {}
    for name in cfg.models:
        mine = [s for s in cfg.sets if name in cfg.set_models(s)]
        gen = general_prompts if cfg.answers_general(name) else []
        jobs = [Job(prompts + gen, cfg.max_new_tokens, ctx.seed, cfg.k, cfg.temperature, cfg.top_p)]  # as before sets
        jobs += [Job([render(cfg.template, r["question"]) for r in extra[s]],
                     cfg.sets[s].max_new_tokens or cfg.max_new_tokens, set_seed(ctx.seed, s),
                     *cfg.set_sampling(s)) for s in mine]
        path = ctx.model_path(name)
        dtype = ctx.record_precision(name, precision.resolve_agreed(
            cfg.dtype, precision.config_shapes(path, cfg.batch_size) if cfg.dtype == "auto" else None))
        comps = cached_sample_sets(cfg.model_copy(update={"dtype": dtype}), ctx, name, jobs, reused)
        if not main:
            continue
        scored = score_samples(rows, comps[0][:len(rows)], cfg.language)
        results[name] = score_model(scored, cfg.bootstrap, ctx.seed)
        written += sample_rows(name, MAIN_SET, scored)
        if general and gen:
            judged = oracle_samples(general, comps[0][len(rows):])
            results[name].update(score_general(judged, general_prompts, rms, cfg.bootstrap, ctx.seed))
            written += sample_rows(name, GENERAL_SET, judged)
        for s, set_comps in zip(mine, comps[1:]):
            set_scored = score_samples(extra[s], set_comps, cfg.language)
            sets[s][name] = score_model(set_scored, cfg.bootstrap, ctx.seed)
            written += sample_rows(name, s, set_scored)
    if not main:
        return {}
    with atomic_dir(ctx.data_dir) as out, (out / "samples.jsonl").open("w") as f:
        for row in written:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    summary = {"k": cfg.k, "n_prompts": len(rows), "seed": ctx.seed, "temperature": cfg.temperature,
               "top_p": cfg.top_p, "task_rows_dropped": getattr(task, "dropped", 0), "models": results,
               "reused_jobs": reused}  # model -> jobs read from eval_cache instead of sampled
    if cfg.sets:
        summary["sets"] = {s: {"n_prompts": len(extra[s]), "max_new_tokens": es.max_new_tokens or cfg.max_new_tokens,
                               **dict(zip(("k", "temperature", "top_p"), cfg.set_sampling(s))), "models": sets[s]}
                           for s, es in cfg.sets.items()}
    from r1pipeline.trackers import scalars

    ctx.tracker.log(scalars({"models": results, **({"sets": sets} if cfg.sets else {})}, "eval"), 0)
    return summary
