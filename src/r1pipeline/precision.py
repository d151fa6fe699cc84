"""Which float precision a stage computes in: ``dtype: auto`` decided by measurement.

bf16 is not faster everywhere. On a CPU with AMX (Sapphire Rapids and later) a bf16 GEMM runs
about 4x fp32; on an AVX2-only CPU (an AMD EPYC Zen 3, say) PyTorch has no bf16 kernel worth the
name and the same GEMM runs tens of times *slower* than fp32 (1.3 vs 80 GFLOP/s a core); in
between (AVX512-BF16 at small shapes, Apple silicon, aarch64 servers) it depends on the shapes.
CPU flags cannot tell these apart, so ``auto`` measures:

* ``probe``: a few GEMMs at the shapes of the model about to run (``model_shapes``: one
  transformer layer's projections at its tokens per matmul, capped at ``FLOP_CAP`` each), fp32 vs
  bf16 inputs (what ``torch.autocast`` and bf16 weights run), first on one thread (a core's
  instructions decide, even on a busy machine), then, only if bf16 won there, on the stage's
  ``torch.get_num_threads()``; bf16 must win both. Interleaved samples, the best counts; bf16
  stops after one sample when it is already ``HOPELESS`` times fp32. A fraction of a second on an
  idle machine (see the README for numbers);
* ``decide``: a pure function of the measured rates and the facts of the machine; bf16 only when
  it is at least ``BF16_MARGIN`` times fp32 (a wrong bf16 can cost 60x, a wrong fp32 at most the
  AMX gain). CUDA: bf16 where ``torch.cuda.is_bf16_supported()``, else fp32, nothing measured;
* a cache, so a machine measures once: ``precision.json`` in ``$R1_CACHE_DIR``, else
  ``$R1_CACHE`` (the model cache's folder), else ``$XDG_CACHE_HOME/r1pipeline``, else
  ``~/.cache/r1pipeline``; keyed by CPU model, ISA flags, torch version, thread count, device
  and shapes. It holds rates, not choices, so a changed margin applies to cached rates too. An
  unreadable file is ignored and rewritten; writes are atomic;
* ``R1_DTYPE_AUTO=float32`` (or ``bfloat16``) makes ``auto`` that dtype without measuring (CI,
  debugging); ``R1_DTYPE_AUTO=measure`` measures again, ignoring and updating the cache.

``resolve(dtype, shapes, device)`` is what the rest of the code calls: an explicit dtype is kept
as it is, ``auto`` becomes one; the ``Decision`` says which and why, and ``record()`` is what a
stage's manifest shows under ``precision``. Data-parallel stages call ``resolve_agreed``: rank 0
decides for every rank. torch is imported only inside the functions that need it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from r1pipeline import machine_cache
from r1pipeline.machine import Facts, device_type, machine_facts
from r1pipeline.machine_cache import BUSY, ENV_CACHE, machine_load  # noqa: F401  (callers and tests name them here)

Shape = tuple[int, int, int]  # (m, k, n): (m, k) activations times an (n, k) weight, as nn.Linear
CONCRETE = ("float32", "bfloat16")
BF16_MARGIN = 1.2     # bf16 must be this many times faster than fp32 to be chosen
HOPELESS = 4.0        # one bf16 call this many times the best fp32 one: stop measuring bf16
FLOP_CAP = 2e8        # per probed GEMM (2mkn): about 5 ms in fp32 and 0.1 s in bf16 on one AVX2 core
MIN_ROWS = 16         # ... except that a GEMM keeps 16 rows (a 7B model's MLP: ~2e9 FLOP), not a GEMV
ROUNDS = 4            # interleaved fp32/bf16 samples per shape (ABAB: a burst of load hits both)
MIN_SAMPLE = 2e-3     # seconds: a timed sample repeats the GEMM until it lasts about this long
DEFAULT_SHAPES_OF = (576, 1536, 512)  # (hidden, intermediate, tokens): SmolLM2-135M, when unknown
ENV_FORCE = "R1_DTYPE_AUTO"
CACHE_FILE, CACHE_VERSION = "precision.json", 1
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


def model_shapes(hidden_size: int, intermediate_size: int, tokens: int) -> tuple[Shape, ...]:
    """The GEMMs of one transformer layer, ``tokens`` rows each (fewer where one would pass
    ``FLOP_CAP``, but not under ``MIN_ROWS``).

    Attention projections (hidden x hidden), the MLP's up/gate (hidden -> intermediate) and down
    (intermediate -> hidden).

    >>> model_shapes(128, 512, 8960)
    ((6103, 128, 128), (1525, 128, 512), (1525, 512, 128))
    """
    pairs = ((hidden_size, hidden_size), (hidden_size, intermediate_size), (intermediate_size, hidden_size))
    return tuple((max(1, min(int(tokens), max(MIN_ROWS, int(FLOP_CAP // (2 * k * n))))), k, n) for k, n in pairs)


def config_shapes(model_dir: str | Path | None, tokens: int) -> tuple[Shape, ...] | None:
    """``model_shapes`` from a Hugging Face model directory's config.json; None when it has none."""
    try:
        cfg = json.loads((Path(model_dir) / "config.json").read_text()) if model_dir else {}
    except (OSError, ValueError):
        return None
    hidden = cfg.get("hidden_size") or cfg.get("n_embd") or cfg.get("d_model")
    if not hidden:
        return None
    return model_shapes(hidden, cfg.get("intermediate_size") or cfg.get("n_inner") or 4 * hidden, tokens)


