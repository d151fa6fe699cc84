"""Shared test setup: offline, quiet, and paths to the repo's configs."""

from __future__ import annotations

import os
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
# One OpenMP thread per process: the test models are tiny, so a second thread only adds a barrier
# per op, and on cores that other processes share each barrier waits for a descheduled thread
# (micro's r1_zero stage on 2 cores at load ~8: 742 s wall / 52 CPU-s on 2 threads, 38 s / 15
# CPU-s on 1). Must be set before torch is imported; subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


@pytest.fixture(autouse=True, scope="session")
def _precision_cache(tmp_path_factory):
    """``dtype: auto`` measures into a folder of this test session, not the user's cache
    (``precision.py``); subprocesses inherit it."""
    if "R1_CACHE_DIR" not in os.environ:
        os.environ["R1_CACHE_DIR"] = str(tmp_path_factory.mktemp("r1-cache"))
