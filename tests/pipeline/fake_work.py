"""A fake run directory of six stages, one of each kind, for the tests of what a run's stages computed.

Every fake model has 1,000 matmul parameters (a tied 100 x 4 embedding and a 40 x 15 weight;
the reward model, without an LM head, 600), so each FLOP count is a small product to check by hand.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import yaml

P = 1000  # matmul parameters of every fake causal LM
P_RM = 600  # ... and of the fake reward model: its embedding is a lookup
CPU = "Test CPU 9000"
STAGES = [("base", "pretrain"), ("r1_zero", "grpo"), ("cold_start", "sample"), ("sft", "sft"),
          ("reward", "reward_model"), ("evaluate", "evaluate")]


def write_model(path: Path, architecture: str = "LlamaForCausalLM", shapes: dict | None = None) -> None:
    """A model directory whose safetensors file has a header only (all that is read)."""
    path.mkdir(parents=True)
    shapes = shapes or {"model.embed_tokens.weight": [100, 4], "model.layers.0.mlp.up_proj.weight": [40, 15],
                        "model.norm.weight": [0]}
    header = json.dumps({k: {"dtype": "F32", "shape": v, "data_offsets": [0, 0]} for k, v in shapes.items()}).encode()
    (path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    (path / "config.json").write_text(json.dumps({"architectures": [architecture], "tie_word_embeddings": True}))


def write_stage(run: Path, name: str, kind: str, seconds: float, summary: dict, config: dict | None = None,
                metrics: list[dict] = (), model: str | None = "LlamaForCausalLM", **manifest) -> None:
    d = run / name
    d.mkdir(parents=True)
    (d / "manifest.json").write_text(json.dumps({"stage": name, "kind": kind, "status": "done", "seconds": seconds,
                                                 "cpu_seconds": 2 * seconds, "config": config or {}, **manifest}))
    (d / "summary.json").write_text(json.dumps(summary))
    (d / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    if model:
        write_model(d / "model", model)


def make_fake_run(run: Path) -> Path:
    """base 60 s, r1_zero 10 s, cold_start 5 s, sft 20 s, reward 30 s (its second attempt), evaluate 15 s."""
    run.mkdir(parents=True)
    stages = [{"name": n, "kind": k} for n, k in STAGES]
    (run / "spec.yaml").write_text(yaml.safe_dump({"name": "fake", "stages": stages}))
    write_stage(run, "base", "pretrain", 60, {"parameters": P, "tokens_seen_this_attempt": 500},
                precision={"train": {"dtype": "float32", "cpu": CPU}})
    write_stage(run, "r1_zero", "grpo", 10, {"resumed_from_step": None},
                config={"generation_batch_size": 4, "eval_prompts": 2, "beta": 0.1},
                metrics=[{"step": 0, "heldout/mean_length": 5.0},
                         {"step": 1, "num_tokens": 60, "completions/mean_length": 10.0},
                         {"step": 2, "num_tokens": 100, "completions/mean_length": 5.0, "heldout/mean_length": 10.0}],
                precision={"train": {"dtype": "float32"}, "rollout": {"dtype": "bfloat16"}})
    write_stage(run, "cold_start", "sample", 5,
                {"tokens_generated": 300, "tokens_generated_by_model": {"r1_zero": 300}}, model=None)
    write_stage(run, "sft", "sft", 20, {"resumed_from_step": None},
                metrics=[{"step": 1, "num_tokens": 40}, {"step": 2, "num_tokens": 90}])
    write_stage(run, "reward", "reward_model", 30, {"resumed_from_step": 1}, attempts=2,
                metrics=[{"step": 1, "num_tokens": 999}, {"step": 2, "num_tokens": 50}],  # attempt 2 counts from 0
                model="LlamaForSequenceClassification")
    write_stage(run, "evaluate", "evaluate", 15, {}, config={"general_task": {"source": "tiny_general"}}, model=None)
    (run / "evaluate" / "data").mkdir()
    (run / "evaluate" / "data" / "samples.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in [{"model": "base", "set": "heldout", "n_tokens": 7},
                                               {"model": "r1_zero", "set": "general", "n_tokens": 13}]))
    return run
