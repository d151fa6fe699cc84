"""Spec rules for several processes (global batches split evenly) and for LoRA."""

from __future__ import annotations

import importlib.util

import pytest

from r1pipeline.pipeline.spec import SpecError, check_processes, load_spec
from r1pipeline.stages import grpo, sft
from r1pipeline.stages.common import per_process
from tests.conftest import CONFIGS


def test_micro_splits_over_two_processes_but_not_three():
    spec = load_spec(CONFIGS / "micro.yaml")
    assert check_processes(spec, 1) == [] and check_processes(spec, 2) == []
    fields = {(p.stage, p.field) for p in check_processes(spec, 3)}
    assert ("sft", "batch_size") in fields and ("r1_zero", "generation_batch_size") in fields
    assert ("reward_helpful", "batch_size") in fields
    assert ("base", "batch_size") in fields  # pretraining is data-parallel too
    assert not any(stage in ("cold_start", "evaluate") for stage, _ in fields)  # sharded prompts: any count


def test_grpo_split_is_per_mini_batch_and_the_fix_keeps_whole_groups():
    cfg = grpo.Config(name="rl", kind="grpo", init="base", task={"source": "tiny_product"},
                      generation_batch_size=64, num_generations=8, mini_batches=4)
    assert cfg.check_processes(4) == []  # 4 optimizer steps of 16, 4 per process
    [problem] = cfg.check_processes(3)
    assert "16 per optimizer step (mini_batches 4)" in problem.message
    assert "use a multiple of 24 (e.g. 72)" in problem.fix  # 72 = 3 processes x 4 mini-batches x 6, 9 groups of 8


def test_per_process_names_stage_field_and_fix():
    assert per_process("sft", "batch_size", 64, 4) == 16
    with pytest.raises(ValueError, match="stage 'sft', field 'batch_size': 10 cannot be split evenly over 4"):
        per_process("sft", "batch_size", 10, 4)


def test_lora_block_without_peft_fails_validation(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a))
    with pytest.raises(SpecError) as err:
        load_spec(CONFIGS / "micro.yaml", ["sft.lora={r: 8}"])
    [problem] = err.value.problems
    assert (problem.stage, problem.field) == ("sft", "lora") and "pip install 'r1pipeline[lora]'" in problem.fix


def test_lora_needs_the_hf_engine_in_grpo():
    with pytest.raises(SpecError) as err:
        load_spec(CONFIGS / "micro.yaml", ["r1_zero.lora={r: 8}", "r1_zero.engine=auto"])
    assert [(p.stage, p.field) for p in err.value.problems] == [("r1_zero", "lora")]


def test_no_lora_keeps_the_hash_of_earlier_runs():
    base = dict(name="sft", kind="sft", init="base", data=["d.jsonl"])
    assert "lora" not in sft.Config(**base).hashed_config()
    assert sft.Config(**base, lora={"r": 8}).hashed_config()["lora"]["r"] == 8
