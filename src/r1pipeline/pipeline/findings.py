"""Findings as data: each claim of the paper is a comparison of per-prompt metrics, with a verdict.

A finding names two sides, ``left`` and ``right`` (a model, a metric, an evaluation set, an
optional scale; or, on the right, a constant), a test and a margin. Its effect is
``left - right``; ``greater`` holds when the effect is above ``margin``, ``non_inferior`` when it
is above ``-margin`` (the left side is at most ``margin`` worse):

```yaml
findings:
  - name: final_keeps_reasoning
    claim: the final model keeps reasoning RL's pass@1 within 3 points
    paper: "R1 79.8 vs R1-Zero 71.0 (AIME 2024 pass@1)"
    left: {model: all_scenario_rl, metric: pass@1}
    right: {model: reasoning_rl, metric: pass@1}
    test: non_inferior
    margin: 0.03
```

Measured from an evaluate stage's ``samples.jsonl`` (the metric registry ``METRICS`` turns one
prompt's samples into a numerator and a denominator, so that every metric is a ratio of sums
over prompts and equals the stage's summary number). Per seed: the effect and a paired
bootstrap 95% interval over prompts (both sides resampled on the same prompts; a constant right
side: a plain bootstrap). The finding holds in a seed when the whole interval satisfies the
test. Across seeds: the mean effect with a t interval (n >= 2). Verdict: ``holds`` when it holds
in every seed and the across-seed interval satisfies the test too (one seed: when that seed
holds), ``fails`` when it holds in no seed, else ``mixed``; ``not measured`` when some seed lacks
the samples (a run from before general rows or extra sets were written, a model not evaluated).

Imports nothing heavy (numpy inside the bootstrap): the spec's validation uses it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from r1pipeline.pipeline.stats import Ratio, paired_bootstrap, t_interval
from r1pipeline.stages.base import Problem, did_you_mean

MAIN_SET, GENERAL_SET = "heldout", "general"  # as stages/evaluate.py writes them


def _share(key: str) -> Callable[[list[dict]], Ratio]:
    """The share of a prompt's samples with ``key`` set (format, cot, truncated)."""
    def share(samples: list[dict]) -> Ratio:
        return float(sum(bool(s[key]) for s in samples)), float(len(samples))

    return share


def _length(samples: list[dict]) -> Ratio:
    return float(sum(s["n_tokens"] for s in samples)), float(len(samples))


def _pass_at_1(samples: list[dict]) -> Ratio:
    return sum(bool(s["correct"]) for s in samples) / len(samples), 1.0


def _pass_at_k(samples: list[dict]) -> Ratio:
    return float(any(s["correct"] for s in samples)), 1.0


def _cons_at_k(samples: list[dict]) -> Ratio:
    from r1pipeline.rewards.verify import verify
    from r1pipeline.stages.eval_metrics import majority

    first = samples[0]
    return float(verify(majority([s["answer"] for s in samples]), first["reference"], first["verifier"])), 1.0


def _language(samples: list[dict]) -> Ratio:
    with_cot = [s["language"] for s in samples if s["cot"]]  # the language of reasoning, where there is one
    return float(sum(with_cot)), float(len(with_cot))


def _ends_clean(samples: list[dict]) -> Ratio:
    from r1pipeline.rewards.parse import ends_clean

    clean = [s["ends_clean"] if "ends_clean" in s else ends_clean(s["text"], s["truncated"]) for s in samples]
    return float(sum(clean)), float(len(clean))


def _oracle(samples: list[dict]) -> Ratio:
    return sum(s["oracle"] for s in samples) / len(samples), 1.0


@dataclass(frozen=True)
class Metric:
    """A per-prompt metric: which rows it reads and how one prompt's samples count."""

    per_prompt: Callable[[list[dict]], Ratio]
    summary: str
    objective: str | None = None  # general rows of this objective only

    @property
    def rows(self) -> str:
        return "general" if self.objective else "reasoning"


