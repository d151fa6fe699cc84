"""Where a pipeline's time goes, stage by stage, against this machine's own GEMM ceiling.

Run by hand: ``.venv/bin/python bench/pipeline.py [--spec configs/tiny.yaml] [--out DIR]
[--set base.steps=100 ...] [--save FILE]`` runs the spec through ``r1 run`` in a subprocess
(into ``runs/bench-<spec>-<time>`` by default) and then analyses the run directory;
``--reuse runs/tiny`` analyses a finished run without running anything.

First it measures the ceiling: square GEMMs (``torch.matmul``) in float32 and bfloat16 on all
the threads torch uses, the largest size up to 2048^3 whose single call takes under 2 s (a bf16
GEMM on an AVX2-only CPU runs at ~1 GFLOP/s: 1024^3 at most), best of 3. Then, per stage, from the
run directory alone (``manifest.json``, ``summary.json``, ``metrics.jsonl``, ``data/``, the
models' safetensors headers):

* wall and CPU seconds (the manifest's ``seconds`` and ``cpu_seconds``: user + sys of the
  process and its ended children; CPU / wall is the number of cores kept busy);
* tokens trained (non-pad tokens through forward + backward) and tokens generated;
* FLOPs, achieved GFLOP/s = FLOPs / wall seconds, and its share of the fp32 and bf16 GEMM rates;
* the dtype the stage chose (the manifest's ``precision`` record; ``-`` where a run has none).

Where the tokens come from and the FLOP model (6 x parameters x trained tokens, 2 x parameters x
forward-only tokens), with what it leaves out (attention: 3-12% of the tiny teacher's matmul
FLOPs at these lengths, 7-25% of the student's; the prompts' prefill; padding) are in
``r1pipeline/pipeline/work.py``: the shares are low by that much. A resumed stage (marked ``*``)
shows its last attempt's seconds and tokens.

Training stages are pretrain, sft, reward_model and grpo (with their own generation). The last
line is the headline: ``pipeline: <spec> <minutes> min on <cpu> (<n> cores), <share>% of the
GEMM ceiling in training stages``, minutes = the stages' wall seconds summed (start-up and the
report left out; ``r1 run``'s own wall time is printed above it when the bench ran it), share =
training stages' FLOPs / (their wall seconds x the better of the fp32 and bf16 GEMM rates).
Other processes on the machine move every number: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r1pipeline.machine import cpu_facts, gemm_peak
from r1pipeline.rundir import MANIFEST, read_json
from r1pipeline.pipeline.work import TRAINING_KINDS, Work, params_resolver, stage_work

ROOT = Path(__file__).resolve().parents[1]
SHORT_DTYPE = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def cpu_model(cpuinfo: str) -> str:
    """The CPU's name from /proc/cpuinfo text (``machine.cpu_facts``, which ``dtype: auto`` records).

    >>> cpu_model("processor : 0\\nmodel name\\t: AMD EPYC 7B13\\nflags : avx2")
    'AMD EPYC 7B13'
    """
    return cpu_facts("cpu", cpuinfo).cpu_model


def cpu_class(cpuinfo: str, env: dict[str, str] | None = None) -> str:
    """``AMX``, ``AVX-512``, ``AVX2`` or the architecture, from /proc/cpuinfo text (and the ISA caps
    set in ``env``, default this process's environment).

    >>> [cpu_class(f"flags : {f}", {}) for f in ("sse4_2 avx2", "avx2 avx512f avx512_bf16", "avx512f amx_bf16")]
    ['AVX2', 'AVX-512', 'AMX']
    >>> cpu_class("flags : avx2 avx512f", {"ATEN_CPU_CAPABILITY": "avx2"})
    'AVX-512 capped by ATEN_CPU_CAPABILITY=avx2'
    """
    return cpu_facts("cpu", cpuinfo, env).cpu_class


def precision_dtype(manifest: dict) -> str:
    """The dtype(s) a stage computed in, from its manifest's ``precision`` record; ``-`` when absent.

    >>> precision_dtype({"precision": {"train": {"dtype": "float32"}, "rollout": {"dtype": "float32"}}})
    'fp32'
    >>> precision_dtype({"precision": {"train": {"dtype": "float32"}, "rollout": {"dtype": "bfloat16"}}})
    'train:fp32 rollout:bf16'
    >>> precision_dtype({"precision": {m: {"dtype": d} for m, d in zip("abc", ("float32", "bfloat16", "float32"))}})
    'fp32x2 bf16x1'
    >>> precision_dtype({}), precision_dtype({"precision": {"dtype": "bfloat16"}})
    ('-', 'bf16')
    >>> precision_dtype({"precision": {"train": {"dtype": "bfloat16"}, "attention": {"impl": "eager"}}})
    'bf16 eager'
    """
    record = manifest.get("precision")
    if not isinstance(record, dict) or not record:
        return "-"
    kernel = record.get("attention") if isinstance(record.get("attention"), dict) else {}
    if kernel.get("impl") == "eager":  # sdpa, the default, goes unsaid
        return f"{precision_dtype({'precision': {k: v for k, v in record.items() if k != 'attention'}})} eager"
    entries = {"": record} if isinstance(record.get("dtype"), str) else \
        {k: v for k, v in record.items() if isinstance(v, dict) and isinstance(v.get("dtype"), str)}
    dtypes = {k: SHORT_DTYPE.get(v["dtype"], v["dtype"]) for k, v in entries.items()}
    if not dtypes:
        return "-"
    if len(set(dtypes.values())) == 1:
        return next(iter(dtypes.values()))
    if len(dtypes) > 2:  # evaluate: one entry per model
        counts = {d: list(dtypes.values()).count(d) for d in dict.fromkeys(dtypes.values())}
        return " ".join(f"{d}x{n}" for d, n in counts.items())
    return " ".join(f"{k}:{d}" for k, d in dtypes.items())


def precision_cpus(manifest: dict) -> set[str]:
    """The CPU models a stage's precision records name (the machine it ran on)."""
    record = manifest.get("precision") or {}
    entries = [record] if "dtype" in record else [v for v in record.values() if isinstance(v, dict)]
    return {e["cpu"] for e in entries if e.get("cpu")}


@dataclass
class Row:
    """One stage of the table."""

    stage: str
    kind: str
    status: str
    seconds: float | None = None
    cpu_seconds: float | None = None
    attempts: int = 1
    dtype: str = "-"
    work: Work = field(default_factory=Work)

    @property
    def gflops(self) -> float | None:
        """Achieved GFLOP/s over the stage's wall time."""
        if self.work.flops is None or not self.seconds:
            return None
        return self.work.flops / self.seconds / 1e9


def stage_names(run_dir: Path) -> list[tuple[str, str]]:
    """(stage, kind) in the run's order: spec.yaml's, else the manifests' start times."""
    import yaml

    spec_path = run_dir / "spec.yaml"
    if spec_path.exists():
        spec = yaml.safe_load(spec_path.read_text()) or {}
        return [(s["name"], s.get("kind", "?")) for s in spec.get("stages", [])]
    found = [(read_json(p) or {}, p.parent.name) for p in run_dir.glob(f"*/{MANIFEST}")]
    return [(name, m.get("kind", "?")) for m, name in sorted(found, key=lambda x: x[0].get("started", ""))]


def collect(run_dir: Path) -> list[Row]:
    """A row per stage of the run directory."""
    params_of = params_resolver(run_dir)
    rows = []
    for name, kind in stage_names(run_dir):
        manifest = read_json(run_dir / name / MANIFEST)
        if not manifest:
            rows.append(Row(name, kind, "not run"))
            continue
        row = Row(name, manifest.get("kind", kind), manifest.get("status", "?"), manifest.get("seconds"),
                  manifest.get("cpu_seconds"), manifest.get("attempts", 1), precision_dtype(manifest))
        if row.status == "done":
            row.work = stage_work(run_dir / name, manifest, params_of)
        rows.append(row)
    return rows


def training_share(rows: list[Row], peak_gflops: float) -> float | None:
    """Training stages' FLOPs / (their wall seconds x the GEMM peak), in percent."""
    done = [r for r in rows if r.kind in TRAINING_KINDS and r.work.flops is not None and r.seconds]
    seconds = sum(r.seconds for r in done)
    if not done or not seconds or peak_gflops <= 0:
        return None
    return 100 * sum(r.work.flops for r in done) / (seconds * peak_gflops * 1e9)


def last_line(spec: str, minutes: float, cpu: str, cores: int, share: float | None) -> str:
    """The headline.

    >>> last_line("tiny", 12.345, "AMD EPYC", 2, 41.26)
    'pipeline: tiny 12.3 min on AMD EPYC (2 cores), 41.3% of the GEMM ceiling in training stages'
    """
    return (f"pipeline: {spec} {minutes:.1f} min on {cpu} ({cores} cores), {_pct(share)}% of the GEMM ceiling "
            "in training stages")


def _count(n: float | None) -> str:
    """Compact counts: 950, 12.3k, 4.56M, 7.89G."""
    if n is None:
        return "-"
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}" if n / scale < 100 else f"{n / scale:.0f}{unit}"
    return f"{n:.0f}"


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def _pct(x: float | None) -> str:
    """A percentage: one decimal, two significant digits under 1% (a micro run's 0.047).

    >>> _pct(41.26), _pct(0.04712), _pct(None)
    ('41.3', '0.047', '-')
    """
    return "-" if x is None else f"{x:.1f}" if x >= 1 else f"{x:.2g}"