@dataclass(frozen=True)
class Measurement:
    """What ``probe`` timed: best seconds per dtype and shape, and the rates over common shapes."""

    shapes: tuple[Shape, ...]
    seconds: dict[str, list[float]]    # dtype -> best seconds of each shape measured
    threads: int
    wall_seconds: float                # the probe's own time, warm-ups included
    note: str = ""
    stable: bool = True                # the two halves of the rounds agree on which side of the margin bf16 is
    load: float | None = None          # load average per core while measuring (None: unknown)

    def gflops(self) -> dict[str, float | None]:
        """GFLOP/s per dtype over the shapes both dtypes measured (None: not measured)."""
        common = min(len(v) for v in self.seconds.values())
        out: dict[str, float | None] = {}
        for dtype, times in self.seconds.items():
            n = common or len(times)  # a dtype that failed outright leaves the other its own shapes
            flops = sum(2 * m * k * nn for m, k, nn in self.shapes[:n])
            out[dtype] = flops / sum(times[:n]) / 1e9 if n and sum(times[:n]) > 0 else None
        return out


@dataclass(frozen=True)
class Decision:
    """A concrete dtype and why; ``record()`` is the manifest's ``precision`` entry."""

    dtype: str
    reason: str
    source: str                        # spec | env | device | measured | cached
    requested: str = "auto"
    device: str = "cpu"
    facts: Facts | None = None
    measurement: Measurement | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"requested": self.requested, "dtype": self.dtype, "reason": self.reason,
                               "source": self.source, "device": self.device}
        if self.facts is not None:
            out.update(cpu=self.facts.cpu_model, arch=self.facts.arch, isa=list(self.facts.isa))
            if self.facts.isa_limits:
                out["isa_limits"] = list(self.facts.isa_limits)
        if self.measurement is not None:
            m = self.measurement
            out.update(gflops={d: None if r is None else round(r, 2) for d, r in m.gflops().items()},
                       threads=m.threads, shapes=[list(s) for s in m.shapes],
                       probe_seconds=round(m.wall_seconds, 3), note=m.note or None, stable=m.stable,
                       load_per_core=m.load)
        return {**out, **self.extra}


def decide(gflops: Mapping[str, float | None] | None, facts: Facts, stable: bool = True) -> tuple[str, str]:
    """(dtype, reason) from measured GFLOP/s per dtype and the machine's facts; no I/O.

    An unstable measurement (the halves of the probe disagreed, as on a busy machine) never
    picks bf16: a wrong bf16 can cost 60x, a wrong fp32 at most the AMX gain.

    >>> decide({"float32": 80.0, "bfloat16": 1.3}, Facts("cpu", "x86_64", isa=("avx2",)))[0]
    'float32'
    >>> decide({"float32": 80.0, "bfloat16": 320.0}, Facts("cpu", "x86_64", isa=("amx_bf16",)))[0]
    'bfloat16'
    >>> decide({"float32": 80.0, "bfloat16": 320.0}, Facts("cpu", "x86_64"), stable=False)[0]
    'float32'
    """
    if facts.device == "cuda":
        if facts.cuda_bf16:
            return "bfloat16", "CUDA device with bf16 support"
        return "float32", "CUDA device without bf16 support (compute capability below 8.0)"
    fp32, bf16 = (gflops or {}).get("float32"), (gflops or {}).get("bfloat16")
    has = [f for f in BF16_FLAGS if f in facts.isa]
    hint = f"; CPU flags: {', '.join(has)}" if has else ("; no bf16 instructions in the CPU flags"
                                                          if facts.device == "cpu" else "")
    if not fp32 or not bf16:
        return "float32", f"bf16 GEMMs could not be measured on {facts.device}{hint}"
    ratio = bf16 / fp32
    verdict = f"bf16 GEMMs ran {ratio:.2f}x fp32 ({bf16:.1f} vs {fp32:.1f} GFLOP/s)"
    if ratio >= BF16_MARGIN and not stable:
        return "float32", (f"{verdict}, but the probe's halves disagreed (a busy machine?): float32, the "
                           f"safe choice{hint}")
    if ratio >= BF16_MARGIN:
        return "bfloat16", f"{verdict}, at least {BF16_MARGIN}x{hint}"
    return "float32", f"{verdict}, below the {BF16_MARGIN}x that bf16 needs{hint}"


