"""Model cards: every model/ of a run carries a README.md that huggingface_hub reads, naming the
stage, its recipe step, its lineage back to the base model, its settings and its evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard

from r1pipeline.pipeline import model_card
from r1pipeline.pipeline.runner import plan_run, run_pipeline, stage_hashes
from r1pipeline.pipeline.spec import load_spec, validate_raw
from tests.conftest import CONFIGS

MICRO = yaml.safe_load((CONFIGS / "micro.yaml").read_text())


def _fake_run(tmp_path: Path, spec, evaluated: dict[str, dict] | None = None, stale: set[str] = frozenset(),
              sets: dict[str, dict] | None = None):
    """A run directory of ``spec`` with manifests (the spec's hashes), empty model folders and an
    evaluate summary scoring ``evaluated``; ``stale`` models were retrained after the evaluation."""
    hashes, names = stage_hashes(spec), set(spec.stage_names)
    run = tmp_path / "run"
    for s in spec.order():
        d = run / s.name
        d.mkdir(parents=True)
        inputs = {i: ("old" if i in stale else hashes[i]) for i in s.inputs(names)}
        (d / "manifest.json").write_text(json.dumps({"stage": s.name, "kind": s.kind, "hash": hashes[s.name],
                                                     "status": "done", "seed": 0, "inputs": inputs,
                                                     "versions": {"transformers": "4.x"}}))
        if s.makes_model:
            (d / "model").mkdir()
    if evaluated is not None:
        summary = {"k": 2, "n_prompts": 16, "models": evaluated}
        if sets:
            summary["sets"] = {name: {"n_prompts": 8, "models": models} for name, models in sets.items()}
        (run / "evaluate" / "summary.json").write_text(json.dumps(summary))
    return run


def _metrics(p: float) -> dict:
    return {"pass@1": p, "pass@1_ci": [p - 0.1, p + 0.1], "cons@k": p, "cons@k_ci": [p - 0.2, p + 0.2],
            "format_rate": 0.9, "mean_length": 12.0}


@pytest.fixture
def micro_spec():
    return load_spec(CONFIGS / "micro.yaml")


def test_every_model_of_the_micro_spec_gets_a_card_that_names_its_lineage(tmp_path, micro_spec):
    models = micro_spec.stage("evaluate").models
    run = _fake_run(tmp_path, micro_spec, {m: _metrics(0.5) for m in models})
    for s in micro_spec.order():
        model_card.write_cards(micro_spec, s, run)
    for s in micro_spec.stages:
        card_path = run / s.name / "model" / "README.md"
        assert card_path.exists() == s.makes_model, s.name
        if not s.makes_model:
            continue
        card = ModelCard.load(card_path)
        assert card.data.library_name == "transformers"
        assert {"r1pipeline", "deepseek-r1-recipe", s.kind} <= set(card.data.tags)
        chain, _ = model_card.init_chain(micro_spec, s.name)
        assert " ← ".join(f"`{n}`" for n in chain) in card.text
        assert f"- **kind:** `{s.kind}`" in card.text
        assert ("0.500 [0.400, 0.600]" in card.text) == (s.name in models), s.name


def test_card_text_of_all_scenario_rl(tmp_path, micro_spec):
    run = _fake_run(tmp_path, micro_spec, {"all_scenario_rl": _metrics(0.75)})
    text = model_card.card_text(micro_spec, run, "all_scenario_rl")
    card = ModelCard(text)
    assert card.data.pipeline_tag == "text-generation" and "trl" in card.data.tags
    assert card.data.base_model is None  # the lineage starts from scratch: no Hub base model
    assert "RL for all scenarios (DeepSeek-R1 step 4" in text
    assert "`all_scenario_rl` ← `sft` ← `base` ← trained from scratch" in text
    assert "| `sft` | sft | rejection-sampling SFT | `base` | data `rejection_sampling` (sample of " \
           "`reasoning_rl`); data `cold_start` (sample of `r1_zero`, `base`) |" in text
    assert "reward model `reward_helpful` (reward_model from `base`)" in text
    assert "| `base` | pretrain | base model | scratch | task mix of tiny_product (n_digits=3, weight=0.8)" in text
    settings = yaml.safe_load(text.split("```yaml\n")[1].split("```")[0])
    assert settings["init"] == "sft" and settings["steps"] == 2 and "learning_rate" not in settings  # a default
    assert "| heldout | 0.750 [0.650, 0.850] | 0.750 [0.550, 0.950] | 0.900 | 12.000 |" in text
    result = card.data.eval_results[0]
    assert (result.metric_type, result.metric_value, result.dataset_name) == ("pass@1", 0.75, "evaluate: heldout")
    assert card.data.model_name == "micro/all_scenario_rl"


def test_reward_model_card_is_a_classifier(tmp_path, micro_spec):
    run = _fake_run(tmp_path, micro_spec)
    card = ModelCard(model_card.card_text(micro_spec, run, "reward_harmless"))
    assert card.data.pipeline_tag == "text-classification"
    assert "AutoModelForSequenceClassification" in card.text
    assert "harmlessness reward model" in card.text
    assert "Not evaluated yet" in card.text and card.data.eval_results is None


def test_an_evaluation_of_an_older_model_is_not_on_the_card(tmp_path, micro_spec):
    run = _fake_run(tmp_path, micro_spec, {"sft": _metrics(0.5), "distill": _metrics(0.6)}, stale={"sft"})
    assert "Not evaluated yet" in model_card.card_text(micro_spec, run, "sft")
    assert "0.600 [0.500, 0.700]" in model_card.card_text(micro_spec, run, "distill")


def test_an_extra_evaluation_set_is_a_row_and_a_result(tmp_path):
    raw = json.loads(json.dumps(MICRO))
    raw["stages"][-1]["sets"] = {"hard": {"task": {"source": "reasoning_gym", "datasets": {"basic_arithmetic": {}}},
                                          "models": ["sft"]}}
    spec = validate_raw(raw, "micro.yaml", CONFIGS)
    run = _fake_run(tmp_path, spec, {"sft": _metrics(0.5)}, sets={"hard": {"sft": _metrics(0.25)}})
    card = ModelCard(model_card.card_text(spec, run, "sft"))
    assert "| heldout | 0.500 [0.400, 0.600] |" in card.text and "| hard | 0.250 [0.150, 0.350] |" in card.text
    by_set = {(r.dataset_name, r.dataset_type) for r in card.data.eval_results}
    assert by_set == {("evaluate: heldout", "r1pipeline/tiny_product"), ("evaluate: hard", "r1pipeline/reasoning_gym")}


def test_a_hub_model_at_the_root_is_the_base_model(tmp_path):
    data = tmp_path / "sft.jsonl"
    data.write_text(json.dumps({"prompt": "2*3?", "completion": "<think>6</think><answer>6</answer>"}) + "\n")
    raw = {"name": "smol", "stages": [
        {"name": "r1_zero", "kind": "grpo", "init": "smollm2-135m-instruct", "task": {"source": "tiny_product"},
         "rewards": {"accuracy": 1.0}},
        {"name": "sft", "kind": "sft", "init": "r1_zero", "data": [str(data)]}]}
    spec = validate_raw(raw, base_dir=CONFIGS)
    run = _fake_run(tmp_path, spec)
    card = ModelCard(model_card.card_text(spec, run, "sft"))
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert card.data.base_model_relation == "finetune"
    assert "`sft` ← `r1_zero` ← `smollm2-135m-instruct`" in card.text
    assert f"file `{data}`" in card.text


def test_a_card_that_fails_is_logged_not_raised(tmp_path, micro_spec, monkeypatch):
    run = _fake_run(tmp_path, micro_spec)
    monkeypatch.setattr(model_card, "card_text", lambda *a, **k: 1 / 0)
    said = []
    assert model_card.write_cards(micro_spec, micro_spec.stage("base"), run, log=said.append) == []
    assert "model card not written (ZeroDivisionError" in said[0]


def _short_micro() -> dict:
    """micro.yaml cut to a base model, R1-Zero, a cold-start SFT on the curated examples alone,
    and an evaluation of the three: the runner's card paths, in seconds of training."""
    keep = {s["name"]: dict(s) for s in MICRO["stages"]}
    base = {**keep["base"], "steps": 3, "checkpoint_every": 100}
    zero = {**keep["r1_zero"], "steps": 1, "checkpoint_every": 100, "eval_every": 100, "train_prompts": 16}
    cold = {**keep["cold_start"], "sources": [s for s in keep["cold_start"]["sources"] if s["type"] == "file"]}
    sft = {**keep["cold_start_sft"], "max_rows": 16}
    evaluate = {"name": "evaluate", "kind": "evaluate", "models": ["base", "r1_zero", "cold_start_sft"],
                "task": {"source": "tiny_product", "n_digits": 3}, "template": "r1_zero_short", "n_prompts": 4,
                "k": 2, "max_new_tokens": 8, "bootstrap": 20}
    return {**{k: v for k, v in MICRO.items() if k != "stages"}, "stages": [base, zero, cold, sft, evaluate]}


def test_a_short_micro_run_leaves_a_card_in_every_model(tmp_path):
    spec = validate_raw(_short_micro(), "micro.yaml", CONFIGS)
    hashes = stage_hashes(spec)
    run_pipeline(spec, tmp_path / "run", report=False, log=lambda *_: None)
    for name in ("base", "r1_zero", "cold_start_sft"):
        card = ModelCard.load(tmp_path / "run" / name / "model" / "README.md")
        chain, _ = model_card.init_chain(spec, name)
        assert " ← ".join(f"`{n}`" for n in chain) + " ← trained from scratch" in card.text
        assert "Stage `evaluate`" in card.text and card.data.eval_results  # evaluate rewrote it
    assert not (tmp_path / "run" / "evaluate" / "model").exists()
    assert stage_hashes(spec) == hashes  # cards are no input of any hash: a rerun skips all
    assert {action for _, action in plan_run(spec, tmp_path / "run", hashes)} == {"skip"}


def test_every_model_of_the_micro_run_carries_a_card(micro_run: Path):
    spec = load_spec(micro_run / "spec.yaml")
    for s in spec.stages:
        if s.makes_model:
            card = ModelCard.load(micro_run / s.name / "model" / "README.md")
            chain, _ = model_card.init_chain(spec, s.name)
            assert " ← ".join(f"`{n}`" for n in chain) + " ← trained from scratch" in card.text, s.name
            assert (card.data.eval_results is not None) == (s.name in spec.stage("evaluate").models), s.name
