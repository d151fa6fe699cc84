"""The one list of reward names.

A reward is registered under a short name (``accuracy``); the function it builds is called
``<name>_reward`` (``accuracy_reward``), which is the name TRL logs it under. Validation,
``--help`` and the docs read this registry and nothing else.

A reward follows TRL's signature: ``fn(completions, **columns) -> list[float | None]``, where
``None`` means "this reward does not apply to this sample" (TRL skips it in the weighted sum).
A parameterised reward is registered as a class whose constructor takes the parameters; its
instances are callables with a stable ``__name__`` so they pickle and log under one name.
"""

from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass
from typing import Any, Callable

RewardFn = Callable[..., list]


@dataclass(frozen=True)
class RewardEntry:
    name: str
    factory: Callable[..., RewardFn]  # a function (no parameters) or a class (parameters)
    summary: str
    # What a sample that errors or times out scores: never more than the worst score this
    # reward gives a wrong answer (else a policy is paid for breaking the verifier). A number,
    # a function of the built reward (for parameterised bounds), or "batch_min" (unbounded
    # scores: the lowest score in the batch). The guard reads it as ``fn.failure_score``.
    failure: Any = 0.0

    def failure_score(self, fn: RewardFn) -> float | str:
        """The declared failure score of ``fn``, a reward this entry built."""
        return self.failure(fn) if callable(self.failure) else self.failure

    @property
    def params(self) -> dict[str, inspect.Parameter]:
        """The parameters a spec may set, from the class constructor's signature."""
        if not inspect.isclass(self.factory):
            return {}
        sig = inspect.signature(self.factory.__init__)
        return {k: p for k, p in sig.parameters.items() if k != "self" and p.kind is p.KEYWORD_ONLY
                or (k != "self" and p.kind is p.POSITIONAL_OR_KEYWORD)}


_REGISTRY: dict[str, RewardEntry] = {}

# The names open-r1 and TRL users write, mapped to ours (and the parameters that make ours the
# same reward), so that an open-r1 recipe's reward list can be pasted into a spec. The one
# alias table: validation, ``entry``/``build`` and ``r1 rewards`` (each summary ends with its
# aliases) read it. Where ours departs from the original, its docstring says how.
ALIASES: dict[str, tuple[str, dict[str, Any]]] = {
    "accuracy_reward": ("accuracy", {}),  # open-r1, TRL: math-verify; ours: the task's verifier
    "reasoning_accuracy_reward": ("accuracy", {}),  # TRL: the answer after </think>, as ours reads it
    "format_reward": ("format", {"style": "r1_zero"}),  # open-r1: <think>..</think><answer>..</answer>
    "think_format_reward": ("format", {"style": "r1"}),  # TRL: a <think> block, then anything
    "tag_count_reward": ("tag_count", {}),
    "reasoning_steps_reward": ("reasoning_steps", {}),
    "len_reward": ("kimi_length", {}),
    "cosine_scaled_reward": ("cosine_length", {}),
    "get_cosine_scaled_reward": ("cosine_length", {}),
    "get_repetition_penalty_reward": ("repetition", {}),
    "repetition_penalty_reward": ("repetition", {}),
    "get_soft_overlong_punishment": ("soft_overlong", {}),
    "code_reward": ("code", {}),
    "get_code_format_reward": ("code_format", {}),
    "code_format_reward": ("code_format", {}),
    # open-r1's recipe keys (``reward_funcs: [accuracy, format, cosine, ...]``) where ours differ
    "cosine": ("cosine_length", {}),
    "repetition_penalty": ("repetition", {}),
    "length": ("kimi_length", {}),
    "soft_overlong_punishment": ("soft_overlong", {}),
}


