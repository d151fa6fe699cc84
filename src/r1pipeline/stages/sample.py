"""Sampling, filtering and formatting data: cold-start collection and rejection sampling.

One kind, two paper stages:

* cold start (stage 1): gather long, readable chains of thought from (a) few-shot prompting of a
  model with long-CoT exemplars (``type: model`` with ``few_shot``), (b) R1-Zero's own outputs
  (``type: model``), kept only if correct, in one language, well-formed and readable, and (c) a
  curated JSONL file of examples, the paper's human-edited data (``type: file``);
* rejection sampling (stage 4): k samples per prompt from the reasoning-RL policy, keep correct
  ones only, drop mixed languages, long paragraphs, code blocks, repetition and truncation,
  de-duplicate, cap the number kept per prompt, and mix in non-reasoning data (``non_reasoning``;
  trivial queries keep an empty chain of thought).

Every kept sample is rewritten into the R1 output format (``rewrite: r1``): the reasoning, then a
short summary that states the answer. Output: ``data/train.jsonl`` (prompt, completion and
provenance per row: source, prompt id, decision), ``data/rejected.jsonl`` (every dropped sample
with its reason), and counts per source and per reason in ``summary.json``.

Several processes (``accelerate launch``): every process generates its share of the batches,
and rank 0 filters and writes; the kept rows are the same as one process's (per-sequence
sampling seeds, ``rollout/hf.py``).

Departure from the paper: correctness is checked by the rule verifier only (the paper also asks
a generative judge for some prompts). Run alone: ``r1 run SPEC --only rejection_sampling``.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from r1pipeline import distributed
from r1pipeline.stages.base import Problem, StageConfig, StageContext
from r1pipeline.stages.common import check_data_file, check_model_ref, check_task, task_files
from r1pipeline.stages.filters import Filters, SampleFilter, rewrite_r1
from r1pipeline.tasks.rows import CURATED, EXEMPLARS, SFT_ROWS
from r1pipeline.tasks.rows import read_jsonl as _checked_rows

DISTRIBUTED = True  # runs on every process of a multi-process run; generation is sharded


class ModelSource(BaseModel):
    """Samples from a model (a stage of this spec or a model reference) on training prompts."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["model"] = "model"
    model: str
    prompts: int = Field(256, gt=0)
    k: int = Field(4, gt=0, description="samples per prompt")
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(64, gt=0)
    template: str = "r1_zero"
    few_shot: int = Field(0, ge=0, description="worked exemplars put before each prompt")
    exemplars: str | None = Field(None, description="JSONL of question/completion exemplars for few_shot")


