"""Test hook: GRPO stages get fixed, seed-free rollouts, so runs on 1 and 2 processes can be compared.

Sampled completions cannot match across world sizes: TRL seeds each rank differently
(``set_seed(seed, device_specific=True)``) and a sampled row depends on the batch it is drawn
in. Putting this folder first on ``PYTHONPATH`` makes Python import this file at start-up in every
process (the ``r1`` parent, the launcher, each rank), and it replaces the GRPO stage's rollout with
one whose j-th completion of a prompt depends only on the prompt, j and the step. The rest of the
stage (rewards, group advantages over the gathered rewards, the loss, DDP's gradient averaging,
held-out checks, checkpoints) runs as in production.

Not collected by pytest (see ``tests/pipeline/conftest.py``): importing it patches the stage.
"""

from __future__ import annotations

import zlib

import r1pipeline.stages.grpo as grpo

# Completions of different formats and lengths, so that rewards and advantages differ within a group.
CANDIDATES = ("<think>2*3=6</think><answer>6</answer>", "<answer>6</answer>", "6",
              "<think>so so</think>", "<think>1*1=1 so 1</think><answer>1</answer> is the answer.")


class CannedRollout:
    """TRL ``rollout_func``: completion j of a prompt is ``CANDIDATES[(crc(prompt) + j + step) % 5]``."""

    def __call__(self, prompts: list[str], trainer) -> dict:
        from r1pipeline.rollout.trl_hook import tokenize_like_trl

        tok = trainer.processing_class
        seen: dict[str, int] = {}
        completion_ids = []
        for p in prompts:  # TRL passes each prompt num_generations times in a row
            j = seen[p] = seen.get(p, -1) + 1
            text = CANDIDATES[(zlib.crc32(p.encode()) + j + trainer.state.global_step) % len(CANDIDATES)]
            completion_ids.append(tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
        return {"prompt_ids": tokenize_like_trl(trainer, prompts), "completion_ids": completion_ids, "logprobs": None}

    def close(self) -> None:
        """Nothing to free."""


grpo._rollout_hook = lambda cfg, model_path, ctx, *policy_and_tokenizer: CannedRollout()
