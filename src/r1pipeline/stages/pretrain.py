"""Pretraining a tiny base model from scratch (the embedded world's stand-in for a base LLM).

Builds the character-level tokenizer and a small Llama (``models/tiny.py``), then trains it with
next-token prediction on the task source's synthetic corpus (``TaskSource.corpus``): worked
solutions, direct answers and malformed outputs, so that the base model knows the format and the
steps but mostly answers directly (see ``tasks/tiny_world.py``). Real models skip this stage:
their ``init`` names a model instead.

On several processes (``r1 run SPEC --num-processes N``) it trains data-parallel: each rank packs
every N-th document of the step's global batch and sums the loss over its tokens; one all-reduce
a step sums the gradients, the losses and the token counts, and the sums are divided by the whole
batch's count, so every rank makes the update one process would make (the same documents, the
same mean).

Not in the paper (DeepSeek-V3-Base was pretrained elsewhere). Run it alone with
``r1 run configs/tiny.yaml --only base``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from r1pipeline.models.tiny import TinyModelConfig
from r1pipeline.stages.base import Problem, StageConfig, StageContext
from r1pipeline.stages.common import Dtype, check_split, check_task, task_files

DISTRIBUTED = True  # data-parallel on every process of a multi-process run


class Config(StageConfig):
    kind: Literal["pretrain"]
    task: dict[str, Any] = Field(default_factory=lambda: {"source": "tiny_product"})
    model: TinyModelConfig = Field(default_factory=TinyModelConfig)
    mix: dict[str, float] | None = Field(None, description="document kind -> share; see tiny_world.DEFAULT_MIX")
    p_wrong_step: float = Field(0.3, ge=0, le=1, description="chance that a worked step is wrong")
    p_second_language: float = Field(0.0, ge=0, le=1, description="chance that a connective is Chinese")
    steps: int = Field(600, gt=0)
    batch_size: int = Field(128, gt=0, description="documents per step")
    learning_rate: float = Field(2e-3, gt=0)
    warmup_steps: int = Field(50, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    checkpoint_every: int = Field(100, gt=0, description="steps between resumable checkpoints")
    dtype: Dtype = "auto"  # auto: bf16 autocast only where it measured faster (precision.py), else fp32
    attention: Literal["auto", "sdpa", "eager"] = Field(
        "auto", description="attention kernel; auto: the faster of the two on this machine, timed on the "
                            "first batch (attention.py)")

    late_fields = frozenset({"attention"})  # auto keeps the hash of earlier runs

    non_result_fields = frozenset({"checkpoint_every"})
    makes_model = True

    def data_files(self, stage_names: set[str]) -> list[str]:
        return task_files(self.task)

    def check_processes(self, n: int) -> list[Problem]:
        return check_split(self.name, "batch_size", self.batch_size, n)

    def check(self, spec) -> list[Problem]:
        problems = check_task(self.name, "task", self.task, spec)
        from r1pipeline.tasks import registry

        if not problems and not hasattr(registry.source_class(self.task["source"]), "corpus"):
            problems.append(Problem(self.name, "task.source", f"{self.task['source']!r} writes no pretraining corpus",
                                    "use tiny_product, tiny_general or a mix of them"))
        if self.warmup_steps >= self.steps:
            problems.append(Problem(self.name, "warmup_steps", f"{self.warmup_steps} >= steps {self.steps}",
                                    "use fewer warm-up steps than steps"))
        return problems


def lr_at(step: int, cfg: Config) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def encode_batch(tokenizer, docs: list[str], max_length: int):
    """Token ids (B, T) right-padded, and labels with padding masked out (-100)."""
    enc = tokenizer([d + tokenizer.eos_token for d in docs], padding="longest", truncation=True,
                    max_length=max_length, return_tensors="pt", padding_side="right")
    labels = enc.input_ids.clone()
    labels[enc.attention_mask == 0] = -100
    return enc.input_ids, enc.attention_mask, labels


def pack_rows(lengths: list[int], width: int) -> list[list[int]]:
    """Document indices per row: first-fit by decreasing length, whole documents only.

    >>> pack_rows([5, 3, 4, 2], 8)
    [[0, 1], [2, 3]]
    """
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        row = next((r for r, free in enumerate(room) if free >= lengths[i]), None)
        if row is None:
            rows.append([])
            room.append(width)
            row = len(rows) - 1
        rows[row].append(i)
        room[row] -= lengths[i]
    return rows


def pack_batch(tokenizer, docs: list[str], max_length: int):
    """The same documents as ``encode_batch``, packed several to a row without padding between them.

    Returns ``input_ids`` and ``labels`` (R, T), ``position_ids`` (R, T) restarting at 0 for each
    document, and a boolean ``attention_mask`` (R, 1, T, T) that is causal *within* a document
    only, so each document sees exactly what it would alone in its own padded row: the loss is
    the padded batch's (same documents, same token count; ``tests/stages/test_pretrain.py``).
    The documents of a step are ~40 tokens on average but padded to the longest (~70), so
    packing them into rows of ``max_length`` computes ~40% fewer positions.
    """
    import numpy as np
    import torch

    # one batch call and numpy slices: 9 ms for 128 documents on one thread, 16 with a call and two
    # tensors per document (AMD EPYC Zen 4)
    ids = tokenizer([d + tokenizer.eos_token for d in docs], truncation=True, max_length=max_length).input_ids
    rows = pack_rows([len(x) for x in ids], max_length)
    width = max(sum(len(ids[i]) for i in row) for row in rows)
    input_ids = np.full((len(rows), width), tokenizer.pad_token_id, dtype=np.int64)
    labels = np.full((len(rows), width), -100, dtype=np.int64)
    position_ids = np.zeros((len(rows), width), dtype=np.int64)
    segment = np.full((len(rows), width), -1, dtype=np.int64)  # document number in its row; -1: padding
    count = np.arange(width)
    for r, row in enumerate(rows):
        start = 0
        for j, i in enumerate(row):
            n = len(ids[i])
            input_ids[r, start:start + n] = ids[i]
            labels[r, start + 1:start + n] = ids[i][1:]  # a document's first token has no context
            position_ids[r, start:start + n] = count[:n]
            segment[r, start:start + n] = j
            start += n
    segment_t = torch.from_numpy(segment)
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    same_doc = segment_t[:, :, None] == segment_t[:, None, :]
    # padding attends to itself only, so that no row of the softmax is empty (its loss is masked)
    mask = (same_doc & causal) | torch.eye(width, dtype=torch.bool)
    return torch.from_numpy(input_ids), torch.from_numpy(labels), torch.from_numpy(position_ids), mask[:, None]


def choose_attention(model, cfg: Config, ctx: StageContext, batch: list[str], tokenizer, autocast,
                     dtype: str) -> str:
    """Set ``model``'s attention kernel to ``cfg.attention`` made concrete (``attention.resolve``:
    timed on ``batch``, a forward + backward per kernel whose gradients are dropped) and record it.
    On several processes rank 0 decides and every rank takes its decision."""
    import torch

    from r1pipeline import attention

    ids, labels, positions, mask = pack_batch(tokenizer, batch, cfg.model.max_length)

    def step(impl: str) -> None:
        model.set_attn_implementation(impl)
        with autocast:
            loss = model(input_ids=ids, attention_mask=attention.mask_for(impl, mask), position_ids=positions,
                         labels=labels).loss
        loss.backward()
        model.zero_grad(set_to_none=True)

    m = cfg.model
    shape = (f"llama h{m.hidden_size} l{m.num_layers} a{m.num_heads} i{m.intermediate_size} "
             f"b{len(batch)}x{m.max_length}")  # this rank's documents
    decision = attention.resolve_agreed(cfg.attention, step=step, device="cpu",
                                        key=attention.cache_key(torch.get_num_threads(), dtype, shape,
                                                                torch.__version__))
    model.set_attn_implementation(decision.impl)
    ctx.precision["attention"] = decision.record()
    return decision.impl


def run(cfg: Config, ctx: StageContext, spec_base: str) -> dict[str, Any]:
    import torch

    from r1pipeline import attention, distributed, precision
    from r1pipeline.models.tiny import build_model, build_tokenizer
    from r1pipeline.checkpoint import latest_checkpoint, save_checkpoint
    from r1pipeline.progress import progress_bar
    from r1pipeline.stages.common import build_task

    world, main = distributed.world_size(), distributed.is_main()
    task = build_task(cfg.task, spec_base)
    tokenizer = build_tokenizer()
    model = build_model(cfg.model, tokenizer, ctx.seed)
    # bfloat16 means mixed precision: fp32 master weights, bf16 autocast. It is faster on AMX CPUs
    # (0.29 vs 0.46 s/step at the tiny size), 7-30x slower per GEMM on an AVX2-only EPYC: auto measures.
    dtype = ctx.record_precision("train", precision.resolve_agreed(cfg.dtype, precision.model_shapes(
        cfg.model.hidden_size, cfg.model.intermediate_size, cfg.batch_size * cfg.model.max_length // world),
        device="cpu"))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay,
                            betas=(0.9, 0.95))
    docs = task.corpus(cfg.steps * cfg.batch_size, ctx.seed, mix=cfg.mix, p_wrong=cfg.p_wrong_step,
                       p_second_language=cfg.p_second_language)

    start = 0
    ckpt = latest_checkpoint(ctx.checkpoint_dir)
    if ckpt is not None:
        state = torch.load(ckpt / "state.pt", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        start = state["step"]
        if main:
            ctx.metrics.truncate_after(start)
    else:
        torch.manual_seed(ctx.seed)

    model.train()
    first = distributed.shard(docs[start * cfg.batch_size:(start + 1) * cfg.batch_size])
    kernel = choose_attention(model, cfg, ctx, first, tokenizer, autocast, dtype)
    loss_ema, tokens = None, 0
    with progress_bar(f"{ctx.name}: pretrain", total=cfg.steps, completed=start) as bar:
        for step in range(start, cfg.steps):
            batch = docs[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            ids, labels, positions, mask = pack_batch(tokenizer, distributed.shard(batch), cfg.model.max_length)
            mask = attention.mask_for(kernel, mask)
            lr = lr_at(step, cfg)
            for group in opt.param_groups:
                group["lr"] = lr
            predicted = int((labels != -100).sum())  # a document's first token is never a label
            # one process: the loss's own mean; several: this rank's sum, divided below by the whole batch's count
            extra = {"num_items_in_batch": 1} if world > 1 else {}
            with autocast:
                loss = model(input_ids=ids, attention_mask=mask, position_ids=positions, labels=labels,
                             **extra).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if world > 1:
                value, predicted = _mean_over_ranks(model, loss, predicted)
            else:
                value = loss.item()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            loss_ema = value if loss_ema is None else 0.9 * loss_ema + 0.1 * value
            tokens += predicted + len(batch)  # the documents' tokens, not padding
            if main:
                ctx.metrics.log({"step": step + 1, "loss": value, "lr": lr})
                ctx.tracker.log({"train/loss": value, "train/learning_rate": lr}, step + 1)
            bar.update(1, description=f"{ctx.name}: pretrain loss {loss_ema:.3f}")
            if main and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
                save_checkpoint(ctx.checkpoint_dir, step + 1, {
                    "model": model.state_dict(), "optimizer": opt.state_dict(),
                    "rng": torch.get_rng_state(), "step": step + 1})

    from r1pipeline.rundir import atomic_dir

    model.set_attn_implementation("sdpa")  # the kernel is this stage's choice, not the saved model's
    if main:
        with atomic_dir(ctx.model_dir) as out:
            model.save_pretrained(out)
            tokenizer.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    return {"final_loss": loss_ema, "parameters": n_params, "steps": cfg.steps,
            "tokens_seen_this_attempt": tokens}


def _mean_over_ranks(model, loss_sum, predicted: int) -> tuple[float, int]:
    """One all-reduce of every rank's gradients, loss sum and token count; the gradients become the
    whole batch's mean. Returns the whole batch's mean loss and token count."""
    import torch

    from r1pipeline import distributed

    grads = [p.grad for p in model.parameters() if p.grad is not None]
    tail = torch.stack([loss_sum.detach().float(), torch.tensor(float(predicted))])
    flat = distributed.all_reduce_sum(torch.cat([*(g.reshape(-1) for g in grads), tail]))
    total = flat[-1]
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g) / total)
        offset += g.numel()
    return float(flat[-2] / total), int(total)
