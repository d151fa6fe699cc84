"""Generation with Hugging Face models: the engine that needs nothing beyond transformers.

Llama-family models on the CPU decode with ``rollout/lean.py``'s loop (the same tokens, without
``generate``'s per-step overheads); every other model with ``generate``.

Left padding, KV cache, batches of prompts x samples; returns for each prompt its samples as
``Completion`` records (text decoded without special tokens, generated token ids and count, and
whether it hit the length limit before the end-of-sequence token).

Sampling draws from one random stream per sequence, seeded from the call's seed, the prompt's
position and the sample's number (``sequence_seed``, ``SeededSampler``): a completion does not
depend on the other sequences of its batch, on the batch size, or on which process generates
it. ``shard=True`` splits the batches over the processes of a multi-process run
(``r1pipeline.distributed``) and hands every process all completions, equal to what one process
generates alone, since each batch is generated whole, exactly as one process would (a forward
pass need not give bit-identical logits for a row in another batch: padding and kernel choice
move with the batch's shape).

* ``generate(model, tokenizer, prompts, ...)``: one call on a model the caller holds (evaluation,
  sampling, held-out checks during RL);
* ``HFEngine``: the ``RolloutEngine`` of ``rollout/base.py``: its own copy of the model, in
  ``dtype="auto"``: bfloat16 where it measured clearly faster than float32 at the model's shapes
  (``precision.py``; on AMX CPUs it is for SmolLM2, see ``bench/rollout.py``; on AVX2-only CPUs
  it is tens of times slower), brought in line with the policy by
  ``update_weights`` (a ``load_state_dict``, casting on the way).
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Iterable, Sequence

from r1pipeline.rollout import lean
from r1pipeline.rollout.base import Completion, Prompt, resolve_dtype

__all__ = ["Completion", "HFEngine", "SeededSampler", "encode", "generate", "generate_ids", "sequence_seed"]


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


def sequence_seed(seed: int, prompt: int, sample: int) -> int:
    """The seed of the random stream of sample ``sample`` of the ``prompt``-th prompt of a call.

    >>> sequence_seed(0, 3, 1) == sequence_seed(0, 3, 1) != sequence_seed(0, 1, 3)
    True
    """
    digest = hashlib.blake2b(f"{seed}:{prompt}:{sample}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class SeededSampler:
    """A logits processor that draws each row's next token from that row's own random stream.

    HF's own sampling (``torch.multinomial`` on torch's global generator) ties a row's draws to
    the rows before it in its batch. Here temperature and top-p are HF's own warpers, then each
    row takes one uniform number per step from its ``random.Random`` (seeded by
    ``sequence_seed``) and picks its token by inverse CDF; the returned scores keep only the
    picked token, which ``generate`` in greedy mode then emits. Per step this costs one softmax
    and one cumulative sum over (B, V), about what ``torch.multinomial`` costs.
    """

    def __init__(self, seeds: Sequence[int], temperature: float = 1.0, top_p: float = 1.0):
        from transformers import TemperatureLogitsWarper, TopPLogitsWarper

        self.streams = [random.Random(s) for s in seeds]
        self.warpers = ([TemperatureLogitsWarper(temperature)] if temperature != 1.0 else []) + \
                       ([TopPLogitsWarper(top_p)] if top_p < 1.0 else [])

    def pick(self, scores, rows=None, input_ids=None):
        """(b,) token ids drawn from the (b, V) ``scores``, one uniform number from each row's stream.

        ``rows``: the streams of these rows (indices into ``seeds``), for a batch some of whose rows
        have left (``rollout/lean.py``); None: every row, in order."""
        import torch

        for warp in self.warpers:
            scores = warp(input_ids, scores)
        cdf = scores.float().softmax(-1).cumsum(-1)  # (b, V), non-decreasing along V
        total = cdf[:, -1:]  # (b, 1), 1 up to rounding
        streams = self.streams if rows is None else [self.streams[i] for i in rows.tolist()]
        u = torch.tensor([[s.random()] for s in streams], dtype=cdf.dtype, device=cdf.device)
        # strictly below the total, so that the first entry above it has positive probability
        target = torch.minimum(u * total, torch.nextafter(total, torch.zeros_like(total)))
        return torch.searchsorted(cdf, target, right=True)[:, 0]

    def __call__(self, input_ids, scores):
        """The logits-processor form, for ``generate``: only the picked token keeps a finite score."""
        import torch

        choice = self.pick(scores, input_ids=input_ids)[:, None]
        return torch.full_like(scores, float("-inf")).scatter_(1, choice, 0.0)


def generate_ids(model, tokenizer, prompt_ids: list[list[int]], *, num_samples: int = 1,
                 temperature: float = 0.6, top_p: float = 0.95, max_new_tokens: int = 64,
                 batch_size: int = 64, greedy: bool = False, seed: int = 0,
                 eos_token_ids: Iterable[int] | None = None, ignore_eos: bool = False,
                 shard: bool = False, progress=None, lean_decode: bool = True,
                 compact: bool = True) -> list[list[Completion]]:
    """``num_samples`` completions for each tokenized prompt, prompt order kept.

    Sequences (prompt x sample, prompt-major) go in batches of ``batch_size``. ``shard``: this
    process generates every world-size-th batch, and every process receives all completions
    (a collective: every process of the run must call it). Torch's global RNG is not used.
    ``lean_decode``: models ``rollout/lean.py`` takes are decoded by its loop (False: always HF
    ``generate``; the two pick the same tokens up to float rounding). ``compact``: the lean loop drops
    finished rows from its batch (False: keeps them to the end, as ``generate`` does; same tokens).
    """
    from r1pipeline import distributed

    sequences = [(p, j) for p in range(len(prompt_ids)) for j in range(num_samples)]
    batches = [sequences[i:i + batch_size] for i in range(0, len(sequences), batch_size)]
    mine = distributed.shard(batches) if shard else batches
    eos = set(eos_token_ids) if eos_token_ids is not None else {tokenizer.eos_token_id}
    # the bar counts every process's sequences: the others advance at about this process's pace
    scale = len(sequences) / max(1, sum(len(b) for b in mine))
    was_training = model.training
    model.eval()
    done: list[list[Completion]] = []
    generated = shown = 0
    try:
        for batch in mine:
            seeds = None if greedy else [sequence_seed(seed, p, j) for p, j in batch]
            done.append(_generate_batch(model, tokenizer, [prompt_ids[p] for p, _ in batch], seeds,
                                        temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                                        eos=eos, ignore_eos=ignore_eos, lean_decode=lean_decode, compact=compact))
            generated += len(batch)
            if progress is not None:
                progress.update(round(generated * scale) - shown)
                shown = round(generated * scale)
    finally:
        model.train(was_training)
    if shard:
        done = distributed.merge(distributed.gather_object(done))
    flat = [c for batch in done for c in batch]
    return [flat[j * num_samples:(j + 1) * num_samples] for j in range(len(prompt_ids))]


def _generate_batch(model, tokenizer, rows: list[list[int]], seeds: list[int] | None, *, temperature: float,
                    top_p: float, max_new_tokens: int, eos: set[int], ignore_eos: bool,
                    lean_decode: bool = True, compact: bool = True) -> list[Completion]:
    """One completion per row; greedy when ``seeds`` is None, else sampled from each row's stream."""
    import torch
    from transformers import LogitsProcessorList

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids, mask = _left_pad(rows, pad)
    if lean_decode and lean.supports(model):
        sampler = SeededSampler(seeds, temperature, top_p) if seeds else None
        pick = sampler.pick if sampler else (lambda logits, rows: logits.argmax(-1))
        with torch.inference_mode():
            new = lean.decode(model, input_ids, mask, max_new_tokens=max_new_tokens, pick=pick, eos=eos,
                              pad_id=pad, ignore_eos=ignore_eos, compact=compact)
        return [_completion(tokenizer, row, eos) for row in new.tolist()]
    with torch.inference_mode():
        gen = model.generate(
            input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device),
            max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None, top_k=None,
            logits_processor=LogitsProcessorList([SeededSampler(seeds, temperature, top_p)] if seeds else []),
            pad_token_id=pad, eos_token_id=sorted(eos) if len(eos) > 1 else next(iter(eos)),
            min_new_tokens=max_new_tokens if ignore_eos else None)
    new = gen[:, input_ids.shape[1]:]  # (B, T_new)
    return [_completion(tokenizer, row, eos) for row in new.tolist()]


