"""Time to held-out accuracy: our R1-Zero stage vs a plain TRL GRPO script with TRL's defaults.

Run by hand: ``.venv/bin/python bench/time_to_accuracy.py [--budget-min 15] [--target 0.9]
[--eval-every 10]``; ``--quick`` is a smoke run of a few minutes (nothing is expected to learn).

Contenders, one after the other in this process, from the same starting model:

* ``ours``: the ``r1_zero`` stage of the spec (``configs/tiny.yaml``) run through the pipeline
  (``run_pipeline(..., until="r1_zero")``) from its ``base`` stage. A finished ``base`` with the
  same hash (``runs/<spec name>/base`` by default) is copied in rather than trained again; the
  output says which;
* ``trl-defaults``: ``GRPOTrainer`` + ``GRPOConfig`` as a user writes them: TRL's defaults except
  what is needed to run: the same model (``base/model``), the same training prompts (the stage's
  task, seed and template), the same reward functions (``accuracy_reward`` and ``format_reward``
  from ``r1pipeline.rewards``, with TRL's default equal weights), ``max_completion_length`` of
  the stage, ``output_dir``, and ``use_cpu`` on a machine without a GPU (TRL's default bf16
  otherwise refuses to start there). TRL's default batch of 8 completions takes its default
  G = 8, so ``num_generations`` stays at the default too.

Both are scored by the same function on the same held-out prompts: ``HeldOutEval`` of
``stages/rl_support.py`` (greedy, the stage's held-out rows and template; the script checks that
the prompts are the same), on a float32 copy of the current weights (see ``Curve``), at the start
of training and then every ``--eval-every`` steps of ours; TRL defaults are scored after as many
sampled completions (its steps are smaller). The clock is training wall time: it starts at the
first evaluation and leaves out the time spent in evaluations; model loading and the trainer's
set-up are not counted for either.

Each stops when it reaches the target, or when its time runs out: ``--budget-min`` caps the whole
script; ours runs first, for at most half of it, and TRL defaults get the rest. The last line is
the headline: how much sooner ours reaches ``--target``, or, if TRL defaults never get there, a
lower bound. The machine's other load moves the numbers; the script prints the load average. On
a shared machine set ``OMP_NUM_THREADS=1``: two OpenMP threads on cores that other processes
also use made a step of ours about 20x slower here (18 s instead of 0.8 s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
STAGE = "r1_zero"
QUICK = ["r1_zero.steps=4", "r1_zero.eval_prompts=32"]  # --quick: a smoke run
OURS_SHARE = 0.5  # of the budget, at most, for ours; TRL defaults get the rest
TEARDOWN_S = 15  # of the budget, kept for the last evaluation and the printout
SETTINGS = ["per_device_train_batch_size", "num_generations", "learning_rate", "lr_scheduler_type", "max_steps",
            "num_train_epochs", "loss_type", "beta", "epsilon", "temperature", "reward_weights", "bf16",
            "gradient_checkpointing", "max_completion_length", "seed"]


@dataclass(frozen=True)
class Point:
    step: int
    seconds: float  # training wall time so far, evaluations left out
    accuracy: float


@dataclass
class Curve:
    """Held-out accuracy against training time, for one contender.

    The contender's current weights are scored on a private float32 model (loaded from ``start``,
    the starting checkpoint, at the first evaluation): TRL's default bf16 autocast wraps its
    policy's forward, and scoring under it would score the autocast, not the weights (0.25 vs
    0.22 held-out accuracy from the same starting weights).
    """

    name: str
    start: Path  # the starting checkpoint
    every: int = 0  # steps between evaluations
    points: list[Point] = field(default_factory=list)
    eval_seconds: float = 0.0
    _started: float | None = None
    _scorer: Any = None

    def evaluate(self, evaluate: Callable[[Any], dict[str, float]], model, step: int = -1) -> dict[str, float]:
        """Score ``model``'s weights with ``evaluate`` off the clock; record the accuracy against training time."""
        from transformers import AutoModelForCausalLM

        now = time.perf_counter()
        if self._scorer is None:
            self._started = now
            self._scorer = AutoModelForCausalLM.from_pretrained(self.start, dtype="float32").eval()
        self._scorer.load_state_dict(model.state_dict())
        metrics = evaluate(self._scorer)
        self.points.append(Point(step, now - self._started - self.eval_seconds, metrics["heldout/accuracy"]))
        self.eval_seconds += time.perf_counter() - now
        return metrics

    def time_to(self, target: float) -> Point | None:
        """The first evaluation at or above ``target``."""
        return next((p for p in self.points if p.accuracy >= target - 1e-9), None)

    @property
    def best(self) -> Point:
        return max(self.points, key=lambda p: p.accuracy)

    @property
    def seconds(self) -> float:
        return self.points[-1].seconds if self.points else 0.0


