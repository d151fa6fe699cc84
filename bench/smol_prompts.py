"""How often SmolLM2-135M-Instruct gives a gradable, correct answer under candidate R1-Zero prompts.

R1-Zero only learns when some samples of a group earn reward. This probe samples the base model on
held-out reasoning-gym ``basic_arithmetic`` items (2 terms, 1-2 digits, + and -) under several
chat prompts and scores each completion two ways: strictly, as the pipeline's ``accuracy`` reward
does (an ``<answer>`` block or ``\\boxed{}``), and by the last integer in the completion. Columns:
pass@1 and pass@k for both readings, the share of completions with a strict answer, the share cut
at the token limit, mean completion tokens, and tokens/s.

    python bench/smol_prompts.py --prompts 64 --k 4            # vLLM when installed, else HF bf16

The last line is the headline: the best strict and last-number pass@1 over the prompts tried.
"""

from __future__ import annotations

import argparse
import re
import time
from typing import Callable

SYSTEM_R1 = ("You are a helpful assistant. You first think about the reasoning process and then give the "
             "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> "
             "</answer> tags, respectively, i.e., <think> reasoning process here </think> <answer> answer "
             "here </answer>.")
_INT = re.compile(r"-?\d+")


def prompt_styles(tokenizer) -> dict[str, tuple[Callable[[str], str], str]]:
    """name -> (question -> prompt, text the prompt pre-fills at the start of the answer)."""
    def chat(user: str, system: str | None = None) -> str:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    return {
        "boxed": (lambda q: chat(q + " Put the final answer in \\boxed{}."), ""),
        "r1_system": (lambda q: chat(q, SYSTEM_R1), ""),
        "r1_system+<think>": (lambda q: chat(q, SYSTEM_R1) + "<think>", "<think>"),
        "just_the_number": (lambda q: chat(q + " Answer with just the final number."), ""),
    }


def main() -> None:
    from transformers import AutoTokenizer

    from r1pipeline.models.catalog import resolve_model
    from r1pipeline.rewards.builtin import accuracy_reward
    from r1pipeline.rewards.parse import extract_answer
    from r1pipeline.rollout.base import make_engine
    from r1pipeline.tasks.reasoning_gym import ReasoningGymSource

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--engine", default="auto", choices=["auto", "hf", "vllm"])
    args = ap.parse_args()

    path = resolve_model("smollm2-135m-instruct")
    tokenizer = AutoTokenizer.from_pretrained(path)
    task = ReasoningGymSource(datasets={"basic_arithmetic": {"min_terms": 2, "max_terms": 2, "min_digits": 1,
                                                             "max_digits": 2, "operators": ["+", "-"]}})
    rows = task.load("test", args.prompts, 0)
    engine = make_engine(args.engine, path, dtype="bfloat16")
    print(f"{len(rows)} held-out basic_arithmetic prompts x k={args.k}, T=0.6, top-p 0.95, "
          f"{args.max_new_tokens} new tokens, engine {type(engine).__name__}")
    print(f"{'prompt':>18} {'strict p@1':>10} {'p@k':>5} {'last-num p@1':>12} {'p@k':>5} "
          f"{'answered':>8} {'cut':>5} {'tokens':>6} {'tok/s':>6}")
    best = {"strict": 0.0, "last": 0.0}
    try:
        for name, (render, prefill) in prompt_styles(tokenizer).items():
            t0 = time.perf_counter()
            outs = engine.generate([render(r["question"]) for r in rows], num_samples=args.k, temperature=0.6,
                                   top_p=0.95, max_new_tokens=args.max_new_tokens, seed=0)
            seconds = time.perf_counter() - t0
            strict, last, answered, cut, tokens = [], [], 0, 0, 0
            for row, group in zip(rows, outs):
                texts = [prefill + c.text for c in group]
                ok = accuracy_reward(texts, answer=[row["answer"]] * len(texts), verifier=[row["verifier"]] * len(texts))
                strict.append(sum(ok) / len(ok))
                ints = [_INT.findall(t) for t in texts]
                last.append(sum(bool(n) and n[-1] == str(row["answer"]).strip() for n in ints) / len(texts))
                answered += sum(extract_answer(t) is not None for t in texts)
                cut += sum(c.truncated for c in group)
                tokens += sum(c.n_tokens for c in group)
            n = len(rows) * args.k
            s1, l1 = sum(strict) / len(strict), sum(last) / len(last)
            best = {"strict": max(best["strict"], s1), "last": max(best["last"], l1)}
            print(f"{name:>18} {s1:10.3f} {sum(p > 0 for p in strict) / len(strict):5.2f} {l1:12.3f} "
                  f"{sum(p > 0 for p in last) / len(last):5.2f} {answered / n:8.3f} {cut / n:5.2f} "
                  f"{tokens / n:6.0f} {tokens / seconds:6.0f}", flush=True)
    finally:
        getattr(engine, "close", lambda: None)()
    print(f"smol_prompts: best strict pass@1 {best['strict']:.3f}, best last-number pass@1 {best['last']:.3f} "
          f"(SmolLM2-135M-Instruct, basic_arithmetic)")


if __name__ == "__main__":
    main()
