"""The runner's bookkeeping around a stage: what its manifest records about the time it took."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import types

import yaml

from tests.conftest import CONFIGS

CHILD = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\nprint(time.process_time())"


def _busy_stage(cfg, ctx, spec_base):
    """A stage that burns CPU itself and in a child process, and says how much of each."""
    t = time.process_time()
    while time.process_time() - t < 0.3:
        pass
    own = time.process_time() - t
    child = float(subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                                 check=True).stdout)
    return {"own_cpu": own, "child_cpu": child}


def test_manifest_records_cpu_seconds_of_the_stage_and_its_children(tmp_path, monkeypatch):
    import r1pipeline.stages as stages
    from r1pipeline.pipeline.runner import run_stage, stage_hashes
    from r1pipeline.pipeline.spec import validate_raw

    spec = validate_raw(yaml.safe_load((CONFIGS / "micro.yaml").read_text()), base_dir=CONFIGS)
    monkeypatch.setattr(stages, "module", lambda kind: types.SimpleNamespace(run=_busy_stage))
    summary = run_stage(spec, spec.stage("base"), tmp_path, stage_hashes(spec), resume=False, log=lambda *_: None)

    manifest = json.loads((tmp_path / "base" / "manifest.json").read_text())
    assert manifest["status"] == "done" and "seconds" in manifest
    # user+sys of this process and of the ended child, both inside the stage's window
    assert manifest["cpu_seconds"] >= summary["own_cpu"] + summary["child_cpu"] - 0.02