METRICS: dict[str, Metric] = {
    "pass@1": Metric(_pass_at_1, "mean correctness of the k samples"),
    "cons@k": Metric(_cons_at_k, "the majority answer of the k samples is correct"),
    "pass@k": Metric(_pass_at_k, "at least one of the k samples is correct"),
    "format_rate": Metric(_share("format"), "share of samples in the R1-Zero or R1 format"),
    "cot_rate": Metric(_share("cot"), "share of samples with a chain of thought"),
    "mean_length": Metric(_length, "mean completion length (tokens)"),
    "truncated_rate": Metric(_share("truncated"), "share of samples cut at the length limit"),
    "language_consistency": Metric(_language, "language consistency of the chains of thought"),
    "ends_clean_rate": Metric(_ends_clean, "share of samples that stop at their summary"),
    "oracle_helpfulness": Metric(_oracle, "oracle helpfulness on benign general prompts", "helpfulness"),
    "oracle_harmlessness": Metric(_oracle, "oracle harmlessness on harmful general prompts", "harmlessness"),
}


class Side(BaseModel):
    """One side of a comparison: a model's metric on an evaluation set, times ``scale``."""

    model_config = ConfigDict(extra="forbid")
    model: str
    metric: str
    set: str | None = Field(None, description="evaluation set; default heldout (general for oracle metrics)")
    scale: float = 1.0

    @property
    def set_name(self) -> str:
        metric = METRICS.get(self.metric)
        return self.set or (GENERAL_SET if metric and metric.objective else MAIN_SET)


class Finding(BaseModel):
    """A claim of the paper as a test on ``left - right``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$")
    claim: str = Field(description="one line of prose")
    paper: str = Field("", description="the paper's number, as text")
    left: Side
    right: Side | float
    test: Literal["greater", "non_inferior"] = "greater"
    margin: float = Field(0.0, ge=0)

    def sides(self) -> list[tuple[str, Side]]:
        return [("left", self.left)] + ([("right", self.right)] if isinstance(self.right, Side) else [])


def _finding(name: str, claim: str, paper: str, left: dict, right: dict | float, **test: Any) -> Finding:
    return Finding(name=name, claim=claim, paper=paper, left=Side(**left),
                   right=right if isinstance(right, float) else Side(**right), **test)


def _side(model: str, metric: str, **kw: Any) -> dict[str, Any]:
    return {"model": model, "metric": metric, **kw}


NON_INFERIOR_3 = {"test": "non_inferior", "margin": 0.03}  # at most 3 points worse

# The paper's findings for the recipe's standard stage names. configs/tiny.yaml declares the same list, but
# reads r1_zero_length on its `rollout` set (T=1, as R1-Zero's GRPO samples); the default stays on the main set,
# which every evaluate stage has.
DEFAULT_FINDINGS: list[Finding] = [
    _finding("final_keeps_reasoning", "the final model keeps reasoning RL's pass@1 (within 3 points)",
             "R1 79.8 vs R1-Zero 71.0 (AIME 2024 pass@1)", _side("all_scenario_rl", "pass@1"),
             _side("reasoning_rl", "pass@1"), **NON_INFERIOR_3),
    _finding("final_language", "the final model's chains of thought keep to one language more than R1-Zero's",
             "R1-Zero mixes languages, R1 does not (no number)", _side("all_scenario_rl", "language_consistency"),
             _side("r1_zero", "language_consistency")),
    _finding("final_ends_clean", "over 90% of the final model's outputs stop at their summary",
             "R1 format: reasoning, then a summary (no number)", _side("all_scenario_rl", "ends_clean_rate"), 0.9),
    _finding("sft_matches_teacher", "SFT on rejection-sampled data comes within 3 points of the policy that made it",
             "600k reasoning samples from the RL checkpoint (no number)", _side("sft", "pass@1"),
             _side("reasoning_rl", "pass@1"), **NON_INFERIOR_3),
    _finding("r1_zero_gain", "R1-Zero raises pass@1 by more than 40 points from rule rewards alone",
             "AIME 2024 pass@1 15.6 -> 71.0 (v1), 77.9 (Nature)", _side("r1_zero", "pass@1"), _side("base", "pass@1"),
             margin=0.40),
    _finding("r1_zero_length", "R1-Zero's responses grow to more than twice the base model's length",
             "response length grows steadily during RL (no number)", _side("r1_zero", "mean_length"),
             _side("base", "mean_length", scale=2.0)),
    _finding("language_reward", "after the language reward, chains of thought are over 95% in the target language",
             "the language reward buys readability for a little accuracy", _side("reasoning_rl", "language_consistency"),
             0.95),
    _finding("distillation", "the distilled student beats the same student trained by R1-Zero",
             "Qwen-32B: distilled 72.6 vs RL 47.0 (AIME 2024 pass@1)", _side("distill", "pass@1"),
             _side("student_zero", "pass@1")),
    _finding("majority_vote", "majority vote beats a single sample, on the hard split",
             "R1-Zero AIME 2024: cons@64 86.7 vs pass@1 71.0", _side("all_scenario_rl", "cons@k", set="hard"),
             _side("all_scenario_rl", "pass@1", set="hard")),
    _finding("helpfulness", "all-scenario RL raises the oracle's helpfulness over the SFT model",
             "R1: AlpacaEval 2.0 LC 87.6, ArenaHard 92.3", _side("all_scenario_rl", "oracle_helpfulness"),
             _side("sft", "oracle_helpfulness")),
    _finding("harmlessness", "all-scenario RL raises the oracle's harmlessness over the SFT model",
             "a safety reward model on 106k prompts (no number)", _side("all_scenario_rl", "oracle_harmlessness"),
             _side("sft", "oracle_harmlessness")),
    _finding("rl_keeps_reasoning", "all-scenario RL keeps the SFT model's pass@1 (within 3 points)",
             "reasoning kept while general rewards join (no number)", _side("all_scenario_rl", "pass@1"),
             _side("sft", "pass@1"), **NON_INFERIOR_3),
]


def parse_findings(raw: Any) -> tuple[list[Finding], list[Problem]]:
    """A spec's ``findings:`` list, each entry validated alone so that a problem names its finding
    (``findings.<name>.<field>``)."""
    from r1pipeline.stages.base import fix_for

    if not isinstance(raw, list):
        return [], [Problem(None, "findings", f"got {type(raw).__name__}", "write a list of findings")]
    found, problems = [], []
    for i, item in enumerate(raw):
        label = f"findings.{item['name']}" if isinstance(item, dict) and item.get("name") else f"findings[{i}]"
        try:
            found.append(Finding.model_validate(item))
        except ValidationError as exc:
            right = item.get("right") if isinstance(item, dict) else None
            branch = "Side" if isinstance(right, dict) else "float"  # report the branch the user wrote
            for err in exc.errors():
                loc = list(err["loc"])
                if loc[:1] == ["right"] and len(loc) > 1 and loc[1] in ("Side", "float"):
                    if loc[1] != branch:
                        continue
                    del loc[1]
                message, fix = fix_for(err)
                if err["type"] == "extra_forbidden":
                    model = Side if loc[0] in ("left", "right") and len(loc) > 1 else Finding
                    fix = did_you_mean(str(loc[-1]), list(model.model_fields)) + fix
                problems.append(Problem(None, ".".join([label, *map(str, loc)]), message, fix))
    names = [f.name for f in found]
    problems += [Problem(None, f"findings.{n}", "two findings share this name", "rename one of them")
                 for n in sorted({n for n in names if names.count(n) > 1})]
    return found, problems


def eval_block(stages: Sequence[Any]) -> dict[str, Any] | None:
    """The spec's (last) evaluate stage as a plain dict: the one findings are measured on."""
    blocks = [s if isinstance(s, dict) else s.model_dump(mode="json") for s in stages]
    evals = [b for b in blocks if b.get("kind") == "evaluate"]
    return evals[-1] if evals else None