class GemmTimer:
    """Seconds of one ``F.linear`` call at a shape and dtype; tensors made and warmed up on first use."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self._tensors: dict[tuple[Shape, str], tuple[Any, Any]] = {}

    def _sync(self) -> None:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
        elif self.device == "mps":
            torch.mps.synchronize()

    def __call__(self, shape: Shape, dtype: str, reps: int = 1) -> float:
        """Seconds per call, over ``reps`` back-to-back calls."""
        import torch
        import torch.nn.functional as F

        key = (shape, dtype)
        if key not in self._tensors:
            m, k, n = shape
            gen = torch.Generator().manual_seed(0)
            x, w = torch.randn(m, k, generator=gen), torch.randn(n, k, generator=gen)
            self._tensors[key] = (x.to(self.device, getattr(torch, dtype)), w.to(self.device, getattr(torch, dtype)))
            F.linear(*self._tensors[key])  # warm-up: kernel selection, allocation
            self._sync()
        x, w = self._tensors[key]
        start = time.perf_counter()
        for _ in range(reps):
            F.linear(x, w)
        self._sync()
        return (time.perf_counter() - start) / reps


def probe(shapes: Sequence[Shape], device: str = "cpu", timer: Callable[..., float] | None = None,
          threads: int | None = None) -> Measurement:
    """Best seconds of fp32 and bf16 GEMMs at ``shapes`` on ``threads`` threads (default: the
    current count; torch's count is restored afterwards).

    Per shape, ``ROUNDS`` rounds of one fp32 sample then one bf16 sample (interleaved, so that a
    burst of other work slows both), each sample the mean over enough back-to-back calls to
    last ``MIN_SAMPLE``; the best sample per dtype counts. When bf16's first sample is already
    ``HOPELESS`` times fp32's, bf16 is not timed again, here or at the later shapes (the rates
    then cover the shapes measured so far). The measurement is ``stable`` when the first and the
    second half of the rounds put bf16 on the same side of ``BF16_MARGIN``. A bf16 that raises
    (no kernel on this device) is recorded as not measured.
    """
    import torch

    before = torch.get_num_threads()
    if threads and threads != before:
        torch.set_num_threads(threads)
    try:
        return _probe(tuple(tuple(int(v) for v in s) for s in shapes), timer or GemmTimer(device))
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _probe(shapes: tuple[Shape, ...], timer: Callable[..., float]) -> Measurement:
    """``probe`` on the current thread count."""
    import torch

    start = time.perf_counter()
    seconds: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    halves: list[tuple[float, float]] = []  # (fp32, bf16) seconds summed over the shapes, per half
    note, bf16_on = "", True
    for shape in shapes:
        reps = max(1, min(1000, int(MIN_SAMPLE / max(timer(shape, "float32"), 1e-7))))
        samples: dict[str, list[float]] = {"float32": [], "bfloat16": []}
        for _ in range(ROUNDS):
            samples["float32"].append(timer(shape, "float32", reps))
            if not bf16_on:
                continue
            try:
                samples["bfloat16"].append(timer(shape, "bfloat16", 1 if len(samples["bfloat16"]) == 0 else reps))
            except (RuntimeError, TypeError) as exc:
                seconds["bfloat16"].clear()
                note, bf16_on = f"bf16 failed: {type(exc).__name__}: {exc}"[:300], False
                break
            if samples["bfloat16"][0] > HOPELESS * samples["float32"][0]:
                note, bf16_on = (f"bf16 timed once at {shape}: {samples['bfloat16'][0] / samples['float32'][0]:.0f}x "
                                 f"the fp32 time (more than {HOPELESS:g}x), so no more shapes were probed"), False
                seconds["bfloat16"].append(samples["bfloat16"][0])
                break
        seconds["float32"].append(min(samples["float32"]))
        if bf16_on:
            seconds["bfloat16"].append(min(samples["bfloat16"]))
            half = ROUNDS // 2
            halves.append((min(samples["float32"][:half]), min(samples["bfloat16"][:half])))
            halves.append((min(samples["float32"][half:]), min(samples["bfloat16"][half:])))
        else:
            break
    return Measurement(shapes=shapes, seconds=seconds, threads=torch.get_num_threads(),
                       wall_seconds=time.perf_counter() - start, note=note, stable=_halves_agree(halves),
                       load=machine_load())


def _halves_agree(halves: list[tuple[float, float]]) -> bool:
    """Whether the first halves and the second halves of the rounds (alternating in ``halves``)
    both put bf16 on the same side of the margin; True when bf16 was not timed to the end.

    >>> _halves_agree([(1.0, 0.5), (1.0, 0.6)]), _halves_agree([(1.0, 0.5), (1.0, 1.1)])
    (True, False)
    """
    if not halves:
        return True
    sides = []
    for part in (halves[0::2], halves[1::2]):
        fp32, bf16 = sum(f for f, _ in part), sum(b for _, b in part)
        sides.append(fp32 / bf16 >= BF16_MARGIN)
    return sides[0] == sides[1]


def cache_path(env: Mapping[str, str] | None = None) -> Path:
    """Where measured rates are kept (``machine_cache.cache_dir``)."""
    return machine_cache.cache_dir(env) / CACHE_FILE


def cache_key(facts: Facts, threads: int, shapes: Sequence[Shape], torch_version: str) -> str:
    """One line naming everything a measurement depends on.

    >>> cache_key(Facts("cpu", "x86_64", "AMD EPYC", ("avx2",)), 2, [(8, 16, 32)], "2.13.0")
    'cpu=AMD EPYC|arch=x86_64|isa=avx2|torch=2.13.0|threads=2|device=cpu|shapes=8x16x32'
    >>> cache_key(Facts("cpu", "x86_64", "AMD EPYC", ("avx2", "avx512f"), isa_limits=("ONEDNN_MAX_CPU_ISA=AVX2",)),
    ...           2, [], "2.13.0").split("|")[2]
    'isa=avx2+avx512f limited ONEDNN_MAX_CPU_ISA=AVX2'
    """
    shape_key = ",".join("x".join(str(v) for v in s) for s in shapes)
    isa = "+".join(facts.isa) + (" limited " + ",".join(facts.isa_limits) if facts.isa_limits else "")
    return (f"cpu={facts.cpu_model}|arch={facts.arch}|isa={isa}|torch={torch_version}"
            f"|threads={threads}|device={facts.device}|shapes={shape_key}")


def read_cache(path: Path) -> dict[str, Any]:
    """The cache's entries; {} for a missing, unreadable or malformed file (it is rewritten later)."""
    return machine_cache.read_entries(path, CACHE_VERSION)


