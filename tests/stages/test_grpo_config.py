"""How our GRPO config maps onto TRL's, and the held-out check it logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1pipeline.stages.base import StageContext
from r1pipeline.stages.grpo import Config, trl_args


def cfg(**kw) -> Config:
    base = dict(name="r1_zero", kind="grpo", init="base", task={"source": "tiny_product"})
    return Config(**{**base, **kw})


def ctx(tmp_path: Path) -> StageContext:
    return StageContext(name="r1_zero", dir=tmp_path, run_dir=tmp_path, seed=3)


def test_rollout_is_split_into_mini_batches(tmp_path):
    args = trl_args(cfg(generation_batch_size=64, num_generations=8, mini_batches=4), ctx(tmp_path))
    assert args.per_device_train_batch_size == 16 and args.steps_per_generation == 4
    assert args.generation_batch_size == 64 and args.num_generations == 8


def test_paper_settings_pass_through(tmp_path):
    args = trl_args(cfg(beta=0.001, epsilon=10, ref_model_sync_steps=400, temperature=0.7, loss_type="grpo"),
                    ctx(tmp_path))
    assert (args.beta, args.epsilon, args.temperature, args.loss_type) == (0.001, 10, 0.7, "grpo")
    assert args.sync_ref_model and args.ref_model_sync_steps == 400 and args.ref_model_mixup_alpha == 1.0
    assert args.seed == 3


def test_reference_refresh_is_off_without_a_kl_term(tmp_path):
    args = trl_args(cfg(beta=0.0, ref_model_sync_steps=400), ctx(tmp_path))
    assert not args.sync_ref_model


def test_checkpoint_interval_does_not_change_the_stage_hash():
    assert cfg(checkpoint_every=5).hashed_config() == cfg(checkpoint_every=50).hashed_config()
    assert cfg(learning_rate=1e-4).hashed_config() != cfg().hashed_config()


def test_default_engine_keeps_the_stage_hash_other_engines_change_it():
    assert "engine" not in cfg().hashed_config()
    assert cfg(engine="hf").hashed_config() == cfg().hashed_config() != cfg(engine="auto").hashed_config()


def test_vllm_engine_without_vllm_fails_validation(monkeypatch):
    from r1pipeline.pipeline.spec import SpecError, load_spec
    from r1pipeline.rollout import base
    from tests.conftest import CONFIGS

    monkeypatch.setattr(base, "vllm_available", lambda: False)
    with pytest.raises(SpecError) as err:
        load_spec(CONFIGS / "micro.yaml", ["r1_zero.engine=vllm"])
    assert any(p.field == "engine" and "vllm is not installed" in p.message for p in err.value.problems)


def test_rollouts_go_to_trl_for_a_model_the_lean_loop_cannot_take_and_to_a_lazy_engine_otherwise(tmp_path):
    from r1pipeline.rollout.trl_hook import EngineRollout
    from r1pipeline.stages.grpo import _rollout_hook

    c = ctx(tmp_path)
    assert _rollout_hook(cfg(), tmp_path, c, object(), None) is None and "rollout" not in c.precision
    hook = _rollout_hook(cfg(engine="vllm"), tmp_path, c, object(), None)
    assert isinstance(hook, EngineRollout) and hook.engine is None  # nothing started before training
    assert c.precision["rollout"]["dtype"] in ("float32", "bfloat16")  # the engine's dtype, in the manifest


@pytest.mark.parametrize("measured", ["hf", "vllm"])
def test_engine_auto_takes_the_measured_engine_and_records_why(tmp_path, monkeypatch, measured):
    from r1pipeline.rollout import choice
    from r1pipeline.rollout.trl_hook import EngineRollout
    from r1pipeline.stages.grpo import _rollout_hook

    picked = choice.Choice(measured, "measured", f"{measured} was faster", {"hf": 100.0, "vllm": 90.0})
    monkeypatch.setattr(choice, "choose", lambda path, tokens=None: picked)
    c = ctx(tmp_path)
    hook = _rollout_hook(cfg(engine="auto"), tmp_path, c, object(), None)
    assert c.precision["rollout_engine"] == picked.record()
    if measured == "hf":  # the policy itself: TRL's generate, as object() is no model the lean loop takes
        assert hook is None and "rollout" not in c.precision
    else:
        assert isinstance(hook, EngineRollout) and "rollout" in c.precision


def test_micro_batches_become_accumulation_steps(tmp_path):
    args = trl_args(cfg(generation_batch_size=64, num_generations=8, mini_batches=2, micro_batch_size=8), ctx(tmp_path))
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps, args.steps_per_generation) == (8, 4, 8)
    assert args.generation_batch_size == 64
    assert cfg(micro_batch_size=8).hashed_config() == cfg().hashed_config()  # same update: not a result field


def test_a_micro_batch_that_does_not_divide_the_step_is_named_with_a_fix():
    (p,) = cfg(generation_batch_size=64, mini_batches=2, micro_batch_size=12).check_processes(1)
    assert p.field == "micro_batch_size" and "e.g. 8" in p.fix
