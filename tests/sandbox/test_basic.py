"""Ordinary programs, classification, the pool, the CLI and the capability report."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from r1pipeline.sandbox import Limits, SandboxPool, SandboxResult, run_program
from r1pipeline.sandbox.cli import app
from r1pipeline.sandbox.result import STATUSES, classify
from r1pipeline.sandbox.uids import UID_BASE, uid_slot

from .conftest import FAST


def test_program_reads_stdin_and_prints(contained):
    res = contained("a, b = map(int, input().split())\nprint(a + b)", "2 40\n")
    assert (res.status, res.reason, res.returncode, res.stdout, res.stderr) == (
        "ok", "exit code 0", 0, "42\n", "")
    assert 0 < res.wall_s < FAST.wall_s and res.cpu_s is not None


def test_exception_is_an_error(contained):
    res = contained("print('before')\n1 / 0")
    assert (res.status, res.returncode) == ("error", 1)
    assert res.reason == "exit code 1: ZeroDivisionError: division by zero"
    assert res.stdout == "before\n" and "Traceback" in res.stderr


def test_sys_exit_message(contained):
    res = contained("import sys; sys.exit('bad input')")
    assert (res.status, res.reason) == ("error", "exit code 1: bad input")


def test_syntax_error(contained):
    res = contained("def f(:\n")
    assert res.status == "error" and "SyntaxError" in res.reason


def test_isolated_interpreter(contained, caps):
    res = contained("import sys, os; print(sys.flags.isolated, sys.flags.no_site, os.getcwd())")
    assert res.stdout.split()[:2] == ["1", "1"]
    if caps["uid_drop"]:
        assert run_program("import os; print(os.getuid())").stdout.strip() != "0"


def test_default_arguments_and_result_dict():
    res = run_program("print('hi')")
    d = res.to_dict()
    assert json.loads(json.dumps(d))["stdout"] == "hi\n"
    assert set(d) >= {"status", "reason", "returncode", "stdout", "stderr", "wall_s", "cpu_s"}
    assert isinstance(res, SandboxResult) and res.ok


def test_keyword_limits_override_limits():
    res = run_program("import time; time.sleep(5)", time_limit_s=0.2,
                      limits=Limits(time_limit_s=9, wall_limit_s=0.5))
    assert (res.status, res.reason) == ("timeout", "wall-clock limit 0.5 s exceeded")


def test_classify_covers_every_status():
    lim = Limits()
    got = {classify(rc, limits=lim, **kw)[0] for rc, kw in [
        (0, {}), (1, {}), (-9, {"wall_timeout": True}), (-11, {}), (-9, {"oom_killed": True})]}
    assert got == set(STATUSES)


def test_limits_validation():
    with pytest.raises(ValueError):
        Limits(time_limit_s=0)
    with pytest.raises(ValueError):
        Limits(memory_mb=-1)


def test_pool_map_keeps_order_and_isolates_runs():
    jobs = [(f"import time; time.sleep(0.{3 - i}); print({i})", "") for i in range(4)]
    jobs += ["while True: pass", ("print(input())", "last")]
    with SandboxPool(max_workers=3, limits=FAST) as pool:
        results = pool.map(jobs)
    assert [r.stdout for r in results[:4]] == ["0\n", "1\n", "2\n", "3\n"]
    assert results[4].status == "timeout" and results[5].stdout == "last\n"


def test_uid_slots_are_exclusive(caps):
    if not caps["uid_drop"]:
        pytest.skip("no uid drop here")
    with uid_slot() as a, uid_slot() as b:
        assert a != b and min(a, b) >= UID_BASE


def test_pool_submit_and_defaults():
    pool = SandboxPool()
    try:
        assert pool.max_workers == max(1, (os.cpu_count() or 2) // 2)
        assert pool.submit("print(7)").result().stdout == "7\n"
    finally:
        pool.close()


def test_children_are_niced():
    res = run_program("import os; print(os.getpriority(os.PRIO_PROCESS, 0))")
    assert int(res.stdout) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + Limits().nice)


def test_capabilities_report(caps):
    assert json.loads(json.dumps(caps)) == caps
    assert set(caps["enforced"]) >= {"process_count", "memory", "network", "cleanup"}
    if os.geteuid() == 0:
        assert caps["nproc_enforced"] == (caps["uid_drop"] or caps["cgroup_pids"])


def test_cli_run(tmp_path):
    prog, data = tmp_path / "p.py", tmp_path / "in.txt"
    prog.write_text("print(input()[::-1])")
    data.write_text("abc\n")
    out = CliRunner().invoke(app, ["run", str(prog), "--stdin", str(data), "--time-limit", "1"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["stdout"] == "cba\n"
    prog.write_text("raise SystemExit(2)")
    out = CliRunner().invoke(app, ["run", str(prog), "--memory-mb", "128"])
    assert out.exit_code == 1 and json.loads(out.output)["status"] == "error"
