"""Fake run directories for the report tests: spec.yaml, an evaluate stage's summary.json and
samples.jsonl, a GRPO stage's metrics.jsonl, written from chosen accuracies (no training)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import yaml

from r1pipeline.stages.eval_metrics import score_model

K = 4


def spec(seed: int = 0, models=("base", "r1_zero"), sets: dict | None = None, findings: list | None = None,
         general: bool = False, **evaluate: Any) -> dict[str, Any]:
    block = {"name": "evaluate", "kind": "evaluate", "models": list(models),
             "task": {"source": "tiny_product", "n_digits": 3}, "k": K, "bootstrap": 200, **evaluate}
    if general:
        block["general_task"] = {"source": "tiny_general"}
    if sets:
        block["sets"] = sets
    out = {"name": "fake", "description": "a fake run", "seed": seed, "base_dir": "/somewhere",
           "stages": [{"name": "r1_zero", "kind": "grpo", "init": "base"}, block]}
    if findings is not None:
        out["findings"] = findings
    return out


def reasoning_rows(model: str, accuracy: float, seed: int, set_name: str | None = "heldout", n: int = 40,
                   length: int = 10, with_new_columns: bool = True) -> list[dict]:
    """``n`` prompts x K samples, each right with probability ``accuracy`` (a seeded draw)."""
    rng = random.Random(f"{model}-{set_name}-{seed}")
    rows = []
    for i in range(n):
        for j in range(K):
            ok = rng.random() < accuracy
            answer = "4" if ok else str(rng.choice([1, 2, 3]))
            row = {"model": model, "id": f"q{i}", "text": f"<think>s</think><answer>{answer}</answer> is the answer.",
                   "answer": answer, "reference": "4", "verifier": "exact", "correct": ok, "format": True,
                   "cot": True, "language": 1.0 if ok else 0.5, "n_tokens": length + j, "truncated": False}
            if with_new_columns:
                row.update(set=set_name, ends_clean=True)
            rows.append(row)
    return rows


def general_rows(model: str, helpful: float, seed: int, n: int = 20) -> list[dict]:
    rng = random.Random(f"{model}-general-{seed}")
    return [{"model": model, "set": "general", "id": f"g{i}", "text": "x",
             "objective": "helpfulness" if i % 2 else "harmlessness",
             "oracle": float(rng.random() < helpful), "n_tokens": 3, "truncated": False}
            for i in range(n) for _ in range(K)]


def summary_of(rows: list[dict], seed: int) -> dict[str, Any]:
    """The evaluate summary of these rows, as the stage computes it."""
    groups: dict[tuple[str, str], dict[str, list[dict]]] = {}
    for r in rows:
        if r.get("set", "heldout") != "general":
            groups.setdefault((r.get("set", "heldout"), r["model"]), {}).setdefault(r["id"], []).append(r)
    out: dict[str, Any] = {"k": K, "n_prompts": 40, "seed": seed, "temperature": 0.6, "top_p": 0.95, "models": {}}
    for (set_name, model), prompts in groups.items():
        old = any("ends_clean" not in r for g in prompts.values() for r in g)  # a run from before the column
        metrics = score_model([[{"ends_clean": False, **r} for r in g] for g in prompts.values()], 50, seed)
        if old:
            del metrics["ends_clean_rate"]
        if set_name == "heldout":
            out["models"][model] = metrics
        else:
            out.setdefault("sets", {}).setdefault(set_name, {"n_prompts": 40, "max_new_tokens": 64, "models": {}})
            out["sets"][set_name]["models"][model] = metrics
    return out


def write_run(run_dir: Path, spec_dict: dict[str, Any], rows: list[dict], rewards: list[float] | None = None) -> Path:
    """A run directory: spec.yaml, evaluate/{manifest,summary}.json + data/samples.jsonl, r1_zero's metrics."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "spec.yaml").write_text(yaml.safe_dump(spec_dict, sort_keys=False))
    ev = run_dir / "evaluate"
    (ev / "data").mkdir(parents=True, exist_ok=True)
    (ev / "data" / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (ev / "summary.json").write_text(json.dumps(summary_of(rows, spec_dict["seed"])))
    (ev / "manifest.json").write_text(json.dumps({"kind": "evaluate", "status": "done", "seconds": 90.0}))
    rl = run_dir / "r1_zero"
    rl.mkdir(exist_ok=True)
    (rl / "manifest.json").write_text(json.dumps({"kind": "grpo", "status": "done", "seconds": 30.0}))
    rewards = rewards or [0.1, 0.5, 0.9]
    (rl / "metrics.jsonl").write_text("".join(
        json.dumps({"step": i + 1, "reward": r, "completions/mean_length": 10 + i, "kl": 0.01 * i}) + "\n"
        for i, r in enumerate(rewards)) + json.dumps({"step": 3, "heldout/accuracy": 0.8}) + "\n")
    return run_dir


def seeds_runs(root: Path, accuracies: dict[int, dict[str, float]], **spec_kw: Any) -> list[Path]:
    """One run directory per seed under ``root``: seed -> {model: accuracy}."""
    out = []
    for seed, acc in accuracies.items():
        rows = [r for model, a in acc.items() for r in reasoning_rows(model, a, seed)]
        out.append(write_run(root / f"seed-{seed}", spec(seed, models=tuple(acc), **spec_kw), rows))
    return out
