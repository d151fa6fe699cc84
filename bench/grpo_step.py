"""Where a GRPO step goes: generation, rewards, log-probs, backward, optimizer, sync (SmolLM2-135M-Instruct or any local model).

Run by hand: ``.venv/bin/python bench/grpo_step.py [--engines trl,auto] [--prompts 2 --g 8 --tokens 32]``;
the tiny world's R1-Zero step: ``bench/grpo_step.py --model runs/tiny/base/model --task '{source: tiny_product, n_digits: 5}'
--template r1_zero_short --prompts 4 --g 8 --tokens 56 --beta 0 --engines trl,hf --steps 12 --threads 1``
(one process's share of tiny.yaml's 64 completions on two processes).

TRL's ``GRPOTrainer`` on the model (float32 policy unless ``auto`` picks bf16, the R1-Zero prompt
on arithmetic questions, or on ``--task``'s training questions, accuracy + format rewards, ``beta``
0.001 as in the paper so the reference model runs; ``--beta 0`` as tiny.yaml's R1-Zero), one
optimizer step per generation batch. Each engine (``trl``: TRL's own ``generate`` on the policy;
``hf``, ``vllm``, ``auto``: our engine of that kind through ``rollout_func``, in the dtype ``auto``
measures on this CPU (float32 on AVX2-only CPUs, where bf16 is ~60x slower); auto is vLLM when
installed, else HF) runs ``--steps`` steps; the mean over every step after the first (TRL's
warm-up) is reported, split by wrapping the trainer's methods:

* generation: ``_generate`` less the weight sync (the engine's ``generate``, or TRL's);
* weight sync: ``update_weights`` inside our hook (none for ``trl``: it generates with the policy);
* rewards: ``_calculate_rewards``;
* ref/old log-probs: ``_get_per_token_logps_and_entropies`` outside autograd (the reference
  model; old log-probs only when TRL needs them, which it does not at one step per batch);
* forward: ``compute_loss`` (the policy's log-probs with autograd, and the loss);
* backward: ``accelerator.backward``; optimizer: gradient clipping + ``optimizer.step``;
* other: the rest of the step (padding, advantages, logging, callbacks): TRL's own bookkeeping.

The last line is the headline: the generation share under TRL's default and under our engine.
The machine's other load moves the numbers; the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager

QUESTIONS = [("What is 17*23?", "391"), ("What is 4*9*3?", "108"), ("What is 128-59?", "69"),
             ("What is 3+4*5?", "23"), ("What is 2^10?", "1024"), ("What is 144/12?", "12")]
PARTS = ["generation", "weight sync", "rewards", "ref/old log-probs", "forward", "backward", "optimizer", "other"]


class StepTimes:
    """Seconds per part for the current optimizer step (reset at each step's start)."""

    def __init__(self):
        self.current: dict[str, float] = defaultdict(float)
        self.steps: list[dict[str, float]] = []
        self._step_start = 0.0

    @contextmanager
    def part(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.current[name] += time.perf_counter() - t0

    def wrap(self, obj, method: str, part: str, when=lambda: True):
        orig = getattr(obj, method)

        def timed(*args, **kwargs):
            if not when():
                return orig(*args, **kwargs)
            with self.part(part):
                return orig(*args, **kwargs)

        setattr(obj, method, timed)

    def callback(self):
        from transformers import TrainerCallback

        times = self

        class Timer(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                times.current = defaultdict(float)
                times._step_start = time.perf_counter()

            def on_pre_optimizer_step(self, args, state, control, **kw):
                times._opt_start = time.perf_counter()

            def on_optimizer_step(self, args, state, control, **kw):
                times.current["optimizer"] += time.perf_counter() - times._opt_start

            def on_step_end(self, args, state, control, **kw):
                times.current["total"] = time.perf_counter() - times._step_start
                times.steps.append(dict(times.current))

        return Timer()


def training_dtype(model_path, tokens: int) -> str:
    """The dtype ``auto`` picks for training at the model's shapes on this machine (measured, cached)."""
    from r1pipeline import precision

    return precision.resolve("auto", precision.config_shapes(model_path, tokens), "cpu").dtype


def question_rows(args) -> list[dict]:
    """The prompts of every step: ``--task``'s training questions, else a few arithmetic ones, repeated."""
    from r1pipeline.tasks.templates import render

    n = args.prompts * args.steps
    if args.task:
        import yaml

        from r1pipeline.stages.common import build_task
        from r1pipeline.stages.grpo import prompt_rows

        block = yaml.safe_load(args.task)  # a source's name, or a task block as in a spec
        task = build_task(block if isinstance(block, dict) else {"source": block}, ".")
        return prompt_rows(task.load("train", n, 0), args.template)
    return [{"prompt": render(args.template, q), "answer": a, "verifier": "exact"}
            for q, a in (QUESTIONS * (n // len(QUESTIONS) + 1))[:n]]


def build_trainer(engine: str, model_path, args, out_dir: str, times: StepTimes):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from r1pipeline.stages.rl_support import reward_functions

    rows = question_rows(args)
    funcs, weights = reward_functions({"accuracy": 1.0, "format": 0.5})
    n = args.prompts * args.g
    # Training precision: what dtype auto picks here, for every contender (so that they differ in generation
    # only). TRL's own default resolves bf16=None to True even on a CPU: on an AVX2-only one its first step at
    # these sizes took 278 s (bf16 GEMMs at 1-2 GFLOP/s), so the baseline would never print its headline.
    bf16 = training_dtype(model_path, n * args.tokens) == "bfloat16"
    cfg = GRPOConfig(bf16=bf16, output_dir=out_dir, max_steps=args.steps, per_device_train_batch_size=n, num_generations=args.g,
                     max_completion_length=args.tokens, learning_rate=1e-6, beta=args.beta, loss_type="dapo",
                     temperature=1.0, logging_steps=1, report_to="none", save_strategy="no", use_cpu=True,
                     disable_tqdm=True, reward_weights=weights, seed=0, shuffle_dataset=False)
    hook = None
    if engine != "trl":
        from r1pipeline.rollout.base import make_engine
        from r1pipeline.rollout.trl_hook import EngineRollout

        os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"
        hook = EngineRollout(lambda: make_engine(engine, model_path))
        sync = hook._sync

        def timed_sync(trainer):
            with times.part("weight sync"):
                return sync(trainer)

        hook._sync = timed_sync
    tok = AutoTokenizer.from_pretrained(model_path)
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(model_path), reward_funcs=funcs, args=cfg,
                          train_dataset=Dataset.from_list(rows), processing_class=tok, rollout_func=hook,
                          callbacks=[times.callback()])
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # a dict of logs a step: the parts below say what matters here
    return trainer, hook


def instrument(trainer, times: StepTimes) -> None:
    import torch

    times.wrap(trainer, "_generate", "generation")
    times.wrap(trainer, "_calculate_rewards", "rewards")
    times.wrap(trainer, "_get_per_token_logps_and_entropies", "ref/old log-probs",
               when=lambda: not torch.is_grad_enabled())
    times.wrap(trainer, "compute_loss", "forward")
    times.wrap(trainer.accelerator, "backward", "backward")
    times.wrap(trainer, "_clip_grad_norm", "optimizer")


def run_engine(engine: str, model_path, args) -> dict[str, float]:
    times = StepTimes()
    with tempfile.TemporaryDirectory() as out:
        trainer, hook = build_trainer(engine, model_path, args, out, times)
        instrument(trainer, times)
        t0 = time.perf_counter()
        try:
            trainer.train()
        finally:
            if hook is not None:
                kind = hook.engine.kind if hook.engine is not None else "?"
                hook.close()
    label = "trl (TRL's generate)" if engine == "trl" else f"{engine} -> {kind}"
    totals = ", ".join(f"{s['total']:.1f}" for s in times.steps)
    print(f"{label}: {args.steps} steps in {time.perf_counter() - t0:.1f} s (engine start included); "
          f"step totals {totals} s")
    last = mean_step(times.steps)
    for p in PARTS:
        v = last.get(p, 0.0)
        print(f"  {p:>18}: {v:6.2f} s  {100 * v / last['total']:5.1f}%")
    last["label"] = label
    return last


def mean_step(steps: list[dict[str, float]]) -> dict[str, float]:
    """Seconds per part, averaged over every step after the first (the only one when there is one).

    >>> r = mean_step([{"total": 9.0}, {"total": 2.0, "generation": 1.0, "weight sync": 0.5}])
    >>> r["generation"], r["other"]
    (0.5, 1.0)
    """
    kept = steps[1:] or steps
    mean = {p: sum(s.get(p, 0.0) for s in kept) / len(kept) for p in [*PARTS, "total"]}
    mean["generation"] -= mean["weight sync"]  # the sync runs inside _generate
    mean["other"] = mean["total"] - sum(mean[p] for p in PARTS if p != "other")
    return mean


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default="trl,auto", help="comma-separated: trl (TRL's generate), hf, vllm, auto")
    ap.add_argument("--prompts", type=int, default=2, help="distinct prompts per step (default 2)")
    ap.add_argument("--g", type=int, default=8, help="G, completions per prompt (default 8)")
    ap.add_argument("--tokens", type=int, default=32, help="max completion length (default 32)")
    ap.add_argument("--steps", type=int, default=2,
                    help="steps per engine; the mean of all but the first is reported (default 2)")
    ap.add_argument("--model", default="smollm2-135m-instruct",
                    help="a catalog model (r1 models list) or a local model directory, e.g. runs/tiny/base/model")
    ap.add_argument("--task", default="", help="the questions' task: a source's name or a spec's task block, e.g. "
                         "'{source: tiny_product, n_digits: 5}' (default: a few arithmetic questions)")
    ap.add_argument("--template", default="r1_zero", help="prompt template (tiny.yaml: r1_zero_short)")
    ap.add_argument("--beta", type=float, default=0.001, help="KL coefficient; 0: no reference model (tiny.yaml)")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads (default: torch's); 1 as each of r1 run's processes, and on cores other "
                         "work holds (2 threads on 2 busy cores made the tiny step 5x slower)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from r1pipeline.models.catalog import resolve_model
    from r1pipeline.machine import cpu_facts

    path = args.model if os.path.isdir(args.model) else resolve_model(args.model)
    facts = cpu_facts("cpu")
    print(f"{args.model} GRPO: {args.prompts} prompts x G={args.g}, <= {args.tokens} new tokens, "
          f"{facts.cpu_model} ({facts.cpu_class}), torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}; training in {training_dtype(path, args.prompts * args.g * args.tokens)} "
          f"for every contender (dtype auto; TRL's own default is bf16)")
    results = [run_engine(e, path, args) for e in args.engines.split(",")]
    print(" | ".join(f"{r['label']}: step {r['total']:.2f} s, generation {100 * r['generation'] / r['total']:.0f}%, "
                     f"sync {100 * r.get('weight sync', 0.0) / r['total']:.0f}%" for r in results))


if __name__ == "__main__":
    main()