COLUMNS = ("stage", "kind", "wall s", "cpu s", "cores", "trained", "generated", "GFLOP", "GFLOP/s",
           "%fp32", "%bf16", "dtype")


def table(rows: list[Row], peaks: dict[str, float]) -> list[str]:
    """The per-stage lines, a total line and the notes."""
    def cells(label: str, kind: str, seconds, cpu, trained, generated, flops, dtype: str) -> list[str]:
        rate = flops / seconds / 1e9 if flops is not None and seconds else None
        share = {d: None if rate is None or not peaks.get(d) else 100 * rate / peaks[d]
                 for d in ("float32", "bfloat16")}
        return [label, kind, _num(seconds, ".1f"), _num(cpu, ".1f"),
                _num(cpu / seconds if cpu is not None and seconds else None, ".2f"), _count(trained),
                _count(generated), _num(None if flops is None else flops / 1e9, ".3g"), _num(rate, ".3g"),
                _pct(share["float32"]), _pct(share["bfloat16"]), dtype]

    body, notes = [], []
    for r in rows:
        label = r.stage + ("*" if r.attempts > 1 else "")
        if r.status != "done":
            body.append([label, r.kind, r.status] + [""] * (len(COLUMNS) - 3))
            continue
        body.append(cells(label, r.kind, r.seconds, r.cpu_seconds, r.work.trained, r.work.generated, r.work.flops,
                          r.dtype))
        notes += [f"{r.stage}: {n}" for n in r.work.notes]
        if r.attempts > 1:
            notes.append(f"{r.stage}: attempt {r.attempts}; seconds and tokens are the last attempt's")
    done = [r for r in rows if r.status == "done"]

    def total(xs):
        vals = list(xs)
        return None if not vals or any(v is None for v in vals) else sum(vals)

    for label, group in (("training", [r for r in done if r.kind in TRAINING_KINDS]), ("all", done)):
        body.append(cells(f"= {label}", "", total(r.seconds for r in group), total(r.cpu_seconds for r in group),
                          total(r.work.trained for r in group), total(r.work.generated for r in group),
                          total(r.work.flops for r in group), ""))
    widths = [max(len(COLUMNS[i]), *(len(b[i]) for b in body)) for i in range(len(COLUMNS))]
    fmt = lambda cols: "  ".join(c.ljust(w) if i < 2 or i == len(cols) - 1 else c.rjust(w)  # noqa: E731
                                 for i, (c, w) in enumerate(zip(cols, widths))).rstrip()
    return [fmt(COLUMNS)] + [fmt(b) for b in body] + [f"  note: {n}" for n in notes]


