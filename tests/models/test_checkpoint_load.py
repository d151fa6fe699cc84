"""Every kind of checkpoint we write, and the converted SmolLM2, works in plain transformers.

The plain side is ``plain_load.py``, in a process that imports nothing of r1pipeline:
``AutoTokenizer`` + ``AutoModelForCausalLM.from_pretrained``, one prompt at a time with the
tokenizer's defaults, ``generate(do_sample=False)``. It must give the same text as the pipeline's
own greedy path, ``rollout.hf.generate(..., greedy=True)`` (batched, left-padded, prompts encoded
without special tokens, cut at the end-of-sequence token: what held-out checks during RL use).
Reward models (``AutoModelForSequenceClassification``) must give the scores of the
``reward_model`` reward.

The tiny checkpoints come from the session's micro run (``micro_run`` in ``tests/conftest.py``,
shared with the smoke tests), one stage of each kind that writes a model: ``base`` (pretrain),
``r1_zero`` (grpo), ``cold_start_sft`` (sft), ``reward_helpful`` (reward_model). Its ``base``
trains 300 steps instead of micro's 20, which leave it repeating one character: at 300 it writes
the R1 tags and stops at its end-of-sequence token, so the comparison sees both. One plain
process answers both tiny tests (it spends seconds importing transformers). SmolLM2 is the
conversion already in the cache (``r1 models pull smollm2-135m-instruct``); its test skips when
there is none.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from r1pipeline.models import catalog, smollm2

PLAIN = Path(__file__).with_name("plain_load.py")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "R1_NO_PROGRESS": "1"}
NEW_TOKENS = 16
# Lengths differ, so the pipeline's batch is left-padded (micro's questions have 3 digits; the last two do not).
TINY_QUESTIONS = ["2*3*4", "7*8*9", "6*1*3", "9*6", "3*7*2*8*4"]
CAUSAL_STAGES = ["base", "r1_zero", "cold_start_sft"]  # pretrain, grpo, sft


def plain_transformers(request: dict) -> dict:
    """``plain_load.py``'s answer to ``request``, from a process of its own."""
    proc = subprocess.run([sys.executable, str(PLAIN)], input=json.dumps(request), capture_output=True,
                          text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = json.loads(proc.stdout)
    assert not answer["r1pipeline_imported"]
    return answer


def pipeline_greedy(path: Path, prompts: list[str]) -> list[str]:
    """Greedy texts from the pipeline's generation path, on the model loaded as stages load it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r1pipeline.rollout.hf import generate

    model = AutoModelForCausalLM.from_pretrained(path)
    outs = generate(model, AutoTokenizer.from_pretrained(path), prompts, greedy=True, max_new_tokens=NEW_TOKENS)
    return [group[0].text for group in outs]


def tiny_prompts() -> list[str]:
    from r1pipeline.tasks.templates import render

    return [render("r1_zero_short", q) for q in TINY_QUESTIONS]


RM_PROMPTS = ["User: reverse abc Assistant: ", "User: sort dcba Assistant: "]
RM_COMPLETIONS = ["<think>reverse it</think> cba", "I cannot help with that."]


@pytest.fixture(scope="module")
def plain_tiny(micro_run: Path) -> dict:
    """Plain transformers' greedy texts of the causal checkpoints and scores of the reward model."""
    texts = [p + c + "</s>" for p, c in zip(RM_PROMPTS, RM_COMPLETIONS)]  # RewardTrainer trained at the EOS
    return plain_transformers({
        "generate": [{"path": str(micro_run / stage / "model"), "prompts": tiny_prompts(),
                      "max_new_tokens": NEW_TOKENS} for stage in CAUSAL_STAGES],
        "score": [{"path": str(micro_run / "reward_helpful" / "model"), "texts": texts}]})


def test_tiny_checkpoints_generate_the_pipelines_greedy_text_in_plain_transformers(micro_run: Path,
                                                                                   plain_tiny: dict):
    for stage, texts in zip(CAUSAL_STAGES, plain_tiny["generate"], strict=True):
        assert any(texts) and texts == pipeline_greedy(micro_run / stage / "model", tiny_prompts()), stage


def test_reward_model_checkpoint_scores_as_the_reward_does(micro_run: Path, plain_tiny: dict):
    from r1pipeline.rewards.model import RewardModel

    ours = RewardModel(path=str(micro_run / "reward_helpful" / "model"))(RM_COMPLETIONS, prompts=RM_PROMPTS)
    assert ours == pytest.approx(plain_tiny["score"][0], rel=1e-4, abs=1e-5)


def test_smollm2_conversion_generates_the_pipelines_greedy_text_in_plain_transformers():
    if not catalog.is_cached(smollm2.NAME):
        pytest.skip(f"{smollm2.NAME} not in the cache (offline?); run `r1 models pull {smollm2.NAME}`")
    from transformers import AutoTokenizer

    from r1pipeline.tasks.templates import render

    path = catalog.model_dir(smollm2.NAME)
    chat = AutoTokenizer.from_pretrained(path).apply_chat_template(
        [{"role": "user", "content": "What is 2+2?"}], tokenize=False, add_generation_prompt=True)
    prompts = [render("r1_zero", "What is 17*23?"), chat]
    plain = plain_transformers({"generate": [{"path": str(path), "prompts": prompts, "max_new_tokens": NEW_TOKENS}]})
    assert plain["generate"][0] == pipeline_greedy(path, prompts)
