"""Replication over seeds: the same spec run once per seed, each finding judged over all the runs.

``r1 run SPEC --seeds 0,1,2 --out DIR`` writes one ordinary run directory per seed
(``DIR/seed-0``, ...), then ``DIR/replication.json`` and ``DIR/report.md`` with plots; ``r1 report
DIR`` rebuilds them from the run directories, and ``r1 report RUN1 RUN2 ... --out DIR`` does the
same for any run directories of one spec (the same spec apart from its seed, else an error that
names the first difference).

``replication.json`` (documented in the README)::

    {"spec": name, "seeds": [0, 1, 2], "runs": [paths],
     "findings": [{"name", "claim", "paper", "test", "margin", "effect",
                   "per_seed": [{"seed", "effect", "ci": [lo, hi], "holds"}],
                   "mean", "ci_over_seeds": [lo, hi] | null, "verdict"}],
     "metrics": {set: {model: {metric: {"per_seed": [...], "mean", "sd"}}}},
     "wall_minutes": {"per_seed": {seed: minutes}, "per_stage": {stage: mean minutes}, "total"}}

The report: the findings table first (``pipeline/findings.py``), then each evaluation set's
metrics by model (mean ± sd over seeds), then the RL curves of every GRPO stage with each seed's
curve thin and their mean bold.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import yaml

from r1pipeline.pipeline.findings import MAIN_SET, eval_block, evaluate_findings, findings_table
from r1pipeline.rundir import MANIFEST, METRICS, SUMMARY, read_json, read_metrics, write_json, write_text_atomic

IGNORED_KEYS = ("seed", "base_dir")  # what may differ between the runs of one replication
CURVES = (("reward", "reward"), ("heldout/accuracy", "held-out accuracy (greedy)"),
          ("completions/mean_length", "mean completion length (tokens)"), ("kl", "KL to the reference"))


class ReplicationError(ValueError):
    """Run directories that cannot be replicates of one spec; the message says why and how to fix it."""


def read_spec(run_dir: Path) -> dict[str, Any]:
    return yaml.safe_load((Path(run_dir) / "spec.yaml").read_text()) or {}


def seed_dirs(root: Path) -> list[Path]:
    """The run directories directly under ``root`` (folders with a spec.yaml), in seed order."""
    found = [p for p in sorted(Path(root).iterdir()) if p.is_dir() and (p / "spec.yaml").exists()]
    return sorted(found, key=lambda p: read_spec(p).get("seed", 0))


def _normal(value: Any) -> Any:
    """A spec value with empty mappings, lists and None dropped (a field written by a later
    version with its default reads as the field absent)."""
    if isinstance(value, dict):
        kept = {k: _normal(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def spec_difference(a: Any, b: Any, path: str = "") -> str | None:
    """The first place where two specs differ, as ``path: a vs b``; None when they are the same
    apart from their seed and base_dir.

    >>> spec_difference({"seed": 0, "stages": [{"lr": 1}]}, {"seed": 1, "stages": [{"lr": 2}]})
    'stages[0].lr: 1 vs 2'
    """
    if not path:
        a, b = ({k: v for k, v in _normal(x).items() if k not in IGNORED_KEYS} for x in (a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            where = f"{path}.{k}" if path else str(k)
            if k not in a or k not in b:
                return f"{where}: {'missing' if k not in a else a[k]!r} vs {'missing' if k not in b else b[k]!r}"
            found = spec_difference(a[k], b[k], where)
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} entries vs {len(b)}"
        return next((d for i, (x, y) in enumerate(zip(a, b)) if (d := spec_difference(x, y, f"{path}[{i}]"))), None)
    return None if a == b else f"{path}: {a!r} vs {b!r}"


def check_runs(run_dirs: Sequence[Path]) -> tuple[dict[str, Any], list[tuple[int, Path]]]:
    """(the shared spec, [(seed, run dir)] in seed order); ReplicationError when the runs are not
    replicates of one spec or two of them share a seed."""
    if not run_dirs:
        raise ReplicationError("no run directories; fix: give run directories written by 'r1 run' (with spec.yaml)")
    specs = []
    for d in run_dirs:
        if not (Path(d) / "spec.yaml").exists():
            raise ReplicationError(f"{d}: no spec.yaml; fix: give run directories written by 'r1 run'")
        specs.append(read_spec(d))
    for d, s in zip(run_dirs[1:], specs[1:]):
        diff = spec_difference(specs[0], s)
        if diff:
            raise ReplicationError(f"{run_dirs[0]} and {d} are runs of different specs ({diff}); fix: replicate "
                                   "runs of one spec, which may differ only in seed")
    runs = sorted(((int(s.get("seed", 0)), Path(d)) for s, d in zip(specs, run_dirs)), key=lambda r: r[0])
    seeds = [s for s, _ in runs]
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise ReplicationError(f"seed {twice[0]} appears in more than one run directory; fix: give one run per seed")
    return specs[0], runs


def mean_sd(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation of the values present (sd needs two).

    >>> mean_sd([1.0, 3.0, None])
    (2.0, 1.4142135623730951)
    """
    xs = [v for v in values if v is not None]
    if not xs:
        return None, None
    mean = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None
    return mean, sd


