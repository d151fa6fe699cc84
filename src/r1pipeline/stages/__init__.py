"""Stage kinds: one module per kind, each with a ``Config`` and a ``run(cfg, ctx, spec_base)``.

``KINDS`` maps a kind's name to its config class; ``module(kind)`` imports the module that runs it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from r1pipeline.stages import evaluate, grpo, pretrain, reward_model, sample, sft
from r1pipeline.stages.base import StageConfig

_MODULES = {"pretrain": pretrain, "grpo": grpo, "sft": sft, "sample": sample,
            "reward_model": reward_model, "evaluate": evaluate}
KINDS: dict[str, type[StageConfig]] = {k: m.Config for k, m in _MODULES.items()}


def module(kind: str) -> ModuleType:
    return importlib.import_module(_MODULES[kind].__name__)
