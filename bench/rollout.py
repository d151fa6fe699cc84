"""Rollout throughput: our engine vs Hugging Face generate as TRL's GRPOTrainer calls it by default.

Run by hand: ``.venv/bin/python bench/rollout.py [--reps 3] [--prompts 8 --g 8 --tokens 128]``
(with vLLM installed, e.g. in a venv with ``pip install 'r1pipeline[vllm]'``, "our engine" is
vLLM; without, it is our HF engine in the dtype ``auto`` measures on this CPU: bfloat16 on AMX,
float32 on AVX2-only CPUs, where bf16 GEMMs are ~60x slower). On 2 AVX2 cores the default sizes
take ~8 minutes (each contender generates 64 x 128 tokens four times at ~100 tokens/s).

Same model (SmolLM2-135M-Instruct), same prompts (the R1-Zero template on arithmetic
questions, each repeated G times as TRL's sampler does), same sampling (temperature 1.0,
top-p 1.0, no top-k: TRL's defaults) and the same lengths: the end-of-sequence token is
suppressed so that every row generates exactly ``--tokens`` tokens (64 x 128 by default).
The contenders run interleaved, one timed call each per repetition, after one warm-up call:

* ``trl-default``: ``model.generate`` on the float32 policy with TRL's ``GenerationConfig``,
  all rows in one call (``GRPOTrainer._generate_single_turn``, no vLLM);
* ``hf-<dtype>``: ``HFEngine`` in the dtype ``auto`` picks (G samples per distinct prompt; SmolLM2 is
  a Llama, so it decodes with ``rollout/lean.py``'s loop); ``--generate`` adds the same engine
  on HF ``generate`` (``hf-<dtype>-generate``), ``--dtypes`` other dtypes;
* ``vllm``: ``VLLMEngine`` (when installed).

Also printed: the CPU and its class (AVX2 / AVX-512 / AMX), the rate of fp32 and bf16 GEMMs
(``machine.gemm_peak``: up to 2048^3, smaller where a call would take seconds) as a ceiling, each
contender's share of it (model FLOPs per token = 2 x parameters + attention), and the cost of
one ``update_weights`` from a float32 policy. All contenders use torch's thread count (vLLM's
server is given the same), so the ceiling holds for each. Medians over repetitions; the last
line is the headline. Other processes on the machine move these numbers: the script prints the
load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

QUESTIONS = ["What is 17*23?", "What is 4*9*3?", "What is 128-59?", "What is 3+4*5?",
             "Is 91 prime?", "What is 2^10?", "What is 144/12?", "What is 7*8*2?"]


def flops_per_token(config, n_params: int, context: float) -> float:
    """Forward FLOPs per generated token: 2 per weight (the LM head included) + attention over ``context``."""
    return 2 * n_params + 4 * config.num_hidden_layers * context * config.hidden_size


def trl_default(model_path, tokenizer, prompts: list[str], g: int, tokens: int) -> Callable[[int], int]:
    """One ``generate`` call as TRL makes it without vLLM; returns a run(seed) -> generated tokens."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    from r1pipeline.rollout.hf import _left_pad

    model = AutoModelForCausalLM.from_pretrained(model_path).eval()  # the float32 policy
    eos = [tokenizer.eos_token_id]
    gen_kwargs = dict(do_sample=True, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                      eos_token_id=eos, temperature=1.0, top_p=1.0, top_k=0, min_p=None,
                      repetition_penalty=1.0, cache_implementation=None, disable_compile=True)
    rows = tokenizer(text=[p for p in prompts for _ in range(g)])["input_ids"]
    input_ids, mask = _left_pad(rows, tokenizer.pad_token_id)

    def run(seed: int, n_new: int = tokens) -> int:
        torch.manual_seed(seed)
        with torch.no_grad():
            cfg = GenerationConfig(max_new_tokens=n_new, min_new_tokens=n_new, **gen_kwargs)  # as TRL's
            out = model.generate(input_ids=input_ids, attention_mask=mask, generation_config=cfg)
        return (out.shape[1] - input_ids.shape[1]) * out.shape[0]

    run.model = model  # the policy, for the weight-sync timing
    return run