def report(run_dir: Path, peaks: dict[str, tuple[float, int]], machine: dict[str, Any],
           run_wall: float | None = None) -> list[str]:
    """Every line the bench prints after the run: header, table, notes, headline."""
    import yaml

    rows = collect(run_dir)
    spec = (yaml.safe_load((run_dir / "spec.yaml").read_text()) or {}).get("name", run_dir.name) \
        if (run_dir / "spec.yaml").exists() else run_dir.name
    rates = {d: r for d, (r, _) in peaks.items()}
    lines = [f"run directory: {run_dir} ({'run by this bench' if run_wall is not None else 'reused'})",
             f"CPU: {machine['cpu']} ({machine['cores']} cores, {machine['class']}), torch {machine['torch']} "
             f"on {machine['threads']} threads",
             "GEMM ceiling: " + ", ".join(f"{SHORT_DTYPE[d]} {n}^3 {r:.1f} GFLOP/s" for d, (r, n) in peaks.items())
             + " (best of 3, measured by this bench)"]
    ran_on = set().union(*[precision_cpus(read_json(run_dir / r.stage / MANIFEST) or {}) for r in rows])
    if ran_on and ran_on != {machine["cpu"]}:
        lines.append(f"note: the run's precision records name {', '.join(sorted(ran_on))}; "
                     "the ceiling is this machine's")
    lines += table(rows, rates)
    minutes = sum(r.seconds or 0 for r in rows if r.status == "done") / 60
    if run_wall is not None:
        lines.append(f"r1 run: {run_wall / 60:.1f} min wall (start-up and the report included)")
    lines.append(last_line(spec, minutes, machine["cpu"], machine["cores"], training_share(rows, max(rates.values()))))
    return lines


