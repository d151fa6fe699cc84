"""dtype auto: the decision from measured rates, the probe's early stop, the cache, the override."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from r1pipeline import precision
from r1pipeline import machine
from r1pipeline.machine import Facts
from r1pipeline.precision import Measurement, decide

SHAPES = ((64, 32, 32), (64, 32, 128))
AVX2 = Facts("cpu", "x86_64", "AMD EPYC", ("avx2",))
AVX512 = Facts("cpu", "x86_64", "Intel Xeon Skylake", ("avx2", "avx512f"))
AVX512_BF16 = Facts("cpu", "x86_64", "AMD EPYC 9004", ("avx2", "avx512f", "avx512_bf16"))
AMX = Facts("cpu", "x86_64", "Intel Xeon Sapphire Rapids", ("avx2", "avx512f", "avx512_bf16", "amx_bf16"))
GRAVITON = Facts("cpu", "aarch64", "Neoverse-V1", ("asimd", "bf16", "sve", "i8mm"))


def rates(fp32: float, bf16_speedup: float) -> dict[str, float]:
    return {"float32": fp32, "bfloat16": fp32 * bf16_speedup}


@pytest.mark.parametrize("facts, gflops, expected", [
    (AVX2, rates(80, 1 / 60), "float32"),           # no bf16 kernel: 60x slower
    (AVX512, rates(150, 0.5), "float32"),           # bf16 converted to fp32 on the way
    (AVX512_BF16, rates(150, 1.1), "float32"),      # the flags say bf16, small shapes say 1.1x: not enough
    (AMX, rates(150, 4.0), "bfloat16"),
    (GRAVITON, rates(60, 1.5), "bfloat16"),         # aarch64: by timing, like x86
    (GRAVITON, rates(60, 0.9), "float32"),
    (Facts("mps", "arm64", "arm"), rates(500, 1.3), "bfloat16"),
], ids=["avx2", "avx512-no-bf16", "avx512-bf16-small-shapes", "amx", "aarch64-fast", "aarch64-slow", "mps"])
def test_decision_follows_the_measured_rates_with_a_margin(facts, gflops, expected):
    dtype, reason = decide(gflops, facts)
    assert dtype == expected
    assert f"{gflops['bfloat16'] / gflops['float32']:.2f}x" in reason


def test_cpu_flags_are_named_in_the_reason_but_do_not_decide():
    assert "avx512_bf16" in decide(rates(150, 1.1), AVX512_BF16)[1]
    assert "no bf16 instructions" in decide(rates(80, 1 / 60), AVX2)[1]
    assert decide(rates(80, 1.5), AVX2)[0] == "bfloat16"  # a measured gain wins over missing flags


def test_unmeasured_bf16_means_float32():
    assert decide({"float32": 80.0, "bfloat16": None}, AVX2) == (
        "float32", "bf16 GEMMs could not be measured on cpu; no bf16 instructions in the CPU flags")


@pytest.mark.parametrize("supported, expected", [(True, "bfloat16"), (False, "float32")])
def test_cuda_follows_bf16_support_without_measuring(monkeypatch, supported, expected):
    monkeypatch.delenv(precision.ENV_FORCE, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: supported)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H100")
    monkeypatch.setattr(precision, "probe", forbidden_probe)
    d = precision.resolve("auto", SHAPES)  # device None: the GPU
    assert (d.dtype, d.source, d.device) == (expected, "device", "cuda")
    assert d.record()["cpu"] == "NVIDIA H100"


class FakeTimer:
    """Seconds per GEMM call from a table of (dtype -> seconds); counts calls per dtype."""

    def __init__(self, seconds: dict[str, float], fail_bf16: bool = False, slow_calls: dict | None = None):
        self.seconds, self.fail_bf16 = seconds, fail_bf16
        self.calls = {"float32": 0, "bfloat16": 0}
        self.slow_calls = slow_calls or {}  # (dtype, call number) -> factor: a burst of other work

    def __call__(self, shape, dtype, reps=1):
        self.calls[dtype] += 1
        factor = self.slow_calls.get((dtype, self.calls[dtype]), 1.0)
        if dtype == "bfloat16" and self.fail_bf16:
            raise RuntimeError("no bf16 kernel")
        return factor * self.seconds[dtype] * shape[0] * shape[1] * shape[2] / 1e6


def test_probe_stops_timing_bf16_once_it_is_hopeless():
    timer = FakeTimer({"float32": 1.0, "bfloat16": 60.0})
    m = precision.probe(SHAPES, timer=timer)
    assert timer.calls == {"float32": 2, "bfloat16": 1}  # first shape only: a calibration call, one round
    assert len(m.seconds["bfloat16"]) == 1 and "no more shapes" in m.note
    g = m.gflops()
    assert g["bfloat16"] == pytest.approx(g["float32"] / 60)  # compared on the shape both measured
    assert decide(g, AVX2)[0] == "float32"


def test_probe_times_every_shape_when_bf16_is_competitive():
    timer = FakeTimer({"float32": 1.0, "bfloat16": 0.25})
    m = precision.probe(SHAPES, timer=timer)
    assert timer.calls == {"float32": 2 * (1 + precision.ROUNDS), "bfloat16": 2 * precision.ROUNDS}
    assert m.gflops()["bfloat16"] == pytest.approx(4 * m.gflops()["float32"]) and not m.note
    assert m.threads == torch.get_num_threads()


def test_rounds_interleave_so_a_burst_of_load_on_fp32_alone_is_outvoted():
    # fp32 slowed 5x in its first round only (another process took the cores): the best sample wins
    timer = FakeTimer({"float32": 1.0, "bfloat16": 2.0}, slow_calls={("float32", 2): 5.0})
    m = precision.probe(SHAPES[:1], timer=timer)
    assert m.gflops()["bfloat16"] == pytest.approx(m.gflops()["float32"] / 2)
    assert decide(m.gflops(), AVX2, m.stable)[0] == "float32"


def test_halves_that_disagree_make_an_unstable_measurement_that_never_picks_bf16():
    # bf16 looks 2x faster in the first half only (fp32 samples there were slowed by other work)
    slow = {("float32", i): 4.0 for i in (2, 3)}
    timer = FakeTimer({"float32": 1.0, "bfloat16": 1.0}, slow_calls=slow)
    m = precision.probe(SHAPES[:1], timer=timer)
    assert not m.stable
    assert decide({"float32": 1.0, "bfloat16": 2.0}, AVX2, m.stable)[0] == "float32"
    assert not precision.trustworthy(m)


def test_a_bf16_that_raises_is_not_measured_and_loses():
    m = precision.probe(SHAPES, timer=FakeTimer({"float32": 1.0, "bfloat16": 0.1}, fail_bf16=True))
    assert m.gflops()["bfloat16"] is None and m.gflops()["float32"] > 0 and "no bf16 kernel" in m.note
    assert decide(m.gflops(), GRAVITON)[0] == "float32"


def forbidden_probe(*_, **__):
    raise AssertionError("measured although the answer was known")


def fake_probe(bf16_speedup: float, calls: list | None = None, on_one_thread: float | None = None):
    """A probe that finds bf16 ``bf16_speedup`` times fp32 (``on_one_thread`` on one thread, if given)."""
    def probe(shapes, device="cpu", threads=None):
        threads = threads or torch.get_num_threads()
        if calls is not None:
            calls.append((tuple(shapes), threads))
        speedup = on_one_thread if threads == 1 and on_one_thread is not None else bf16_speedup
        per_shape = [1e-3] * len(shapes)
        return Measurement(tuple(shapes), {"float32": per_shape, "bfloat16": [t / speedup for t in per_shape]},
                           threads=threads, wall_seconds=0.01)
    return probe


@pytest.fixture
def cache(monkeypatch, tmp_path):
    """An empty cache folder, no override, this machine's facts pinned to an AVX2 CPU, one thread
    (so that one probe is one measurement: the one-thread gate has tests of its own)."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    monkeypatch.setenv(precision.ENV_CACHE, str(tmp_path))
    monkeypatch.delenv(precision.ENV_FORCE, raising=False)
    monkeypatch.setattr(precision, "machine_facts", lambda device: AVX2)
    return tmp_path / precision.CACHE_FILE


