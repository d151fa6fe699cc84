"""What the stages add around TRL's trainers: reward functions, metrics, held-out checks, resume, saving.

On several processes every rank runs the trainer (DDP, or DeepSpeed/FSDP under an accelerate
config); only rank 0 writes metrics and the model directory, and all ranks resume from the
checkpoint rank 0 picked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from r1pipeline import distributed
from r1pipeline.rundir import MetricsLog
from r1pipeline.rewards.parse import has_chain_of_thought
from r1pipeline.stages.common import reward_uses


def reward_functions(rewards: dict[str, Any], input_dirs: dict[str, Path] | None = None,
                     max_steps: int | None = None) -> tuple[list, list[float]]:
    """The spec's ``rewards`` block -> (callables, weights).

    Each callable is named ``<label>_reward``, reads stage models named in its parameters,
    is limited to the last N steps when asked, and is guarded so that it cannot stop training.
    """
    from r1pipeline.rewards import registry
    from r1pipeline.rewards.safe import guard

    input_dirs = input_dirs or {}
    funcs, weights = [], []
    for use in reward_uses(rewards):
        params = {k: str(input_dirs[v] / "model") if isinstance(v, str) and v in input_dirs else v
                  for k, v in use.params.items()}
        fn = guard(registry.build(use.name, **params))
        if use.last_steps and max_steps:
            fn = LastSteps(fn, start=max_steps - use.last_steps)
        fn.__name__ = f"{use.label}_reward"
        funcs.append(fn)
        weights.append(float(use.weight))
    return funcs, weights


class LastSteps:
    """A reward that applies only from optimizer step ``start`` on (None = skipped before).

    The paper adds preference rewards only in the last 400 of 1,700 steps: more steps of
    preference reward led to reward hacking.
    """

    def __init__(self, fn, start: int):
        self.fn, self.start = fn, start
        self.__name__ = getattr(fn, "__name__", "gated_reward")

    @property
    def stats(self) -> dict[str, int]:
        return getattr(self.fn, "stats", {})

    def __call__(self, completions: list, trainer_state=None, **kw) -> list:
        if trainer_state is not None and trainer_state.global_step < self.start:
            return [None] * len(completions)
        return self.fn(completions, trainer_state=trainer_state, **kw)


class HeldOutEval:
    """Greedy accuracy, format rate, chain-of-thought rate and length on held-out prompts.

    Every rank evaluates all prompts (the same greedy answers, so the same numbers): a model
    sharded by ZeRO-3 or FSDP gathers its weights in every forward pass, which all ranks must join.
    """

    def __init__(self, rows: list[dict], template: str, tokenizer, max_new_tokens: int, every: int):
        from r1pipeline.tasks.templates import render

        rows = [r for r in rows if r.get("verifier", "exact") != "none"]  # reasoning prompts only
        self.rows, self.tokenizer, self.every = rows, tokenizer, every
        self.prompts = [render(template, r["question"]) for r in rows]
        self.max_new_tokens = max_new_tokens

    def evaluate(self, model) -> dict[str, float]:
        if not self.rows:
            return {}
        from r1pipeline.rewards.builtin import accuracy_reward, any_format_reward
        from r1pipeline.rollout.hf import generate

        outs = [c[0] for c in generate(model, self.tokenizer, self.prompts, greedy=True,
                                       max_new_tokens=self.max_new_tokens, batch_size=128)]
        texts = [o.text for o in outs]
        acc = accuracy_reward(texts, answer=[r["answer"] for r in self.rows],
                              verifier=[r.get("verifier", "exact") for r in self.rows],
                              answer_from=[r.get("answer_from", "tags") for r in self.rows])
        n = len(texts)
        return {"heldout/accuracy": sum(acc) / n,
                "heldout/format_rate": sum(any_format_reward(texts)) / n,
                "heldout/cot_rate": sum(has_chain_of_thought(t) for t in texts) / n,
                "heldout/mean_length": sum(o.n_tokens for o in outs) / n,
                "heldout/tokens": sum(o.n_tokens for o in outs)}  # generated: the check's share of the work


class MetricsCallback(TrainerCallback):
    """Writes one line per step to metrics.jsonl: TRL's logged metrics plus held-out checks.

    On several processes, rank 0 alone writes and shows progress; the Trainer has already
    averaged the logged numbers over the ranks.
    """

    def __init__(self, log: MetricsLog, evaluator: HeldOutEval | None = None, label: str = "grpo",
                 reward_funcs: list | None = None):
        self.log, self.evaluator, self.label = log, evaluator, label
        self.reward_funcs = reward_funcs or []
        self.main = distributed.is_main()
        self._pending: dict[str, float] = {}
        self._shown: dict[str, float] = {}  # the latest reward and length, for the progress line
        self._bar = None
        self._bar_cm = None

    def on_train_begin(self, args, state, control, model=None, **kw):
        from r1pipeline.progress import progress_bar

        if state.global_step == 0 and self.evaluator is not None:
            record = {"step": 0, **self.evaluator.evaluate(model)}
            if self.main:
                self.log.log(record)
        if not self.main:
            return
        self._bar_cm = progress_bar(self.label, total=state.max_steps, completed=state.global_step)
        self._bar = self._bar_cm.__enter__()

    def on_train_end(self, args, state, control, **kw):
        if self._bar_cm is not None:
            self._bar_cm.__exit__(None, None, None)
            self._bar_cm = self._bar = None

    def on_step_end(self, args, state, control, model=None, **kw):
        ev = self.evaluator
        if ev is not None and (state.global_step % ev.every == 0 or state.global_step == state.max_steps):
            self._pending = ev.evaluate(model)

    def on_log(self, args, state, control, logs=None, **kw):
        if not logs or "train_runtime" in logs or not self.main:
            return
        record = {"step": state.global_step, **{k: v for k, v in logs.items() if isinstance(v, (int, float))}}
        record.update(self._pending)
        self._pending = {}
        for fn in self.reward_funcs:  # errors, timeouts, skips the guard absorbed (cumulative)
            for key, value in getattr(fn, "stats", {}).items():
                if key != "samples" and value:
                    record[f"reward_events/{fn.__name__}/{key}"] = value
        self.log.log(record)
        # a step without a rollout (mini_batches > 1) shows the last rollout's reward and length
        self._shown.update({k: record[k] for k in ("reward", "completions/mean_length", "loss") if k in record})
        if self._bar is not None:
            if "reward" in self._shown:  # GRPO
                shown = [f"reward {self._shown['reward']:.2f}",
                         f"len {self._shown.get('completions/mean_length', float('nan')):.0f}"]
            else:  # SFT, reward models: no rollouts, the training loss
                shown = [f"loss {self._shown['loss']:.3f}"] if "loss" in self._shown else []
            if "heldout/accuracy" in record:
                shown.append(f"held-out acc {record['heldout/accuracy']:.2f}")
            self._bar.update(1, description=f"{self.label}: " + ", ".join(shown))


def without_log_printer(trainer):
    """Drop the Trainer's dict-per-step printer: MetricsCallback logs and shows progress instead."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer


def score_completion_tokens_only() -> bool:
    """Make TRL's fused LM head skip prompt positions on a CPU, as it already does under Triton.

    TRL (1.16) computes the policy's log-probs through a fused LM head and, on a device without
    Triton, projects *every* position onto the vocabulary (fixed shapes, for compilers such as
    Neuron's) and then masks the prompt's out. On a CPU that is wasted work: SmolLM2 with a
    130-token prompt and 70-token completions, forward+backward of 16 sequences took 10.6 s
    before and 5.9 s after (bf16 autocast, 2 cores). The values are the same (the masked positions
    are zeros either way; tests/stages/test_rl_support.py). Returns whether the switch was made
    (False when TRL's internals moved: then nothing changes but the speed).
    """
    try:
        import trl.trainer.utils as trl_utils
    except ImportError:
        return False
    original = getattr(trl_utils, "_use_triton", None)
    if original is None or getattr(original, "_r1_cpu_compact", False):
        return original is not None

    def use_compact(device) -> bool:
        return device.type == "cpu" or original(device)

    use_compact._r1_cpu_compact = True
    trl_utils._use_triton = use_compact
    return True


def trainer_args(cfg, ctx) -> dict[str, Any]:
    """TrainingArguments every stage built on a Trainer shares: checkpoints, logging, seed, device,
    and precision (``bf16``: TRL's autocast, from the stage's resolved dtype); the spec's trackers
    through TRL's own integrations, one run per stage (``trackers.py`` says where they write)."""
    import torch

    from r1pipeline.trackers import project

    trackers = dict(report_to=list(ctx.report_to) or "none", run_name=ctx.run_name, project=project("trackio"))
    return dict(output_dir=str(ctx.checkpoint_dir), save_strategy="steps", save_steps=cfg.checkpoint_every,
                save_total_limit=2, logging_steps=1, **trackers, seed=ctx.seed, data_seed=ctx.seed,
                use_cpu=not torch.cuda.is_available(), bf16=training_dtype(cfg, ctx) == "bfloat16",
                disable_tqdm=True,  # MetricsCallback shows one progress bar
                dataloader_num_workers=0)