class FileSource(BaseModel):
    """Curated examples from a JSONL file with question, answer and completion fields."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["file"]
    path: str


class NonReasoning(BaseModel):
    """General prompts with responses, mixed into the output without filtering."""

    model_config = ConfigDict(extra="forbid")
    task: dict[str, Any]
    n: int = Field(gt=0)
    p_good: float = Field(1.0, ge=0, le=1, description="share of responses that are right")
    p_good_harmful: float | None = Field(None, ge=0, le=1,
                                         description="share of harmful prompts refused cleanly (p_good when unset)")


Source = Annotated[Union[ModelSource, FileSource], Field(discriminator="type")]


class Config(StageConfig):
    kind: Literal["sample"]
    task: dict[str, Any]
    sources: list[Source] = Field(min_length=1)
    filters: Filters = Field(default_factory=Filters)
    rewrite: Literal["r1", "none"] = "r1"
    summary: str = Field("The answer is <answer>{answer}</answer>.", description="R1 summary; {answer} is filled in")
    template: str = Field("r1_zero", description="template of the prompts written to the data")
    non_reasoning: NonReasoning | None = None
    batch_size: int = Field(256, gt=0)

    non_result_fields = frozenset({"batch_size"})
    makes_data = True

    def hashed_config(self) -> dict[str, Any]:
        out = super().hashed_config()
        if out.get("non_reasoning") and out["non_reasoning"].get("p_good_harmful") is None:
            del out["non_reasoning"]["p_good_harmful"]  # a later field: unset, it leaves the hash as it was
        return out

    def inputs(self, stage_names: set[str]) -> list[str]:
        return [s.model for s in self.sources if isinstance(s, ModelSource) and s.model in stage_names]

    def data_files(self, stage_names: set[str]) -> list[str]:
        own = [s.path if isinstance(s, FileSource) else s.exemplars for s in self.sources]
        return [f for f in own if f] + task_files(self.task, self.non_reasoning.task if self.non_reasoning else None)

    def check(self, spec) -> list[Problem]:
        from r1pipeline.tasks.templates import TEMPLATES

        problems = check_task(self.name, "task", self.task, spec)
        for i, s in enumerate(self.sources):
            field = f"sources[{i}]"
            if isinstance(s, ModelSource):
                problems += check_model_ref(self.name, f"{field}.model", s.model, spec)
                if s.template not in TEMPLATES:
                    problems.append(Problem(self.name, f"{field}.template", f"unknown template {s.template!r}",
                                            f"use one of: {', '.join(TEMPLATES)}"))
                if s.few_shot and not s.exemplars:
                    problems.append(Problem(self.name, f"{field}.exemplars", "few_shot needs exemplars",
                                            "give a JSONL file of question/completion exemplars"))
                if s.exemplars:
                    problems += check_data_file(self.name, f"{field}.exemplars", s.exemplars, spec, EXEMPLARS)
            else:
                problems += check_data_file(self.name, f"{field}.path", s.path, spec, CURATED)
        if self.non_reasoning is not None:
            problems += check_task(self.name, "non_reasoning.task", self.non_reasoning.task, spec)
        if "{answer}" not in self.summary:
            problems.append(Problem(self.name, "summary", "the summary must state the answer",
                                    "include {answer} in it"))
        return problems


def read_jsonl(path, columns=SFT_ROWS) -> list[dict[str, Any]]:
    """The rows of a JSONL file, each checked against ``columns`` (``tasks/rows.py``; a
    ``DataError`` names the first bad line); sft and reward_model read their files here too."""
    return _checked_rows(path, columns)


def few_shot_prefix(exemplars: list[dict[str, Any]], n: int, template: str, rng: random.Random) -> str:
    from r1pipeline.tasks.templates import render

    shots = rng.sample(exemplars, min(n, len(exemplars)))
    return "".join(f"{render(template, e['question'])} {e['completion']}\n" for e in shots)


def sample_model(src: ModelSource, rows: list[dict], ctx: StageContext, spec_base: str,
                 batch_size: int) -> list[dict[str, Any]]:
    """k completions per row from ``src.model``, scored for correctness (a collective: every process
    calls it; only rank 0 gets the samples back)."""
    from pathlib import Path

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r1pipeline.progress import progress_bar
    from r1pipeline.rewards.builtin import accuracy_reward
    from r1pipeline.rollout.hf import generate
    from r1pipeline.tasks.templates import render

    path = ctx.model_path(src.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).to(distributed.device())
    rng = random.Random(ctx.seed)
    exemplars = read_jsonl(Path(spec_base) / src.exemplars, EXEMPLARS) if src.few_shot else []
    prompts = [(few_shot_prefix(exemplars, src.few_shot, src.template, rng) if src.few_shot else "")
               + render(src.template, r["question"]) for r in rows]
    with progress_bar(f"{ctx.name}: {src.model}", total=len(prompts) * src.k) as bar:
        groups = generate(model, tokenizer, prompts, num_samples=src.k, temperature=src.temperature,
                          top_p=src.top_p, max_new_tokens=src.max_new_tokens, batch_size=batch_size,
                          seed=ctx.seed, shard=True, progress=bar)
    if not distributed.is_main():
        return []  # rank 0 scores and writes
    out = []
    for row, group in zip(rows, groups):
        texts = [c.text for c in group]
        correct = accuracy_reward(texts, answer=[row["answer"]] * len(texts),
                                  verifier=[row.get("verifier", "exact")] * len(texts),
                                  answer_from=[row.get("answer_from", "tags")] * len(texts))
        out += [{"source": src.model, "prompt_id": row["id"], "question": row["question"], "answer": row["answer"],
                 "completion": c.text, "n_tokens": c.n_tokens, "truncated": c.truncated, "correct": bool(ok)}
                for c, ok in zip(group, correct)]
    return out


def generated_tokens(samples: list[dict[str, Any]]) -> dict[str, int]:
    """Tokens generated per source model (end-of-sequence included; files generate none): the
    stage's work, for ``bench/pipeline.py``.

    >>> generated_tokens([{"source": "r1_zero", "n_tokens": 5}, {"source": "r1_zero", "n_tokens": 2},
    ...                   {"source": "file:x.jsonl"}])
    {'r1_zero': 7}
    """
    out: Counter = Counter()
    for s in samples:
        if "n_tokens" in s:
            out[s["source"]] += s["n_tokens"]
    return dict(out)


def sample_file(src: FileSource, spec_base: str) -> list[dict[str, Any]]:
    """Curated examples; their correctness is checked like any other sample's."""
    from pathlib import Path

    from r1pipeline.rewards.builtin import accuracy_reward

    rows = read_jsonl(Path(spec_base) / src.path, CURATED)
    texts = [r["completion"] for r in rows]
    correct = accuracy_reward(texts, answer=[str(r["answer"]) for r in rows],
                              verifier=[r.get("verifier", "exact") for r in rows])
    return [{"source": f"file:{src.path}", "prompt_id": r.get("id", r["question"]), "question": r["question"],
             "answer": str(r["answer"]), "completion": r["completion"], "truncated": False, "correct": bool(ok)}
            for r, ok in zip(rows, correct)]