def test_a_second_resolve_reads_the_cache(cache, monkeypatch):
    calls: list = []
    monkeypatch.setattr(precision, "probe", fake_probe(1 / 60, calls))
    first = precision.resolve("auto", SHAPES, "cpu")
    second = precision.resolve("auto", SHAPES, "cpu")
    assert len(calls) == 1 and (first.source, second.source) == ("measured", "cached")
    assert first.dtype == second.dtype == "float32" and first.record()["gflops"] == second.record()["gflops"]
    assert list(json.loads(cache.read_text())["entries"]) == [
        precision.cache_key(AVX2, torch.get_num_threads(), SHAPES, torch.__version__)]


@pytest.mark.parametrize("change", ["threads", "torch", "cpu", "shapes", "isa_limit"])
def test_the_cache_misses_when_what_was_measured_changes(cache, monkeypatch, change):
    calls: list = []
    monkeypatch.setattr(precision, "probe", fake_probe(4.0, calls))
    precision.resolve("auto", SHAPES, "cpu")
    shapes = SHAPES
    if change == "threads":
        monkeypatch.setattr(torch, "get_num_threads", lambda: 97)
    elif change == "torch":
        monkeypatch.setattr(torch, "__version__", "9.9.9")
    elif change == "cpu":
        monkeypatch.setattr(precision, "machine_facts", lambda device: AMX)
    elif change == "isa_limit":  # the same CPU run as an AVX2 one (ATEN_CPU_CAPABILITY=avx2 ...)
        monkeypatch.setattr(precision, "machine_facts",
                            lambda device: dataclasses.replace(AVX2, isa_limits=("ATEN_CPU_CAPABILITY=avx2",)))
    else:
        shapes = ((128, 32, 32),)
    assert precision.resolve("auto", shapes, "cpu").source == "measured" and len(calls) == 2
    assert len(json.loads(cache.read_text())["entries"]) == 2  # both kept


