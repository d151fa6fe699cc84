"""Shared test setup: offline, quiet, and paths to the repo's configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


@pytest.fixture(autouse=True, scope="session")
def _precision_cache(tmp_path_factory):
    """``dtype: auto`` measures into a folder of this test session, not the user's cache
    (``precision.py``); subprocesses inherit it."""
    if "R1_CACHE_DIR" not in os.environ:
        os.environ["R1_CACHE_DIR"] = str(tmp_path_factory.mktemp("r1-cache"))
