"""Seeds one after the other vs at once: ``r1 run --seeds S --jobs 1`` against ``--jobs N``.

Run by hand: ``.venv/bin/python bench/jobs.py [--spec configs/tiny.yaml] [--seeds 0,1,2] [--jobs 2]
[--until r1_zero] [--set base.steps=100 ...] [--save FILE]``. Both runs go into fresh folders under
``runs/bench-jobs-<time>/`` with the same spec and overrides, one after the other in this process's
session (other processes on the machine move both: the load average is printed). The default
cuts tiny.yaml to its first two stages at a tenth of their steps (a pretrain and a GRPO stage per
seed, ~2-4 min per seed on 2 cores), the shape of work the whole pipeline repeats.

Prints the wall time of each and the ratio, and the CPU it ran on; the results per CPU class go in
``bench/results/``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from r1pipeline.machine import cpu_facts

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SETS = ["base.steps=90", "base.warmup_steps=10", "r1_zero.steps=20"]


def timed_run(spec: str, seeds: str, jobs: int, until: str | None, sets: list[str], out: Path) -> float:
    cmd = [sys.executable, "-m", "r1pipeline.cli", "run", spec, "--seeds", seeds, "--jobs", str(jobs),
           "--out", str(out), "--no-report", *(["--until", until] if until else []),
           *(a for kv in sets for a in ("--set", kv))]
    print("$", " ".join(cmd), flush=True)
    t0 = time.time()
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                   stdout=subprocess.DEVNULL)
    return time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="configs/tiny.yaml")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--jobs", type=int, default=2, help="jobs of the concurrent run (default 2)")
    ap.add_argument("--until", default="r1_zero", help="last stage (default r1_zero; '' for all)")
    ap.add_argument("--set", dest="sets", action="append", default=None, metavar="K=V",
                    help=f"overrides (default: {' '.join(DEFAULT_SETS)})")
    ap.add_argument("--save", type=Path)
    args = ap.parse_args()
    sets = DEFAULT_SETS if args.sets is None else args.sets
    facts = cpu_facts("cpu")
    root = ROOT / "runs" / f"bench-jobs-{time.strftime('%Y%m%d-%H%M%S')}"
    load0 = os.getloadavg()[0]
    one = timed_run(args.spec, args.seeds, 1, args.until or None, sets, root / "jobs-1")
    many = timed_run(args.spec, args.seeds, args.jobs, args.until or None, sets, root / f"jobs-{args.jobs}")
    cores = len(os.sched_getaffinity(0))
    lines = [
        f"CPU: {facts.cpu_model} ({cores} cores, {facts.cpu_class}); load average {load0:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after",
        f"spec {args.spec}, seeds {args.seeds}, until {args.until or '(all)'}, set {' '.join(sets) or '-'}",
        f"--jobs 1 (seeds one after the other, {cores} threads): {one / 60:.2f} min",
        f"--jobs {args.jobs} ({max(1, cores // args.jobs)} thread(s) each): {many / 60:.2f} min",
        f"jobs: --jobs {args.jobs} is {one / many:.2f}x --jobs 1 on {facts.cpu_model} ({cores} cores)",
    ]
    print("\n".join(lines))
    if args.save:
        args.save.write_text("\n".join([f"# .venv/bin/python bench/jobs.py {' '.join(sys.argv[1:])}", *lines]) + "\n")


if __name__ == "__main__":
    main()