def write_cache(path: Path, key: str, measurement: Measurement) -> bool:
    """Add one measurement, atomically; False when it could not."""
    return machine_cache.write_entry(path, key, asdict(measurement), CACHE_VERSION)


def cached_measurement(entry: Any) -> Measurement | None:
    """A cache entry back as a Measurement; None when it does not have the expected form."""
    try:
        return Measurement(shapes=tuple(tuple(int(v) for v in s) for s in entry["shapes"]),
                           seconds={d: [float(t) for t in entry["seconds"][d]] for d in CONCRETE},
                           threads=int(entry["threads"]), wall_seconds=float(entry["wall_seconds"]),
                           note=str(entry.get("note", "")), stable=bool(entry.get("stable", True)),
                           load=entry.get("load"))
    except (KeyError, TypeError, ValueError):
        return None


def resolve(dtype: str = "auto", shapes: Sequence[Shape] | None = None, device: str | None = None) -> Decision:
    """``dtype`` made concrete: an explicit one is kept; ``auto`` is forced by ``R1_DTYPE_AUTO``,
    decided by the device (CUDA), or measured at ``shapes`` (default: SmolLM2-135M's) and cached."""
    kind = device_type(device)
    if dtype != "auto":
        if dtype not in CONCRETE:
            raise ValueError(f"dtype {dtype!r} is not one of float32, bfloat16, auto; fix: use one of those")
        return Decision(dtype, "set in the spec", "spec", requested=dtype, device=kind)
    forced = os.environ.get(ENV_FORCE, "").strip()
    if forced and forced != "measure":
        if forced not in CONCRETE:
            raise ValueError(f"{ENV_FORCE}={forced!r} is not a dtype; fix: set it to float32, bfloat16 or "
                             f"measure, or unset it")
        return Decision(forced, f"{ENV_FORCE}={forced} in the environment", "env", device=kind)
    facts = machine_facts(kind)
    if kind == "cuda":
        return Decision(*decide(None, facts), "device", device=kind, facts=facts)
    return _measured(facts, tuple(shapes or model_shapes(*DEFAULT_SHAPES_OF)), remeasure=forced == "measure")