def training_dtype(cfg, ctx) -> str:
    """The stage's ``dtype`` made concrete, the same on every rank and recorded for its manifest.

    ``auto`` is measured (``precision.py``) at the shapes of the model the stage trains, read
    from the ``init`` model's config.json (default shapes when it cannot be found without loading).
    """
    from r1pipeline import precision

    shapes = None
    if cfg.dtype == "auto":
        shapes = precision.config_shapes(_init_dir(cfg.init, ctx), tokens_per_matmul(cfg, distributed.world_size()))
    return ctx.record_precision("train", precision.resolve_agreed(cfg.dtype, shapes, distributed.device()))


def _init_dir(ref: str, ctx) -> str | None:
    """The local directory of the model ``ref`` names: a stage's, or a known model already resolved."""
    from r1pipeline.models.catalog import check_model_ref

    if ref in ctx.input_dirs or check_model_ref(ref) is None:
        return ctx.model_path(ref)
    return None


def tokens_per_matmul(cfg, world_size: int = 1) -> int:
    """Rows of a training GEMM on one process: sequences per forward pass x their length (an
    estimate: GRPO's prompt length is taken as its completion length; pairs count twice)."""
    grpo = hasattr(cfg, "generation_batch_size")
    rows = (getattr(cfg, "micro_batch_size", None)
            or (cfg.generation_batch_size // cfg.mini_batches if grpo else cfg.batch_size) // world_size)
    length = 2 * cfg.max_completion_length if grpo else cfg.max_length
    return max(1, rows * length * (2 if hasattr(cfg, "pairs") else 1))


def train_resumable(trainer, ctx) -> int | None:
    """Train, continuing from the stage's last complete checkpoint; the step resumed from, if any.

    Rank 0 picks the checkpoint and every rank resumes from it (the run directory is on a file
    system all ranks share).
    """
    without_log_printer(trainer)
    main = distributed.is_main()
    resume = distributed.broadcast_object(last_complete_checkpoint(ctx.checkpoint_dir) if main else None)
    step = int(resume.name.split("-")[-1]) if resume else None
    if step is not None and main:
        ctx.metrics.truncate_after(step)  # metrics.jsonl reads as one uninterrupted run
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    return step


def save_model(trainer, tokenizer, ctx, extra: dict[str, Any] | None = None) -> None:
    """The stage's model/ directory: a plain transformers checkpoint (LoRA adapters merged in),
    written atomically by rank 0, plus small JSON sidecar files.

    Every rank calls it: ``Trainer.save_model`` gathers weights that ZeRO-3 or FSDP sharded, with
    all ranks taking part, and writes on rank 0. (LoRA is merged on rank 0 from its full copy of
    the weights, so LoRA under ZeRO-3 or FSDP is not supported.)
    """
    import contextlib

    from r1pipeline.rundir import atomic_dir, scratch_dir, write_json

    main = distributed.is_main()
    model = trainer.accelerator.unwrap_model(trainer.model)
    with atomic_dir(ctx.model_dir) if main else contextlib.nullcontext(scratch_dir(ctx.model_dir)) as out:
        if is_peft(model):
            if main:
                model.merge_and_unload().save_pretrained(out)
        else:
            trainer.save_model(str(out))
        if main:
            (out / "training_args.bin").unlink(missing_ok=True)  # Trainer.save_model's; not part of a model
            tokenizer.save_pretrained(out)
            for name, obj in (extra or {}).items():
                write_json(out / name, obj)
    distributed.barrier()  # the model exists for every rank from here on


def is_peft(model) -> bool:
    """Whether ``model`` carries PEFT adapters (without importing peft when it is not installed)."""
    import sys

    return "peft" in sys.modules and isinstance(model, sys.modules["peft"].PeftModel)


def last_complete_checkpoint(root: Path) -> Path | None:
    """The newest ``checkpoint-N`` that the Trainer finished writing (its state file is last)."""
    if not root.is_dir():
        return None
    done = [p for p in root.glob("checkpoint-*") if (p / "trainer_state.json").exists()
            and p.name.split("-")[-1].isdigit()]
    return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)
