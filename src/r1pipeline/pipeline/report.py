"""The report card: ``report.md`` and PNG plots, built only from what the stages wrote.

Reads ``spec.yaml``, each stage's ``manifest.json``, ``summary.json`` and ``metrics.jsonl``;
never parses markdown back into numbers. First the findings (``pipeline/findings.py``: each claim
of the paper with its effect, 95% interval and verdict on this run's seed; "not measured" where
the run lacks the samples), then one table of evaluation metrics by model and set (one row per
stage, as the paper's tables), one table of stages (kind, status, time, headline numbers), and
the RL curves people look at (reward, held-out accuracy, response length over steps). Several
seeds of one spec: ``pipeline/replication.py``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from r1pipeline.rundir import MANIFEST, METRICS, SUMMARY, read_json, read_metrics, write_text_atomic

EVAL_COLUMNS = [("pass@1", "pass@1"), ("cons@k", "cons@k"), ("pass@k", "pass@k"),
                ("format_rate", "format"), ("cot_rate", "CoT share"),
                ("language_consistency", "lang. consistency"), ("mean_length", "mean length"),
                ("oracle_helpfulness", "oracle helpful"), ("oracle_harmlessness", "oracle harmless"),
                ("reward_model_score", "RM score")]


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def _ci(v: float | None, ci: list[float] | None) -> str:
    if v is None:
        return ""
    return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{v:.3f}"


def eval_table(summary: dict[str, Any]) -> str:
    models = summary.get("models", {})
    cols = [c for c in EVAL_COLUMNS if any(c[0] in m for m in models.values())]
    head = "| model | " + " | ".join(label for _, label in cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 1)]
    for name, m in models.items():
        cells = [_ci(m.get(key), m.get(f"{key}_ci")) if key in ("pass@1", "cons@k") else _fmt(m.get(key))
                 for key, _ in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _cpu() -> str:
    """The CPU's model and class (AVX2, AVX-512, AMX: what its timings depend on)."""
    from r1pipeline.machine import cpu_facts

    facts = cpu_facts("cpu")
    return f"{facts.cpu_model} ({facts.cpu_class})"


def plot_rl(stage: str, metrics: list[dict], out: Path) -> Path | None:
    """reward (total and per function), held-out accuracy and mean length over steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [m for m in metrics if "reward" in m]
    held = [m for m in metrics if "heldout/accuracy" in m]
    if not train:
        return None
    pairs = [(rm, oracle) for rm, oracle in (("helpful", "oracle_helpfulness"), ("harmless", "oracle_harmlessness"))
             if any(f"rewards/{oracle}_reward/mean" in m for m in train)]
    fig, axes = plt.subplots(1, 3 + bool(pairs), figsize=(14 + 4.5 * bool(pairs), 3.6))
    steps = [m["step"] for m in train]
    axes[0].plot(steps, [m["reward"] for m in train], label="total", lw=1.5)
    for key in sorted({k for m in train for k in m if k.startswith("rewards/") and k.endswith("/mean")}):
        axes[0].plot(steps, [m.get(key) for m in train], label=key.split("/")[1], lw=1, alpha=0.8)
    axes[0].set_title("reward")
    axes[0].legend(fontsize=7)
    if held:
        axes[1].plot([m["step"] for m in held], [m["heldout/accuracy"] for m in held], marker="o", label="accuracy")
        if any("heldout/cot_rate" in m for m in held):
            axes[1].plot([m["step"] for m in held], [m.get("heldout/cot_rate") for m in held], marker=".",
                         label="CoT share", alpha=0.7)
        axes[1].set_ylim(-0.02, 1.02)
        axes[1].legend(fontsize=7)
    axes[1].set_title("held-out (greedy)")
    axes[2].plot(steps, [m.get("completions/mean_length") for m in train])
    axes[2].set_title("mean completion length (tokens)")
    if pairs:
        plot_rm_vs_oracle(axes[3], train, pairs)
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.suptitle(stage)
    fig.tight_layout()
    path = out / f"{stage}_curves.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_rm_vs_oracle(ax, train: list[dict], pairs: list[tuple[str, str]]) -> None:
    """Reward-model scores (left axis) against the oracle's (right axis): where they part is hacking."""
    twin = ax.twinx()
    for (rm, oracle), color in zip(pairs, ("tab:blue", "tab:red")):
        pts = [(m["step"], m.get(f"rewards/{rm}_reward/mean")) for m in train]
        pts = [(x, y) for x, y in pts if y is not None and y == y]  # NaN: the reward was gated off
        if pts:
            ax.plot(*zip(*pts), color=color, lw=1.2, label=f"RM {rm}")
        twin.plot([m["step"] for m in train], [m.get(f"rewards/{oracle}_reward/mean") for m in train],
                  color=color, ls="--", lw=1, label=oracle)
    ax.set_ylabel("reward-model score")
    twin.set_ylabel("oracle score")
    twin.set_ylim(-0.02, 1.02)
    ax.set_title("reward model vs oracle")
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7)