def run(cfg: Config, ctx: StageContext, spec_base: str) -> dict[str, Any]:
    """Sample, filter, write; on a process other than rank 0, generate its share and return {}."""
    from r1pipeline.rundir import atomic_dir
    from r1pipeline.stages.common import build_task
    from r1pipeline.tasks.templates import render

    task = build_task(cfg.task, spec_base)
    offered: list[dict[str, Any]] = []
    for i, src in enumerate(cfg.sources):
        if isinstance(src, ModelSource):
            rows = task.load("train", src.prompts, ctx.seed + i)
            offered += sample_model(src, rows, ctx, spec_base, cfg.batch_size)
        else:
            offered += sample_file(src, spec_base)
    if not distributed.is_main():
        return {}

    filt = SampleFilter(cfg.filters)
    kept, rejected = [], []
    counts: dict[str, Counter] = defaultdict(Counter)
    for s in offered:
        reason = filt.reason(s)
        counts[s["source"]]["offered"] += 1
        counts[s["source"]][reason or "kept"] += 1
        if reason:
            rejected.append({**s, "reason": reason})
            continue
        completion = rewrite_r1(s["completion"], s["answer"], cfg.summary) if cfg.rewrite == "r1" else s["completion"]
        kept.append({"prompt": render(cfg.template, s["question"]), "completion": completion,
                     "question": s["question"], "answer": s["answer"], "id": s["prompt_id"],
                     "source": s["source"], "domain": "reasoning", "decision": "kept: passed every filter"})
    n_reasoning = len(kept)
    if cfg.non_reasoning is not None:
        general = build_task(cfg.non_reasoning.task, spec_base)
        for e in general.examples(cfg.non_reasoning.n, ctx.seed, cfg.non_reasoning.p_good,
                                   cfg.non_reasoning.p_good_harmful):
            kept.append({"prompt": render(cfg.template, e["question"]), "completion": e["completion"],
                         "question": e["question"], "answer": e["answer"], "id": e["id"],
                         "source": f"non_reasoning:{cfg.non_reasoning.task['source']}",
                         "domain": e.get("domain", "general"), "decision": "kept: non-reasoning data"})
    random.Random(ctx.seed).shuffle(kept)

    with atomic_dir(ctx.data_dir) as out:
        for name, rows in (("train.jsonl", kept), ("rejected.jsonl", rejected)):
            with (out / name).open("w", encoding="utf-8") as f:
                f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    reasons = Counter(r["reason"] for r in rejected)
    tokens = generated_tokens(offered)
    return {"offered": len(offered), "kept_reasoning": n_reasoning, "kept_non_reasoning": len(kept) - n_reasoning,
            "rows": len(kept), "rejected": dict(reasons),
            "by_source": {k: dict(v) for k, v in counts.items()},
            "prompts_with_a_kept_sample": len({r["id"] for r in kept if r["domain"] == "reasoning"}),
            "task_rows_dropped": getattr(task, "dropped", 0),
            "tokens_generated": sum(tokens.values()), "tokens_generated_by_model": tokens}
