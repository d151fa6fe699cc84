"""Throughput of every registered reward: completions scored per second.

Run by hand: ``.venv/bin/python bench/rewards.py [--n 2000] [--reward-model DIR]``.
``--hostile`` times instead the shapes a policy writes to hang math-verify (nested ``\\frac``
and ``\\sqrt`` thousands deep, power towers, a megabyte of text), one guarded sample each as
GRPO scores them (the guard's own per-sample time limit), and how long the input bounds take
to refuse each (``rewards.bounds``). Point ``PYTHONPATH`` at an older ``src`` to time that.

The completions are a fixed, seeded mix in the proportions a GRPO batch has early in
training: correct and wrong answers (integers, fractions, LaTeX), malformed outputs (no tags,
nested tags, unclosed think), long chains of thought (~20k characters) and mixed-language ones,
eight completions per prompt (so each reference repeats eight times, as in GRPO). Each reward is
timed on the raw function (one process, one thread), and math_accuracy also through
``safe.guard`` (worker process, per-sample time limit), which is how the GRPO stage runs it.
The last line is the headline.
"""

from __future__ import annotations

import argparse
import random
import time

from r1pipeline.rewards import build, names
from r1pipeline.rewards.safe import guard

GENERATIONS = 8
GOLDS = ["7", "42", "1/2", "\\frac{3}{4}", "0.25", "\\sqrt{2}", "12", "x=3"]
WRONG = {"7": "8", "42": "24", "1/2": "1/3", "\\frac{3}{4}": "0.7", "0.25": "1/5",
         "\\sqrt{2}": "2", "12": "13", "x=3": "x=4"}
WORDS = "so we multiply both sides then add the terms and check the result again".split()
PARAMS = {"cosine_length": {"unit": "chars"}, "soft_overlong": {"unit": "chars"}}
CODE = "```python\nprint(int(input()) * 2)\n```"


def reasoning(rng: random.Random, n_words: int, mixed: bool = False) -> str:
    words = [rng.choice(WORDS) for _ in range(n_words)]
    if mixed:
        words = [w if rng.random() < 0.7 else "乘得" for w in words]
    return " ".join(words) + f" {rng.randint(1, 99)}*{rng.randint(1, 9)}={rng.randint(1, 999)}"


def completion(rng: random.Random, gold: str) -> str:
    kind = rng.choices(["correct", "wrong", "malformed", "long", "mixed"], [35, 35, 15, 10, 5])[0]
    answer = gold if kind in ("correct", "long", "mixed") else WRONG[gold]
    if kind == "malformed":
        return rng.choice([f"the answer is {answer}", f"<think>{reasoning(rng, 30)}",
                           f"<think><think>{reasoning(rng, 20)}</think></think><answer>{answer}</answer>",
                           f"<answer>{answer}</answer><think>x</think>"])
    n = 3000 if kind == "long" else rng.randint(20, 200)
    end = (f"<answer>{answer}</answer>" if rng.random() < 0.6
           else f" So the answer is $\\boxed{{{answer}}}$.\n{CODE}")
    return f"<think>{reasoning(rng, n, mixed=kind == 'mixed')}</think>{end}"