def machine_facts() -> dict[str, Any]:
    import torch

    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    return {"cpu": cpu_model(info), "class": cpu_class(info), "cores": os.cpu_count() or 1,
            "threads": torch.get_num_threads(), "torch": torch.__version__}


def run_spec(spec: str, out: Path, sets: list[str], processes: int = 1) -> float:
    """``r1 run SPEC --out OUT --set ... [--num-processes N]`` in a subprocess (its output passes
    through); wall seconds."""
    cmd = [sys.executable, "-m", "r1pipeline.cli", "run", spec, "--out", str(out)]
    if processes > 1:
        cmd += ["--num-processes", str(processes)]
    for s in sets:
        cmd += ["--set", s]
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.time()
    proc = subprocess.run(cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if proc.returncode != 0:
        raise SystemExit(f"bench/pipeline.py: r1 run failed (exit {proc.returncode}); its stages so far are in {out}")
    return time.time() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="configs/tiny.yaml", help="pipeline spec to run (default configs/tiny.yaml)")
    ap.add_argument("--out", type=Path, help="run directory (default runs/bench-<spec>-<time>)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="K=V",
                    help="passed to r1 run --set (repeatable)")
    ap.add_argument("--num-processes", type=int, default=2, metavar="N",
                    help="passed to r1 run --num-processes (data-parallel CPU processes; default 2, as make tiny)")
    ap.add_argument("--reuse", type=Path, metavar="DIR", help="analyse this finished run directory, run nothing")
    ap.add_argument("--save", type=Path, metavar="FILE", help="also write the printout to FILE")
    args = ap.parse_args(argv)

    if args.reuse is not None and not (args.reuse / "spec.yaml").exists() \
            and not list(args.reuse.glob(f"*/{MANIFEST}")):
        raise SystemExit(f"bench/pipeline.py: --reuse {args.reuse}: no spec.yaml or stage manifests there; "
                         "fix: name a run directory written by r1 run")
    machine = machine_facts()
    load = os.getloadavg()[0]
    peaks = {d: gemm_peak(d) for d in ("float32", "bfloat16")}  # before the run: the pipeline's cores idle
    run_wall = None
    if args.reuse is not None:
        run_dir = args.reuse
    else:
        run_dir = args.out or ROOT / "runs" / f"bench-{Path(args.spec).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_wall = run_spec(args.spec, run_dir, args.sets, args.num_processes)
    lines = [f"bench/pipeline.py {' '.join(argv if argv is not None else sys.argv[1:])}"]
    lines += report(run_dir, peaks, machine, run_wall)
    lines.insert(-1, f"load average: {load:.1f} before, {os.getloadavg()[0]:.1f} after")
    text = "\n".join(lines)
    print(text)
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(text + "\n")


if __name__ == "__main__":
    main()
