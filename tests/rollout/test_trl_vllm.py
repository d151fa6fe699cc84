"""TRL's vLLM modes: the GRPOConfig fields they set, and TRL taking its vLLM path with them.

Everything up to vLLM itself runs on CPU; the one GRPO step in colocate mode needs a CUDA GPU
and vLLM, and is skipped without them.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from r1pipeline.rollout import trl_vllm
from r1pipeline.rollout.trl_vllm import grpo_kwargs

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def grpo_config(tmp_path, **kwargs):
    from trl import GRPOConfig

    return GRPOConfig(output_dir=str(tmp_path), use_cpu=not torch.cuda.is_available(), report_to="none",
                      per_device_train_batch_size=4, num_generations=2, max_completion_length=8,
                      max_steps=1, logging_steps=1, save_strategy="no", **kwargs)


def test_server_mode_points_trl_at_the_server(tmp_path):
    args = grpo_config(tmp_path, **grpo_kwargs("vllm-server", server="http://gen01:8000"))
    assert args.use_vllm and args.vllm_mode == "server"
    assert args.vllm_server_base_url == "http://gen01:8000" and args.vllm_server_timeout == 600.0


def test_server_address_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(trl_vllm.SERVER_ENV, "http://gen07:8123/")
    assert grpo_kwargs("vllm-server")["vllm_server_base_url"] == "http://gen07:8123"
    monkeypatch.delenv(trl_vllm.SERVER_ENV)
    assert grpo_kwargs("vllm-server")["vllm_server_base_url"] == "http://localhost:8000"


def test_colocate_mode_shares_the_gpu(tmp_path):
    kwargs = grpo_kwargs("vllm-colocate", gpu_memory_utilization=0.25, max_model_length=640, sleep_mode=True)
    args = grpo_config(tmp_path, **kwargs)
    assert args.use_vllm and args.vllm_mode == "colocate"
    assert args.vllm_gpu_memory_utilization == 0.25 and args.vllm_max_model_length == 640
    assert args.vllm_tensor_parallel_size == 1 and args.vllm_enable_sleep_mode


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown TRL vLLM engine 'vllm-remote'"):
        grpo_kwargs("vllm-remote")  # type: ignore[arg-type]


def test_unavailable_says_what_to_install(monkeypatch):
    monkeypatch.setattr(trl_vllm.importlib.util, "find_spec", lambda name: None)
    assert "pip install vllm" in trl_vllm.unavailable()
    monkeypatch.setattr(trl_vllm.importlib.util, "find_spec", lambda name: object())
    assert trl_vllm.unavailable() is None


def _trainer(tiny_dir, args):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    data = Dataset.from_list([{"prompt": f"User: {i}*2 Assistant: "} for i in range(8)])

    def length_reward(completions, **kw):
        return [float(len(c)) for c in completions]

    return GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_dir), args=args, train_dataset=data,
                       processing_class=tok, reward_funcs=[length_reward])


@pytest.mark.skipif(HAS_VLLM, reason="vLLM installed: TRL would start it")
def test_trainer_takes_trls_vllm_path(tiny_dir, tmp_path):
    args = grpo_config(tmp_path, **grpo_kwargs("vllm-colocate"))
    with pytest.raises(ImportError, match="vLLM is not available"):
        _trainer(tiny_dir, args)


@pytest.mark.skipif(not (HAS_VLLM and torch.cuda.is_available()), reason="needs vLLM and a CUDA GPU")
def test_one_grpo_step_with_colocated_vllm(tiny_dir, tmp_path):
    args = grpo_config(tmp_path, bf16=True, **grpo_kwargs("vllm-colocate", gpu_memory_utilization=0.2,
                                                           max_model_length=128))
    trainer = _trainer(tiny_dir, args)
    trainer.train()
    assert trainer.state.global_step == 1
