"""Learned reward models (helpfulness, harmlessness): Bradley-Terry on preference pairs.

The paper trains a helpfulness reward model on 66k preference pairs, judged on the final summary
only, and a harmlessness model on 106k prompts, judged on the whole response including the
reasoning (batch 256, lr 6e-6, 1 epoch). Here a sequence-classification head on a small backbone
is trained with TRL's ``RewardTrainer`` (loss -log sigmoid(r_chosen - r_rejected)) on pairs from
a task source that can make them (the tiny world's oracle, with label noise) or from a JSONL file
of prompt/chosen/rejected rows. ``view: summary`` trains and later scores the text after
``</think>`` only. ``summary.json`` reports held-out pair accuracy against clean labels.

Run alone: ``r1 run configs/tiny.yaml --only reward_helpful``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from r1pipeline.stages.base import Problem, StageConfig, StageContext
from r1pipeline.stages.common import (Dtype, Lora, check_data_file, check_lora, check_model_ref, check_split,
                                      check_task, task_files)
from r1pipeline.stages.trl_options import check_trl_block
from r1pipeline.tasks.rows import PAIRS

DISTRIBUTED = True  # data-parallel on every process of a multi-process run


class Pairs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: dict[str, Any] | None = Field(None, description="a task source that makes preference pairs")
    file: str | None = Field(None, description="JSONL with prompt, chosen, rejected")
    objective: Literal["helpfulness", "harmlessness"] = "helpfulness"
    n: int = Field(2000, gt=0, description="training pairs")
    n_test: int = Field(300, gt=0, description="held-out pairs (clean labels)")
    label_noise: float = Field(0.1, ge=0, lt=0.5)


class Config(StageConfig):
    kind: Literal["reward_model"]
    init: str = Field(description="backbone: a stage or model (a classification head is added)")
    pairs: Pairs
    view: Literal["full", "summary"] = Field("full", description="what the model judges: whole response or summary")
    epochs: float = Field(1.0, gt=0, description="paper: 1")
    learning_rate: float = Field(1e-4, gt=0)
    batch_size: int = Field(32, gt=0, description="pairs per optimizer step, over all processes")
    max_length: int = Field(128, gt=0)
    checkpoint_every: int = Field(100, gt=0)
    dtype: Dtype = "auto"
    lora: Lora | None = Field(None, description="LoRA adapters on the backbone (merged into the saved model)")
    trl: dict[str, Any] = Field({}, description="any other RewardConfig option, e.g. "
                                "{center_rewards_coefficient: 0.01}; checked against the installed TRL")

    non_result_fields = frozenset({"checkpoint_every"})
    late_fields = frozenset({"lora", "trl"})
    makes_model = True
    trl_config: ClassVar[str] = "RewardConfig"
    # TRL's fields that trl_args sets from ours (a trl: block may not name them): TRL's -> ours
    trl_named: ClassVar[dict[str, str]] = {
        "num_train_epochs": "epochs", "learning_rate": "learning_rate",
        "per_device_train_batch_size": "batch_size", "max_length": "max_length"}

    def inputs(self, stage_names: set[str]) -> list[str]:
        return [self.init] if self.init in stage_names else []

    def check_processes(self, n: int) -> list[Problem]:
        return check_split(self.name, "batch_size", self.batch_size, n)

    def data_files(self, stage_names: set[str]) -> list[str]:
        return ([self.pairs.file] if self.pairs.file else []) + task_files(self.pairs.task)

    def check(self, spec) -> list[Problem]:
        problems = check_model_ref(self.name, "init", self.init, spec) + check_lora(self.name, self.lora)
        problems += check_trl_block(self.name, self.trl_config, self.trl, self.trl_named)
        p = self.pairs
        if (p.task is None) == (p.file is None):
            return problems + [Problem(self.name, "pairs", "give exactly one of task or file",
                                       "set pairs.task (a source with preference_pairs) or pairs.file")]
        if p.task is not None:
            problems += check_task(self.name, "pairs.task", p.task, spec)
            from r1pipeline.tasks import registry

            if not problems and not hasattr(registry.source_class(p.task["source"]), "preference_pairs"):
                problems.append(Problem(self.name, "pairs.task", f"{p.task['source']!r} makes no preference pairs",
                                        "use tiny_general or a pairs.file"))
        else:
            problems += check_data_file(self.name, "pairs.file", p.file, spec, PAIRS, min_rows=p.n_test + 1,
                                        why=f" (pairs.n_test holds out the first {p.n_test}; the rest train)",
                                        fix="add rows to the file, or lower pairs.n_test")
        return problems


def view_text(prompt: str, response: str, view: str) -> str:
    """What the reward model reads: the prompt and the whole response, or only its summary
    (the same text the ``reward_model`` reward builds with ``summary_only``)."""
    from r1pipeline.rewards.model import summary_of

    return prompt + (summary_of(response) if view == "summary" else response)


def score_texts(model, tokenizer, texts: list[str], batch_size: int = 64) -> list[float]:
    """Scalar scores of a sequence-classification model for ``texts`` (ended by EOS, as trained)."""
    import torch

    from r1pipeline.rewards.model import with_eos

    was_training = model.training
    model.eval()
    scores: list[float] = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            batch = tokenizer([with_eos(t, tokenizer) for t in texts[i:i + batch_size]], padding=True,
                              truncation=True, return_tensors="pt")
            scores += model(**batch).logits[:, 0].float().tolist()
    model.train(was_training)
    return scores


def load_pairs(cfg: Config, seed: int, spec_base: str) -> tuple[list[dict], list[dict]]:
    from pathlib import Path

    from r1pipeline.stages.common import build_task
    from r1pipeline.stages.sample import read_jsonl

    p = cfg.pairs
    if p.task is not None:
        src = build_task(p.task, spec_base)
        train = src.preference_pairs(p.objective, p.n, seed, "train", p.label_noise)
        test = src.preference_pairs(p.objective, p.n_test, seed, "test", 0.0)
    else:
        rows = read_jsonl(Path(spec_base) / p.file, PAIRS)
        test, train = rows[:p.n_test], rows[p.n_test:p.n_test + p.n]
    return train, test


def pair_accuracy(model, tokenizer, pairs: list[dict], view: str, batch_size: int = 64) -> float:
    """Share of pairs where the model scores chosen above rejected."""
    chosen = score_texts(model, tokenizer, [view_text(r["prompt"], r["chosen"], view) for r in pairs], batch_size)
    rejected = score_texts(model, tokenizer, [view_text(r["prompt"], r["rejected"], view) for r in pairs], batch_size)
    return sum(c > r for c, r in zip(chosen, rejected)) / max(1, len(pairs))


def trl_args(cfg: Config, ctx: StageContext):
    """Our config -> TRL's ``RewardConfig``; the stage's ``trl:`` block is applied last."""
    from trl import RewardConfig

    from r1pipeline import distributed
    from r1pipeline.stages.common import per_process
    from r1pipeline.stages.rl_support import trainer_args

    ours = dict(
        **trainer_args(cfg, ctx), num_train_epochs=cfg.epochs, learning_rate=cfg.learning_rate,
        per_device_train_batch_size=per_process(ctx.name, "batch_size", cfg.batch_size, distributed.world_size()),
        max_length=cfg.max_length, lr_scheduler_type="linear")
    return RewardConfig(**{**ours, **cfg.trl})


def run(cfg: Config, ctx: StageContext, spec_base: str) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardTrainer

    from r1pipeline.stages.rl_support import MetricsCallback, save_model, train_resumable

    train, test = load_pairs(cfg, ctx.seed, spec_base)
    path = ctx.model_path(cfg.init)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    rows = [{"chosen": view_text(r["prompt"], r["chosen"], cfg.view),
             "rejected": view_text(r["prompt"], r["rejected"], cfg.view)} for r in train]
    args = trl_args(cfg, ctx)
    accuracy_before = pair_accuracy(model, tokenizer, test, cfg.view)
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                            processing_class=tokenizer,
                            peft_config=cfg.lora.peft_config("SEQ_CLS") if cfg.lora else None,
                            callbacks=[MetricsCallback(ctx.metrics, label=f"{ctx.name}: reward model")])
    resumed = train_resumable(trainer, ctx)
    accuracy = pair_accuracy(trainer.model, tokenizer, test, cfg.view)
    save_model(trainer, tokenizer, ctx,
               extra={"r1pipeline_reward.json": {"view": cfg.view, "objective": cfg.pairs.objective}})
    return {"objective": cfg.pairs.objective, "view": cfg.view, "train_pairs": len(train),
            "test_pairs": len(test), "label_noise": cfg.pairs.label_noise,
            "heldout_pair_accuracy_before": accuracy_before, "heldout_pair_accuracy": accuracy,
            "resumed_from_step": resumed}
