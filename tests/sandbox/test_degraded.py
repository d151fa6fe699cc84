"""The fallback paths: runs with some mechanisms switched off, as on machines that lack them.

Only what the remaining mechanisms still contain is run here; with no uid drop (the program would
run as root) only benign programs are.
"""

from __future__ import annotations

import dataclasses

import pytest

from r1pipeline.sandbox import SandboxError, run_program, runner
from r1pipeline.sandbox.capabilities import capabilities

from .conftest import DAEMON, alive


@pytest.fixture
def degrade(monkeypatch):
    """Switch off mechanisms for the runs of this test."""
    def apply(**off: object) -> None:
        caps = dataclasses.replace(capabilities(), **off)
        monkeypatch.setattr(runner, "capabilities", lambda: caps)
    return apply


def test_without_mount_namespace(contained, degrade):
    if not capabilities().uid_drop:
        pytest.skip("no uid drop here")
    degrade(mountns=False, hidepid=False)
    res = contained("import os; open('out.txt', 'w').write('x'); print(os.getcwd())")
    assert res.status == "ok" and res.stdout.strip() == res.meta["workdir"]
    assert "mountns" not in res.meta["isolation"]


def test_without_mount_namespace_symlinks_survive_cleanup(contained, degrade, tmp_path):
    if not capabilities().uid_drop:
        pytest.skip("no uid drop here")
    degrade(mountns=False, hidepid=False)
    victim = tmp_path / "keep.txt"
    victim.write_text("x")
    contained(f"import os; os.symlink({str(tmp_path)!r}, 'link'); os.symlink('/', 'root')")
    assert victim.read_text() == "x"


def test_without_cgroups_the_uid_cleans_up(contained, degrade):
    if not capabilities().uid_drop:
        pytest.skip("no uid drop here")
    degrade(cgroups=[])
    res = contained(DAEMON)
    assert res.status == "ok" and res.meta["cgroups"] == []
    assert not alive(int(res.stdout))


def test_without_uid_the_cgroup_cleans_up(contained, degrade):
    if not capabilities().cgroups or not capabilities().mountns:
        pytest.skip("no cgroups or no private /tmp here")
    degrade(uid_drop=False)  # runs as root: benign programs only
    res = contained(DAEMON)
    assert res.status == "ok" and res.meta["uid"] is None
    assert not alive(int(res.stdout))


def test_rlimits_only(contained, degrade):
    degrade(uid_drop=False, cgroups=[], netns=False, ipcns=False, mountns=False, hidepid=False)
    res = contained("print(input()[::-1])", "abc")
    assert (res.status, res.stdout, res.meta["isolation"]) == ("ok", "cba\n", ["rlimits"])
    res = contained("while True: pass")
    assert res.status == "timeout"


def test_launcher_failure_raises(degrade):
    """A sandbox that cannot set up a run says so; it never passes that off as a result."""
    degrade(python="/nonexistent/python3")
    with pytest.raises(SandboxError, match="launcher failed.*nonexistent"):
        run_program("print(1)")