def _measured(facts: Facts, shapes: tuple[Shape, ...], remeasure: bool) -> Decision:
    """``auto`` on a CPU or an MPS device: bf16 only when it wins on one thread *and* on the
    stage's threads (CPU), each measurement cached under its own thread count.

    The one-thread probe is the gate: bf16's speed relative to fp32 is a property of a core's
    instructions, and one thread measures it even on a busy machine. With several threads, every
    GEMM waits for its slowest thread; where other processes hold the cores, a small fp32 GEMM then
    takes tens of milliseconds while bf16, parallelised differently, seems faster (micro.yaml's
    shapes under a load of 9 on 2 AVX2 cores: bf16 "3.7x" on 2 threads, 0.13x on one).
    """
    import torch

    threads = torch.get_num_threads()
    extra: dict[str, Any] = {"torch": torch.__version__, "cache": str(cache_path())}
    if facts.device == "cpu" and threads > 1:
        one, one_source, one_note = _measurement(facts, shapes, 1, remeasure)
        dtype, reason = decide(one.gflops(), facts, one.stable)
        if dtype != "bfloat16":
            extra.update(stage_threads=threads, **({"not_cached": one_note} if one_note else {}))
            return Decision(dtype, f"on one thread, {reason}", one_source, device=facts.device, facts=facts,
                            measurement=one, extra=extra)
        extra["one_thread"] = {"gflops": {d: None if r is None else round(r, 2) for d, r in one.gflops().items()},
                               "probe_seconds": round(one.wall_seconds, 3), "source": one_source}
    measurement, source, note = _measurement(facts, shapes, threads, remeasure)
    if note:
        extra["not_cached"] = note
    dtype, reason = decide(measurement.gflops(), facts, measurement.stable)
    return Decision(dtype, reason, source, device=facts.device, facts=facts, measurement=measurement, extra=extra)


def _measurement(facts: Facts, shapes: tuple[Shape, ...], threads: int,
                 remeasure: bool) -> tuple[Measurement, str, str]:
    """(measurement on ``threads`` threads, cached | measured, why it was not cached or "")."""
    import torch

    path = cache_path()
    key = cache_key(facts, threads, shapes, torch.__version__)
    measurement = None if remeasure else cached_measurement(read_cache(path).get(key))
    if measurement is not None:
        return measurement, "cached", ""
    measurement = probe(shapes, facts.device, threads=threads)
    if trustworthy(measurement):
        write_cache(path, key, measurement)
        return measurement, "measured", ""
    # used for this stage only: the next one measures again
    return measurement, "measured", (f"load {measurement.load} per core" if measurement.stable
                                     else "the probe's halves disagreed")


def trustworthy(m: Measurement) -> bool:
    """Whether a measurement may stand for this machine in the cache: stable, and taken while
    the cores were not oversubscribed (a probe on a busy machine measures the other work).

    >>> trustworthy(Measurement((), {}, 1, 0.1, stable=True, load=0.5))
    True
    >>> trustworthy(Measurement((), {}, 1, 0.1, stable=True, load=3.5))
    False
    """
    return m.stable and (m.load is None or m.load <= BUSY)


def resolve_agreed(dtype: str = "auto", shapes: Sequence[Shape] | None = None,
                   device: str | None = None) -> Decision:
    """``resolve`` on rank 0, the same Decision on every rank (data-parallel ranks must agree)."""
    from r1pipeline import distributed

    decision = resolve(dtype, shapes, device) if distributed.is_main() else None
    return distributed.broadcast_object(decision)