def test_isa_limits_in_the_environment_reach_the_facts_and_the_manifest(monkeypatch):
    for name in machine.ISA_LIMITS:  # none but the one set here, even under the AVX2 stand-in
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    facts = machine.cpu_facts("cpu", "model name : AMD EPYC\nflags : avx2 avx512f avx512_bf16")
    assert facts.isa_limits == ("ONEDNN_MAX_CPU_ISA=AVX2",)
    assert facts.cpu_class == "AVX-512 capped by ONEDNN_MAX_CPU_ISA=AVX2"
    decision = precision.Decision("float32", "pinned", "spec", facts=facts)
    assert decision.record()["isa_limits"] == ["ONEDNN_MAX_CPU_ISA=AVX2"]


@pytest.mark.parametrize("garbage", ["{not json", '{"version": 1, "entries": []}', '["a list"]', ""])
def test_a_corrupt_cache_is_ignored_and_rewritten(cache, monkeypatch, garbage):
    cache.write_text(garbage)
    monkeypatch.setattr(precision, "probe", fake_probe(4.0))
    d = precision.resolve("auto", SHAPES, "cpu")
    assert (d.dtype, d.source) == ("bfloat16", "measured")
    assert len(json.loads(cache.read_text())["entries"]) == 1


def test_a_malformed_entry_is_measured_again(cache, monkeypatch):
    key = precision.cache_key(AVX2, torch.get_num_threads(), SHAPES, torch.__version__)
    cache.write_text(json.dumps({"version": precision.CACHE_VERSION, "entries": {key: {"shapes": "?"}}}))
    monkeypatch.setattr(precision, "probe", fake_probe(4.0))
    assert precision.resolve("auto", SHAPES, "cpu").source == "measured"


def test_an_unwritable_cache_still_gives_a_decision(cache, monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(precision.ENV_CACHE, str(blocker / "sub"))  # a folder below a file: cannot exist
    monkeypatch.setattr(precision, "probe", fake_probe(1 / 60))
    assert precision.resolve("auto", SHAPES, "cpu").dtype == "float32"


def test_cache_location_follows_the_environment(tmp_path):
    assert precision.cache_path({"R1_CACHE_DIR": str(tmp_path)}) == tmp_path / "precision.json"
    assert precision.cache_path({"R1_CACHE": str(tmp_path)}) == tmp_path / "precision.json"
    assert precision.cache_path({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "r1pipeline" / "precision.json"


@pytest.mark.parametrize("forced", ["float32", "bfloat16"])
def test_the_environment_forces_auto_without_measuring(cache, monkeypatch, forced):
    monkeypatch.setenv(precision.ENV_FORCE, forced)
    monkeypatch.setattr(precision, "probe", forbidden_probe)
    d = precision.resolve("auto", SHAPES, "cpu")
    assert (d.dtype, d.source) == (forced, "env") and precision.ENV_FORCE in d.reason
    assert precision.resolve("float32" if forced == "bfloat16" else "bfloat16").dtype != forced  # the spec wins


def test_measure_in_the_environment_ignores_the_cache(cache, monkeypatch):
    calls: list = []
    monkeypatch.setattr(precision, "probe", fake_probe(1 / 60, calls))
    precision.resolve("auto", SHAPES, "cpu")
    monkeypatch.setenv(precision.ENV_FORCE, "measure")
    monkeypatch.setattr(precision, "probe", fake_probe(4.0, calls))
    assert precision.resolve("auto", SHAPES, "cpu").dtype == "bfloat16" and len(calls) == 2


def test_a_bad_override_names_the_variable_and_the_fix(cache, monkeypatch):
    monkeypatch.setenv(precision.ENV_FORCE, "fp16")
    with pytest.raises(ValueError, match="R1_DTYPE_AUTO='fp16'.*fix: set it to float32, bfloat16"):
        precision.resolve("auto", SHAPES, "cpu")


def test_an_explicit_dtype_is_kept_as_it_is(monkeypatch):
    monkeypatch.setattr(precision, "probe", forbidden_probe)
    d = precision.resolve("bfloat16", SHAPES, "cpu")
    assert (d.dtype, d.source, d.reason) == ("bfloat16", "spec", "set in the spec")
    with pytest.raises(ValueError, match="dtype 'half'"):
        precision.resolve("half")


def test_shapes_come_from_a_model_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 576, "intermediate_size": 1536}))
    assert precision.config_shapes(tmp_path, 64) == precision.model_shapes(576, 1536, 64) == (
        (64, 576, 576), (64, 576, 1536), (64, 1536, 576))
    assert precision.config_shapes(tmp_path / "missing", 64) is None and precision.config_shapes(None, 64) is None
    assert precision.model_shapes(4096, 14336, 4096)[1] == (precision.MIN_ROWS, 4096, 14336)  # no GEMV


