"""The ``trl:`` block: TRL's options read from its source match its real config classes; the
block's keys and types are checked; its values reach the TRL config a stage builds."""

from __future__ import annotations

import dataclasses

import pytest

from r1pipeline.pipeline.spec import SpecError, load_spec
from r1pipeline.stages import grpo, reward_model, sft
from r1pipeline.stages.base import StageContext
from r1pipeline.stages.trl_options import check_trl_block, fits, trl_fields
from tests.conftest import CONFIGS

KINDS = [grpo.Config, sft.Config, reward_model.Config]


@pytest.mark.parametrize("config", KINDS, ids=lambda c: c.trl_config)
def test_fields_read_from_source_are_the_dataclass_fields(config):
    import trl

    real = {f.name: f for f in dataclasses.fields(getattr(trl, config.trl_config)) if f.init}
    read = trl_fields(config.trl_config)
    assert set(read) == set(real)
    for name, f in real.items():
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        assert read[name].default in (..., default), name
        assert default is None or fits(default, read[name]), (name, default, read[name].types)


@pytest.mark.parametrize("config", KINDS, ids=lambda c: c.trl_config)
def test_every_trl_field_we_name_exists_in_trl(config):
    assert set(config.trl_named) <= set(trl_fields(config.trl_config))
    assert set(config.trl_named.values()) <= set(config.model_fields)


def test_validate_accepts_a_real_option_and_it_reaches_the_grpo_config(tmp_path):
    spec = load_spec(CONFIGS / "micro.yaml", ["r1_zero.trl={mask_truncated_completions: true}"])
    cfg = spec.stage("r1_zero")
    args = grpo.trl_args(cfg, StageContext(name="r1_zero", dir=tmp_path, run_dir=tmp_path, seed=0))
    assert args.mask_truncated_completions is True
    assert args.learning_rate == cfg.learning_rate  # ours still set


def test_validate_refuses_a_misspelled_option_with_the_closest_name():
    with pytest.raises(SpecError) as err:
        load_spec(CONFIGS / "micro.yaml", ["r1_zero.trl={mask_truncated_complections: true}"])
    (problem,) = err.value.problems
    assert problem.field == "trl.mask_truncated_complections"
    assert "did you mean 'mask_truncated_completions'" in problem.fix


@pytest.mark.parametrize("value, ok", [(True, True), (1, False), ("true", False), (None, False)])
def test_bool_option_takes_a_bool_only(value, ok):
    problems = check_trl_block("s", "GRPOConfig", {"mask_truncated_completions": value}, {})
    assert (not problems) == ok, problems


@pytest.mark.parametrize("key, value, ok", [
    ("top_entropy_quantile", 1, True), ("top_entropy_quantile", 0.2, True), ("top_entropy_quantile", True, False),
    ("top_k", 0.5, False), ("top_k", 5, True), ("generation_kwargs", {"min_tokens": 2}, True),
    ("vllm_importance_sampling_correction", False, True), ("lr_scheduler_kwargs", [1], False),
])
def test_types_follow_the_field_annotation(key, value, ok):
    assert (not check_trl_block("s", "GRPOConfig", {key: value}, {})) == ok


@pytest.mark.parametrize("key, ours", [("learning_rate", "learning_rate"), ("num_generations", "num_generations"),
                                       ("beta", "beta"), ("max_steps", "steps"), ("seed", "seed"),
                                       ("report_to", "report_to"), ("bf16", "dtype")])
def test_an_option_our_config_names_points_to_our_field(key, ours):
    (problem,) = check_trl_block("r1_zero", "GRPOConfig", {key: 1}, grpo.Config.trl_named)
    assert f"our field '{ours}'" in problem.message and problem.fix.startswith(f"set {ours} ")


def test_options_override_what_we_fix_in_sft_and_reward_models(tmp_path):
    ctx = StageContext(name="s", dir=tmp_path, run_dir=tmp_path, seed=0)
    s = sft.Config(name="s", kind="sft", init="base", data=["x.jsonl"], trl={"packing": True, "max_steps": 7})
    args = sft.trl_args(s, ctx)
    assert args.packing is True and args.max_steps == 7 and args.num_train_epochs == s.epochs
    rm = reward_model.Config(name="r", kind="reward_model", init="base", pairs={"file": "p.jsonl"},
                             trl={"center_rewards_coefficient": 0.01, "lr_scheduler_type": "cosine"})
    args = reward_model.trl_args(rm, ctx)
    assert args.center_rewards_coefficient == 0.01 and args.lr_scheduler_type.value == "cosine"


def test_trl_block_is_in_the_hash_only_when_set():
    base = dict(name="r1_zero", kind="grpo", init="base", task={"source": "tiny_product"})
    plain = grpo.Config(**base).hashed_config()
    assert "trl" not in plain and grpo.Config(**base, trl={}).hashed_config() == plain
    assert grpo.Config(**base, trl={"mask_truncated_completions": True}).hashed_config() != plain


def test_other_loss_types_of_trl_are_ours_to_set():
    spec = load_spec(CONFIGS / "micro.yaml", ["r1_zero.loss_type=cispo"])
    assert spec.stage("r1_zero").loss_type == "cispo"
