"""The work each stage of a run did: tokens trained, tokens generated and FLOPs, from the run
directory alone (``manifest.json``, ``summary.json``, ``metrics.jsonl``, ``data/``, and the
models' safetensors headers; no weights are loaded and torch is not imported).

``bench/pipeline.py`` divides these FLOPs by the stages' wall seconds and by the machine's
measured GEMM rate: where a pipeline's time goes, against the machine's own ceiling.

Where the tokens come from: ``pretrain``, the summary's ``tokens_seen_this_attempt``; ``sft`` and
``reward_model``, TRL's ``num_tokens`` in metrics.jsonl (non-pad tokens of the batches; a reward
model's chosen and rejected texts both); ``grpo``, TRL's ``num_tokens`` (prompt + completion of
every rollout, trained ``num_iterations`` times), completions generated = ``completions/mean_length``
x ``generation_batch_size`` per rollout, plus the held-out checks' greedy answers
(``heldout/tokens``; in runs from before it, ``heldout/mean_length`` x ``eval_prompts``: an upper
bound where the task mixes in general prompts, which the check skips); ``sample``, the summary's ``tokens_generated_by_model``;
``evaluate``, the ``n_tokens`` of every row of ``data/samples.jsonl``. Tokens are the last attempt's
(the runner's ``seconds`` are too): a resumed stage did part of its work in an earlier attempt.

The FLOP model, per token: 6 x parameters for training (forward + backward), 2 x parameters for
a forward-only pass (generation; GRPO's reference model when ``beta`` > 0 and its old log-probs
when ``mini_batches`` or ``num_iterations`` > 1, as TRL 1.16 computes them). Parameters are the
weights that take part in a matmul, read from the saved model: the input embedding is a lookup,
counted only when tied to the LM head; a reward model's score head replaces the LM head. Left
out, so that a share of a GEMM ceiling computed from these FLOPs is that much low:

* attention (QK^T and AV): 4 x layers x context x hidden FLOPs per token forward, against
  2 x layers x (4 hidden^2 + 3 hidden x intermediate) for the weights: context / 1024 of the
  matmul FLOPs at the teacher's width (hidden 128, intermediate 512), context / 512 at the
  student's (64, 256). At these lengths (a token sees ~35 tokens on average in causal rows of 70,
  all 128 of a packed pretraining row, whose mask is dense) that is 3-12% for the teacher and
  7-25% for the student;
* the prompts' prefill in generation (~25 prompt tokens before up to 56 generated: generation
  FLOPs ~30% low), padding (work done, not tokens processed), reward-model scoring (learned GRPO
  rewards, evaluate, a reward model's held-out pair accuracy), the repeated held-out check after
  GRPO's last step. The other way: TRL's LM head skips prompt positions (6 x P is ~1% high on the
  tiny model), and LoRA stages count as full fine-tuning.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from r1pipeline.rundir import METRICS, SUMMARY, read_json, read_metrics

TRAINING_KINDS = ("pretrain", "sft", "reward_model", "grpo")  # their own generation included (grpo)
ParamsOf = Callable[[str], int | None]  # a model reference -> its matmul parameters


def safetensors_shapes(model_dir: Path) -> dict[str, list[int]]:
    """Tensor name -> shape of every ``*.safetensors`` file in ``model_dir``, read from the headers
    (8 bytes of little-endian length, then JSON): no weights loaded, no torch."""
    shapes: dict[str, list[int]] = {}
    for path in sorted(model_dir.glob("*.safetensors")):
        with path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(length))
        shapes.update({k: v["shape"] for k, v in header.items() if k != "__metadata__"})
    return shapes


def matmul_parameters(shapes: dict[str, list[int]], config: dict[str, Any]) -> int:
    """Weights that take part in a matmul: all of them but the input embedding (a lookup), which
    counts when it is also the LM head (tied, a causal LM: no ``lm_head`` tensor is stored).

    >>> s = {"model.embed_tokens.weight": [100, 8], "model.layers.0.mlp.up_proj.weight": [32, 8]}
    >>> matmul_parameters(s, {"architectures": ["LlamaForCausalLM"], "tie_word_embeddings": True})
    1056
    >>> matmul_parameters(s, {"architectures": ["LlamaForSequenceClassification"]})
    256
    """
    total = sum(math.prod(v) for v in shapes.values())
    embeds = [k for k in shapes if k.endswith("embed_tokens.weight") or k.endswith("wte.weight")]
    causal = any(a.endswith("ForCausalLM") for a in config.get("architectures") or [])
    tied = causal and not any("lm_head" in k for k in shapes) and config.get("tie_word_embeddings", True)
    return total if tied else total - sum(math.prod(shapes[k]) for k in embeds)


def model_parameters(model_dir: Path) -> int | None:
    """``matmul_parameters`` of a saved Hugging Face model directory; None when it has no safetensors."""
    shapes = safetensors_shapes(model_dir) if model_dir.is_dir() else {}
    if not shapes:
        return None
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        config = {}
    return matmul_parameters(shapes, config)


@dataclass
class Work:
    """What a stage computed: tokens through training, tokens generated, FLOPs (None: unknown)."""

    trained: int | None = None
    generated: int | None = None
    flops: float | None = None
    notes: list[str] = field(default_factory=list)


def _after(metrics: list[dict], resumed: int | None) -> list[dict]:
    """The rows of the last attempt: all of them, or those after the step it resumed from."""
    return [r for r in metrics if r.get("step", 0) > resumed] if resumed else metrics


def trainer_tokens(metrics: list[dict], resumed: int | None) -> int | None:
    """Non-pad tokens that TRL's SFT/Reward trainer counted (``num_tokens``) in the last attempt:
    the counter starts at 0 with every trainer, so a resumed attempt's rows count only its own."""
    rows = [r for r in _after(metrics, resumed) if "num_tokens" in r]
    return int(rows[-1]["num_tokens"]) if rows else None


