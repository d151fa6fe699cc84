"""Procedural reasoning tasks from reasoning-gym, checked by each dataset's own scorer.

```yaml
task:
  source: reasoning_gym
  datasets:                      # reasoning-gym dataset name -> its config (seed, size are ours)
    basic_arithmetic: {min_terms: 2, max_terms: 2, min_digits: 1, max_digits: 2, operators: ["+", "-"]}
    products: {max_digits: 2}
  weights: {basic_arithmetic: 3, products: 1}   # optional, one per dataset; default: equal
```

Items are drawn from one seeded reasoning-gym stream per dataset (so a seed gives the same items
every time) and split by a hash of the question text (``registry.split_of``): a question is in
``train`` or in ``test``, never both, and each split holds no duplicates. Every drawn item is
checked on the way in: its own reference answer must score 1.0 through our verifier (items that
do not are dropped and counted in ``dropped``).

Verifier kinds ``rg:<dataset>`` are added to ``rewards.verify.VERIFIERS`` when this module is
imported, for every dataset of the installed reasoning-gym (found by reading its source files,
not importing it: reasoning-gym pulls in sympy and takes about a second to import, which spec
validation cannot afford). A kind is correct when the dataset's ``score_answer(prediction,
entry)`` gives 1.0 (partial credit counts as wrong). Kinds whose scorers parse the model's
text with sympy or ``eval`` are also listed in ``SLOW_VERIFIERS`` (they may hang on input
such as ``9**9**9**9``).

The ``answer`` column is the plain reference answer when the dataset's scorer reads nothing but
``entry["answer"]`` (``basic_arithmetic``, ``products``, ``chain_sum``...). When it reads the
entry's metadata or the dataset's own config (``countdown`` checks the numbers used,
``puzzle24`` the allowed range), ``answer`` is instead the JSON text of
``{"answer": ..., "metadata": ..., "config": ...}``, which the verifier decodes to rebuild the
entry and the dataset (tuples and sets in the metadata are tagged so that they come back as
tuples and sets: ARC grids compare as tuples). ``needs_entry(name)`` says which form a dataset
uses. Open-ended datasets (``graph_color``, ``rush_hour``, ``rubiks_cube``...) have no reference
answer, only a checker: their JSON carries ``"answer": null`` and the check on the way in is
skipped. ``BROKEN`` lists datasets whose scorer cannot tell right from wrong; they are refused.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import inspect
import json
import random
import re
import textwrap
from pathlib import Path
from typing import Any

from pydantic import PrivateAttr, field_validator, model_validator

from r1pipeline.rewards import verify
from r1pipeline.tasks.registry import SPLITS, AnswerFrom, TaskSource, register, split_of

_NAME_RE = re.compile(r"""(?:DATASET_NAME\s*=\s*|register_dataset\(\s*)["'](\w+)["']""")
_RISKY_RE = re.compile(r"sympy|parse_expr|\beval\(|\bexec\(")
_OURS = ("seed", "size")  # config keys this source sets itself
DRAWS_PER_ITEM = {"train": 3, "test": 30}  # draw budget per wanted item (test keeps ~10%)
# Scorers that cannot tell right from wrong; refused at validation.
BROKEN = {"game_of_life_halting": "its scorer gives 1.0 to any non-empty answer "
                                  "(it compares bool(answer) and bool('False') is True)"}


@functools.lru_cache(maxsize=None)
def dataset_names() -> dict[str, bool]:
    """Datasets of the installed reasoning-gym, each with whether its scorer may hang.

    Read from the package's source files (about 20 ms) instead of importing it (about 1 s).
    A dataset counts as possibly slow when its file defines its own ``score_answer`` and uses
    sympy, ``eval`` or ``exec``.
    """
    spec = importlib.util.find_spec("reasoning_gym")
    if spec is None or spec.origin is None:
        return {}
    found: dict[str, bool] = {}
    for path in sorted(Path(spec.origin).parent.rglob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if "register_dataset" not in text:
            continue
        risky = "def score_answer" in text and bool(_RISKY_RE.search(text))
        for name in _NAME_RE.findall(text):
            found[name] = risky
    found.pop("composite", None)  # mixing datasets is what `weights` does here
    return found


def _rg():
    import reasoning_gym

    return reasoning_gym


@functools.lru_cache(maxsize=None)
def needs_entry(dataset: str) -> bool:
    """True when the dataset's scorer reads more than ``entry["answer"]`` (metadata, or the
    dataset's own state such as its config): its references are then stored as JSON.

    Decided from the scorer's syntax tree: the base class's scorer, or one whose only uses of
    ``entry`` are ``entry["answer"]`` and which never touches ``self``, reads the answer alone.
    """
    from reasoning_gym.dataset import ProceduralDataset
    from reasoning_gym.factory import DATASETS

    fn = DATASETS[dataset][0].score_answer
    if fn is ProceduralDataset.score_answer:
        return False
    try:
        func = ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0]
    except (OSError, TypeError, SyntaxError, IndexError):
        return True
    args = [a.arg for a in func.args.args]  # (self, answer, entry)
    if len(args) != 3:
        return True
    self_name, entry_name = args[0], args[2]
    answer_only = {id(node.value) for node in ast.walk(func)
                   if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
                   and node.value.id == entry_name and isinstance(node.slice, ast.Constant)
                   and node.slice.value == "answer"}
    for node in ast.walk(func):
        if isinstance(node, ast.Name) and (node.id == self_name or
                                          (node.id == entry_name and id(node) not in answer_only)):
            return True
    return False


@functools.lru_cache(maxsize=64)
def _scorer(dataset: str, config_json: str):
    """A dataset instance to score with (its config matters to some scorers); cached."""
    return _rg().create_dataset(dataset, seed=0, size=1, **json.loads(config_json))


def _tagged(obj: Any) -> Any:
    """``obj`` made JSON-safe without losing what scorers compare: tuples, sets and dicts with
    non-string keys are tagged (ARC grids are tuples of tuples; as lists they compare unequal)."""
    if isinstance(obj, tuple):
        return {"__tuple__": [_tagged(x) for x in obj]}
    if isinstance(obj, (set, frozenset)):
        return {"__set__": [_tagged(x) for x in sorted(obj, key=repr)]}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: _tagged(v) for k, v in obj.items()}
        return {"__items__": [[_tagged(k), _tagged(v)] for k, v in obj.items()]}
    if isinstance(obj, list):
        return [_tagged(x) for x in obj]
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return _tagged(obj.tolist())
    return obj


def _untag(obj: dict) -> Any:
    if len(obj) == 1:
        key, value = next(iter(obj.items()))
        if key == "__tuple__":
            return tuple(value)
        if key == "__set__":
            return set(value)
        if key == "__items__":
            return {(tuple(k) if isinstance(k, list) else k): v for k, v in value}
    return obj


def encode_reference(dataset: str, entry: dict[str, Any], config: dict[str, Any]) -> str:
    """The ``answer`` column for a reasoning-gym entry (plain or JSON, see the module doc)."""
    if not needs_entry(dataset):
        if entry["answer"] is None:
            raise ValueError(f"reasoning-gym dataset {dataset!r} gave an item without an answer")
        return str(entry["answer"])
    answer = None if entry["answer"] is None else str(entry["answer"])
    return json.dumps({"answer": answer, "metadata": _tagged(entry.get("metadata", {})),
                       "config": config}, sort_keys=True)


class RGVerifier:
    """``score_answer(prediction, entry) == 1.0`` under reasoning-gym dataset ``dataset``."""

    def __init__(self, dataset: str):
        self.dataset = dataset
        self.__name__ = f"rg_{dataset}"

    def __call__(self, prediction: str, reference: str) -> bool:
        if needs_entry(self.dataset):
            ref = json.loads(reference, object_hook=_untag)
            entry = {"answer": ref["answer"], "metadata": ref.get("metadata", {})}
            config = ref.get("config", {})
        else:
            entry, config = {"answer": reference, "metadata": {}}, {}
        ds = _scorer(self.dataset, json.dumps(config, sort_keys=True))
        return float(ds.score_answer(prediction, entry)) >= 1.0 - 1e-9

    def __repr__(self) -> str:
        return f"RGVerifier({self.dataset!r})"


def _register_verifiers() -> None:
    slow = getattr(verify, "SLOW_VERIFIERS", None)
    for name, risky in dataset_names().items():
        verify.VERIFIERS.setdefault(f"rg:{name}", RGVerifier(name))
        if risky and slow is not None:
            slow.add(f"rg:{name}")


_register_verifiers()


def _derive_seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "big")


