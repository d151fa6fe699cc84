"""One process against N data-parallel ones: ``r1 run SPEC`` vs ``r1 run SPEC --num-processes N``.

Run by hand: ``.venv/bin/python bench/processes.py [--spec configs/tiny.yaml] [--processes 2]
[--until sft] [--set base.steps=90 ...] [--save FILE]``. Both runs go into fresh folders under
``runs/bench-processes-<time>/`` with the same spec, seed and overrides, one after the other (other
processes on the machine move both: the load average is printed). The one-process run uses every
core as torch threads; the N-process run gives each process cores / N threads (``r1 run``'s
launch). The default cuts tiny.yaml to the stages up to ``sft`` at about a tenth of their steps:
a pretrain, two GRPO, two sample and two SFT stages, ~4 min on 2 cores.

Prints each stage's wall seconds side by side (from the manifests), the ratios, and the CPU it ran
on; the results per CPU class go in ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from r1pipeline.machine import cpu_facts

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SETS = ["base.steps=90", "base.warmup_steps=10", "r1_zero.steps=30", "reasoning_rl.steps=20"]


def timed_run(spec: str, processes: int, until: str | None, sets: list[str], out: Path) -> float:
    cmd = [sys.executable, "-m", "r1pipeline.cli", "run", spec, "--out", str(out), "--no-report",
           *(["--num-processes", str(processes)] if processes > 1 else []),
           *(["--until", until] if until else []), *(a for kv in sets for a in ("--set", kv))]
    print("$", " ".join(cmd), flush=True)
    t0 = time.time()
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1", "R1_NO_PROGRESS": "1"},
                   stdout=subprocess.DEVNULL)
    return time.time() - t0


def stage_seconds(run_dir: Path) -> dict[str, float]:
    """Wall seconds per stage, in the order the stages ran."""
    manifests = [json.loads(p.read_text()) for p in run_dir.glob("*/manifest.json")]
    return {m["stage"]: m["seconds"] for m in sorted(manifests, key=lambda m: m["started"])}


def table(one: dict[str, float], many: dict[str, float], processes: int) -> list[str]:
    lines = [f"{'stage':<20}{'1 process s':>12}{f'{processes} processes s':>16}{'ratio':>8}"]
    for stage, a in one.items():
        b = many.get(stage)
        lines.append(f"{stage:<20}{a:>12.1f}{b:>16.1f}{a / b:>7.2f}x" if b else f"{stage:<20}{a:>12.1f}{'-':>16}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="configs/tiny.yaml")
    ap.add_argument("--processes", type=int, default=2, help="processes of the data-parallel run (default 2)")
    ap.add_argument("--until", default="sft", help="last stage (default sft; '' for all)")
    ap.add_argument("--set", dest="sets", action="append", default=None, metavar="K=V",
                    help=f"overrides (default: {' '.join(DEFAULT_SETS)})")
    ap.add_argument("--save", type=Path)
    args = ap.parse_args()
    sets = DEFAULT_SETS if args.sets is None else args.sets
    facts = cpu_facts("cpu")
    root = ROOT / "runs" / f"bench-processes-{time.strftime('%Y%m%d-%H%M%S')}"
    load0 = os.getloadavg()[0]
    one = timed_run(args.spec, 1, args.until or None, sets, root / "one")
    many = timed_run(args.spec, args.processes, args.until or None, sets, root / "many")
    cores = len(os.sched_getaffinity(0))
    lines = [
        f"CPU: {facts.cpu_model} ({cores} cores, {facts.cpu_class}); load average {load0:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after",
        f"spec {args.spec}, until {args.until or '(all)'}, set {' '.join(sets) or '-'}",
        *table(stage_seconds(root / "one"), stage_seconds(root / "many"), args.processes),
        f"1 process ({cores} threads): {one / 60:.2f} min; {args.processes} processes "
        f"({max(1, cores // args.processes)} thread(s) each): {many / 60:.2f} min (start-up included)",
        f"processes: {args.processes} processes are {one / many:.2f}x one on {facts.cpu_model} ({cores} cores)",
    ]
    print("\n".join(lines))
    if args.save:
        args.save.write_text("\n".join([f"# .venv/bin/python bench/processes.py {' '.join(sys.argv[1:])}", *lines]) + "\n")


if __name__ == "__main__":
    main()
