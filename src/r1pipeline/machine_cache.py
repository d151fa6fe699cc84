"""The per-machine measurement caches: where they live, how they are read and written, and when
a measurement is too noisy to keep.

Three things are measured once per machine and kept: GEMM rates per dtype (``precision.py``,
``precision.json``), attention kernels' step times (``attention.py``, ``attention.json``) and
generation engines' rates (``rollout/choice.py``, ``engines.json``). They share one folder:
``$R1_CACHE_DIR``, else ``$R1_CACHE`` (the model cache's folder), else
``$XDG_CACHE_HOME/r1pipeline``, else ``~/.cache/r1pipeline``; and one file format:
``{"version": N, "entries": {key: entry}}``, each entry stamped ``measured_at``. A missing,
unreadable or malformed file reads as empty (it is rewritten later); writes are atomic (a
temporary file renamed over the old one). A measurement taken while the load average is over
``BUSY`` per core is used by its caller but not written.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

ENV_CACHE = "R1_CACHE_DIR"
BUSY = 1.0            # load average per core above which a measurement is used but not cached


def machine_load() -> float | None:
    """The 1-minute load average per CPU core (None where the OS has none)."""
    try:
        return round(os.getloadavg()[0] / (os.cpu_count() or 1), 2)
    except (OSError, AttributeError):
        return None


def busy(load: float | None) -> bool:
    """Whether a measurement taken at ``load`` (per core) is too noisy to cache."""
    return load is not None and load > BUSY


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """The caches' folder (see the module docstring for the order of the variables).

    >>> cache_dir({"R1_CACHE_DIR": "/tmp/c"}), cache_dir({"XDG_CACHE_HOME": "/x"})
    (PosixPath('/tmp/c'), PosixPath('/x/r1pipeline'))
    """
    env = os.environ if env is None else env
    if env.get(ENV_CACHE) or env.get("R1_CACHE"):
        return Path(env.get(ENV_CACHE) or env["R1_CACHE"]).expanduser()
    return Path(env.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "r1pipeline"


def read_entries(path: Path, version: int = 1) -> dict[str, Any]:
    """A cache file's entries; {} for a missing, unreadable, malformed or other-version file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != version or not isinstance(data.get("entries"), dict):
        return {}
    return data["entries"]


def write_entry(path: Path, key: str, entry: dict[str, Any], version: int = 1) -> bool:
    """Add one entry atomically; False when the folder cannot be written."""
    entries = read_entries(path, version)
    entries[key] = {**entry, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump({"version": version, "entries": entries}, f, indent=1)
        os.replace(tmp, path)
    except OSError:
        return False
    return True
