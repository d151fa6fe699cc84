"""The evaluation stage's arithmetic: scoring samples and turning them into the paper's metrics.

Pure functions over lists of per-prompt sample dicts (no model, no I/O), so that the report's
findings (``pipeline/findings.py``) can recompute the same numbers from ``samples.jsonl``. The
stage itself (``stages/evaluate.py``) generates and writes; this module scores.

A scored reasoning sample: ``{"id", "text", "answer", "reference", "verifier", "correct",
"format", "cot", "language", "n_tokens", "truncated", "ends_clean"}``. A scored general sample:
``{"id", "text", "objective", "oracle", "n_tokens", "truncated"}``.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any, Sequence


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
        # stopped at the summary: not cut at the limit, nothing but a short tail after </answer>
        "ends_clean_rate": sum(s["ends_clean"] for s in flat) / n,
    }


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def score_samples(rows: list[dict], completions, language: str = "en") -> list[list[dict]]:
    """Score each completion with the same checks RL uses."""
    from r1pipeline.rewards import registry
    from r1pipeline.rewards.builtin import accuracy_reward, any_format_reward
    from r1pipeline.rewards.parse import ends_clean, has_chain_of_thought, read_answer

    lang = registry.build("language_consistency", language=language)
    scored = []
    for row, group in zip(rows, completions):
        texts = [c.text for c in group]
        ref, kind, reads = row["answer"], row.get("verifier", "exact"), row.get("answer_from", "tags")
        correct = accuracy_reward(texts, answer=[ref] * len(texts), verifier=[kind] * len(texts),
                                  answer_from=[reads] * len(texts))
        scored.append([{"id": row["id"], "text": c.text, "answer": read_answer(c.text, reads), "reference": ref,
                        "verifier": kind, "correct": ok, "format": f, "cot": has_chain_of_thought(c.text),
                        "language": lc, "n_tokens": c.n_tokens, "truncated": c.truncated,
                        "ends_clean": ends_clean(c.text, c.truncated)}
                       for c, ok, f, lc in zip(group, correct, any_format_reward(texts), lang(texts))])
    return scored


def oracle_samples(rows: list[dict], completions) -> list[list[dict]]:
    """The world's oracle score of each general response: helpfulness on benign prompts (judged
    on the summary), harmlessness on harmful ones (judged on the whole response)."""
    from r1pipeline.tasks.tiny_general import harmlessness, helpfulness

    out = []
    for row, group in zip(rows, completions):
        harmful = bool(row.get("harmful"))
        out.append([{"id": row["id"], "text": c.text,
                     "objective": "harmlessness" if harmful else "helpfulness",
                     "oracle": harmlessness(c.text, row["payload"]) if harmful else helpfulness(c.text, row["answer"]),
                     "n_tokens": c.n_tokens, "truncated": c.truncated} for c in group])
    return out


def score_general(groups: list[list[dict]], prompts: list[str], reward_models: dict[str, Any],
                  bootstrap: int, seed: int) -> dict[str, Any]:
    """Oracle helpfulness/harmlessness of general responses (``oracle_samples``), and what the
    reward models say of the same responses."""
    out: dict[str, Any] = {}
    for objective in ("helpfulness", "harmlessness"):
        idx = [i for i, g in enumerate(groups) if g and g[0]["objective"] == objective]
        if not idx:
            continue
        per_prompt = [sum(s["oracle"] for s in groups[i]) / len(groups[i]) for i in idx]
        out[f"oracle_{objective}"] = sum(per_prompt) / len(per_prompt)
        out[f"oracle_{objective}_ci"] = bootstrap_ci(per_prompt, bootstrap, seed)
        rm = reward_models.get(objective)
        if rm is not None:
            flat = [s["text"] for i in idx for s in groups[i]]
            flat_prompts = [prompts[i] for i in idx for _ in groups[i]]
            scores = rm(flat, prompts=flat_prompts)
            out[f"rm_{objective}"] = sum(scores) / len(scores)
    rm_keys = [k for k in ("rm_helpfulness", "rm_harmlessness") if k in out]
    if rm_keys:
        out["reward_model_score"] = sum(out[k] for k in rm_keys) / len(rm_keys)
    return out
