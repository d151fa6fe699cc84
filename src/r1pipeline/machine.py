"""What machine this is: the CPU's model and ISA flags, the ISA caps set in the environment, the
device type, and the GEMM ceiling benchmarks compare against. ``precision.py``, ``attention.py``
and ``rollout/choice.py`` key their measurements on these facts; reports and benchmarks print them.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

# environment variables that cap the instructions torch, MKL and oneDNN use (an AVX-512 machine run as
# an AVX2 one): rates measured under one cap say nothing of another, so they join the cache key
ISA_LIMITS = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
# /proc/cpuinfo flags that bear on bf16 and vector width (x86 "flags", aarch64 "Features")
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx_ne_convert", "asimd", "bf16", "sve", "i8mm")


@dataclass(frozen=True)
class Facts:
    """What is known about the machine before measuring."""

    device: str                        # cpu | cuda | mps
    arch: str = ""                     # platform.machine(): x86_64, aarch64, arm64
    cpu_model: str = ""
    isa: tuple[str, ...] = ()          # the ISA_FLAGS this CPU has
    cuda_bf16: bool | None = None      # torch.cuda.is_bf16_supported(), on a CUDA device
    isa_limits: tuple[str, ...] = ()   # "NAME=value" of the ISA_LIMITS set in the environment

    @property
    def cpu_class(self) -> str:
        """``AMX``, ``AVX-512``, ``AVX2`` or the architecture: what decides GEMM speed by dtype (and
        the environment's ISA caps, where set: an AVX-512 machine run as an AVX2 one says so).

        >>> Facts("cpu", "x86_64", isa=("avx2", "avx512f", "amx_bf16")).cpu_class, Facts("cpu", "aarch64").cpu_class
        ('AMX', 'aarch64')
        """
        name = next((name for flag, name in (("amx_bf16", "AMX"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))
                     if flag in self.isa), self.arch or "unknown")
        return f"{name} capped by {' '.join(self.isa_limits)}" if self.isa_limits else name


def isa_limits(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The ISA caps set in ``env`` (default: this process's), as ``NAME=value``.

    >>> isa_limits({"ATEN_CPU_CAPABILITY": "avx2", "HOME": "/root"})
    ('ATEN_CPU_CAPABILITY=avx2',)
    """
    env = os.environ if env is None else env
    return tuple(f"{name}={env[name]}" for name in ISA_LIMITS if env.get(name))


def cpu_facts(device: str, cpuinfo: str | None = None, env: Mapping[str, str] | None = None) -> Facts:
    """The CPU's model name and ISA flags (from /proc/cpuinfo where there is one), and the ISA caps
    set in ``env`` (default: this process's environment).

    >>> cpu_facts("cpu", "model name : AMD EPYC\\nflags : fpu avx avx2").isa
    ('avx2',)
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    flags = set((fields.get("flags") or fields.get("features") or "").split())
    model = fields.get("model name") or fields.get("hardware") or platform.processor() or platform.machine()
    return Facts(device=device, arch=platform.machine(), cpu_model=model,
                 isa=tuple(f for f in ISA_FLAGS if f in flags), isa_limits=isa_limits(env))


def device_type(device: str | None) -> str:
    """``cuda:1`` -> ``cuda``; None -> ``cuda`` when a GPU is visible, else ``cpu``."""
    if device is None:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device).split(":")[0]


def machine_facts(device: str) -> Facts:
    """Facts of this machine for ``device`` (a device type)."""
    facts = cpu_facts(device)
    if device == "cuda":
        import torch

        return Facts(device, facts.arch, torch.cuda.get_device_name(), facts.isa, torch.cuda.is_bf16_supported(),
                     facts.isa_limits)
    return facts


def gemm_peak(dtype: str, max_n: int = 2048, call_s: float = 2.0, reps: int = 3) -> tuple[float, int]:
    """This machine's GEMM ceiling in ``dtype`` on torch's threads, for benchmarks: (best GFLOP/s of an
    n^3 matmul, n): n doubles from 256 while the next size's call would
    stay under ``call_s`` seconds, up to ``max_n``; then the best of ``reps`` calls."""
    import torch

    def timed(a, b) -> float:
        t0 = time.perf_counter()
        torch.matmul(a, b)
        return time.perf_counter() - t0

    n = 256
    while True:
        a, b = torch.randn(n, n).to(getattr(torch, dtype)), torch.randn(n, n).to(getattr(torch, dtype))
        torch.matmul(a, b)  # warm-up: allocations, oneDNN primitives
        seconds = timed(a, b)
        if n >= max_n or seconds * 8 > call_s:
            break
        n *= 2
    best = min([seconds] + [timed(a, b) for _ in range(reps - 1)])
    return 2 * n ** 3 / best / 1e9, n
