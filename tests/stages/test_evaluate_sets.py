"""Evaluation sets: extra held-out sets beside the main one, validated, hashed, scored and written
(generation replaced by canned completions: no model runs)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from r1pipeline.pipeline.spec import SpecError, load_spec
from r1pipeline.rollout.hf import Completion
from r1pipeline.stages import evaluate
from r1pipeline.stages.base import StageContext
from tests.conftest import CONFIGS

HARD = "evaluate.sets={hard: {task: {source: tiny_product, n_digits: 6}, n_prompts: 8, max_new_tokens: 40, " \
       "models: [base, r1_zero]}}"


def problems(*overrides: str) -> list:
    with pytest.raises(SpecError) as err:
        load_spec(CONFIGS / "micro.yaml", list(overrides))
    return err.value.problems


def cfg(**kw) -> evaluate.Config:
    base = dict(name="evaluate", kind="evaluate", models=["a", "b"], task={"source": "tiny_product", "n_digits": 3},
                template="r1_zero_short",
                n_prompts=4, k=2, max_new_tokens=24, bootstrap=20, general_task={"source": "tiny_general"},
                n_general_prompts=4)
    return evaluate.Config(**{**base, **kw})


def test_a_valid_set_passes_validation_and_keeps_its_models_in_stage_order():
    spec = load_spec(CONFIGS / "micro.yaml", [HARD])
    stage = spec.stage("evaluate")
    assert stage.set_models("hard") == ["base", "r1_zero"]
    assert stage.sets["hard"].max_new_tokens == 40


def test_a_set_model_the_stage_does_not_evaluate_is_a_problem_naming_the_set():
    found = problems("evaluate.sets={hard: {task: {source: tiny_product}, models: [bsae]}}")
    assert any(p.stage == "evaluate" and p.field == "sets.hard.models[0]" and "base" in p.fix for p in found)


def test_a_bad_task_block_in_a_set_is_a_problem_naming_its_field():
    found = problems("evaluate.sets={hard: {task: {source: tiny_prodcut}}}")
    assert any(p.field == "sets.hard.task.source" and "tiny_product" in p.fix for p in found)
    found = problems("evaluate.sets={hard: {task: {source: tiny_product, n_digits: 99}}}")
    assert any(p.field == "sets.hard.task.n_digits" for p in found)


def test_set_fields_are_typed_and_reserved_names_refused():
    assert any(p.field == "sets.hard.n_prompts" for p in problems("evaluate.sets={hard: {task: {source: tiny_product},"
                                                                  " n_prompts: 0}}"))
    assert any(p.field == "sets.hard.promts" for p in problems("evaluate.sets={hard: {task: {source: tiny_product},"
                                                               " promts: 3}}"))
    assert any(p.field == "sets.general" for p in problems("evaluate.sets={general: {task: {source: tiny_product}}}"))


def test_no_sets_keeps_the_hash_of_earlier_evaluate_stages():
    assert "sets" not in cfg().hashed_config()
    with_sets = cfg(sets={"hard": {"task": {"source": "tiny_product", "n_digits": 6}}})
    assert with_sets.hashed_config() != cfg().hashed_config()


def canned(prompts: list[str], max_new: int) -> list[list[Completion]]:
    """Two samples per prompt: a right answer that stops at its summary, and one that runs on."""
    out = []
    for p in prompts:
        q = re.search(r"User: (.*) Assistant:", p).group(1)
        digits = [int(d) for d in q.split("*")] if re.fullmatch(r"[\d*]+", q) else []
        last = 1
        for d in digits:
            last = last * d % 10
        out.append([Completion(f"<think>{q}</think><answer>{last}</answer> is the answer.", 12, False),
                    Completion(f"<think>{q}</think><answer>{last}</answer> so so and so on", max_new, True)])
    return out


@pytest.fixture
def evaluated(tmp_path: Path, monkeypatch):
    calls = []

    def fake_sample_sets(config, path, jobs, label):
        calls.append([(len(j.prompts), j.max_new_tokens, j.seed, j.k, j.temperature, j.top_p) for j in jobs])
        return [canned(j.prompts, j.max_new_tokens) for j in jobs]

    monkeypatch.setattr(evaluate, "sample_sets", fake_sample_sets)
    config = cfg(sets={"hard": {"task": {"source": "tiny_product", "n_digits": 6}, "n_prompts": 3,
                                "max_new_tokens": 40, "models": ["b"], "temperature": 1.0, "top_p": 1.0}})
    ctx = StageContext(name="evaluate", dir=tmp_path / "evaluate", run_dir=tmp_path, seed=0,
                       input_dirs={"a": tmp_path / "a", "b": tmp_path / "b"})
    summary = evaluate.run(config, ctx, str(CONFIGS))
    rows = [json.loads(line) for line in (tmp_path / "evaluate" / "data" / "samples.jsonl").open()]
    return summary, rows, calls


def test_the_main_set_keeps_its_summary_keys_and_extra_sets_go_under_sets(evaluated):
    summary, _, calls = evaluated
    assert summary["n_prompts"] == 4 and list(summary["models"]) == ["a", "b"]
    for m in summary["models"].values():
        assert {"pass@1", "pass@1_ci", "cons@k", "ends_clean_rate", "oracle_helpfulness"} <= set(m)
        assert m["pass@1"] == 1.0 and m["ends_clean_rate"] == 0.5 and m["truncated_rate"] == 0.5
    hard = summary["sets"]["hard"]
    assert hard["n_prompts"] == 3 and hard["max_new_tokens"] == 40 and list(hard["models"]) == ["b"]
    # model a answers the main and general prompts only; b also the hard set, at its own length and seed
    k = summary["k"]
    assert calls[0] == [(4 + 4, 24, 0, k, 0.6, 0.95)]
    assert calls[1][0] == (8, 24, 0, k, 0.6, 0.95) and calls[1][1][:2] == (3, 40) and calls[1][1][2] != 0
    assert calls[1][1][3:] == (k, 1.0, 1.0)  # its own temperature and top-p
    assert (hard["k"], hard["temperature"], hard["top_p"]) == (k, 1.0, 1.0)


def test_samples_name_their_set_and_general_rows_carry_the_oracle(evaluated):
    _, rows, _ = evaluated
    count = {}
    for r in rows:
        count[(r["model"], r["set"])] = count.get((r["model"], r["set"]), 0) + 1
    assert count == {("a", "heldout"): 8, ("a", "general"): 8, ("b", "heldout"): 8, ("b", "general"): 8,
                     ("b", "hard"): 6}
    general = [r for r in rows if r["set"] == "general"]
    assert all(r["objective"] in ("helpfulness", "harmlessness") and 0 <= r["oracle"] <= 1 for r in general)
    reasoning = [r for r in rows if r["set"] != "general"]
    assert [r["ends_clean"] for r in reasoning[:2]] == [True, False]
    assert all(len(r["id"].split("/")[1].split("*")) == 6 for r in rows if r["set"] == "hard")


def test_general_models_answer_the_general_prompts_and_the_others_only_reasoning(tmp_path, monkeypatch):
    calls = []

    def fake_sample_sets(config, path, jobs, label):
        calls.append(sum(len(j.prompts) for j in jobs))
        return [canned(j.prompts, j.max_new_tokens) for j in jobs]

    monkeypatch.setattr(evaluate, "sample_sets", fake_sample_sets)
    ctx = StageContext(name="evaluate", dir=tmp_path / "evaluate", run_dir=tmp_path, seed=0,
                       input_dirs={"a": tmp_path / "a", "b": tmp_path / "b"})
    summary = evaluate.run(cfg(general_models=["b"]), ctx, str(CONFIGS))
    assert calls == [4, 4 + 4]
    assert "oracle_helpfulness" not in summary["models"]["a"] and "oracle_helpfulness" in summary["models"]["b"]
    rows = [json.loads(line) for line in (tmp_path / "evaluate" / "data" / "samples.jsonl").open()]
    assert {r["model"] for r in rows if r["set"] == "general"} == {"b"}


def test_general_models_keep_the_hash_by_default_and_are_checked():
    assert "general_models" not in cfg().hashed_config()
    assert cfg(general_models=["a"]).hashed_config() != cfg().hashed_config()
    found = problems("evaluate.general_models=[sfft]")
    assert any(p.stage == "evaluate" and p.field == "general_models[0]" and "sft" in p.fix for p in found)


def test_a_finding_on_the_general_rows_of_a_model_that_does_not_answer_them_is_a_problem():
    from r1pipeline.pipeline.findings import evaluated as sets_of

    block = cfg(general_models=["b"]).model_dump(mode="json")
    assert sets_of(block)["general"] == ["b"] and sets_of(block)["heldout"] == ["a", "b"]


def test_a_set_without_its_own_sampling_keeps_the_hash_and_one_with_it_changes_it():
    plain = {"hard": {"task": {"source": "tiny_product", "n_digits": 6}}}
    assert "k" not in cfg(sets=plain).hashed_config()["sets"]["hard"]
    hotter = {"hard": {**plain["hard"], "temperature": 1.0}}
    assert cfg(sets=hotter).hashed_config() != cfg(sets=plain).hashed_config()
    assert cfg(sets={"hard": {**plain["hard"], "k": 16}}).set_sampling("hard") == (16, 0.6, 0.95)
    assert cfg(sets={"hard": {**plain["hard"], "top_p": 1.0}}).set_sampling("hard")[1:] == (0.6, 1.0)
    assert cfg(sets={"hard": {**plain["hard"], "top_p": 1.0}}).hashed_config() != cfg(sets=plain).hashed_config()


def test_tiny_measures_r1_zero_length_on_the_samples_r1_zero_trained_on():
    """The paper's length curve is of RL's own samples: tiny.yaml's rollout set samples as r1_zero's GRPO does."""
    spec = load_spec(CONFIGS / "tiny.yaml")
    grpo, stage = spec.stage("r1_zero"), spec.stage("evaluate")
    _, temperature, top_p = stage.set_sampling("rollout")
    assert (temperature, top_p) == (grpo.temperature, grpo.top_p)
    assert stage.sets["rollout"].task == grpo.task and stage.sets["rollout"].max_new_tokens == grpo.max_completion_length
    (length,) = [f for f in spec.findings if f.name == "r1_zero_length"]
    assert {side.set for _, side in length.sides()} == {"rollout"}
