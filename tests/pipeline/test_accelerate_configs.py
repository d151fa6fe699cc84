"""The shipped accelerate configs load in the installed accelerate, and cpu-gloo.yaml starts 2 processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import CONFIGS

ACCELERATE = sorted((CONFIGS / "accelerate").glob("*.yaml"))
PROBE = "import os; print('rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE'], flush=True)\n"


def test_the_five_configs_are_there():
    assert {p.stem for p in ACCELERATE} == {"ddp", "zero2", "zero3", "fsdp", "cpu-gloo"}


@pytest.mark.parametrize("path", ACCELERATE, ids=lambda p: p.stem)
def test_config_loads_with_known_keys_and_leaves_precision_to_the_spec(path: Path):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    cfg = load_config_from_file(str(path))  # raises on keys accelerate does not know
    assert cfg.mixed_precision == "no"  # the spec's dtype decides
    assert path.read_text().startswith("#"), "say when to use it"
    options = {o.lstrip("-") for a in launch_command_parser()._actions for o in a.option_strings}
    nested = {**(cfg.deepspeed_config or {}), **(cfg.fsdp_config or {})}
    assert set(nested) <= options, f"unknown to accelerate launch: {set(nested) - options}"


def test_deepspeed_configs_shard_what_their_names_say():
    stages = {p.stem: yaml.safe_load(p.read_text()).get("deepspeed_config", {}).get("zero_stage") for p in ACCELERATE}
    assert stages["zero2"] == 2 and stages["zero3"] == 3


def test_cpu_gloo_starts_two_local_processes(tmp_path: Path):
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    proc = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                           str(CONFIGS / "accelerate" / "cpu-gloo.yaml"), str(script)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(line for line in proc.stdout.splitlines() if line.startswith("rank")) == \
        ["rank 0 of 2", "rank 1 of 2"]