def prepare_run(spec, run_dir: Path, reuse: Path) -> str:
    """Copy ``reuse`` (a finished base stage) into ``run_dir`` when its hash is this spec's; what happened."""
    from r1pipeline.pipeline.runner import stage_hashes, stage_status

    base = spec.stage(STAGE).init
    if reuse.is_dir() and stage_status(reuse.parent, reuse.name, stage_hashes(spec)[base]) == "done":
        shutil.copytree(reuse, run_dir / base)
        return f"reused the finished {base} stage {reuse} (same hash)"
    return f"{base} trained here ({reuse} is missing, unfinished or from other settings)"


def run_ours(spec, run_dir: Path, target: float, deadline: float) -> tuple[Curve, list[str]]:
    """The stage through the pipeline until ``target``, ``deadline`` or its last step; (curve, held-out prompts).

    The stage's own held-out evaluations (``HeldOutEval.evaluate``, called by ``MetricsCallback``)
    are timed; ``MetricsCallback``'s hooks are wrapped to learn the step and to stop the trainer.
    """
    from r1pipeline.pipeline.runner import run_pipeline
    from r1pipeline.stages.rl_support import HeldOutEval, MetricsCallback

    stage = spec.stage(STAGE)
    curve = Curve("ours", run_dir / stage.init / "model", every=stage.eval_every)
    prompts: list[str] = []
    step = [0]
    originals = (HeldOutEval.evaluate, MetricsCallback.on_train_begin, MetricsCallback.on_step_end)
    evaluate, on_train_begin, on_step_end = originals

    def timed_evaluate(self, model):
        prompts[:] = self.prompts
        return curve.evaluate(lambda m: evaluate(self, m), model, step[0])

    def stepped_train_begin(self, args, state, control, **kw):
        step[0] = state.global_step
        return on_train_begin(self, args, state, control, **kw)

    def stopping_step_end(self, args, state, control, **kw):
        step[0] = state.global_step
        on_step_end(self, args, state, control, **kw)
        if curve.points[-1].accuracy >= target or time.monotonic() > deadline:
            control.should_training_stop = True

    HeldOutEval.evaluate, MetricsCallback.on_train_begin, MetricsCallback.on_step_end = (
        timed_evaluate, stepped_train_begin, stopping_step_end)
    try:
        run_pipeline(spec, run_dir, until=STAGE, report=False, log=lambda line: None)
    finally:
        HeldOutEval.evaluate, MetricsCallback.on_train_begin, MetricsCallback.on_step_end = originals
    if len(curve.points) > 1 and curve.points[-1].step == curve.points[-2].step:
        curve.points.pop()  # the stage scores its final model again after training
    return curve, prompts


def stage_data(spec):
    """(training dataset, held-out rows) exactly as the grpo stage builds them."""
    from datasets import Dataset

    from r1pipeline.stages.common import build_task
    from r1pipeline.tasks.templates import render

    stage = spec.stage(STAGE)
    seed = spec.stage_seed(stage)
    task = build_task(stage.task, spec.base_dir)
    rows = task.load("train", stage.train_prompts, seed)
    dataset = Dataset.from_list([{**r, "prompt": render(stage.template, r["question"])} for r in rows])
    dataset = dataset.remove_columns([c for c in ("question",) if c in dataset.column_names])
    return dataset, task.load("test", stage.eval_prompts, seed)


def trl_defaults_config(output_dir: str, max_completion_length: int):
    """``GRPOConfig`` with TRL's defaults and only what is needed to run."""
    import torch
    from trl import GRPOConfig

    return GRPOConfig(output_dir=output_dir, max_completion_length=max_completion_length,
                      use_cpu=not torch.cuda.is_available())