def _sets_of(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """An evaluate summary's sets -> {model: metrics} (the main set's metrics include the oracle's)."""
    out = {MAIN_SET: summary.get("models") or {}}
    out.update({name: s.get("models") or {} for name, s in (summary.get("sets") or {}).items()})
    return out


def metrics_over_seeds(summaries: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """{set: {model: {metric: {per_seed, mean, sd}}}} from each seed's evaluate summary."""
    per_run = [_sets_of(s or {}) for s in summaries]
    out: dict[str, Any] = {}
    for sets in per_run:
        for set_name, models in sets.items():
            for model, metrics in models.items():
                for key, v in metrics.items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        out.setdefault(set_name, {}).setdefault(model, {}).setdefault(key, None)
    for set_name, models in out.items():
        for model, metrics in models.items():
            for key in metrics:
                values = [((r.get(set_name) or {}).get(model) or {}).get(key) for r in per_run]
                mean, sd = mean_sd(values)
                metrics[key] = {"per_seed": values, "mean": mean, "sd": sd}
    return out


def wall_minutes(runs: Sequence[tuple[int, Path]], stages: Sequence[str]) -> dict[str, Any]:
    """Stage minutes from the manifests: per seed (summed), per stage (mean over seeds), total."""
    per_seed, per_stage = {}, {}
    for seed, d in runs:
        seconds = {s: (read_json(d / s / MANIFEST) or {}).get("seconds") for s in stages}
        per_seed[str(seed)] = round(sum(v for v in seconds.values() if v) / 60, 2)
        for s, v in seconds.items():
            if v:
                per_stage.setdefault(s, []).append(v / 60)
    return {"per_seed": per_seed, "per_stage": {s: round(sum(v) / len(v), 2) for s, v in per_stage.items()},
            "total": round(sum(per_seed.values()), 2)}


def replication(run_dirs: Sequence[Path]) -> dict[str, Any]:
    """The replication record of ``run_dirs`` (runs of one spec, one per seed)."""
    spec, runs = check_runs(list(run_dirs))
    block = eval_block(spec.get("stages") or [])
    summaries = [read_json(d / block["name"] / SUMMARY) if block else None for _, d in runs]
    return {"spec": spec.get("name"), "seeds": [s for s, _ in runs], "runs": [str(d) for _, d in runs],
            "findings": evaluate_findings(spec, runs), "metrics": metrics_over_seeds(summaries),
            "wall_minutes": wall_minutes(runs, [s["name"] for s in spec.get("stages") or []])}


def metrics_table(models: dict[str, Any]) -> str:
    """One set's metrics by model, ``mean ± sd`` over seeds."""
    from r1pipeline.pipeline.report import EVAL_COLUMNS

    cols = [c for c in EVAL_COLUMNS if any(c[0] in m for m in models.values())]
    lines = ["| model | " + " | ".join(label for _, label in cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for name, m in models.items():
        cells = []
        for key, _ in cols:
            v = m.get(key) or {}
            mean, sd = v.get("mean"), v.get("sd")
            cells.append("" if mean is None else f"{mean:.3f}" + (f" ± {sd:.3f}" if sd is not None else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mean_curve(curves: Sequence[dict[int, float]]) -> tuple[list[int], list[float]]:
    """The mean over seeds at the steps every seed logged.

    >>> mean_curve([{0: 1.0, 1: 2.0}, {1: 4.0}])
    ([1], [3.0])
    """
    steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
    return steps, [sum(c[s] for c in curves) / len(curves) for s in steps]


def plot_seeds(stage: str, per_seed: Sequence[tuple[int, list[dict]]], out: Path) -> Path | None:
    """The RL curves of one GRPO stage over seeds: each seed thin, their mean bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(key, title) for key, title in CURVES
              if any(key in m and m[key] == m[key] for _, ms in per_seed for m in ms)]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels):
        curves = [{m["step"]: m[key] for m in ms if key in m and m[key] == m[key]} for _, ms in per_seed]
        sparse = "." if max(map(len, curves)) <= 12 else None  # held-out checks: a few points, show them
        for (seed, _), c in zip(per_seed, curves):
            ax.plot(sorted(c), [c[s] for s in sorted(c)], lw=0.8, alpha=0.45, marker=sparse, label=f"seed {seed}")
        steps, mean = mean_curve([c for c in curves if c])
        ax.plot(steps, mean, lw=2.4, color="black", marker=sparse, label="mean")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{stage}: {len(per_seed)} seeds")
    fig.tight_layout()
    path = out / f"{stage}_seeds.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def report_markdown(rep: dict[str, Any], spec: dict[str, Any], plots: Sequence[tuple[str, Path]]) -> str:
    from r1pipeline.pipeline.report import _cpu, _git_commit

    wall = rep["wall_minutes"]
    out = [f"# Replication: {rep['spec']}, seeds {', '.join(map(str, rep['seeds']))}", "",
           f"{(spec.get('description') or '').strip()}", "",
           f"- runs: {', '.join(rep['runs'])}  ",
           f"- commit: {_git_commit()}  ",
           f"- hardware: {_cpu()}, {os.cpu_count()} cores  ",
           f"- stage wall time: {wall['total']:.1f} min in all ("
           + ", ".join(f"seed {s}: {m:.1f}" for s, m in wall["per_seed"].items()) + ")", "",
           "## Findings", "",
           "Effect = left - right; a seed holds when its whole 95% interval over prompts passes the test; "
           "`holds` = every seed holds and the t interval over seeds passes too, `fails` = no seed holds.", "",
           findings_table(rep["findings"]), ""]
    for set_name, models in rep["metrics"].items():
        out += [f"## Metrics by model: {set_name} (mean ± sd over {len(rep['seeds'])} seeds)", "",
                metrics_table(models), ""]
    for stage, png in plots:
        out += [f"## {stage}", "", f"![{stage}]({png.name})", ""]
    return "\n".join(out)


def write_replication(run_dirs: Sequence[Path], out: Path, report: bool = True) -> Path:
    """Write ``out/replication.json`` and (with ``report``) ``out/report.md`` and the seed plots;
    returns the path of the report (or of the JSON)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rep = replication(run_dirs)
    write_json(out / "replication.json", rep)
    if not report:
        return out / "replication.json"
    spec = read_spec(Path(rep["runs"][0]))
    plots = []
    for stage in spec.get("stages") or []:
        if stage.get("kind") == "grpo":
            per_seed = [(s, read_metrics(Path(d) / stage["name"] / METRICS)) for s, d in zip(rep["seeds"], rep["runs"])]
            png = plot_seeds(stage["name"], per_seed, out)
            if png:
                plots.append((stage["name"], png))
    path = out / "report.md"
    write_text_atomic(path, report_markdown(rep, spec, plots))
    return path
