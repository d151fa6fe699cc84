"""Generation with Hugging Face ``generate``: the engine that needs nothing beyond transformers.

Left padding, KV cache, batches of prompts x samples; returns for each prompt its samples as
``Completion`` records (text decoded without special tokens, generated token count, and
whether it hit the length limit before the end-of-sequence token).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Completion:
    text: str
    n_tokens: int      # generated tokens, end-of-sequence token included
    truncated: bool    # stopped by max_new_tokens, not by end-of-sequence


def generate(model, tokenizer, prompts: list[str], *, num_samples: int = 1, temperature: float = 0.6,
             top_p: float = 0.95, max_new_tokens: int = 64, batch_size: int = 64,
             greedy: bool = False, seed: int = 0, progress=None) -> list[list[Completion]]:
    """``num_samples`` completions for each prompt (prompt order kept)."""
    import torch

    was_training = model.training
    model.eval()
    expanded = [p for p in prompts for _ in range(num_samples)]
    out: list[Completion] = []
    eos = tokenizer.eos_token_id
    torch.manual_seed(seed)
    try:
        for i in range(0, len(expanded), batch_size):
            batch = expanded[i:i + batch_size]
            enc = tokenizer(batch, return_tensors="pt", padding=True, padding_side="left",
                            add_special_tokens=False)
            with torch.inference_mode():
                gen = model.generate(
                    **enc, max_new_tokens=max_new_tokens, do_sample=not greedy,
                    temperature=None if greedy else temperature, top_p=None if greedy else top_p,
                    top_k=None, pad_token_id=tokenizer.pad_token_id, eos_token_id=eos)
            new = gen[:, enc.input_ids.shape[1]:]  # (B, T_new)
            for row in new.tolist():
                n = row.index(eos) + 1 if eos in row else len(row)
                text = tokenizer.decode(row[:n], skip_special_tokens=True)
                out.append(Completion(text, n, eos not in row))
            if progress is not None:
                progress.update(len(batch))
    finally:
        model.train(was_training)
    return [out[j * num_samples:(j + 1) * num_samples] for j in range(len(prompts))]
