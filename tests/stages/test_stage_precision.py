"""dtype auto in the stages: the resolved dtype reaches the trainer and autocast, and is recorded;
the stage hash sees ``auto``, never what it resolved to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from r1pipeline import precision
from r1pipeline.pipeline.runner import stage_hashes
from r1pipeline.pipeline.spec import load_spec
from r1pipeline.stages import grpo, pretrain, reward_model, sft
from r1pipeline.stages.base import StageContext
from r1pipeline.stages.rl_support import tokens_per_matmul, trainer_args
from tests.conftest import CONFIGS


def resolving_to(monkeypatch, dtype: str) -> list[tuple]:
    """Make ``auto`` resolve to ``dtype``; returns the (dtype, shapes, device) of each call."""
    calls: list[tuple] = []
    real = precision.resolve

    def fake(requested="auto", shapes=None, device=None):
        calls.append((requested, shapes, device))
        if requested != "auto":
            return real(requested, shapes, device)
        return precision.Decision(dtype, "test", "measured", device=str(device))

    monkeypatch.setattr(precision, "resolve", fake)
    return calls


def ctx(tmp_path: Path, **kw) -> StageContext:
    return StageContext(name="s", dir=tmp_path, run_dir=tmp_path, seed=0, **kw)


def sft_cfg(**kw) -> sft.Config:
    return sft.Config(**{"name": "s", "kind": "sft", "init": "base", "data": ["x.jsonl"], **kw})


def test_every_stage_kind_with_a_dtype_defaults_to_auto():
    from r1pipeline.stages import evaluate

    for module in (pretrain, sft, grpo, reward_model, evaluate):
        assert module.Config.model_fields["dtype"].default == "auto", module.__name__


@pytest.mark.parametrize("resolved", ["bfloat16", "float32"])
def test_the_resolved_dtype_reaches_the_trainer_and_the_manifest(monkeypatch, tmp_path, resolved):
    resolving_to(monkeypatch, resolved)
    c = ctx(tmp_path)
    assert trainer_args(sft_cfg(), c)["bf16"] is (resolved == "bfloat16")
    assert c.precision["train"]["dtype"] == resolved and c.precision["train"]["requested"] == "auto"


def test_an_explicit_dtype_wins_over_what_auto_would_say(monkeypatch, tmp_path):
    resolving_to(monkeypatch, "bfloat16")
    c = ctx(tmp_path)
    assert trainer_args(sft_cfg(dtype="float32"), c)["bf16"] is False
    assert c.precision["train"]["source"] == "spec"


def test_auto_is_measured_at_the_shapes_of_the_init_model(monkeypatch, tmp_path):
    model = tmp_path / "base" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"hidden_size": 64, "intermediate_size": 256}))
    calls = resolving_to(monkeypatch, "float32")
    trainer_args(sft_cfg(batch_size=8, max_length=32), ctx(tmp_path, input_dirs={"base": tmp_path / "base"}))
    assert calls[-1][1] == precision.model_shapes(64, 256, 8 * 32) and calls[-1][2] == "cpu"


def test_tokens_per_matmul_estimates_one_forward_pass_per_process():
    assert tokens_per_matmul(sft_cfg(batch_size=64, max_length=128), world_size=2) == 32 * 128
    g = grpo.Config(name="g", kind="grpo", init="base", task={"source": "tiny_product"},
                    generation_batch_size=64, mini_batches=2, max_completion_length=48)
    assert tokens_per_matmul(g) == 32 * 96 and tokens_per_matmul(g.model_copy(update={"micro_batch_size": 8})) == 8 * 96
    rm = reward_model.Config(name="r", kind="reward_model", init="base", batch_size=16, max_length=64,
                             pairs={"task": {"source": "tiny_general"}})
    assert tokens_per_matmul(rm) == 2 * 16 * 64  # chosen and rejected


class Stop(Exception):
    """Raised where pretraining would start: these tests train nothing."""


@pytest.mark.parametrize("resolved", ["bfloat16", "float32"])
def test_pretrain_autocasts_exactly_when_the_resolved_dtype_is_bf16(monkeypatch, tmp_path, resolved):
    calls = resolving_to(monkeypatch, resolved)
    seen = {}

    def autocast(device_type, dtype=None, enabled=True, **kw):
        seen.update(device_type=device_type, dtype=dtype, enabled=enabled)
        raise Stop

    monkeypatch.setattr(torch, "autocast", autocast)
    cfg = pretrain.Config(name="base", kind="pretrain", steps=2, batch_size=4,
                          model={"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32})
    c = ctx(tmp_path)
    with pytest.raises(Stop):
        pretrain.run(cfg, c, str(tmp_path))
    assert seen == {"device_type": "cpu", "dtype": torch.bfloat16, "enabled": resolved == "bfloat16"}
    assert c.precision["train"]["dtype"] == resolved
    assert calls[0] == ("auto", precision.model_shapes(16, 32, 4 * 128), "cpu")  # the model's shapes, on the CPU


def test_auto_hashes_alike_whatever_it_resolves_to(monkeypatch):
    spec = load_spec(CONFIGS / "micro.yaml")
    resolving_to(monkeypatch, "bfloat16")
    as_bf16 = stage_hashes(spec)
    resolving_to(monkeypatch, "float32")
    assert stage_hashes(spec) == as_bf16
    assert {s.dtype for s in spec.stages if hasattr(s, "dtype")} == {"auto"}  # micro.yaml leaves them to auto
    explicit = load_spec(CONFIGS / "micro.yaml", ["base.dtype=bfloat16"])
    assert stage_hashes(explicit)["base"] != as_bf16["base"]  # an explicit dtype is part of the result


def test_evaluate_default_dtype_keeps_the_hash_of_earlier_runs():
    from r1pipeline.stages.evaluate import Config

    cfg = Config(name="e", kind="evaluate", models=["base"], task={"source": "tiny_product"})
    assert "dtype" not in cfg.hashed_config()  # auto, like the float32 default before it


def test_evaluate_generates_each_model_in_the_dtype_it_records(monkeypatch, tmp_path):
    from r1pipeline.stages import evaluate

    resolving_to(monkeypatch, "bfloat16")
    used = []

    def sample_sets(cfg, path, jobs, label):
        used.append(cfg.dtype)
        raise Stop

    monkeypatch.setattr(evaluate, "sample_sets", sample_sets)
    cfg = evaluate.Config(name="e", kind="evaluate", models=["base"], task={"source": "tiny_product"}, n_prompts=4)
    c = ctx(tmp_path, input_dirs={"base": tmp_path / "base"})
    with pytest.raises(Stop):
        evaluate.run(cfg, c, str(tmp_path))
    assert used == ["bfloat16"] and c.precision["base"]["dtype"] == "bfloat16"
