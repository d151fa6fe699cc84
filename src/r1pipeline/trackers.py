"""Experiment trackers, the spec's ``report_to``: TensorBoard, Weights & Biases, Trackio.

Each stage that trains or scores is one tracker run, named ``<pipeline>/<stage>`` and grouped
by the pipeline's name. Where TRL trains (sft, grpo, reward_model), TRL's own integration logs
(``report_to`` and ``run_name`` in its config: ``stages/rl_support.trainer_args``), told where
to write by ``stage_env``; pretrain logs its loss and learning rate every step, and evaluate its
summary numbers, through ``Tracker``, under the names TRL's integration uses (``train/loss``,
``train/learning_rate``; ``eval/<model>/<metric>``).

Files stay in the stage folder: TensorBoard's event files in ``STAGE/tb/``, a W&B run in
``STAGE/wandb/`` (``WANDB_MODE=offline`` writes it there without a network; ``wandb sync``
uploads it later). Trackio keeps its own local database (``TRACKIO_DIR``). The W&B and Trackio
project is ``r1pipeline`` unless ``WANDB_PROJECT`` / ``TRACKIO_PROJECT`` names another.

Nothing here imports a tracker before a stage runs: ``r1 validate`` only asks whether each one
is installed (``missing``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Iterator

NAMES = ("tensorboard", "wandb", "trackio")  # and "none", which is the empty list
PROJECT = "r1pipeline"
TB_DIR = "tb"


def missing(name: str) -> bool:
    """Whether tracker ``name``'s package is not installed (found without importing it)."""
    return importlib.util.find_spec(name) is None


def project(name: str) -> str:
    """The W&B or Trackio project a run goes to."""
    return os.environ.get(f"{name.upper()}_PROJECT") or PROJECT


def scalars(data: Any, prefix: str) -> dict[str, float]:
    """The numbers of a nested summary, flattened to ``prefix/key/...`` (lists, text and flags left out).

    >>> scalars({"k": 2, "models": {"base": {"pass@1": 0.5, "pass@1_ci": [0.4, 0.6], "ok": True}}}, "eval")
    {'eval/k': 2.0, 'eval/models/base/pass@1': 0.5}
    """
    if isinstance(data, dict):
        return {k: v for key, value in data.items() for k, v in scalars(value, f"{prefix}/{key}").items()}
    if isinstance(data, (int, float)) and not isinstance(data, bool) and data == data:  # NaN: left out
        return {prefix: float(data)}
    return {}


@contextlib.contextmanager
def stage_env(report_to: tuple[str, ...], group: str, stage_dir: Path) -> Iterator[None]:
    """Environment for TRL's integrations while a stage runs (they read it when the trainer is
    built and when training begins), restored afterwards; an open W&B or Trackio run is finished
    at the end, so that the next stage starts its own."""
    if not report_to:
        yield
        return
    values = {"TENSORBOARD_LOGGING_DIR": str(stage_dir / TB_DIR), "WANDB_DIR": str(stage_dir),
              "WANDB_RUN_GROUP": group, "WANDB_PROJECT": project("wandb")}
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        finish_open_runs()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def finish_open_runs() -> None:
    """End the W&B run and the Trackio run that TRL's callbacks leave open, if any. W&B is torn
    down too: it reads ``WANDB_DIR`` once per process, so the next stage's run would otherwise
    be written into this stage's folder."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()
    if wandb is not None and hasattr(wandb, "teardown"):
        wandb.teardown()
    trackio = sys.modules.get("trackio")
    if trackio is not None:
        with contextlib.suppress(Exception):  # nothing open: trackio may raise
            trackio.finish()


class Tracker:
    """One stage's tracker run, for the stages that TRL does not train (pretrain) or that score
    (evaluate): ``log(values, step)`` sends numbers to every tracker of ``report_to`` (with none,
    it does nothing). The run opens at the first ``log``, so a stage that never logs here (TRL
    logs itself) opens none; the runner closes it when the stage ends (a context manager).
    """

    def __init__(self, report_to: tuple[str, ...], run_name: str, group: str, stage_dir: Path):
        self.report_to, self.run_name, self.group, self.stage_dir = report_to, run_name, group, stage_dir
        self._tb = self._wandb = self._trackio = None
        self._open = False

    def _start(self) -> None:
        self._open = True
        if "tensorboard" in self.report_to:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.stage_dir / TB_DIR))
        if "wandb" in self.report_to:
            import wandb

            self._wandb = wandb.init(project=project("wandb"), name=self.run_name, group=self.group,
                                     dir=str(self.stage_dir), reinit="create_new")
        if "trackio" in self.report_to:
            import trackio

            self._trackio = trackio.init(project=project("trackio"), name=self.run_name, group=self.group)

    def log(self, values: dict[str, float], step: int) -> None:
        if not self.report_to:
            return
        if not self._open:
            self._start()
        if self._tb is not None:
            for key, value in values.items():
                self._tb.add_scalar(key, value, step)
        if self._wandb is not None:
            self._wandb.log(values, step=step)
        if self._trackio is not None:
            self._trackio.log(values, step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
        if self._trackio is not None:
            self._trackio.finish()
        self._tb = self._wandb = self._trackio = None
        self._open = False

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