def held_out_callback(curve: Curve, evaluate: Callable[[Any], dict[str, float]], target: float, deadline: float):
    """A TrainerCallback: evaluate at the start and every ``curve.every`` steps; stop at ``target``
    or once ``deadline`` (``time.monotonic()``) has passed."""
    from transformers import TrainerCallback

    class HeldOut(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            curve.evaluate(evaluate, model, state.global_step)

        def on_step_end(self, args, state, control, model=None, **kw):
            out_of_time = time.monotonic() > deadline
            if state.global_step % curve.every == 0 or out_of_time:
                curve.evaluate(evaluate, model, state.global_step)
                control.should_training_stop = out_of_time or curve.points[-1].accuracy >= target

    return HeldOut()


def run_trl_defaults(spec, model_path: Path, completions: int, target: float, deadline: float,
                     ours_prompts: list[str]) -> tuple[Curve, Any]:
    """Plain TRL GRPO until ``target`` or ``deadline`` (``time.monotonic()``); (curve, its config).

    Evaluated at the start and after every ``completions`` sampled completions.
    """
    from transformers import AutoTokenizer
    from trl import GRPOTrainer

    from r1pipeline.rewards.builtin import accuracy_reward, format_reward
    from r1pipeline.stages.rl_support import HeldOutEval, without_log_printer

    stage = spec.stage(STAGE)
    dataset, held_out = stage_data(spec)
    evaluator = HeldOutEval(held_out, stage.template, AutoTokenizer.from_pretrained(model_path),
                            stage.max_completion_length, every=0)  # the callback decides when
    assert evaluator.prompts == ours_prompts, "held-out prompts differ from the stage's"
    with tempfile.TemporaryDirectory() as out:
        config = trl_defaults_config(out, stage.max_completion_length)
        per_step = config.per_device_train_batch_size * config.gradient_accumulation_steps
        curve = Curve("trl-defaults", model_path, every=max(1, completions // per_step))
        trainer = GRPOTrainer(model=str(model_path), reward_funcs=[accuracy_reward, format_reward], args=config,
                              train_dataset=dataset,
                              callbacks=[held_out_callback(curve, evaluator.evaluate, target, deadline)])
        without_log_printer(trainer)  # display only: no dict per logging step in the output
        trainer.train()
    return curve, config


def ours_config(spec, run_dir: Path):
    """The ``GRPOConfig`` the stage trains with (``stages/grpo.py``), reward weights filled in."""
    from r1pipeline.stages.base import StageContext
    from r1pipeline.stages.grpo import trl_args
    from r1pipeline.stages.rl_support import reward_functions

    stage = spec.stage(STAGE)
    ctx = StageContext(name=STAGE, dir=run_dir / STAGE, run_dir=run_dir, seed=spec.stage_seed(stage))
    config = trl_args(stage, ctx)
    config.reward_weights = reward_functions(stage.rewards)[1]
    return config


def print_settings(ours, trl) -> None:
    """The ``GRPOConfig`` fields that matter here, side by side."""
    print(f"\n{'GRPOConfig':<30} {'ours':>12} {'trl-defaults':>14}")
    for name in SETTINGS:
        a, b = getattr(ours, name), getattr(trl, name)
        a, b = (getattr(v, "value", v) for v in (a, b))  # enums (lr_scheduler_type) by their value
        print(f"{name:<30} {str(a):>12} {str(b):>14}")


def print_curves(curves: list[Curve]) -> None:
    print(f"\n{'contender':<14} {'step':>6} {'train s':>9} {'held-out acc':>13}")
    for c in curves:
        for p in c.points:
            print(f"{c.name:<14} {p.step:>6} {p.seconds:>9.1f} {p.accuracy:>13.3f}")


def print_summary(curves: list[Curve], target: float) -> None:
    print(f"\n{'contender':<14} {'steps':>6} {'train s':>9} {'eval s':>8} {'start acc':>10} {'best acc':>9} "
          f"{f'time to {target:.2f}':>14}")
    for c in curves:
        hit = c.time_to(target)
        print(f"{c.name:<14} {c.points[-1].step:>6} {c.seconds:>9.1f} {c.eval_seconds:>8.1f} "
              f"{c.points[0].accuracy:>10.3f} {c.best.accuracy:>9.3f} "
              f"{f'{hit.seconds:.1f} s' if hit else 'not reached':>14}")


def headline(ours: Curve, trl: Curve, target: float) -> str:
    """The last line: ours vs TRL defaults to ``target`` (a lower bound when TRL never gets there)."""
    a, b = ours.time_to(target), trl.time_to(target)
    goal = f"{target:.2f} held-out accuracy"
    if a is None:
        reached = f"TRL defaults reached it in {b.seconds:.0f} s" if b else f"nor TRL defaults in {trl.seconds:.0f} s"
        return (f"time_to_accuracy: ours never reached {goal} in {ours.seconds:.0f} s (best {ours.best.accuracy:.2f}), "
                f"{reached} (best {trl.best.accuracy:.2f})")
    if a.seconds <= 0:
        return f"time_to_accuracy: ours starts at {goal} ({a.accuracy:.2f} before training): no race"
    if b is not None:
        return (f"time_to_accuracy: {b.seconds / a.seconds:.1f}x faster than TRL defaults to {goal} "
                f"({a.seconds:.0f} s vs {b.seconds:.0f} s)")
    return (f"time_to_accuracy: >{trl.seconds / a.seconds:.1f}x faster than TRL defaults to {goal} "
            f"({a.seconds:.0f} s vs not reached in {trl.seconds:.0f} s = {trl.seconds / 60:.1f} min; "
            f"TRL defaults' best {trl.best.accuracy:.2f})")


def print_at_trl_best(ours: Curve, trl: Curve) -> None:
    """When TRL defaults miss the target: both contenders' time to TRL defaults' best accuracy."""
    best = trl.best
    if best.accuracy <= trl.points[0].accuracy:
        print(f"\nTRL defaults never improved on their start ({trl.points[0].accuracy:.3f}) "
              f"in {trl.seconds:.0f} s of training ({trl.points[-1].step} steps)")
        return
    hit = ours.time_to(best.accuracy)
    mine = f"{hit.seconds:.1f} s (step {hit.step})" if hit else "not reached"
    print(f"\nto TRL defaults' best held-out accuracy {best.accuracy:.3f}: ours {mine}, "
          f"TRL defaults {best.seconds:.1f} s (step {best.step})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", type=Path, default=ROOT / "configs" / "tiny.yaml",
                    help="pipeline spec with an r1_zero stage (default configs/tiny.yaml)")
    ap.add_argument("--reuse-base", type=Path, default=None,
                    help="finished base stage to copy in (default runs/<spec name>/base)")
    ap.add_argument("--target", type=float, default=0.9, help="held-out accuracy to reach (default 0.9)")
    ap.add_argument("--eval-every", type=int, default=10, help="steps of ours between evaluations (default 10)")
    ap.add_argument("--budget-min", type=float, default=15.0, help="wall-clock cap on the whole script (default 15)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 4 steps of ours, 32 held-out prompts, 3 min")
    args = ap.parse_args()
    start, budget_s = time.monotonic(), 60 * (min(args.budget_min, 3.0) if args.quick else args.budget_min)
    for var, value in (("HF_HUB_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false"), ("R1_NO_PROGRESS", "1"),
                       ("TRL_EXPERIMENTAL_SILENCE", "1")):
        os.environ.setdefault(var, value)

    import torch

    from r1pipeline.pipeline.spec import load_spec

    every = 2 if args.quick else args.eval_every
    spec = load_spec(args.spec, [*(QUICK if args.quick else []), f"{STAGE}.eval_every={every}"])
    stage = spec.stage(STAGE)
    reuse = args.reuse_base or ROOT / "runs" / spec.name / stage.init
    print(f"time to held-out accuracy {args.target:.2f}: {spec.name} {STAGE} (pipeline) vs TRL GRPO defaults; "
          f"{stage.eval_prompts} held-out prompts, greedy, max {stage.max_completion_length} tokens; "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / spec.name
        run_dir.mkdir()
        print(prepare_run(spec, run_dir, reuse), flush=True)
        ours_cfg = ours_config(spec, run_dir)
        ours, prompts = run_ours(spec, run_dir, args.target, start + OURS_SHARE * budget_s)
        print(f"ours: {ours.points[-1].step} steps, {ours.seconds:.0f} s of training", flush=True)
        completions = every * stage.generation_batch_size // stage.mini_batches
        trl, trl_cfg = run_trl_defaults(spec, run_dir / stage.init / "model", completions, args.target,
                                       start + budget_s - TEARDOWN_S, prompts)
    print(f"held-out evaluations every {completions} sampled completions: every {ours.every} steps of ours, "
          f"every {trl.every} steps of TRL defaults; load average now {os.getloadavg()[0]:.1f}")
    print_settings(ours_cfg, trl_cfg)
    print_curves([ours, trl])
    print_summary([ours, trl], args.target)
    if trl.time_to(args.target) is None:
        print_at_trl_best(ours, trl)
    print(headline(ours, trl, args.target))


if __name__ == "__main__":
    main()
