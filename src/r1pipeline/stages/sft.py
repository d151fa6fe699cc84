"""Supervised fine-tuning: cold-start SFT, rejection-sampling SFT and distillation (one module).

The paper fine-tunes the *base* model (not the RL policy) on the data a ``sample`` stage wrote,
2 epochs for the rejection-sampling SFT; distillation is the same SFT applied to a smaller
student. The work is done by TRL's ``SFTTrainer`` on prompt/completion rows with the loss on
the completion only (``completion_only_loss``); this module maps our config onto ``SFTConfig``
and resumes from the last checkpoint after a kill.

Departures from the paper: learning rates and batch sizes are sized for the tiny world (spec
fields). Run alone: ``r1 run configs/tiny.yaml --only sft``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from r1pipeline.stages.base import Problem, StageConfig, StageContext
from r1pipeline.stages.common import Dtype, Lora, check_data_file, check_lora, check_model_ref, check_split
from r1pipeline.stages.trl_options import check_trl_block
from r1pipeline.tasks.rows import SFT_ROWS

DISTRIBUTED = True  # data-parallel on every process of a multi-process run


class Config(StageConfig):
    kind: Literal["sft"]
    init: str = Field(description="stage or model to fine-tune (the paper: the base model)")
    data: list[str] = Field(min_length=1, description="sample stages of this spec, or JSONL files with prompt/completion")
    epochs: float = Field(2.0, gt=0, description="paper: 2 for the rejection-sampling SFT")
    max_rows: int | None = Field(None, gt=0)
    learning_rate: float = Field(5e-4, gt=0)
    lr_scheduler: Literal["constant", "linear", "cosine"] = "cosine"
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    batch_size: int = Field(64, gt=0, description="sequences per optimizer step, over all processes")
    max_length: int = Field(128, gt=0, description="tokens; longer rows are truncated")
    completion_only: bool = Field(True, description="loss on the completion tokens only")
    checkpoint_every: int = Field(50, gt=0)
    dtype: Dtype = "auto"
    lora: Lora | None = Field(None, description="train LoRA adapters (merged into the saved model)")
    trl: dict[str, Any] = Field({}, description="any other SFTConfig option, e.g. "
                                "{packing: true}; checked against the installed TRL")

    non_result_fields = frozenset({"checkpoint_every"})
    late_fields = frozenset({"lora", "trl"})
    makes_model = True
    trl_config: ClassVar[str] = "SFTConfig"
    # TRL's fields that trl_args sets from ours (a trl: block may not name them): TRL's -> ours
    trl_named: ClassVar[dict[str, str]] = {
        "num_train_epochs": "epochs", "learning_rate": "learning_rate", "lr_scheduler_type": "lr_scheduler",
        "warmup_steps": "warmup_ratio", "per_device_train_batch_size": "batch_size",
        "gradient_accumulation_steps": "batch_size", "max_length": "max_length",
        "completion_only_loss": "completion_only"}

    def inputs(self, stage_names: set[str]) -> list[str]:
        return [self.init] * (self.init in stage_names) + [d for d in self.data if d in stage_names]

    def check_processes(self, n: int) -> list[Problem]:
        return check_split(self.name, "batch_size", self.batch_size, n)

    def data_files(self, stage_names: set[str]) -> list[str]:
        return [d for d in self.data if d not in stage_names]

    def check(self, spec) -> list[Problem]:
        problems = check_model_ref(self.name, "init", self.init, spec) + check_lora(self.name, self.lora)
        problems += check_trl_block(self.name, self.trl_config, self.trl, self.trl_named)
        for i, d in enumerate(self.data):
            if d in spec.stage_names:
                if not spec.stage(d).makes_data:
                    problems.append(Problem(self.name, f"data[{i}]", f"stage {d!r} makes no data",
                                            "name a sample stage or a JSONL file"))
            elif not spec.path(d).is_file():
                where = "" if Path(d).is_absolute() else f" (a relative path is read from the spec's folder, {spec.base_dir})"
                problems.append(Problem(self.name, f"data[{i}]", f"{d!r} is neither a stage nor a file: no file at "
                                                                 f"{spec.path(d).absolute()}{where}",
                                        f"name one of: {', '.join(spec.stage_names)}, or a JSONL path"))
            else:
                problems += check_data_file(self.name, f"data[{i}]", d, spec, SFT_ROWS)
        return problems


def load_rows(cfg: Config, ctx: StageContext, spec_base: str) -> list[dict[str, str]]:
    """prompt/completion rows from the named stages' data and files, in order, capped."""
    from r1pipeline.stages.sample import read_jsonl

    rows = []
    for d in cfg.data:
        path = ctx.input_dirs[d] / "data" / "train.jsonl" if d in ctx.input_dirs else Path(spec_base) / d
        rows += [{"prompt": r["prompt"], "completion": r["completion"]} for r in read_jsonl(path)]
    if not rows:
        raise ValueError(f"stage {ctx.name}: no training rows in {cfg.data}; fix: check the sample stage's filters")
    return rows[:cfg.max_rows] if cfg.max_rows else rows


def trl_args(cfg: Config, ctx: StageContext):
    """Our config -> TRL's ``SFTConfig``; the stage's ``trl:`` block is applied last."""
    from trl import SFTConfig

    from r1pipeline import distributed
    from r1pipeline.stages.common import per_process
    from r1pipeline.stages.rl_support import trainer_args

    ours = dict(
        **trainer_args(cfg, ctx), num_train_epochs=cfg.epochs, learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler, warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio
        per_device_train_batch_size=per_process(ctx.name, "batch_size", cfg.batch_size, distributed.world_size()),
        gradient_accumulation_steps=1,
        max_length=cfg.max_length, completion_only_loss=cfg.completion_only, packing=False,
        shuffle_dataset=True,
    )
    return SFTConfig(**{**ours, **cfg.trl})


def run(cfg: Config, ctx: StageContext, spec_base: str) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    from r1pipeline.stages.rl_support import MetricsCallback, save_model, train_resumable

    rows = load_rows(cfg, ctx, spec_base)
    path = ctx.model_path(cfg.init)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    trainer = SFTTrainer(model=model, args=trl_args(cfg, ctx), train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer,
                         peft_config=cfg.lora.peft_config("CAUSAL_LM") if cfg.lora else None,
                         callbacks=[MetricsCallback(ctx.metrics, label=f"{ctx.name}: sft")])
    resumed = train_resumable(trainer, ctx)
    save_model(trainer, tokenizer, ctx)
    history = [r for r in ctx.metrics.read() if "loss" in r]
    return {"rows": len(rows), "epochs": cfg.epochs, "steps": trainer.state.global_step,
            "loss_first": history[0]["loss"] if history else None,
            "loss_last": sum(r["loss"] for r in history[-10:]) / len(history[-10:]) if history else None,
            "resumed_from_step": resumed}
