"""Shared test setup: offline, quiet, and paths to the repo's configs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# dtype auto is float32 without measuring: no test may depend on bf16 being fast (on an AVX2-only
# CPU a bf16 GEMM is ~60x slower than fp32), and a probe at the tiny test models' shapes is noise
# (on 2 shared AVX2 cores it picked bf16 for 4 of 14 shapes). test_precision.py unsets this
# where it tests the measurement.
os.environ.setdefault("R1_DTYPE_AUTO", "float32")
# attention auto is sdpa (transformers' default) without timing, for the same reasons;
# test_attention.py unsets it where it tests the timing
os.environ.setdefault("R1_ATTENTION_AUTO", "sdpa")
# One OpenMP thread per process: the test models are tiny, so a second thread only adds a barrier
# per op, and on cores that other processes share each barrier waits for a descheduled thread
# (micro's r1_zero stage on 2 cores at load ~8: 742 s wall / 52 CPU-s on 2 threads, 38 s / 15
# CPU-s on 1). Must be set before torch is imported; subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
# The shared micro run's one override: micro's 20 pretraining steps leave the base repeating one
# character; after 300 (about 7 s on one core) it writes the R1 tags and stops at its end-of-sequence
# token, so the checkpoint tests compare both, and the sampling stages get some well-formed rows.
# A test that reruns the CLI on this run passes it too, or every stage's hash would differ.
MICRO_SETS = ("--set", "base.steps=300")


@pytest.fixture(autouse=True, scope="session")
def _precision_cache(tmp_path_factory):
    """``dtype: auto`` measures into a folder of this test session, not the user's cache
    (``precision.py``); subprocesses inherit it."""
    if "R1_CACHE_DIR" not in os.environ:
        os.environ["R1_CACHE_DIR"] = str(tmp_path_factory.mktemp("r1-cache"))


@pytest.fixture(scope="session")
def micro_run(tmp_path_factory) -> Path:
    """configs/micro.yaml (with ``MICRO_SETS``) run once per session through the real CLI, report
    included: the smoke tests and the checkpoint-loading tests read it; a test that changes a run
    works on a copy. One run instead of one per module: a CLI process spends ~10 s importing."""
    out = tmp_path_factory.mktemp("runs") / "micro"
    proc = subprocess.run([sys.executable, "-m", "r1pipeline.cli", "run", str(CONFIGS / "micro.yaml"),
                           "--out", str(out), *MICRO_SETS], capture_output=True, text=True,
                          env={**os.environ, "R1_NO_PROGRESS": "1"}, timeout=900, check=False)
    assert proc.returncode == 0, f"the micro run failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return out