def evaluated(block: dict[str, Any]) -> dict[str, list[str]]:
    """Each evaluation set of an evaluate block -> the models that answer it."""
    models = list(block.get("models") or [])
    out = {MAIN_SET: models}
    if block.get("general_task"):
        chosen = block.get("general_models")
        out[GENERAL_SET] = [m for m in models if chosen is None or m in chosen]
    for name, es in (block.get("sets") or {}).items():
        chosen = es.get("models")
        out[name] = [m for m in models if chosen is None or m in chosen]
    return out


def check_findings(findings: list[Finding], block: dict[str, Any] | None) -> list[Problem]:
    """Every side names a model, a metric and a set that the spec's evaluate stage provides."""
    if not findings:
        return []
    if block is None:
        return [Problem(None, "findings", "findings are measured by an evaluate stage and the spec has none",
                        "add an evaluate stage, or remove findings")]
    sets = evaluated(block)
    found = (check_side(f"findings.{f.name}.{label}", side, sets, block.get("name"))
             for f in findings for label, side in f.sides())
    return [p for p in found if p is not None]


def check_side(where: str, side: Side, sets: dict[str, list[str]], stage: str | None) -> Problem | None:
    """The first problem of one side of a finding (``sets``: set -> the models evaluated on it)."""
    metric = METRICS.get(side.metric)
    reasoning_sets = ", ".join(s for s in sets if s != GENERAL_SET)
    if metric is None:
        return Problem(None, f"{where}.metric", f"unknown metric {side.metric!r}",
                       f"{did_you_mean(side.metric, list(METRICS))}use one of: {', '.join(METRICS)}")
    wanted = side.set_name
    if metric.objective and wanted != GENERAL_SET:
        return Problem(None, f"{where}.set", f"{side.metric} is measured on the general rows, not on set {wanted!r}",
                       "drop set (oracle metrics read the general rows)")
    if not metric.objective and wanted == GENERAL_SET:
        return Problem(None, f"{where}.set", f"{side.metric} is a reasoning metric; the general rows have none",
                       f"use one of: {reasoning_sets}")
    if wanted not in sets:
        fix = ("add general_task to the evaluate stage" if wanted == GENERAL_SET else
               f"use one of: {reasoning_sets}, or add {wanted} to the evaluate stage's sets")
        return Problem(None, f"{where}.set", f"stage {stage!r} has no set {wanted!r}", fix)
    if side.model not in sets[wanted]:
        return Problem(None, f"{where}.model", f"{side.model!r} is not evaluated on set {wanted!r} by stage {stage!r}",
                       f"{did_you_mean(side.model, sets[wanted])}use one of: {', '.join(sets[wanted])}")
    return None