def findings(summary: dict[str, Any]) -> list[str]:
    """The paper's findings, checked on this run's evaluation (only where its models exist)."""
    m = summary.get("models", {})
    out = []

    def ci(name: str, key: str = "pass@1") -> str:
        lo, hi = m[name].get(f"{key}_ci", [float("nan")] * 2)
        return f"{m[name][key]:.3f} [{lo:.3f}, {hi:.3f}]"

    def separated(a: str, b: str, key: str = "pass@1") -> bool:
        return m[b][f"{key}_ci"][0] > m[a][f"{key}_ci"][1]

    if {"base", "r1_zero"} <= set(m):
        a, b = m["base"], m["r1_zero"]
        out.append(f"R1-Zero: pass@1 {ci('base')} -> {ci('r1_zero')} "
                   f"({'non-overlapping' if separated('base', 'r1_zero') else 'overlapping'} 95% CIs); "
                   f"mean length {a['mean_length']:.1f} -> {b['mean_length']:.1f} tokens "
                   f"(x{b['mean_length'] / max(a['mean_length'], 1e-9):.2f}); chain-of-thought share "
                   f"{a['cot_rate']:.2f} -> {b['cot_rate']:.2f}")
    if {"r1_zero", "reasoning_rl"} <= set(m) and "language_consistency" in m["r1_zero"]:
        out.append(f"Language consistency of the CoT: R1-Zero {_fmt(m['r1_zero']['language_consistency']) or 'n/a'}, "
                   f"reasoning RL {_fmt(m['reasoning_rl']['language_consistency']) or 'n/a'} "
                   f"(pass@1 {m['r1_zero']['pass@1']:.3f} vs {m['reasoning_rl']['pass@1']:.3f})")
    if {"distill", "student_zero"} <= set(m):
        out.append(f"Distillation: distilled student pass@1 {ci('distill')} vs the same student by R1-Zero "
                   f"{ci('student_zero')}: {'distillation wins' if m['distill']['pass@1'] > m['student_zero']['pass@1'] else 'RL wins'}")
    final = next((n for n in ("all_scenario_rl", "sft", "reasoning_rl", "r1_zero") if n in m), None)
    if final:
        f = m[final]
        out.append(f"Majority vote ({final}): cons@{summary.get('k')} {f['cons@k']:.3f} vs pass@1 {f['pass@1']:.3f}")
    if {"sft", "all_scenario_rl"} <= set(m) and "oracle_helpfulness" in m["sft"]:
        a, b = m["sft"], m["all_scenario_rl"]
        out.append(f"All-scenario RL: oracle helpfulness {ci('sft', 'oracle_helpfulness')} -> "
                   f"{ci('all_scenario_rl', 'oracle_helpfulness')}, harmlessness {ci('sft', 'oracle_harmlessness')} "
                   f"-> {ci('all_scenario_rl', 'oracle_harmlessness')}, "
                   f"reasoning pass@1 {a['pass@1']:.3f} -> {b['pass@1']:.3f} "
                   f"({100 * (b['pass@1'] - a['pass@1']):+.1f} points)")
    return out


def findings_section(spec: dict[str, Any], run_dir: Path) -> list[str]:
    """The report's first table: the spec's findings judged on this run's one seed."""
    from r1pipeline.pipeline.findings import evaluate_findings, findings_table

    seed = spec.get("seed", 0)
    results = evaluate_findings(spec, [(seed, run_dir)])
    if not results:
        return []
    return [f"## Findings (seed {seed})", "",
            "Effect = left - right, with its 95% bootstrap interval over prompts; `holds` when the whole "
            "interval passes the test. Over several seeds: `r1 run SPEC --seeds 0,1,2`.", "",
            findings_table(results), ""]


def write_report(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    spec = yaml.safe_load((run_dir / "spec.yaml").read_text()) if (run_dir / "spec.yaml").exists() else {}
    stages = [s["name"] for s in spec.get("stages", [])]
    manifests = {s: read_json(run_dir / s / MANIFEST) for s in stages}
    summaries = {s: read_json(run_dir / s / SUMMARY) for s in stages}
    versions = next((m["versions"] for m in manifests.values() if m and "versions" in m), {})
    wall = sum((m or {}).get("seconds", 0) for m in manifests.values())
    out = [f"# Report: {spec.get('name', run_dir.name)}", "",
           f"{spec.get('description', '').strip()}", "",
           f"- commit: {_git_commit()}  ",
           f"- hardware: {_cpu()}, {os.cpu_count()} cores  ",
           f"- versions: {', '.join(f'{k} {v}' for k, v in versions.items())}  ",
           f"- stage wall time: {wall / 60:.1f} min", ""]
    out += findings_section(spec, run_dir)
    for s in stages:
        m = manifests[s] or {}
        if m.get("kind") == "evaluate" and summaries[s]:
            sm = summaries[s]
            out += [f"## Evaluation ({s}): k={sm.get('k')} samples per prompt, {sm.get('n_prompts')} held-out "
                    f"prompts, T={sm.get('temperature')}, top-p={sm.get('top_p')}; 95% bootstrap intervals", "",
                    eval_table(sm), ""]
            for name, extra in (sm.get("sets") or {}).items():
                out += [f"### Set {name}: {extra.get('n_prompts')} prompts, at most {extra.get('max_new_tokens')} "
                        "new tokens", "", eval_table(extra), ""]
            found = findings(sm)
            if found:
                out += ["### The paper's findings, on this run", ""] + [f"- {line}" for line in found] + [""]
    out += ["## Stages", "", "| stage | kind | status | minutes | headline |", "|---|---|---|---|---|"]
    for s in stages:
        m, sm = manifests[s] or {}, summaries[s] or {}
        headline = ", ".join(f"{k}={_fmt(v)}" for k, v in sm.items()
                             if isinstance(v, (int, float)) and not isinstance(v, bool))[:200]
        minutes = f"{m['seconds'] / 60:.1f}" if "seconds" in m else ""
        out.append(f"| {s} | {m.get('kind', '')} | {m.get('status', 'not run')} | {minutes} | {headline} |")
    out.append("")
    for s in stages:
        if (manifests[s] or {}).get("kind") == "grpo":
            png = plot_rl(s, read_metrics(run_dir / s / METRICS), run_dir)
            if png:
                out += [f"## {s}", "", f"![{s}]({png.name})", ""]
    path = run_dir / "report.md"
    write_text_atomic(path, "\n".join(out))
    return path
