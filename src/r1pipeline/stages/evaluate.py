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
  same responses (``rm_helpfulness``, ``rm_harmlessness``, ``reward_model_score``).

``summary.json``: ``{"k", "n_prompts", "seed", "models": {"<stage>": {"pass@1", "pass@1_ci",
"cons@k", ...}}}``; every sample is kept in ``data/samples.jsonl``.

Generation: ``engine: hf`` (default) is transformers' generate in ``dtype``; ``vllm`` (or ``auto``
when vLLM is installed and takes the model) is vLLM in a child process, about 3x faster on CPU
(``bench/rollout.py``). Several processes (``accelerate launch``): with HF, every process
generates its share of the batches and rank 0 scores and writes; the metrics equal one
process's (per-sequence sampling seeds, ``rollout/hf.py``); with vLLM, rank 0 generates it all.

Departures from the paper: k = 4 and completions of at most 64 tokens by default (paper: k up to
64, 32,768 tokens), sized for the tiny world. Run alone: ``r1 run SPEC --only evaluate`` or
``r1 eval RUN_DIR``.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import Field

from r1pipeline import distributed
from r1pipeline.stages.base import Problem, StageConfig, StageContext
from r1pipeline.stages.common import Dtype, check_model_ref, check_task, task_files

DISTRIBUTED = True  # runs on every process of a multi-process run; generation is sharded


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
    reward_models: dict[str, str] = Field(default_factory=dict,
                                          description="helpfulness/harmlessness -> reward_model stage")
    engine: Literal["auto", "hf", "vllm"] = Field(
        "hf", description="generation: hf = transformers; vllm = vLLM (pip install r1pipeline[vllm]); "
                          "auto = vLLM when installed and it takes the model, else hf")
    dtype: Dtype = Field("float32", description="weights of the generating model (auto: bf16 where fast)")

    non_result_fields = frozenset({"batch_size"})
    late_fields = frozenset({"engine", "dtype"})  # hf in float32 keeps the hash of earlier runs
    makes_data = True

    def inputs(self, stage_names: set[str]) -> list[str]:
        refs = [*self.models, *self.reward_models.values()]
        return list(dict.fromkeys(m for m in refs if m in stage_names))

    def data_files(self, stage_names: set[str]) -> list[str]:
        return task_files(self.task, self.general_task)

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
        if self.engine == "vllm":
            from r1pipeline.rollout.base import vllm_available

            if not vllm_available():
                problems.append(Problem(self.name, "engine", "vllm is not installed",
                                        "pip install 'r1pipeline[vllm]', or use engine: auto or hf"))
        return problems


def majority(answers: Sequence[str | None]) -> str | None:
    """The most common non-empty answer; ties go to the one seen first.

    >>> majority(["4", "6", "6", None]), majority(["4", "6"]), majority([None])
    ('6', '4', None)
    """
    counts = Counter(a.strip() for a in answers if a is not None and a.strip())
    if not counts:
        return None
    best = max(counts.values())
    return next(a.strip() for a in answers if a is not None and a.strip() and counts[a.strip()] == best)


