"""Prompt templates: how a question becomes the text the policy continues.

``r1_zero`` is the paper's R1-Zero template (paraphrased in R1_NOTES.md): it constrains only the
structure of the answer, never its content. ``r1_zero_short`` keeps its skeleton
(``User: ... Assistant: ``, the space included so that completions start at ``<think>``) without
the instructions, for the embedded world's character-level
model whose whole context is a hundred characters; that model learns the structure from its
pretraining corpus instead of from instructions. ``r1_zero_chatml`` is for a chat model (whose
answers fall apart on a bare text prompt): a ChatML conversation (the chat format of SmolLM2 and
Qwen) whose system turn gives the same instructions in 31 tokens instead of 85 (every prompt token
is run forward and backward G times a prompt in RL: SmolLM2's step took 1.7x longer with the
paper's wording).
"""

from __future__ import annotations

R1_ZERO_SYSTEM = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process "
    "here </think> <answer> answer here </answer>."
)
R1_ZERO = R1_ZERO_SYSTEM + " User: {question}. Assistant:"

TEMPLATES: dict[str, str] = {
    "r1_zero": R1_ZERO,
    "r1_zero_chatml": ("<|im_start|>system\nThink about the reasoning process first, then give the answer. "
                       "Reasoning in <think> </think>, answer in <answer> </answer>.<|im_end|>\n"
                       "<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"),
    "r1_zero_short": "User: {question} Assistant: ",
    "plain": "{question}",
}


def render(template: str, question: str) -> str:
    """The prompt for ``question`` under the named template.

    >>> render("r1_zero_short", "3*4")
    'User: 3*4 Assistant: '
    >>> render("r1_zero", "Calculate 3*4.")[-31:]
    'User: Calculate 3*4. Assistant:'
    """
    text = TEMPLATES[template]
    if question.rstrip().endswith((".", "?", "!")):  # "User: What is 2+2?. Assistant:" reads badly
        text = text.replace("{question}.", "{question}")
    return text.format(question=question)
