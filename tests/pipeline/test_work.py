"""What each stage of a run computed (pipeline/work.py): tokens trained and generated, FLOPs."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1pipeline.rundir import read_json
from r1pipeline.pipeline.work import grpo_work, model_parameters, params_resolver, stage_work
from tests.pipeline.fake_work import P, P_RM, make_fake_run, write_model


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return make_fake_run(tmp_path / "fake")


def work(run: Path, stage: str):
    return stage_work(run / stage, read_json(run / stage / "manifest.json"), params_resolver(run))


def test_matmul_parameters_count_a_tied_embedding_once_and_a_lookup_not_at_all(tmp_path: Path):
    write_model(tmp_path / "tied")
    assert model_parameters(tmp_path / "tied") == P
    write_model(tmp_path / "untied", shapes={"model.embed_tokens.weight": [100, 4], "lm_head.weight": [100, 4]})
    assert model_parameters(tmp_path / "untied") == 400  # the head multiplies, the embedding is looked up
    write_model(tmp_path / "rm", "LlamaForSequenceClassification")
    assert model_parameters(tmp_path / "rm") == P_RM  # a score head, no LM head: the embedding is a lookup
    assert model_parameters(tmp_path / "missing") is None


def test_training_is_6_p_n_and_generation_2_p_n(run: Path):
    base, sft, reward = work(run, "base"), work(run, "sft"), work(run, "reward")
    assert (base.trained, base.generated, base.flops) == (500, 0, 6 * P * 500)
    assert (sft.trained, sft.flops) == (90, 6 * P * 90)
    # the reward model resumed at step 1: TRL's counter restarted, so its last attempt did 50 tokens
    assert (reward.trained, reward.flops) == (50, 6 * P_RM * 50)
    cold = work(run, "cold_start")
    assert (cold.trained, cold.generated, cold.flops) == (0, 300, 2 * P * 300)
    # evaluate: every row of samples.jsonl, each at its own model's size
    ev = work(run, "evaluate")
    assert (ev.generated, ev.flops, ev.notes) == (20, 2 * P * 20, [])


def test_grpo_counts_rollouts_held_out_checks_and_the_reference_forward(run: Path):
    w = work(run, "r1_zero")
    # rollouts: 4 completions of mean 10, then of mean 5 tokens; held-out: 2 prompts of mean 5, then 10
    assert w.generated == 4 * 10 + 4 * 5 + 2 * 5 + 2 * 10
    assert w.trained == 100  # TRL's num_tokens: prompt + completion of every rollout
    # training 6PN + the reference model (beta > 0) 2PN on the rollouts + generation 2P x generated
    assert w.flops == P * (6 * 100 + 2 * 100 + 2 * 90)
    assert any("heldout/mean_length x eval_prompts" in n for n in w.notes)


def test_a_resumed_grpo_stage_counts_only_its_last_attempt():
    metrics = [{"step": 1, "num_tokens": 60, "completions/mean_length": 10.0},
               {"step": 2, "num_tokens": 100, "completions/mean_length": 5.0},
               {"step": 3, "num_tokens": 150, "completions/mean_length": 8.0}]
    w = grpo_work({"generation_batch_size": 4, "num_iterations": 2}, {"resumed_from_step": 2}, metrics, P)
    assert (w.trained, w.generated) == (2 * 50, 4 * 8)
    assert w.flops == P * (6 * 100 + 2 * 50 + 2 * 32)  # num_iterations 2: the old log-probs' forward too


def test_a_stage_from_before_tokens_were_recorded_says_so(run: Path):
    (run / "cold_start" / "summary.json").write_text("{}")
    (run / "evaluate" / "data" / "samples.jsonl").write_text('{"model": "base", "set": "heldout", "n_tokens": 7}\n')
    cold, ev = work(run, "cold_start"), work(run, "evaluate")
    assert cold.flops is None and "no tokens_generated_by_model" in cold.notes[0]
    assert ev.flops == 2 * P * 7 and "general prompts" in ev.notes[0]


def test_grpo_reads_the_held_out_checks_own_token_count_where_it_is_logged():
    metrics = [{"step": 0, "heldout/mean_length": 5.0, "heldout/tokens": 9},
               {"step": 1, "num_tokens": 60, "completions/mean_length": 10.0, "heldout/mean_length": 4.0,
                "heldout/tokens": 7}]
    w = grpo_work({"generation_batch_size": 4, "eval_prompts": 2}, {}, metrics, P)
    assert (w.trained, w.generated, w.notes) == (60, 4 * 10 + 9 + 7, [])
