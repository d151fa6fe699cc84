"""Checkpoints loaded as a user loads them: transformers alone, one input at a time, its defaults.

Run by ``test_checkpoint_load.py`` as a script in a process of its own, so that nothing of
r1pipeline is imported (no registration, patch or side effect of ours can help a checkpoint load):
``python plain_load.py`` with a JSON request on stdin, a JSON answer on stdout.

Request: ``{"generate": [{"path", "prompts", "max_new_tokens"}], "score": [{"path", "texts"}]}``.
Answer: ``{"generate": [[text per prompt] per entry], "score": [[score per text] per entry],
"r1pipeline_imported": bool}``. Generation is greedy (``do_sample=False``) from
``AutoModelForCausalLM``; a score is ``logits[0, 0]`` of ``AutoModelForSequenceClassification``.
"""

from __future__ import annotations

import json
import sys


def greedy_texts(path: str, prompts: list[str], max_new_tokens: int) -> list[str]:
    """The greedy continuation of each prompt, decoded without special tokens."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    texts = []
    for prompt in prompts:
        inputs = tokenizer(prompt, return_tensors="pt")
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        texts.append(tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
    return texts


def scores(path: str, texts: list[str]) -> list[float]:
    """The first logit of a sequence-classification model for each text."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    with torch.no_grad():
        return [model(**tokenizer(t, return_tensors="pt")).logits[0, 0].item() for t in texts]


def main() -> None:
    request = json.load(sys.stdin)
    answer = {
        "generate": [greedy_texts(r["path"], r["prompts"], r["max_new_tokens"]) for r in request.get("generate", [])],
        "score": [scores(r["path"], r["texts"]) for r in request.get("score", [])],
        "r1pipeline_imported": any(m.split(".")[0] == "r1pipeline" for m in sys.modules),
    }
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
