"""Resumable training state for our own loops: ``checkpoints/step-N/state.pt``, written atomically."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from r1pipeline.rundir import atomic_dir

_STEP = re.compile(r"^step-(\d+)$")


def save_checkpoint(root: Path, step: int, state: dict[str, Any], keep: int = 2) -> Path:
    import torch

    root.mkdir(parents=True, exist_ok=True)
    with atomic_dir(root / f"step-{step}") as tmp:
        torch.save(state, tmp / "state.pt")
    for old in sorted(_steps(root))[:-keep]:
        shutil.rmtree(root / f"step-{old}", ignore_errors=True)
    return root / f"step-{step}"


def _steps(root: Path) -> list[int]:
    if not root.is_dir():
        return []
    return [int(m.group(1)) for p in root.iterdir() if (m := _STEP.match(p.name)) and (p / "state.pt").exists()]


def latest_checkpoint(root: Path) -> Path | None:
    steps = _steps(root)
    return root / f"step-{max(steps)}" if steps else None
