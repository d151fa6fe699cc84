"""TRL's ``rollout_func`` hook backed by a ``RolloutEngine``: GRPO's generation on our engines.

``GRPOTrainer(rollout_func=EngineRollout(factory))`` hands each generation batch to
``__call__(prompts, trainer)``, which must return ``prompt_ids``, ``completion_ids`` and
``logprobs`` (TRL 1.16, ``GRPOTrainer._generate``). What this adds around the engine:

* the engine is built on the first call (a vLLM start takes tens of seconds; nothing is started
  for a stage that is already done);
* before generating, the engine is synced to the policy whenever ``trainer.state.global_step``
  changed since the last sync, and on the first call (a resumed run's policy is the checkpoint,
  not the model the engine loaded);
* TRL passes each prompt G times in a row (its ``RepeatSampler``); the hook asks the engine for G
  samples of each distinct prompt, which lets vLLM prefill a prompt once;
* prompts are tokenized as TRL tokenizes them (plain text: the tokenizer's defaults;
  conversations: the chat template with a generation prompt), so the ids match TRL's own path;
* the seconds spent syncing and generating are logged as ``rollout/sync_seconds`` and
  ``rollout/generate_seconds`` next to TRL's metrics.

``logprobs`` are the engine's sampled-token log-probabilities when it has them (vLLM), else
None: outside TRL's vLLM mode, TRL only stores them.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from r1pipeline.rollout.base import RolloutEngine


class EngineRollout:
    """What to pass as ``GRPOTrainer(rollout_func=...)``; ``close()`` it when training ends."""

    def __init__(self, make: Callable[[], RolloutEngine]):
        self._make = make
        self.engine: RolloutEngine | None = None
        self._synced_step: int | None = None
        self._calls = 0

    def __call__(self, prompts: list, trainer) -> dict[str, Any]:
        if self.engine is None:
            self.engine = self._make()
        sync_s = self._sync(trainer)
        unique, n = group_prompts(prompts, _num_generations(trainer))
        prompt_ids = tokenize_like_trl(trainer, unique)
        start = time.perf_counter()
        outs = self.engine.generate(prompt_ids, num_samples=n, temperature=trainer.temperature,
                                    top_p=trainer.top_p, max_new_tokens=trainer.max_completion_length,
                                    seed=self._seed(trainer))
        _log(trainer, {"rollout/generate_seconds": time.perf_counter() - start,
                       **({"rollout/sync_seconds": sync_s} if sync_s is not None else {})})
        flat = [c for group in outs for c in group]
        logprobs = [list(c.logprobs) for c in flat] if all(c.logprobs is not None for c in flat) else None
        return {"prompt_ids": [list(ids) for ids in prompt_ids for _ in range(n)],
                "completion_ids": [list(c.token_ids) for c in flat],
                "logprobs": logprobs}

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def _sync(self, trainer) -> float | None:
        step = trainer.state.global_step
        if step == self._synced_step:
            return None
        start = time.perf_counter()
        self.engine.update_weights(_unwrap(trainer))
        self._synced_step = step
        return time.perf_counter() - start

    def _seed(self, trainer) -> int:
        """A fresh seed per call, reproducible from the run's seed and step."""
        self._calls += 1
        seed = getattr(getattr(trainer, "args", None), "seed", 0) or 0
        return (seed * 1_000_003 + trainer.state.global_step * 1_009 + self._calls) % 2**31


def group_prompts(prompts: list, g: int) -> tuple[list, int]:
    """(distinct prompts, samples each): TRL repeats each prompt ``g`` times in a row.

    >>> group_prompts(["a", "a", "b", "b"], 2)
    (['a', 'b'], 2)
    >>> group_prompts(["a", "b", "b"], 2)
    (['a', 'b', 'b'], 1)
    """
    if g > 1 and len(prompts) % g == 0:
        groups = [prompts[i:i + g] for i in range(0, len(prompts), g)]
        if all(all(p == grp[0] for p in grp) for grp in groups):
            return [grp[0] for grp in groups], g
    return list(prompts), 1


def tokenize_like_trl(trainer, prompts: list) -> list[list[int]]:
    """Prompt ids as ``GRPOTrainer._tokenize_prompts`` makes them (text and chat prompts, no tools)."""
    tok = trainer.processing_class
    if isinstance(prompts[0], str):
        return [list(ids) for ids in tok(text=prompts)["input_ids"]]
    enc = tok.apply_chat_template(conversation=prompts, chat_template=getattr(trainer, "chat_template", None),
                                  add_generation_prompt=True, tokenize=True, return_dict=True,
                                  **(getattr(trainer, "chat_template_kwargs", None) or {}))
    return [list(ids) for ids in enc["input_ids"]]


def _num_generations(trainer) -> int:
    training = getattr(trainer.model, "training", True)
    return trainer.num_generations if training else getattr(trainer, "num_generations_eval", trainer.num_generations)


def _unwrap(trainer):
    accelerator = getattr(trainer, "accelerator", None)
    return accelerator.unwrap_model(trainer.model) if accelerator is not None else trainer.model


def _log(trainer, values: dict[str, float]) -> None:
    metrics = getattr(trainer, "_metrics", None)
    if metrics is None:
        return
    mode = "train" if getattr(trainer.model, "training", True) else "eval"
    for key, value in values.items():
        metrics[mode][key].append(value)