def spec_findings(spec: dict[str, Any]) -> list[Finding]:
    """The findings of a spec (as spec.yaml holds it): its own, or the defaults whose models its
    evaluate stage evaluates (a default on a set the spec lacks stays, and reads 'not measured')."""
    if spec.get("findings") is not None:  # an empty list: no findings
        return [Finding.model_validate(f) for f in spec["findings"]]
    block = eval_block(spec.get("stages") or [])
    models = set((block or {}).get("models") or [])
    return [f for f in DEFAULT_FINDINGS if all(side.model in models for _, side in f.sides())]


def load_samples(path: Path) -> dict[tuple[str, str], dict[str, list[dict]]]:
    """``samples.jsonl`` grouped as (set, model) -> prompt id -> samples (rows of older runs,
    without a ``set``, are the main set's)."""
    groups: dict[tuple[str, str], dict[str, list[dict]]] = {}
    if not path.exists():
        return groups
    with path.open() as f:
        for line in f:
            row = json.loads(line)
            key = (row.get("set", MAIN_SET), row["model"])
            groups.setdefault(key, {}).setdefault(row["id"], []).append(row)
    return groups


def per_prompt(samples: dict[tuple[str, str], dict[str, list[dict]]], side: Side) -> dict[str, Ratio] | None:
    """One side's (numerator, denominator) per prompt id; None when the samples are not there."""
    metric = METRICS[side.metric]
    prompts = samples.get((side.set_name, side.model))
    if not prompts:
        return None
    if metric.objective:
        prompts = {i: g for i, g in prompts.items() if g[0].get("objective") == metric.objective}
    try:
        out = {i: metric.per_prompt(g) for i, g in prompts.items()}
    except KeyError:  # a column this run's samples do not have
        return None
    return out if out and sum(d for _, d in out.values()) > 0 else None


def passes(test: str, margin: float, value: float) -> bool:
    """The test on one number: ``greater``: value > margin; ``non_inferior``: value > -margin.

    >>> passes("greater", 0.4, 0.5), passes("non_inferior", 0.03, -0.02), passes("non_inferior", 0.03, -0.05)
    (True, True, False)
    """
    return value > (margin if test == "greater" else -margin)


def verdict(seeds_hold: Sequence[bool | None], across: list[float] | None, test: str, margin: float) -> str:
    """``holds`` (every seed, and the across-seed interval when there is one), ``fails`` (no seed),
    else ``mixed``; ``not measured`` when a seed has no measurement.

    >>> verdict([True, True], [0.1, 0.3], "greater", 0.0), verdict([True, False], [0.0, 0.3], "greater", 0.0)
    ('holds', 'mixed')
    >>> verdict([False], None, "greater", 0.0), verdict([True, None], None, "greater", 0.0)
    ('fails', 'not measured')
    """
    if not seeds_hold or any(h is None for h in seeds_hold):
        return "not measured"
    if not any(seeds_hold):
        return "fails"
    if all(seeds_hold) and (across is None or passes(test, margin, across[0])):
        return "holds"
    return "mixed"