def grpo_work(config: dict, summary: dict, metrics: list[dict], params: int | None) -> Work:
    """Trained and generated tokens of a GRPO stage's last attempt, and its FLOPs (see the module doc)."""
    resumed = summary.get("resumed_from_step") or 0
    before = [r["num_tokens"] for r in metrics if r.get("step", 0) <= resumed and "num_tokens" in r]
    counted = [r["num_tokens"] for r in metrics if "num_tokens" in r]  # TRL's, cumulative over attempts
    if not counted:
        return Work(notes=["no num_tokens in metrics.jsonl"])
    rollout = int(max(counted) - (max(before) if before else 0))  # prompt + completion tokens
    mine = _after(metrics, resumed)
    gbs = config.get("generation_batch_size", 0)
    generated = sum(r["completions/mean_length"] * gbs for r in mine if "completions/mean_length" in r)
    held = [r for r in mine if "heldout/mean_length" in r]
    heldout = sum(r.get("heldout/tokens", r["heldout/mean_length"] * config.get("eval_prompts", 0)) for r in held)
    notes = [] if all("heldout/tokens" in r for r in held) else \
        [f"held-out checks counted as heldout/mean_length x eval_prompts ({len(held)} checks)"]
    iterations = config.get("num_iterations", 1)
    extra_forwards = (config.get("beta", 0) > 0) + (config.get("mini_batches", 1) > 1 or iterations > 1)
    trained = rollout * iterations
    generated_all = int(round(generated + heldout))
    flops = None if params is None else params * (6 * trained + 2 * extra_forwards * rollout + 2 * generated_all)
    return Work(trained, generated_all, flops, notes)


def generation_work(by_model: dict[str, int], params_of: ParamsOf) -> Work:
    """Forward-only work of generating ``by_model[m]`` tokens with each model m."""
    sizes = {m: params_of(m) for m in by_model}
    unknown = [m for m, p in sizes.items() if p is None]
    flops = None if unknown else sum(2 * sizes[m] * n for m, n in by_model.items())
    return Work(0, int(sum(by_model.values())), flops, [f"no parameter count for {', '.join(unknown)}"] * bool(unknown))


def samples_by_model(samples_path: Path) -> tuple[dict[str, int], set[str]]:
    """Generated tokens per model in an evaluate stage's samples.jsonl, and the sets its rows name."""
    by_model: dict[str, int] = {}
    sets: set[str] = set()
    if samples_path.exists():
        for line in samples_path.open():
            if line.strip():
                row = json.loads(line)
                by_model[row["model"]] = by_model.get(row["model"], 0) + int(row.get("n_tokens", 0))
                sets.add(row.get("set", "heldout"))
    return by_model, sets


def stage_work(stage_dir: Path, manifest: dict, params_of: ParamsOf) -> Work:
    """Tokens and FLOPs of one finished stage, from its files (``params_of``: a model ref -> parameters)."""
    kind, config = manifest.get("kind"), manifest.get("config", {})
    summary = read_json(stage_dir / SUMMARY) or {}
    metrics = read_metrics(stage_dir / METRICS)
    own = params_of(stage_dir.name)
    if kind == "pretrain":
        trained = summary.get("tokens_trained", summary.get("tokens_seen_this_attempt"))
        params = own or summary.get("parameters")
        return Work(trained, 0, None if trained is None or params is None else 6 * params * trained)
    if kind in ("sft", "reward_model"):
        trained = trainer_tokens(metrics, summary.get("resumed_from_step"))
        return Work(trained, 0, None if trained is None or own is None else 6 * own * trained)
    if kind == "grpo":
        return grpo_work(config, summary, metrics, own)
    if kind == "sample":
        if "tokens_generated_by_model" not in summary:
            return Work(notes=["summary has no tokens_generated_by_model (a run before it was recorded)"])
        return generation_work(summary["tokens_generated_by_model"], params_of)
    if kind == "evaluate":
        by_model, sets = samples_by_model(stage_dir / "data" / "samples.jsonl")
        work = generation_work(by_model, params_of)
        if config.get("general_task") and "general" not in sets:
            work.notes.append("general prompts' completions are not in samples.jsonl (an older run): not counted")
        return work
    return Work(notes=[f"unknown stage kind {kind!r}"])


def params_resolver(run_dir: Path) -> ParamsOf:
    """A model reference -> matmul parameters: a stage of the run, else a known or local model."""
    cache: dict[str, int | None] = {}

    def params_of(ref: str) -> int | None:
        if ref not in cache:
            path = run_dir / ref / "model"
            if not path.is_dir():
                try:
                    from r1pipeline.models.catalog import resolve_model

                    path = resolve_model(ref, pull=False)
                except (ValueError, OSError):
                    path = None
            cache[ref] = model_parameters(Path(path)) if path is not None else None
        return cache[ref]

    return params_of