def _shares(n: int, weights: dict[str, float]) -> dict[str, int]:
    """Split ``n`` items by weight, largest remainders first (sums to n exactly).

    >>> _shares(10, {"a": 3, "b": 1}), _shares(1, {"a": 1, "b": 1})
    ({'a': 8, 'b': 2}, {'a': 1, 'b': 0})
    """
    total = sum(weights.values())
    exact = {k: n * w / total for k, w in weights.items()}
    counts = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: counts[k] - exact[k])[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


@register("reasoning_gym")
class ReasoningGymSource(TaskSource):
    """Procedural tasks from reasoning-gym: ``datasets`` maps a dataset name to its config."""

    datasets: dict[str, dict[str, Any]]
    weights: dict[str, float] | None = None
    answer_from: AnswerFrom = "tags"
    _dropped: int = PrivateAttr(default=0)

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        if not v:
            raise ValueError("name at least one reasoning-gym dataset")
        known = dataset_names()
        if not known:
            raise ValueError("reasoning-gym is not installed (pip install reasoning-gym)")
        for name, cfg in v.items():
            if name not in known:
                close = [k for k in known if k.startswith(name[:4])] or sorted(known)[:8]
                raise ValueError(f"unknown reasoning-gym dataset {name!r}; similar: "
                                 f"{', '.join(close)} ({len(known)} in all)")
            if name in BROKEN:
                raise ValueError(f"reasoning-gym dataset {name!r} cannot be used: {BROKEN[name]}")
            bad = sorted(set(cfg) & set(_OURS))
            if bad:
                raise ValueError(f"dataset {name!r}: remove {', '.join(bad)} from its config "
                                 f"(set by the pipeline from its seed and n)")
        return v

    @model_validator(mode="after")
    def _check_weights(self) -> "ReasoningGymSource":
        if self.weights is not None:
            extra = sorted(set(self.weights) - set(self.datasets))
            if extra:
                raise ValueError(f"weights name datasets not in `datasets`: {', '.join(extra)}")
            missing = sorted(set(self.datasets) - set(self.weights))
            if missing:
                raise ValueError(f"give a weight for every dataset; missing: {', '.join(missing)}")
            if any(w < 0 for w in self.weights.values()) or not sum(self.weights.values()) > 0:
                raise ValueError("weights must be >= 0 and not all 0")
        return self

    @property
    def dropped(self) -> int:
        """Items dropped in the last ``load`` because their own answer did not verify."""
        return self._dropped

    def load(self, split: str, n: int, seed: int) -> list[dict[str, Any]]:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        weights = self.weights or {name: 1.0 for name in self.datasets}
        self._dropped = 0
        rows: list[dict[str, Any]] = []
        for name, k in _shares(n, weights).items():
            if k:
                rows += self._draw(name, split, k, seed)
        random.Random(_derive_seed(seed, split, "shuffle")).shuffle(rows)
        return rows

    def _draw(self, name: str, split: str, k: int, seed: int) -> list[dict[str, Any]]:
        config = self.datasets[name]
        budget = 100 + DRAWS_PER_ITEM[split] * k
        try:
            ds = _rg().create_dataset(name, seed=_derive_seed(seed, name), size=budget, **config)
        except (AssertionError, TypeError, ValueError) as e:
            raise ValueError(f"reasoning-gym dataset {name!r}: config {config} rejected: "
                             f"{e or type(e).__name__}") from e
        kind = f"rg:{name}"
        rows, seen, dropped = [], set(), 0
        for i in range(budget):
            entry = ds[i]
            question = entry["question"]
            if question in seen or split_of(question) != split:
                continue
            seen.add(question)
            answer = encode_reference(name, entry, config)
            # open-ended datasets (graph_color, rush_hour...) have no reference, only a checker
            if entry["answer"] is not None and not verify.verify(str(entry["answer"]), answer,
                                                                 kind):
                dropped += 1
                continue
            qid = hashlib.sha256(f"{name}\n{question}".encode()).hexdigest()[:16]
            rows.append({"id": f"rg:{name}:{qid}", "question": question, "answer": answer,
                         "verifier": kind, "answer_from": self.answer_from})
            if len(rows) == k:
                self._dropped += dropped
                return rows
        if dropped > len(rows):
            raise ValueError(f"reasoning-gym dataset {name!r}: {dropped} of its items did not "
                             f"score 1.0 for their own answer; its scorer cannot serve as a "
                             f"verifier here")
        raise ValueError(
            f"reasoning-gym dataset {name!r}: found only {len(rows)} distinct {split} questions "
            f"in {budget} draws, {k} wanted; the config {config} allows too few different "
            f"problems: widen it or ask for fewer items")
