"""Generation with Hugging Face ``generate``: the engine that needs nothing beyond transformers.

Left padding, KV cache, batches of prompts x samples; returns for each prompt its samples as
``Completion`` records (text decoded without special tokens, generated token ids and count, and
whether it hit the length limit before the end-of-sequence token).

* ``generate(model, tokenizer, prompts, ...)``: one call on a model the caller holds (evaluation,
  sampling, held-out checks during RL);
* ``HFEngine``: the ``RolloutEngine`` of ``rollout/base.py``: its own copy of the model, in
  bfloat16 where the CPU has bf16 instructions (on AVX512-BF16 / AMX CPUs that is faster than
  float32 for SmolLM2, see ``bench/rollout.py``), brought in line with the policy by
  ``update_weights`` (a ``load_state_dict``, casting on the way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from r1pipeline.rollout.base import Completion, Prompt, default_dtype

__all__ = ["Completion", "HFEngine", "encode", "generate", "generate_ids"]


def encode(tokenizer, prompts: Sequence[Prompt]) -> list[list[int]]:
    """Token ids of each prompt: text is tokenized without special tokens, ids pass through."""
    texts = [i for i, p in enumerate(prompts) if isinstance(p, str)]
    ids: list[list[int]] = [list(p) if not isinstance(p, str) else [] for p in prompts]
    if texts:
        enc = tokenizer([prompts[i] for i in texts], add_special_tokens=False)["input_ids"]
        for i, row in zip(texts, enc):
            ids[i] = list(row)
    return ids


def _left_pad(rows: list[list[int]], pad_id: int):
    """(B, T) input ids and attention mask, padded on the left."""
    import torch

    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            input_ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r):] = 1
    return input_ids, mask


def _completion(tokenizer, row: list[int], eos: set[int]) -> Completion:
    """Cut a generated row after its first end-of-sequence token (the rest is padding)."""
    end = next((i for i, t in enumerate(row) if t in eos), None)
    kept = row if end is None else row[:end + 1]
    return Completion(tokenizer.decode(kept, skip_special_tokens=True), len(kept), end is None, tuple(kept))


def generate_ids(model, tokenizer, prompt_ids: list[list[int]], *, num_samples: int = 1,
                 temperature: float = 0.6, top_p: float = 0.95, max_new_tokens: int = 64,
                 batch_size: int = 64, greedy: bool = False, eos_token_ids: Iterable[int] | None = None,
                 ignore_eos: bool = False, progress=None) -> list[list[Completion]]:
    """``num_samples`` completions for each tokenized prompt; the caller seeds torch's RNG."""
    import torch

    was_training = model.training
    model.eval()
    expanded = [p for p in prompt_ids for _ in range(num_samples)]
    eos = set(eos_token_ids) if eos_token_ids is not None else {tokenizer.eos_token_id}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out: list[Completion] = []
    try:
        for i in range(0, len(expanded), batch_size):
            batch = expanded[i:i + batch_size]
            input_ids, mask = _left_pad(batch, pad)
            with torch.inference_mode():
                gen = model.generate(
                    input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                    do_sample=not greedy, temperature=None if greedy else temperature,
                    top_p=None if greedy else top_p, top_k=None, pad_token_id=pad,
                    eos_token_id=sorted(eos) if len(eos) > 1 else next(iter(eos)),
                    min_new_tokens=max_new_tokens if ignore_eos else None)
            new = gen[:, input_ids.shape[1]:]  # (B, T_new)
            out.extend(_completion(tokenizer, row, eos) for row in new.tolist())
            if progress is not None:
                progress.update(len(batch))
    finally:
        model.train(was_training)
    return [out[j * num_samples:(j + 1) * num_samples] for j in range(len(prompt_ids))]


def generate(model, tokenizer, prompts: list[str], *, num_samples: int = 1, temperature: float = 0.6,
             top_p: float = 0.95, max_new_tokens: int = 64, batch_size: int = 64,
             greedy: bool = False, seed: int = 0, progress=None) -> list[list[Completion]]:
    """``num_samples`` completions for each prompt (prompt order kept); seeds torch's global RNG."""
    import torch

    torch.manual_seed(seed)
    return generate_ids(model, tokenizer, encode(tokenizer, prompts), num_samples=num_samples,
                        temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                        batch_size=batch_size, greedy=greedy, progress=progress)


def eos_token_ids(tokenizer, model) -> list[int]:
    """The tokenizer's end-of-sequence id plus any the model's generation config names."""
    ids = {tokenizer.eos_token_id}
    extra = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(extra if isinstance(extra, list) else [extra])
    return sorted(i for i in ids if i is not None)


class HFEngine:
    """``RolloutEngine`` on transformers: a private copy of the model in the engine's dtype.

    ``model`` (optional) serves an already-loaded module instead of loading ``model_path``;
    ``update_weights`` with that same module is then free.
    """

    kind = "hf"

    def __init__(self, model_path: str | Path, *, dtype: str = "auto", batch_size: int = 64,
                 model=None, tokenizer=None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.dtype = default_dtype() if dtype == "auto" else dtype
        self.batch_size = batch_size
        self.tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(model_path)
        if model is None:
            model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, self.dtype))
        self.model = model.eval()
        self.eos_token_ids = eos_token_ids(self.tokenizer, self.model)

    def generate(self, prompts: Sequence[Prompt], *, num_samples: int = 1, temperature: float = 1.0,
                 top_p: float = 1.0, max_new_tokens: int = 64, seed: int = 0,
                 ignore_eos: bool = False) -> list[list[Completion]]:
        """Sampled completions; torch's global RNG is left as it was (training keeps its stream)."""
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return generate_ids(self.model, self.tokenizer, encode(self.tokenizer, prompts),
                                num_samples=num_samples, temperature=temperature, top_p=top_p,
                                max_new_tokens=max_new_tokens, batch_size=self.batch_size,
                                eos_token_ids=self.eos_token_ids, ignore_eos=ignore_eos)

    def update_weights(self, model) -> None:
        """Copy ``model``'s parameters and buffers in (cast to the engine's dtype)."""
        if model is self.model:
            return
        import torch

        with torch.no_grad():
            self.model.load_state_dict(model.state_dict())

    def close(self) -> None:
        self.model = None
