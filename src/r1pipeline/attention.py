"""Which attention kernel a CPU training step runs: ``attention: auto`` decided by measurement.

transformers' default, ``sdpa`` (PyTorch's fused ``scaled_dot_product_attention``), is not the
fastest kernel everywhere on a CPU. Packed pretraining passes an arbitrary boolean mask (causal
within each document, ``stages/pretrain.pack_batch``), and there the fused kernel's backward in
bf16 costs more than the whole rest of the layer; the plain ``eager`` attention (two matmuls and
a softmax) does not. Measured on the tiny teacher's packed batches (ms per optimizer step, best of
12 after warm-up):

================================  ==========  ==========  ==========  ==========
CPU, threads                      sdpa bf16   eager bf16  sdpa fp32   eager fp32
================================  ==========  ==========  ==========  ==========
AMD EPYC Zen 4 (AVX512-BF16), 2   384         266         419         417
AMD EPYC Zen 4 (AVX512-BF16), 1   613         400         721         692
================================  ==========  ==========  ==========  ==========

(On an AMX Xeon, one thread, PyTorch's own math backend for sdpa ran the step 1.28x faster than
the fused one in bf16, 0.96x in fp32.) So the better kernel depends on the dtype, the threads and
the CPU, and an attention-only micro-benchmark mispredicts it (on the Zen 4 in fp32 it favours
sdpa by 32 ms a step where the whole step is a tie): ``auto`` times the step itself.

A boolean 4-D mask means "may attend" to sdpa but is *added* to the scores by transformers'
eager attention (True as +1, False as 0: every token sees every other, the future included).
``mask_for`` gives each kernel the mask it reads: additive (0 / the dtype's minimum) for eager.

* ``resolve(requested, step=..., key=...)``: an explicit ``sdpa`` / ``eager`` is kept; ``auto``
  on CUDA is ``sdpa`` (the fused GPU kernels); on a CPU, ``step(impl)`` (one forward + backward of
  the real model on the real first batch, gradients thrown away, no weights changed, no random
  numbers drawn) runs for each kernel, interleaved in alternating order, ``ROUNDS`` times after a
  warm-up, and the best time of each counts. ``eager`` is chosen only when it is at least
  ``MARGIN`` times faster: sdpa is what every other stage and every user's model runs. On several
  processes rank 0 measures and the others take its choice (``resolve_agreed``).
* A cache, ``attention.json`` beside the precision cache (``machine_cache.py``), keyed by the
  caller's ``key`` (machine, torch, threads, dtype, shapes); a measurement on a busy machine is
  used, not cached.
* ``R1_ATTENTION_AUTO=sdpa`` (or ``eager``) makes ``auto`` that kernel without measuring;
  ``R1_ATTENTION_AUTO=measure`` measures again and updates the cache.

The choice never changes a stage's hash (like ``dtype: auto``): the manifest's ``precision``
entry records it under ``attention`` with the measured seconds. torch is not imported here.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from r1pipeline import machine, machine_cache, precision

IMPLEMENTATIONS = ("sdpa", "eager")
CHOICES = ("auto", *IMPLEMENTATIONS)
MARGIN = 1.1          # eager must be this many times faster than sdpa to be chosen
ROUNDS = 4            # timed pairs after one warm-up pair, in alternating order
ENV_FORCE = "R1_ATTENTION_AUTO"
CACHE_FILE = "attention.json"


@dataclass(frozen=True)
class AttentionDecision:
    """A concrete kernel and why; ``record()`` is the manifest's ``precision.attention`` entry."""

    impl: str
    reason: str
    source: str                        # spec | env | device | measured | cached
    requested: str = "auto"
    seconds: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"requested": self.requested, "impl": self.impl, "reason": self.reason,
                               "source": self.source}
        if self.seconds:
            out["step_seconds"] = {k: round(v, 4) for k, v in self.seconds.items()}
        return {**out, **self.extra}


def decide(seconds: Mapping[str, float]) -> tuple[str, str]:
    """(kernel, reason) from best seconds per step of each kernel.

    >>> decide({"sdpa": 0.409, "eager": 0.277})
    ('eager', 'eager steps ran 1.48x sdpa (277 vs 409 ms), at least 1.1x')
    >>> decide({"sdpa": 0.443, "eager": 0.421})[0]
    'sdpa'
    """
    sdpa, eager = seconds["sdpa"], seconds["eager"]
    ratio = sdpa / eager if eager > 0 else 0.0
    verdict = f"at least {MARGIN}x" if ratio >= MARGIN else f"under {MARGIN}x: sdpa kept"
    reason = f"eager steps ran {ratio:.2f}x sdpa ({eager * 1e3:.0f} vs {sdpa * 1e3:.0f} ms), {verdict}"
    return ("eager" if ratio >= MARGIN else "sdpa"), reason


