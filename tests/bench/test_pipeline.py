"""bench/pipeline.py on a fake run directory: GFLOP/s, shares of the GEMM ceiling, the table, the headline."""

from __future__ import annotations

import doctest
import importlib.util
import sys
from pathlib import Path

import pytest

from r1pipeline import machine

from tests.conftest import ROOT
from tests.pipeline.fake_work import CPU, P, make_fake_run

spec = importlib.util.spec_from_file_location("bench_pipeline", ROOT / "bench" / "pipeline.py")
bench = sys.modules["bench_pipeline"] = importlib.util.module_from_spec(spec)  # bench/ holds scripts, not a package
spec.loader.exec_module(bench)

PEAKS = {"float32": (0.001, 2048), "bfloat16": (0.0001, 512)}  # GFLOP/s, n: 1e6 and 1e5 FLOP/s
MACHINE = {"cpu": CPU, "class": "AVX2", "cores": 2, "threads": 2, "torch": "2.13.0"}


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return make_fake_run(tmp_path / "fake")


def test_the_modules_doctests_pass():
    assert doctest.testmod(bench).failed == 0


def test_cpu_class_from_flags_and_the_cpu_model(monkeypatch):
    for name in machine.ISA_LIMITS:  # as when run under the AVX2 stand-in
        monkeypatch.delenv(name, raising=False)
    assert bench.cpu_class("flags\t: fpu sse4_2 avx avx2 fma") == "AVX2"
    assert bench.cpu_class("flags\t: avx2 avx512f avx512bw") == "AVX-512"
    assert bench.cpu_class("flags\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile") == "AMX"
    assert bench.cpu_model("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t: avx2") == "AMD EPYC"


def test_achieved_rate_and_the_training_share_of_the_ceiling(run: Path):
    rows = {r.stage: r for r in bench.collect(run)}
    assert rows["base"].gflops == pytest.approx(6 * P * 500 / 60 / 1e9)
    training = [rows[s] for s in ("base", "r1_zero", "sft", "reward")]  # not cold_start, evaluate
    flops = sum(r.work.flops for r in training)
    assert flops == 3_000_000 + 980_000 + 540_000 + 180_000
    assert bench.training_share(list(rows.values()), 0.01) == pytest.approx(100 * flops / (120 * 0.01e9))


def test_the_printout_has_a_row_per_stage_the_dtype_and_the_headline(run: Path):
    lines = bench.report(run, PEAKS, MACHINE)
    names = {"base", "r1_zero", "cold_start", "sft", "reward*", "evaluate"}
    table = {line.split()[0]: line.split() for line in lines if line.split() and line.split()[0] in names}
    assert set(table) == names
    # 3 MFLOP in 60 s: 5e4 FLOP/s, 5% of the fp32 rate and 50% of the bf16 one; 120 CPU s = 2 busy cores
    assert table["base"] == ["base", "pretrain", "60.0", "120.0", "2.00", "500", "0", "0.003", "5e-05",
                             "5.0", "50.0", "fp32"]
    assert table["r1_zero"][-2:] == ["train:fp32", "rollout:bf16"]
    assert table["sft"][-1] == "-"  # no precision record
    assert "AVX2" in lines[1] and "fp32 2048^3" in lines[2]
    assert any("reward: attempt 2" in line for line in lines)
    # 140 s of stages; training 4.7 MFLOP in 120 s against the better peak, 1e6 FLOP/s
    assert lines[-1] == f"pipeline: fake 2.3 min on {CPU} (2 cores), 3.9% of the GEMM ceiling in training stages"


def test_reuse_prints_the_report_of_a_finished_run_without_running_it(run: Path, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(bench, "gemm_peak", lambda dtype: PEAKS[dtype])
    monkeypatch.setattr(bench, "machine_facts", lambda: MACHINE)
    monkeypatch.setattr(bench, "run_spec", lambda *a: pytest.fail("--reuse must not run the spec"))
    bench.main(["--reuse", str(run), "--save", str(tmp_path / "out.txt")])
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith(f"pipeline: fake 2.3 min on {CPU} (2 cores)")
    assert (tmp_path / "out.txt").read_text() == out
    with pytest.raises(SystemExit, match="no spec.yaml or stage manifests"):
        bench.main(["--reuse", str(tmp_path / "nothing-here")])