def make_batch(n: int, seed: int = 0) -> tuple[list[str], dict]:
    rng = random.Random(seed)
    completions, answer = [], []
    for i in range(n):
        if i % GENERATIONS == 0:
            gold = rng.choice(GOLDS)
        completions.append(completion(rng, gold))
        answer.append(gold)
    columns = {
        "answer": answer,
        "verifier": ["math"] * n,
        "completion_ids": [list(range(len(c) // 4)) for c in completions],
        "tests": [[{"input": "2", "output": "4"}, {"input": "5", "output": "10"}]] * n,
        "prompts": ["Solve: "] * n,
    }
    return completions, columns


def rate(fn, completions: list[str], columns: dict, min_s: float = 1.0) -> float:
    """Completions per second over repeated calls on the whole batch (at least ``min_s``)."""
    fn(completions[:GENERATIONS], **{k: v[:GENERATIONS] for k, v in columns.items()})  # warm up
    done, t0 = 0, time.perf_counter()
    while True:
        fn(completions, **columns)
        done += len(completions)
        elapsed = time.perf_counter() - t0
        if elapsed >= min_s:
            return done / elapsed


def human(r: float) -> str:
    if r >= 1e6:
        return f"{r / 1e6:.1f}M/s"
    return f"{r / 1000:.1f}k/s" if r >= 1000 else f"{r:.0f}/s"


HOSTILE = {
    "nested \\frac 5000 deep": "\\frac{1}{" * 5000 + "2" + "}" * 5000,
    "nested \\sqrt 10000 deep": "\\sqrt{" * 10000 + "2" + "}" * 10000,
    "braces 100 deep": "{" * 100 + "1" + "}" * 100,
    "x^x^... 1000 high": "^".join(["x"] * 1000),
    "9^{9^{9}}": "9^{9^{9}}",
    "10^{10^{10}}!": "10^{10^{10}}!",
    "10^{9999999}": "10^{9999999}",
    "a megabyte of letters": "a" * 1_000_000,
    "x+x+... 6000 chars": "x+" * 3000 + "x",
}


def hostile() -> None:
    """Seconds per hostile sample through the guard, and microseconds for the bounds to refuse it."""
    import inspect

    from r1pipeline.rewards import safe

    try:
        from r1pipeline.rewards.bounds import math_input_problem
    except ImportError:  # a src from before the bounds
        math_input_problem = None
    timeout = inspect.signature(safe.guard).parameters["timeout_s"].default
    print(f"guarded math_accuracy, the guard's default limit {timeout:g} s per sample")
    with guard(build("math_accuracy")) as g:
        g(["<answer>1</answer>"], answer=["1"])  # start the worker
        for label, text in HOSTILE.items():
            t0 = time.perf_counter()
            out = g([f"<think>.</think><answer>{text}</answer>"], answer=["2"])
            took = time.perf_counter() - t0
            refuse = ""
            if math_input_problem is not None:
                t1 = time.perf_counter()
                for _ in range(100):
                    math_input_problem(text)
                refuse = f", bounds refuse it in {(time.perf_counter() - t1) / 100 * 1e6:.1f} us"
            print(f"{label:>24}: {took:7.3f} s -> {out[0]} (timeouts so far {g.stats['timeouts']}){refuse}",
                  flush=True)
            g(["<answer>1</answer>"], answer=["1"])  # wait for a restarted worker outside the timing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="completions in the batch (default 2000)")
    ap.add_argument("--slow-n", type=int, default=200, help="batch for math-verify and code rewards")
    ap.add_argument("--reward-model", default=None, help="HF directory of a reward model to time too")
    ap.add_argument("--hostile", action="store_true", help="time hostile math samples instead")
    args = ap.parse_args()
    if args.hostile:
        hostile()
        return

    completions, columns = make_batch(args.n)
    print(f"{args.n} completions, mean length {sum(map(len, completions)) / args.n:.0f} chars")
    results: dict[str, float] = {}
    for name in names():
        params = dict(PARAMS.get(name, {}))
        if name == "reward_model":
            if not args.reward_model:
                print(f"{name:>22}: skipped (pass --reward-model DIR)")
                continue
            params["path"] = args.reward_model
        slow = name in ("math_accuracy", "code", "reward_model") or name.startswith("oracle")
        n = args.slow_n if slow else args.n
        try:
            fn = build(name, **params)
            r = rate(fn, completions[:n], {k: v[:n] for k, v in columns.items()})
        except Exception as e:  # noqa: BLE001  (a reward that needs columns this bench lacks)
            print(f"{name:>22}: n/a ({type(e).__name__}: {str(e)[:60]})")
            continue
        results[name] = r
        print(f"{name:>22}: {human(r):>9}  ({n} completions a call)")

    n = args.slow_n
    with guard(build("math_accuracy"), timeout_s=5.0) as g:
        results["math_accuracy (guarded)"] = r = rate(g, completions[:n], {k: v[:n] for k, v in columns.items()})
    print(f"{'math_accuracy (guarded)':>22}: {human(r):>9}  (worker process, 5 s per-sample limit)")
    with guard(build("language_consistency"), timeout_s=5.0) as g:
        results["language_consistency (guarded)"] = r = rate(g, completions, columns)
    print(f"{'language_consistency (guarded)':>22}: {human(r):>9}  (inline, input bounding only)")

    print("rewards: " + ", ".join(f"{k} {human(v)}" for k, v in results.items()))


if __name__ == "__main__":
    main()