def measure(finding: Finding, samples: dict, n_boot: int = 1000, seed: int = 0) -> dict[str, Any] | None:
    """One seed's effect and bootstrap interval, or None when a side's samples are missing."""
    left = per_prompt(samples, finding.left)
    if left is None:
        return None
    if isinstance(finding.right, Side):
        right = per_prompt(samples, finding.right)
        if right is None:
            return None
        paired = set(left) == set(right)  # the same prompts (same set): resample them together
        ids = list(left)
        effect, ci = paired_bootstrap([left[i] for i in ids], [right[i] for i in ids] if paired else list(right.values()),
                                      finding.left.scale, finding.right.scale, n_boot, seed, paired)
    else:
        effect, ci = paired_bootstrap(list(left.values()), float(finding.right), finding.left.scale,
                                      n=n_boot, seed=seed)
    return {"effect": effect, "ci": ci, "holds": passes(finding.test, finding.margin, ci[0])}


def judge(finding: Finding, per_seed: list[tuple[int, dict[str, Any] | None]]) -> dict[str, Any]:
    """The replication record of one finding from its per-seed measurements."""
    rows = [{"seed": s, **(m or {"effect": None, "ci": None, "holds": None})} for s, m in per_seed]
    effects = [r["effect"] for r in rows if r["effect"] is not None]
    measured = len(effects) == len(rows)
    across = t_interval(effects) if measured else None
    return {"name": finding.name, "claim": finding.claim, "paper": finding.paper, "test": finding.test,
            "margin": finding.margin, "effect": describe(finding), "per_seed": rows,
            "mean": sum(effects) / len(effects) if measured and effects else None, "ci_over_seeds": across,
            "verdict": verdict([r["holds"] for r in rows], across, finding.test, finding.margin)}


def describe(finding: Finding) -> str:
    """The effect in words: ``all_scenario_rl cons@k [hard] - all_scenario_rl pass@1 [hard]``."""
    def side(s: Side) -> str:
        where = "" if s.set_name in (MAIN_SET, GENERAL_SET) else f" [{s.set_name}]"
        return f"{'' if s.scale == 1 else f'{s.scale:g} x '}{s.model} {s.metric}{where}"

    right = side(finding.right) if isinstance(finding.right, Side) else f"{finding.right:g}"
    return f"{side(finding.left)} - {right}"


def evaluate_findings(spec: dict[str, Any], runs: Sequence[tuple[int, Path]]) -> list[dict[str, Any]]:
    """Each finding of ``spec`` judged over ``runs`` ((seed, run directory) pairs of that spec)."""
    block = eval_block(spec.get("stages") or [])
    findings = spec_findings(spec)
    if block is None:
        return [judge(f, [(s, None) for s, _ in runs]) for f in findings]
    n_boot = int(block.get("bootstrap") or 1000)
    samples = [(s, load_samples(Path(d) / block["name"] / "data" / "samples.jsonl")) for s, d in runs]
    return [judge(f, [(s, measure(f, smp, n_boot, s)) for s, smp in samples]) for f in findings]


def _signed(v: float | None) -> str:
    return "n/a" if v is None or v != v else f"{v:+.3f}"


def findings_table(results: list[dict[str, Any]]) -> str:
    """The report's first table: one row per finding, the paper's number beside ours."""
    lines = ["| finding | claim | paper | effect (test) | ours: per seed [95% CI over prompts] | "
             "mean [95% CI over seeds] | verdict |", "|---|---|---|---|---|---|---|"]
    for r in results:
        bound = r["margin"] if r["test"] == "greater" else -r["margin"]
        per_seed = "; ".join(f"s{p['seed']}: " + ("not measured" if p["effect"] is None else
                             f"{_signed(p['effect'])} [{_signed(p['ci'][0])}, {_signed(p['ci'][1])}]")
                             for p in r["per_seed"])
        ci = r["ci_over_seeds"]
        mean = _signed(r["mean"]) + (f" [{_signed(ci[0])}, {_signed(ci[1])}]" if ci else "")
        lines.append(f"| {r['name']} | {r['claim']} | {r['paper']} | {r['effect']} > {bound:+.2f} | {per_seed} | "
                     f"{mean} | **{r['verdict']}** |")
    return "\n".join(lines)
