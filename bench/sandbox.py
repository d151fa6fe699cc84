"""Sandbox overhead: latency of one trivial run, and throughput of a pool.

    .venv/bin/python bench/sandbox.py [N]

Prints the capabilities in use, then seconds per run serially and through ``SandboxPool``.
"""

from __future__ import annotations

import json
import sys
import time

from r1pipeline.sandbox import SandboxPool, run_program, sandbox_capabilities

PROGRAM = "import sys; print(sum(map(int, sys.stdin.read().split())))"


def main(n: int = 20) -> None:
    print(json.dumps(sandbox_capabilities()["enforced"], indent=2))
    t = time.perf_counter()
    for _ in range(n):
        assert run_program(PROGRAM, "1 2 3").stdout == "6\n"
    serial = (time.perf_counter() - t) / n
    with SandboxPool() as pool:
        t = time.perf_counter()
        results = pool.map([(PROGRAM, "1 2 3")] * n)
        pooled = (time.perf_counter() - t) / n
    assert all(r.ok for r in results)
    print(f"serial: {serial * 1000:.1f} ms/run; pool of {pool.max_workers}: "
          f"{pooled * 1000:.1f} ms/run ({n} runs)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
