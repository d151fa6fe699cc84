"""The code reward: the share of a task's test cases that the completion's program passes."""

from __future__ import annotations

import json
import re

from r1pipeline.rewards.parse import split_think
from r1pipeline.rewards.registry import register

_FENCE_RE = re.compile(r"```python[ \t]*\r?\n(.*?)```", re.DOTALL)


def extract_program(completion: str) -> str | None:
    """The last ```` ```python ```` fenced block after ``</think>``; None if there is none.

    >>> extract_program("<think>```python\\nprint(0)\\n```</think>```python\\nprint(1)\\n```")
    'print(1)\\n'
    >>> extract_program("<think>```python\\nprint(0)\\n```</think> no code") is None
    True
    """
    _, rest = split_think(completion)
    found = _FENCE_RE.findall(rest)
    return found[-1] if found else None


def normalize_output(text: str) -> str:
    """Output as compared: stripped, and each line stripped.

    >>> normalize_output("  1 2 \\n3\\n\\n")
    '1 2\\n3'
    """
    return "\n".join(line.strip() for line in text.strip().splitlines())


def parse_tests(tests) -> list[dict]:
    """A row's test cases: a list of ``{"input": str, "output": str}`` (or its JSON text).

    >>> parse_tests('[{"input": "1\\\\n", "output": "2"}]')
    [{'input': '1\\n', 'output': '2'}]
    """
    if isinstance(tests, str):
        tests = json.loads(tests)
    if not tests:
        return []
    return [{"input": str(t.get("input", "")), "output": str(t["output"])} for t in tests]


@register("code", failure=0.0)
class CodeTests:
    """The share of test cases passed by the program in the completion, run in the sandbox.

    Formula: r = (tests whose stdout matches) / (tests), the program being the last
    ```` ```python ```` block after ``</think>``, fed each test's ``input`` on stdin, its stripped
    stdout compared line by line (each line stripped) with the ``output``. 0.0 without a
    program; None for a row without tests (column ``tests``). A run that errors, times out or
    is killed fails its test. Source: DeepSeek-R1, "accuracy rewards" for code (a compiler and
    predefined test cases); the share of tests, rather than all-or-nothing, as in open-r1's
    ``code_reward``.

    >>> CodeTests()(["<think>double it</think>no program"], tests=[[{"input": "2", "output": "4"}]])
    [0.0]
    """

    def __init__(self, time_limit_s: float = 2.0, memory_mb: int = 256, workers: int | None = None):
        if time_limit_s <= 0 or memory_mb <= 0:
            raise ValueError("time_limit_s and memory_mb must be > 0")
        self.time_limit_s, self.memory_mb, self.workers = time_limit_s, memory_mb, workers
        self.__name__ = "code_reward"

    def __call__(self, completions: list[str], tests: list | None = None, **_) -> list[float | None]:
        if tests is None:
            return [None] * len(completions)
        jobs: list[tuple[str, str]] = []
        wanted: list[tuple[int, str]] = []  # (completion index, expected output) per job
        out: list[float | None] = []
        counts: list[int] = []
        for i, (c, row) in enumerate(zip(completions, tests, strict=True)):
            cases = parse_tests(row)
            program = extract_program(c)
            counts.append(len(cases))
            if not cases:
                out.append(None)
            elif program is None:
                out.append(0.0)
            else:
                out.append(0.0)
                for t in cases:
                    jobs.append((program, t["input"]))
                    wanted.append((i, normalize_output(t["output"])))
        if jobs:
            from r1pipeline.sandbox import SandboxPool  # lazy: heavy, and optional for most tasks

            with SandboxPool(self.workers) as pool:
                results = pool.map(jobs, time_limit_s=self.time_limit_s, memory_mb=self.memory_mb)
            passed = [0] * len(completions)
            for (i, expected), res in zip(wanted, results, strict=True):
                passed[i] += res.status == "ok" and normalize_output(res.stdout) == expected
            out = [passed[i] / counts[i] if v is not None else None for i, v in enumerate(out)]
        return out
