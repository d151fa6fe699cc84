"""Pretraining step time of tiny.yaml's base stage: padded batches (before) vs packed rows (now).

The same 128 documents per step, forward + backward + AdamW, alternating padded and packed steps
in one process so that machine noise hits both; prints the medians, their ratio and what 900
steps (tiny.yaml's base) cost each way. Run: ``.venv/bin/python bench/pretrain_packing.py``
(about a minute on 2 cores).
"""

from __future__ import annotations

import time
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def timed_step(model, opt, tokenizer, docs: list[str], packed: bool) -> float:
    """Seconds of one optimizer step on ``docs``, packed or padded."""
    from r1pipeline.stages.pretrain import encode_batch, pack_batch

    start = time.perf_counter()
    if packed:
        ids, labels, positions, mask = pack_batch(tokenizer, docs, 128)
        loss = model(input_ids=ids, attention_mask=mask, position_ids=positions, labels=labels).loss
    else:
        ids, mask, labels = encode_batch(tokenizer, docs, 128)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    opt.zero_grad()
    loss.backward()
    opt.step()
    return time.perf_counter() - start


def main(steps: int = 40, batch: int = 128) -> None:
    import torch
    import yaml

    from r1pipeline.models.tiny import TinyModelConfig, build_model, build_tokenizer
    from r1pipeline.machine import cpu_facts
    from r1pipeline.stages.common import build_task

    base = yaml.safe_load((CONFIGS / "tiny.yaml").read_text())["stages"][0]
    tokenizer = build_tokenizer()
    model = build_model(TinyModelConfig(**base["model"]), tokenizer, 0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    docs = build_task(base["task"], str(CONFIGS)).corpus(batch * steps, 0, p_second_language=0.3)
    batches = [docs[i * batch:(i + 1) * batch] for i in range(steps)]
    for packed in (True, False):  # warm-up
        timed_step(model, opt, tokenizer, batches[0], packed)
    times: dict[bool, list[float]] = {True: [], False: []}
    for i, docs_i in enumerate(batches[1:], 1):
        times[i % 2 == 0].append(timed_step(model, opt, tokenizer, docs_i, i % 2 == 0))
    padded, packed = (sorted(times[k])[len(times[k]) // 2] for k in (False, True))
    facts = cpu_facts("cpu")
    print(f"{facts.cpu_model} ({facts.cpu_class}), torch threads {torch.get_num_threads()}: "
          f"padded {padded:.3f} s/step, packed {packed:.3f} s/step")
    print(f"pretrain_packing: {padded / packed:.2f}x padded batches; tiny.yaml's 900 base steps "
          f"{900 * padded / 60:.1f} -> {900 * packed / 60:.1f} min")


if __name__ == "__main__":
    main()
