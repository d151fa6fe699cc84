"""A learned reward model as a reward (the paper's "general" rewards in all-scenario RL)."""

from __future__ import annotations

from typing import Any

from r1pipeline.rewards.parse import split_think
from r1pipeline.rewards.registry import register

CHARS_PER_TOKEN_MAX = 32


def summary_of(completion: str) -> str:
    """The part after ``</think>``; the whole completion when there is no closed think block
    (then nothing but the completion itself is visible to the user).

    >>> summary_of("<think>long reasoning</think> The answer is 4."), summary_of("just 4")
    (' The answer is 4.', 'just 4')
    """
    return split_think(completion)[1]


def with_eos(text: str, tokenizer) -> str:
    """``text`` ending in the tokenizer's EOS, where TRL's ``RewardTrainer`` reads the score of a
    plain-text pair (it appends EOS to chosen and rejected; chat-templated pairs end in the
    template's own end-of-turn). Scoring without it reads a position the model never learned to
    score at: our tiny helpfulness model ranked its policy's exact answers above its refusals of
    the same prompt 67% of the time without it.

    >>> class Tok: eos_token = "</s>"
    >>> with_eos("2+2? 4", Tok()), with_eos("2+2? 4</s>", Tok())
    ('2+2? 4</s>', '2+2? 4</s>')
    """
    eos = getattr(tokenizer, "eos_token", None)
    return text if not eos or text.endswith(eos) else text + eos


@register("reward_model", failure="batch_min")
class RewardModel:
    """The scalar score of a sequence-classification reward model on (prompt, response).

    Formula: r = RM(prompt + response + EOS).logits[0], with response the whole completion, or only
    the summary after ``</think>`` when ``summary_only`` (the paper scores helpfulness on the
    summary alone, so the reward does not shape the reasoning, and harmlessness on the whole
    response). ``path`` is a Hugging Face directory with an ``AutoModelForSequenceClassification``
    (one label) and its tokenizer; it loads on the first call. Inputs longer than
    ``max_length`` tokens lose their beginning (the summary is at the end; the prompt goes
    first). Source: DeepSeek-R1, all-scenario RL, "for general data, we resort to reward
    models". Plain texts end in EOS (``with_eos``): TRL's ``GRPOTrainer`` scores ``prompt + completion``
    without it for a model passed as a reward, though its ``RewardTrainer`` trains at the EOS.

    ``only_if`` limits the reward to rows whose dataset columns have the given values (e.g.
    ``{domain: general, harmful: false}``); other rows get None, so a prompt mix can score its
    reasoning prompts by rules and its general prompts by reward models.

    >>> RewardModel(path="my-rm", summary_only=True).summary_only   # nothing loads until called
    True
    >>> RewardModel(path="x", only_if={"domain": "general"}).applies({"domain": ["general", "reasoning"]}, 2)
    [True, False]
    """

    def __init__(self, path: str, summary_only: bool = False, batch_size: int = 8,
                 max_length: int = 2048, device: str | None = None, only_if: dict | None = None):
        if batch_size < 1 or max_length < 1:
            raise ValueError("batch_size and max_length must be >= 1")
        self.only_if = dict(only_if or {})
        self.path, self.summary_only = str(path), summary_only
        self.batch_size, self.max_length, self.device = batch_size, max_length, device
        self.__name__ = "reward_model_reward"
        self._model = self._tokenizer = None

    def __getstate__(self) -> dict[str, Any]:  # pickle the recipe, not the weights
        return {**self.__dict__, "_model": None, "_tokenizer": None}

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        tok = AutoTokenizer.from_pretrained(self.path)
        tok.truncation_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        model = AutoModelForSequenceClassification.from_pretrained(self.path).to(device).eval()
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tok.pad_token_id
        self._tokenizer, self._model, self._device = tok, model, device

    def texts(self, completions: list[str], prompts: list | None = None) -> list[str]:
        """The texts the model scores: prompt (chat template if the prompt is a conversation and
        the tokenizer has one) followed by the response; ``__call__`` ends plain texts with the
        tokenizer's EOS (``with_eos``).

        >>> RewardModel(path="x", summary_only=True).texts(["<think>r</think>4"], prompts=["2+2? "])
        ['2+2? 4']
        """
        responses = [summary_of(c) if self.summary_only else c for c in completions]
        if prompts is None:
            return responses
        return [self._join(p, r) for p, r in zip(prompts, responses, strict=True)]

    def _join(self, prompt: Any, response: str) -> str:
        if isinstance(prompt, str):
            return prompt + response
        messages = list(prompt) + [{"role": "assistant", "content": response}]
        tok = self._tokenizer
        if tok is not None and getattr(tok, "chat_template", None):
            return tok.apply_chat_template(messages, tokenize=False)
        return "\n".join(str(m.get("content", "")) for m in messages)

    def applies(self, columns: dict[str, Any], n: int) -> list[bool]:
        """Which rows ``only_if`` selects (all rows when it is empty)."""
        keep = [True] * n
        for col, want in self.only_if.items():
            values = columns.get(col)
            if values is None:
                raise KeyError(f"reward_model only_if: the dataset has no column {col!r}")
            keep = [k and v == want for k, v in zip(keep, values)]
        return keep

    def __call__(self, completions: list[str], prompts: list | None = None, **columns) -> list[float | None]:
        keep = self.applies(columns, len(completions))
        if not all(keep):
            idx = [i for i, k in enumerate(keep) if k]
            scored = self([completions[i] for i in idx], [prompts[i] for i in idx] if prompts else None) if idx else []
            out: list[float | None] = [None] * len(completions)
            for i, v in zip(idx, scored):
                out[i] = v
            return out
        if self._model is None:
            self._load()
        import torch

        # Only the last max_length tokens are kept; cut the text first so the tokenizer never
        # reads a megabyte (a token is rarely longer than CHARS_PER_TOKEN_MAX characters).
        keep = self.max_length * CHARS_PER_TOKEN_MAX
        texts = [t[-keep:] for t in self.texts(completions, prompts)]
        if prompts is None or all(isinstance(p, str) for p in prompts):  # a chat template ends its own turn
            texts = [with_eos(t, self._tokenizer) for t in texts]
        scores: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            batch = self._tokenizer(texts[start:start + self.batch_size], padding=True, truncation=True,
                                    max_length=self.max_length, return_tensors="pt").to(self._device)
            with torch.inference_mode():
                logits = self._model(**batch).logits  # (B, num_labels)
            scores.extend(logits[:, 0].float().tolist())
        return scores