def generate(model, tokenizer, prompts: list[str], *, num_samples: int = 1, temperature: float = 0.6,
             top_p: float = 0.95, max_new_tokens: int = 64, batch_size: int = 64, greedy: bool = False,
             seed: int = 0, shard: bool = False, progress=None) -> list[list[Completion]]:
    """``num_samples`` completions for each prompt (prompt order kept); see ``generate_ids``."""
    return generate_ids(model, tokenizer, encode(tokenizer, prompts), num_samples=num_samples,
                        temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                        batch_size=batch_size, greedy=greedy, seed=seed, shard=shard, progress=progress)


def eos_token_ids(tokenizer, model) -> list[int]:
    """The tokenizer's end-of-sequence id plus any the model's generation config names."""
    ids = {tokenizer.eos_token_id}
    extra = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(extra if isinstance(extra, list) else [extra])
    return sorted(i for i in ids if i is not None)


class HFEngine:
    """``RolloutEngine`` on transformers: a private copy of the model in the engine's dtype.

    ``model`` (optional) serves an already-loaded module instead of loading ``model_path``;
    ``update_weights`` with that same module is then free. ``lean_decode=False``: HF ``generate``
    even where ``rollout/lean.py`` takes the model (benchmarks).
    """

    kind = "hf"

    def __init__(self, model_path: str | Path, *, dtype: str = "auto", batch_size: int = 64,
                 model=None, tokenizer=None, lean_decode: bool = True):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.dtype = resolve_dtype(dtype, model_path, device="cpu")  # auto: measured (precision.py)
        self.batch_size = batch_size
        self.lean_decode = lean_decode
        self.tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(model_path)
        if model is None:  # a module handed in keeps its mode (a policy under training); generate_ids
            model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, self.dtype)).eval()
        self.model = model  # switches to eval mode while it generates, and back
        self.eos_token_ids = eos_token_ids(self.tokenizer, self.model)

    def generate(self, prompts: Sequence[Prompt], *, num_samples: int = 1, temperature: float = 1.0,
                 top_p: float = 1.0, max_new_tokens: int = 64, seed: int = 0,
                 ignore_eos: bool = False) -> list[list[Completion]]:
        """Sampled completions; torch's global RNG is left as it was (training keeps its stream)."""
        return generate_ids(self.model, self.tokenizer, encode(self.tokenizer, prompts),
                            num_samples=num_samples, temperature=temperature, top_p=top_p,
                            max_new_tokens=max_new_tokens, batch_size=self.batch_size, seed=seed,
                            eos_token_ids=self.eos_token_ids, ignore_eos=ignore_eos, lean_decode=self.lean_decode)

    def update_weights(self, model) -> None:
        """Copy ``model``'s parameters and buffers in (cast to the engine's dtype)."""
        if model is self.model:
            return
        import torch

        with torch.no_grad():
            self.model.load_state_dict(model.state_dict())

    def close(self) -> None:
        self.model = None