def bootstrap_ci(values: Sequence[float], n: int = 1000, seed: int = 0, level: float = 0.95) -> list[float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampling prompts).

    >>> bootstrap_ci([1.0] * 10)
    [1.0, 1.0]
    """
    if not values:
        return [float("nan"), float("nan")]
    rng = random.Random(seed)
    m = len(values)
    means = sorted(sum(values[rng.randrange(m)] for _ in range(m)) / m for _ in range(n))
    lo = means[int((1 - level) / 2 * n)]
    hi = means[min(n - 1, int((1 + level) / 2 * n))]
    return [lo, hi]


def score_model(samples: list[list[dict]], bootstrap: int, seed: int) -> dict[str, Any]:
    """Headline metrics from per-prompt lists of scored samples (keys: correct, answer, ...)."""
    from r1pipeline.rewards.verify import verify

    per_prompt = [sum(s["correct"] for s in group) / len(group) for group in samples]
    cons = [float(verify(majority([s["answer"] for s in g]), g[0]["reference"], g[0]["verifier"]))
            for g in samples]
    flat = [s for g in samples for s in g]
    n = len(flat)
    return {
        "pass@1": sum(per_prompt) / len(per_prompt),
        "pass@1_ci": bootstrap_ci(per_prompt, bootstrap, seed),
        "cons@k": sum(cons) / len(cons),
        "cons@k_ci": bootstrap_ci(cons, bootstrap, seed),
        "pass@k": sum(p > 0 for p in per_prompt) / len(per_prompt),
        "format_rate": sum(s["format"] for s in flat) / n,
        "cot_rate": sum(s["cot"] for s in flat) / n,
        "mean_length": sum(s["n_tokens"] for s in flat) / n,
        "truncated_rate": sum(s["truncated"] for s in flat) / n,
        # over the samples that have a chain of thought: the language of reasoning, not its presence
        "language_consistency": _mean([s["language"] for s in flat if s["cot"]]),
    }


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def score_samples(rows: list[dict], completions, language: str = "en") -> list[list[dict]]:
    """Score each completion with the same checks RL uses."""
    from r1pipeline.rewards import registry
    from r1pipeline.rewards.builtin import accuracy_reward, any_format_reward
    from r1pipeline.rewards.parse import has_chain_of_thought, read_answer

    lang = registry.build("language_consistency", language=language)
    scored = []
    for row, group in zip(rows, completions):
        texts = [c.text for c in group]
        ref, kind, reads = row["answer"], row.get("verifier", "exact"), row.get("answer_from", "tags")
        correct = accuracy_reward(texts, answer=[ref] * len(texts), verifier=[kind] * len(texts),
                                  answer_from=[reads] * len(texts))
        scored.append([{"id": row["id"], "text": c.text, "answer": read_answer(c.text, reads), "reference": ref,
                        "verifier": kind, "correct": ok, "format": f, "cot": has_chain_of_thought(c.text),
                        "language": lc, "n_tokens": c.n_tokens, "truncated": c.truncated}
                       for c, ok, f, lc in zip(group, correct, any_format_reward(texts), lang(texts))])
    return scored


def score_general(rows: list[dict], completions, prompts: list[str], reward_models: dict[str, Any],
                  bootstrap: int, seed: int) -> dict[str, Any]:
    """Oracle helpfulness/harmlessness of general responses, and what the reward models say."""
    from r1pipeline.tasks.tiny_general import harmlessness, helpfulness

    out: dict[str, Any] = {}
    for objective, harmful in (("helpfulness", False), ("harmlessness", True)):
        idx = [i for i, r in enumerate(rows) if bool(r.get("harmful")) == harmful]
        if not idx:
            continue
        texts = [[c.text for c in completions[i]] for i in idx]
        oracle = [[harmlessness(t, rows[i]["payload"]) if harmful else helpfulness(t, rows[i]["answer"])
                   for t in group] for i, group in zip(idx, texts)]
        per_prompt = [sum(g) / len(g) for g in oracle]
        out[f"oracle_{objective}"] = sum(per_prompt) / len(per_prompt)
        out[f"oracle_{objective}_ci"] = bootstrap_ci(per_prompt, bootstrap, seed)
        rm = reward_models.get(objective)
        if rm is not None:
            flat = [t for g in texts for t in g]
            flat_prompts = [prompts[i] for i, g in zip(idx, texts) for _ in g]
            scores = rm(flat, prompts=flat_prompts)
            out[f"rm_{objective}"] = sum(scores) / len(scores)
    rm_keys = [k for k in ("rm_helpfulness", "rm_harmlessness") if k in out]
    if rm_keys:
        out["reward_model_score"] = sum(out[k] for k in rm_keys) / len(rm_keys)
    return out


def load_reward_models(cfg: Config, ctx: StageContext) -> dict[str, Any]:
    """The ``reward_model`` rewards of the named stages, judging what they were trained to judge."""
    from r1pipeline.pipeline.rundir import read_json
    from r1pipeline.rewards import registry

    out = {}
    for objective, ref in cfg.reward_models.items():
        path = ctx.model_path(ref)
        view = (read_json(Path(path) / "r1pipeline_reward.json") or {}).get("view", "full")
        out[objective] = registry.build("reward_model", path=path, summary_only=view == "summary")
    return out


def sample(cfg: Config, path: str, prompts: list[str], seed: int, label: str):
    """``cfg.k`` completions per prompt from the model at ``path``, on the configured engine.

    HF: a collective, every process generates its share and gets all completions. vLLM: rank 0
    generates everything (one engine per machine), the other processes get None.
    """
    from r1pipeline.pipeline.progress import progress_bar
    from r1pipeline.rollout.base import make_engine, resolve_kind

    sampling = dict(num_samples=cfg.k, temperature=cfg.temperature, top_p=cfg.top_p,
                    max_new_tokens=cfg.max_new_tokens, seed=seed)
    if resolve_kind(cfg.engine, path) == "vllm":
        if not distributed.is_main():
            return None
        engine = make_engine("vllm", path, dtype=cfg.dtype)
        try:
            with progress_bar(label, total=len(prompts) * cfg.k) as bar:
                comps = engine.generate(prompts, **sampling)
                bar.update(len(prompts) * cfg.k)
            return comps
        finally:
            engine.close()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r1pipeline.rollout.base import resolve_dtype
    from r1pipeline.rollout.hf import generate

    dtype = resolve_dtype(cfg.dtype)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(distributed.device())
    with progress_bar(label, total=len(prompts) * cfg.k) as bar:
        return generate(model, tokenizer, prompts, batch_size=cfg.batch_size, shard=True, progress=bar, **sampling)


def run(cfg: Config, ctx: StageContext, spec_base: str) -> dict[str, Any]:
    """Generate, score, write; on a process other than rank 0, generate its share and return {}."""
    import json

    from r1pipeline.pipeline.rundir import atomic_dir
    from r1pipeline.stages.common import build_task
    from r1pipeline.tasks.templates import render

    task = build_task(cfg.task, spec_base)
    rows = task.load("test", cfg.n_prompts, ctx.seed)
    prompts = [render(cfg.template, r["question"]) for r in rows]
    general = build_task(cfg.general_task, spec_base).load("test", cfg.n_general_prompts, ctx.seed) \
        if cfg.general_task else []
    general_prompts = [render(cfg.template, r["question"]) for r in general]
    main = distributed.is_main()
    rms = load_reward_models(cfg, ctx) if main else {}
    results, all_samples = {}, {}
    for name in cfg.models:
        comps = sample(cfg, ctx.model_path(name), prompts + general_prompts, ctx.seed, f"{ctx.name}: {name}")
        if not main:
            continue
        scored = score_samples(rows, comps[:len(rows)], cfg.language)
        results[name] = score_model(scored, cfg.bootstrap, ctx.seed)
        if general:
            results[name].update(score_general(general, comps[len(rows):], general_prompts, rms,
                                               cfg.bootstrap, ctx.seed))
        all_samples[name] = scored
    if not main:
        return {}
    with atomic_dir(ctx.data_dir) as out, (out / "samples.jsonl").open("w") as f:
        for name, scored in all_samples.items():
            for group in scored:
                for s in group:
                    f.write(json.dumps({"model": name, **s}, ensure_ascii=False) + "\n")
    return {"k": cfg.k, "n_prompts": len(rows), "seed": ctx.seed, "temperature": cfg.temperature,
            "top_p": cfg.top_p, "task_rows_dropped": getattr(task, "dropped", 0), "models": results}