def test_resolve_agreed_is_resolve_in_one_process(cache, monkeypatch):
    monkeypatch.setattr(precision, "probe", fake_probe(4.0))
    assert precision.resolve_agreed("auto", SHAPES, "cpu").dtype == "bfloat16"


def test_the_real_probe_on_this_machine(monkeypatch, tmp_path):
    """One real measurement at the tiny world's shapes: a valid choice and positive rates."""
    monkeypatch.setenv(precision.ENV_CACHE, str(tmp_path))
    monkeypatch.delenv(precision.ENV_FORCE, raising=False)
    d = precision.resolve("auto", precision.model_shapes(128, 512, 128 * 70), "cpu")
    record = json.loads(json.dumps(d.record()))  # JSON-able, as the manifest stores it
    assert record["dtype"] in ("float32", "bfloat16") and record["source"] == "measured"
    assert record["stable"] in (True, False) and ("not_cached" in record) != precision.trustworthy(d.measurement)
    assert record["gflops"]["float32"] > 0 and record["gflops"]["bfloat16"] > 0
    assert record["threads"] in (1, torch.get_num_threads()) and record["cpu"] and record["reason"]
    again = precision.resolve("auto", precision.model_shapes(128, 512, 128 * 70), "cpu").source
    assert again == ("cached" if precision.trustworthy(d.measurement) else "measured")  # a busy CI machine


@pytest.mark.parametrize(("stable", "load"), [(False, 0.2), (True, 3.0)], ids=["unstable", "busy"])
def test_an_untrustworthy_measurement_decides_this_run_but_is_not_cached(cache, monkeypatch, stable, load):
    def probe(shapes, device="cpu", threads=None):
        return Measurement(tuple(shapes), {"float32": [1e-3] * len(shapes), "bfloat16": [1e-3] * len(shapes)},
                           threads=torch.get_num_threads(), wall_seconds=0.01, stable=stable, load=load)
    monkeypatch.setattr(precision, "probe", probe)
    d = precision.resolve("auto", SHAPES)
    assert d.dtype == "float32" and d.source == "measured" and d.record()["not_cached"]
    assert not cache.exists() or precision.read_cache(cache) == {}


def test_one_thread_gates_bf16_so_a_busy_machine_cannot_pick_it(cache, monkeypatch):
    # micro.yaml's shapes under a load of 9 on 2 AVX2 cores: bf16 "3.7x" on 2 threads, 0.13x on one
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    calls: list = []
    monkeypatch.setattr(precision, "probe", fake_probe(3.7, calls, on_one_thread=0.13))
    d = precision.resolve("auto", SHAPES, "cpu")
    assert d.dtype == "float32" and d.reason.startswith("on one thread, bf16 GEMMs ran 0.13x")
    assert calls == [(SHAPES, 1)]  # the stage's threads are not probed once one thread says fp32
    assert (d.record()["threads"], d.record()["stage_threads"]) == (1, 2)


def test_bf16_must_win_on_one_thread_and_on_the_stages_threads(cache, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    calls: list = []
    monkeypatch.setattr(precision, "probe", fake_probe(4.0, calls))
    d = precision.resolve("auto", SHAPES, "cpu")
    assert d.dtype == "bfloat16" and calls == [(SHAPES, 1), (SHAPES, 2)]
    assert d.record()["threads"] == 2 and d.record()["one_thread"]["gflops"]["bfloat16"] > 0
    monkeypatch.setattr(precision, "probe", fake_probe(1.0, calls, on_one_thread=4.0))
    precision.resolve("auto", SHAPES, "cpu")  # both cached now: nothing measured
    assert len(calls) == 2 and len(precision.read_cache(cache)) == 2
    monkeypatch.setenv(precision.ENV_FORCE, "measure")
    assert precision.resolve("auto", SHAPES, "cpu").dtype == "float32"  # wins on one thread only


def test_probe_runs_on_the_threads_asked_and_restores_torchs_count():
    before, seen = torch.get_num_threads(), set()

    def timer(shape, dtype, reps=1):
        seen.add(torch.get_num_threads())
        return 1e-3
    m = precision.probe(SHAPES, timer=timer, threads=1)
    assert seen == {1} and m.threads == 1 and torch.get_num_threads() == before