def resolve(name: str, params: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """Our name and parameters for ``name``, which may be an open-r1 or TRL alias; the user's
    parameters override the alias's.

    >>> resolve("think_format_reward"), resolve("len_reward", {"unit": "chars"}), resolve("accuracy")
    (('format', {'style': 'r1'}), ('kimi_length', {'unit': 'chars'}), ('accuracy', {}))
    """
    target, preset = ALIASES.get(name, (name, {}))
    return target, {**preset, **(params or {})}


def aliases_of(name: str) -> list[str]:
    """The aliases that resolve to reward ``name``.

    >>> aliases_of("cosine_length")
    ['cosine', 'cosine_scaled_reward', 'get_cosine_scaled_reward']
    """
    return sorted(a for a, (target, _) in ALIASES.items() if target == name)


def known_names() -> list[str]:
    """Every name a spec may use: ours, then the aliases."""
    return names() + sorted(ALIASES)


def register(name: str, *, failure: Any):
    """Register a reward function or reward class under ``name``, with its failure score
    (``RewardEntry.failure``: at most the worst score it gives a wrong answer)."""

    def deco(obj):
        if name in _REGISTRY or name in ALIASES:
            raise ValueError(f"reward {name!r} registered twice (or is an alias)")
        doc = inspect.getdoc(obj) or ""
        summary = doc.splitlines()[0] if doc else ""
        if aliases_of(name):
            summary += f" [aliases: {', '.join(aliases_of(name))}]"
        _REGISTRY[name] = RewardEntry(name, obj, summary, failure)
        return obj

    return deco


def _load_builtin() -> None:
    # Importing the modules runs their @register decorators. Kept lazy so that importing the
    # registry (as spec validation does) stays cheap.
    from r1pipeline.rewards import builtin  # noqa: F401


def names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def entry(name: str) -> RewardEntry:
    """The entry of reward ``name`` (an alias gives its target's entry)."""
    _load_builtin()
    name = resolve(name)[0]
    if name not in _REGISTRY:
        raise KeyError(f"unknown reward {name!r}; known rewards: {', '.join(names())}")
    return _REGISTRY[name]


def check_params(name: str, params: dict[str, Any]) -> str | None:
    """Return an error message if ``params`` do not fit reward ``name``, else None."""
    name, params = resolve(name, params)
    allowed = entry(name).params
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        hint = f"allowed: {', '.join(allowed)}" if allowed else "this reward takes no parameters"
        return f"unknown parameter(s) {', '.join(unknown)} for reward {name!r} ({hint})"
    return None


def _type_problem(key: str, value: Any, default: Any) -> str | None:
    """A parameter whose value is not of its default's kind (a number for a number, a string
    for a string); non-finite numbers too. None when it fits or the default says nothing."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else f"{key} must be true or false, got {value!r:.40}"
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{key} must be a number, got {value!r:.40}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{key} must be a finite number, got {value!r}"
        if isinstance(default, int) and not isinstance(value, int):
            return f"{key} must be a whole number, got {value!r:.40}"
    if isinstance(default, str) and not isinstance(value, str):
        return f"{key} must be a string, got {value!r:.40}"
    return None


def param_problem(name: str, params: dict[str, Any]) -> tuple[str | None, str, str] | None:
    """(parameter, what is wrong, the fix) when reward ``name`` refuses ``params``, else None.

    Validation calls this: the reward is built once, by the code that builds it for training
    (constructors are cheap: a reward model loads its weights on its first call), so a spec is
    checked by the same rules that would refuse it after the model has loaded.

    >>> param_problem("format", {"style": "r2"})
    ('style', "style must be one of r1_zero, r1, any, got 'r2'", 'use one of r1_zero, r1, any')
    >>> param_problem("cosine_length", {"max_len": "long"})[1], param_problem("format", {"style": "r1"})
    ("max_len must be a number, got 'long'", None)
    """
    name, params = resolve(name, params)
    err = check_params(name, params)
    if err:
        return None, err, "remove or rename the parameter"
    allowed = entry(name).params
    for key, value in params.items():
        msg = _type_problem(key, value, allowed[key].default)
        if msg:
            return key, msg, f"give {key} a value like its default, {allowed[key].default!r}"
    try:
        build(name, **params)
    except (ValueError, TypeError, KeyError) as e:
        msg = str(e.args[0]) if e.args else type(e).__name__
        key = next((k for k in params if k in msg), None)
        choices = re.search(r"(?:one of|known:) ([^;]+?)(?:, got .*)?$", msg)
        default = allowed[key].default if key else None
        fix = (f"use one of {choices.group(1)}" if choices
               else f"give {key} a value that meets this (its default is {default!r})" if key
               else "change the parameters so that this holds")
        return key, msg, fix
    return None


def build(name: str, **params: Any) -> RewardFn:
    """Build the callable for reward ``name`` with ``params``; its ``__name__`` is ``<name>_reward``
    (for an alias, ours: ``build("len_reward")`` is named ``kimi_length_reward``)."""
    name, params = resolve(name, params)
    e = entry(name)
    err = check_params(name, params)
    if err:
        raise ValueError(err)
    fn = e.factory(**params) if inspect.isclass(e.factory) else e.factory
    for attr, value in (("__name__", f"{name}_reward"), ("failure_score", e.failure_score(fn))):
        try:
            setattr(fn, attr, value)
        except AttributeError:
            pass
    return fn
