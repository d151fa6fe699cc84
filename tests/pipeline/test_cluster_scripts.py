"""The cluster and GPU scripts on a CPU machine: Slurm, nvidia-smi, r1 and accelerate are stand-ins.

``scripts/slurm/r1.sbatch`` is run with a fake ``scontrol``/``srun`` (srun runs its command once
per task with ``SLURM_PROCID`` set) and a fake ``accelerate`` that prints its arguments, so the
test reads the launch command every node would run. ``bench/gpu_check.sh`` is run without a GPU
(it must refuse at once) and with a fake GPU, vLLM and ``r1 run`` (its summary lines).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

SBATCH = ROOT / "scripts" / "slurm" / "r1.sbatch"
GPU_CHECK = ROOT / "bench" / "gpu_check.sh"

FAKE_SRUN = """#!/bin/bash
n=1
while [[ $1 == --* ]]; do case $1 in --ntasks=*) n=${1#--ntasks=};; esac; shift; done
for ((i = 0; i < n; i++)); do SLURM_PROCID=$i "$@"; done
"""
FAKE_R1_RUN = """#!/bin/bash
[ "$1" = run ] || exit 0
while [ $# -gt 0 ]; do [ "$1" = --out ] && out=$2; shift; done
mkdir -p "$out/r1_zero"
printf 'stages:\\n- {name: r1_zero, generation_batch_size: 256, mini_batches: 2}\\n' > "$out/spec.yaml"
for s in 1 2 3 4 5 6; do
  if [ $((s % 2)) = 1 ]; then
    echo "{\\"step\\": $s, \\"step_time\\": 3.0, \\"rollout/generate_seconds\\": 2.0,"\\
         "\\"completions/mean_length\\": 100.0}"
  else echo "{\\"step\\": $s, \\"step_time\\": 1.0}"; fi
done > "$out/r1_zero/metrics.jsonl"
"""


def stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(body)
    path.chmod(0o755)


def fake_cluster(tmp_path: Path, nodes: list[str]) -> dict[str, str]:
    """Stand-ins for Slurm and accelerate, and a venv whose activate puts them first on PATH."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    stub(bin_, "scontrol", "#!/bin/sh\nprintf '%s\\n' " + " ".join(nodes) + "\n")
    stub(bin_, "srun", FAKE_SRUN)
    stub(bin_, "accelerate", '#!/bin/sh\necho "node $SLURM_PROCID: accelerate $*"\n')
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "activate").write_text(f"export PATH={bin_}:{Path(sys.executable).parent}:$PATH\n")
    return {**os.environ, "R1_VENV": str(venv), "SLURM_JOB_NODELIST": "gpu[01-0x]"}


def test_sbatch_launches_one_accelerate_per_node_with_its_machine_rank(tmp_path: Path):
    env = {**fake_cluster(tmp_path, ["gpu01", "gpu02"]), "GPUS_PER_NODE": "4"}
    proc = subprocess.run(["bash", str(SBATCH), "configs/smol-gpu.yaml", "--only", "sft", "--set", "sft.epochs=1"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    launches = [line for line in proc.stdout.splitlines() if ": accelerate " in line]
    assert len(launches) == 2
    for rank, line in enumerate(launches):
        argv = shlex.split(line.split(": ", 1)[1])
        head = argv[2:argv.index("-m")]
        opts = dict(zip(head[::2], head[1::2]))
        assert argv[:2] == ["accelerate", "launch"] and opts["--config_file"] == "configs/accelerate/ddp.yaml"
        assert opts["--num_machines"] == "2" and opts["--num_processes"] == "8"
        assert opts["--machine_rank"] == str(rank) and opts["--main_process_ip"] == "gpu01"
        assert argv[argv.index("-m"):] == ["-m", "r1pipeline.cli", "run", "configs/smol-gpu.yaml", "--out",
                                          "runs/smol-gpu", "--only", "sft", "--set", "sft.epochs=1"]


def test_sbatch_validates_the_spec_with_its_overrides_before_starting_anything(tmp_path: Path):
    env = fake_cluster(tmp_path, ["gpu01"])
    proc = subprocess.run(["bash", str(SBATCH), "configs/smol-gpu.yaml", "--set", "sft.epochs=0"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "field 'epochs'" in proc.stderr
    assert "accelerate" not in proc.stdout


def test_sbatch_needs_a_second_node_for_vllm(tmp_path: Path):
    env = {**fake_cluster(tmp_path, ["gpu01"]), "VLLM_NODE": "1"}
    proc = subprocess.run(["bash", str(SBATCH), "configs/smol-gpu.yaml"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "at least 2 nodes" in proc.stderr


def test_sbatch_vllm_server_flags_are_trls():
    from trl.scripts.vllm_serve import make_parser

    lines = SBATCH.read_text().splitlines()
    i = next(i for i, line in enumerate(lines) if line.strip().startswith("trl vllm-serve"))
    command = (lines[i] + lines[i + 1]).replace("\\", " ").rstrip(" &").split("trl vllm-serve", 1)[1]
    args = shlex.split(re.sub(r'"\$\w+"', "1", command))
    parsed, rest = make_parser().parse_args_and_config(args=args, return_remaining_strings=True)
    assert rest == [] and parsed.gpu_memory_utilization == 0.9


def test_gpu_check_refuses_at_once_without_a_gpu(tmp_path: Path):
    for case, nvidia_smi in (("missing", None), ("no_gpu", "#!/bin/sh\nexit 9\n")):
        bin_ = tmp_path / case
        bin_.mkdir()
        for tool in ("dirname", "grep"):  # what the script needs before it looks for a GPU
            (bin_ / tool).symlink_to(shutil.which(tool))
        if nvidia_smi:
            stub(bin_, "nvidia-smi", nvidia_smi)  # installed, but no GPU answers
        proc = subprocess.run([shutil.which("bash"), str(GPU_CHECK)], cwd=ROOT, env={**os.environ, "PATH": str(bin_)},
                              capture_output=True, text=True, timeout=10)
        assert proc.returncode == 3 and "no NVIDIA GPU" in proc.stderr, (case, proc.stderr)
        assert not proc.stdout


def test_gpu_check_ends_with_tokens_per_second_and_step_time(tmp_path: Path):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    stub(bin_, "nvidia-smi", '#!/bin/sh\necho "GPU 0: Fake (UUID: x)"\n')
    stub(bin_, "r1", FAKE_R1_RUN)
    (bin_ / "python").symlink_to(sys.executable)
    (tmp_path / "vllm").mkdir()
    (tmp_path / "vllm" / "__init__.py").write_text("")  # found by find_spec, never imported
    env = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}", "PYTHONPATH": str(tmp_path),
           "R1": str(bin_ / "r1"), "GPU_CHECK_OUT": str(tmp_path / "run")}
    proc = subprocess.run(["bash", str(GPU_CHECK), "6"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    # steps 3-6 after the first rollout cycle: 2 rollouts of 256 x 100 tokens in 2 s each
    assert proc.stdout.splitlines()[-2:] == ["tokens/s: 12800 (generation)", "step time: 2.00 s (mean)"]