def time_steps(step: Callable[[str], None], rounds: int = ROUNDS,
               clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Best seconds of ``step(impl)`` per kernel: one untimed warm-up each, then ``rounds``
    interleaved pairs whose order alternates (sdpa first, then eager first: a burst of load from
    elsewhere hits both kernels alike, and neither always runs on the other's freshly warmed caches)."""
    best = {impl: float("inf") for impl in IMPLEMENTATIONS}
    for r in range(rounds + 1):
        for impl in (IMPLEMENTATIONS if r % 2 == 0 else IMPLEMENTATIONS[::-1]):
            t = clock()
            step(impl)
            if r:
                best[impl] = min(best[impl], clock() - t)
    return best


def mask_for(impl: str, mask):
    """``mask`` (boolean, True = may attend) in the form ``impl`` reads: as it is for sdpa, additive
    float32 (0 where allowed, float32's minimum elsewhere) for eager."""
    import torch

    if impl != "eager" or mask.dtype != torch.bool:
        return mask
    return torch.zeros(mask.shape, dtype=torch.float32).masked_fill(~mask, torch.finfo(torch.float32).min)


def cache_key(threads: int, dtype: str, shape: str, torch_version: str) -> str:
    """The machine (as ``precision.cache_key`` names it), the step's dtype and its shape.

    >>> cache_key(2, "bfloat16", "llama h128 l4 a4 i512 b128x128", "2.13.0").split("|")[-2:]
    ['dtype=bfloat16', 'step=llama h128 l4 a4 i512 b128x128']
    """
    facts = machine.machine_facts("cpu")
    return f"{precision.cache_key(facts, threads, (), torch_version)}|dtype={dtype}|step={shape}"


def resolve(requested: str, *, step: Callable[[str], None], key: str, device: str = "cpu") -> AttentionDecision:
    """``requested`` made concrete (see the module docstring); ``step`` runs only when measuring."""
    if requested != "auto":
        if requested not in IMPLEMENTATIONS:
            raise ValueError(f"attention {requested!r} is not one of {', '.join(CHOICES)}; fix: use one of those")
        return AttentionDecision(requested, "set in the spec", "spec", requested=requested)
    forced = os.environ.get(ENV_FORCE, "").strip()
    if forced and forced != "measure":
        if forced not in IMPLEMENTATIONS:
            raise ValueError(f"{ENV_FORCE}={forced!r} is not a kernel; fix: set it to sdpa, eager or measure, "
                             f"or unset it")
        return AttentionDecision(forced, f"{ENV_FORCE}={forced} in the environment", "env")
    if machine.device_type(device) != "cpu":
        return AttentionDecision("sdpa", "fused kernels on this device", "device")
    path = machine_cache.cache_dir() / CACHE_FILE
    cached = machine_cache.read_entries(path).get(key) if forced != "measure" else None
    if _valid(cached):
        seconds = {impl: float(cached["seconds"][impl]) for impl in IMPLEMENTATIONS}
        return AttentionDecision(*decide(seconds), "cached", seconds=seconds, extra={"cache": str(path)})
    seconds = time_steps(step)
    load = machine_cache.machine_load()
    extra: dict[str, Any] = {"cache": str(path), "load_per_core": load}
    if machine_cache.busy(load):
        extra["not_cached"] = f"load {load:.2f} per core while measuring"
    elif not machine_cache.write_entry(path, key, {"seconds": seconds}):
        extra["not_cached"] = "the cache folder is not writable"
    return AttentionDecision(*decide(seconds), "measured", seconds=seconds, extra=extra)


def resolve_agreed(requested: str, *, step: Callable[[str], None], key: str,
                   device: str = "cpu") -> AttentionDecision:
    """``resolve`` on rank 0, the same decision on every rank (data-parallel ranks run one kernel;
    only rank 0 runs ``step``, which must not need the other ranks)."""
    from r1pipeline import distributed

    decision = resolve(requested, step=step, key=key, device=device) if distributed.is_main() else None
    return distributed.broadcast_object(decision)


def _valid(entry: Any) -> bool:
    try:
        return all(float(entry["seconds"][impl]) > 0 for impl in IMPLEMENTATIONS)
    except (KeyError, TypeError, ValueError):
        return False