def engine_runner(engine, tokenizer, prompts: list[str], g: int, tokens: int) -> Callable[[int], int]:
    ids = tokenizer(text=prompts)["input_ids"]

    def run(seed: int, n_new: int = tokens) -> int:
        out = engine.generate(ids, num_samples=g, temperature=1.0, top_p=1.0, max_new_tokens=n_new,
                              seed=seed, ignore_eos=True)
        return sum(c.n_tokens for group in out for c in group)

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="timed calls per contender (default 3)")
    ap.add_argument("--prompts", type=int, default=8, help="distinct prompts (default 8)")
    ap.add_argument("--g", type=int, default=8, help="samples per prompt (default 8)")
    ap.add_argument("--tokens", type=int, default=128, help="new tokens per row (default 128)")
    ap.add_argument("--dtypes", default="", help="comma-separated: also time HFEngine in these dtypes (float32, bfloat16)")
    ap.add_argument("--generate", action="store_true", help="also time our engine on HF generate (no lean loop)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from transformers import AutoTokenizer

    from r1pipeline.models.catalog import resolve_model
    from r1pipeline.machine import cpu_facts, gemm_peak
    from r1pipeline.rollout.base import vllm_available
    from r1pipeline.rollout.hf import HFEngine
    from r1pipeline.tasks.templates import render

    path = resolve_model("smollm2-135m-instruct")
    tok = AutoTokenizer.from_pretrained(path)
    prompts = [render("r1_zero", QUESTIONS[i % len(QUESTIONS)]) for i in range(args.prompts)]
    n_rows = args.prompts * args.g
    facts = cpu_facts("cpu")
    print(f"SmolLM2-135M-Instruct, {n_rows} rows ({args.prompts} prompts x G={args.g}) x {args.tokens} "
          f"new tokens; {facts.cpu_model} ({facts.cpu_class}), torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    peak = {d: gemm_peak(d) for d in ("float32", "bfloat16")}
    print("GEMM ceiling: " + ", ".join(f"{d} {rate:.0f} GFLOP/s ({n}^3)" for d, (rate, n) in peak.items()))
    peak = {d: rate for d, (rate, _) in peak.items()}

    runners: dict[str, Callable[[int], int]] = {}
    runners["trl-default"] = baseline = trl_default(path, tok, prompts, args.g, args.tokens)
    auto = HFEngine(path, dtype="auto")  # measured on this CPU at the model's shapes (precision.py)
    engines = {f"hf-{auto.dtype}": auto}
    for dtype in filter(None, args.dtypes.split(",")):
        engines.setdefault(f"hf-{dtype}", HFEngine(path, dtype=dtype))
    if args.generate:
        engines[f"hf-{auto.dtype}-generate"] = HFEngine(path, dtype=auto.dtype, lean_decode=False)
    if vllm_available():
        from r1pipeline.rollout.vllm_engine import VLLMEngine

        t0 = time.perf_counter()
        engines["vllm"] = VLLMEngine(path, dtype=auto.dtype, threads=torch.get_num_threads())
        print(f"vLLM engine start: {time.perf_counter() - t0:.1f} s")
    try:
        for name, eng in engines.items():
            runners[name] = engine_runner(eng, tok, prompts, args.g, args.tokens)
        report(runners, engines, baseline, args, peak, n_params=sum(p.numel() for p in baseline.model.parameters()),
               context=statistics.mean(len(r) for r in tok(text=prompts)["input_ids"]) + args.tokens / 2,
               cpu_class=facts.cpu_class)
    finally:
        for eng in engines.values():
            eng.close()


def report(runners, engines, baseline, args, peak, n_params: int, context: float, cpu_class: str) -> None:
    for name, run in runners.items():  # warm-up: first-call allocations, oneDNN primitives
        run(0, 8)
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for rep in range(args.reps):
        for name, run in runners.items():
            t0 = time.perf_counter()
            n = run(rep + 1)
            rates[name].append(n / (time.perf_counter() - t0))
            print(f"  rep {rep + 1} {name:>12}: {rates[name][-1]:7.1f} tokens/s", flush=True)
    flops = flops_per_token(baseline.model.config, n_params, context)
    med = {name: statistics.median(r) for name, r in rates.items()}
    for name, r in med.items():
        dtype = "float32" if name == "trl-default" else getattr(engines[name], "dtype", "bfloat16")
        print(f"{name:>12}: {r:7.1f} tokens/s (median of {args.reps}), {r * flops / 1e9:5.1f} GFLOP/s = "
              f"{100 * r * flops / 1e9 / peak[dtype]:4.1f}% of the {dtype} GEMM rate, "
              f"{r / med['trl-default']:.2f}x trl-default")
    for name, eng in engines.items():
        eng.update_weights(baseline.model)  # first sync allocates
        t0 = time.perf_counter()
        eng.update_weights(baseline.model)
        print(f"{name:>12}: update_weights from the float32 policy {time.perf_counter() - t0:.2f} s")
    ours = "vllm" if "vllm" in med else next(iter(engines))
    best = max(peak, key=peak.get)
    share = 100 * med[ours] * flops / 1e9 / peak[best]
    print(f"ceiling: {best} GEMM {peak[best]:.0f} GFLOP/s; {ours} reaches {share:.1f}% of it; "
          f"load average now {os.getloadavg()[0]:.1f}")
    print(f"rollout: {med[ours] / med['trl-default']:.2f}x HF generate ({ours} {med[ours]:.0f} vs "
          f"{med['trl-default']:.0f} tokens/s) on {cpu_class}")


if __name__ == "__main__":
    main()
