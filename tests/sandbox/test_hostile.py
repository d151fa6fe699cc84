"""Hostile programs: each must end within its limits, classified, and contained.

The ``contained`` fixture (conftest.py) checks after every run that no process of the run is left
(by uid, session and cgroup), that its directory and cgroups are gone, that no file named with the
test's marker appeared in /tmp, /var/tmp, /dev/shm, /run/lock, /root, the repo or the cwd, and
that this process's environment is unchanged. This process being alive afterwards is the test of
the programs that try to kill it.
"""

from __future__ import annotations

import os
import socket
import textwrap
from pathlib import Path

import pytest

from r1pipeline.sandbox import Limits

from .conftest import DAEMON, FAST, alive

KILL_TIMEOUT = ("timeout", "killed")


def src(code: str) -> str:
    return textwrap.dedent(code).strip() + "\n"


# ---------------------------------------------------------------- time


def test_cpu_loop(contained):
    res = contained("while True: pass")
    assert res.status == "timeout", res.reason


def test_sleep_past_wall_limit(contained):
    res = contained("import time; time.sleep(60)")
    assert (res.status, res.reason) == ("timeout", "wall-clock limit 1.0 s exceeded")
    assert res.wall_s < 1.5


def test_busy_loop_ignoring_sigterm_and_sigxcpu(contained):
    res = contained(src("""
        import signal
        for s in (signal.SIGTERM, signal.SIGXCPU, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        while True: pass
    """), limits=Limits(time_limit_s=0.2, wall_limit_s=1.5))
    assert res.status == "timeout"


def test_cpu_limit_before_the_wall_limit(contained):
    """A CPU hog is stopped soon after its CPU budget, well before a generous wall limit."""
    res = contained("while True: pass", limits=Limits(time_limit_s=0.3, wall_limit_s=5.0))
    assert res.status == "timeout" and res.reason.startswith("CPU time limit 0.3 s exceeded")
    assert 0.3 < res.cpu_s < 1.5


def test_cpu_limit_of_a_child(contained):
    """RLIMIT_CPU (whole seconds) stops a hog the parent-side CPU check does not see."""
    res = contained("import os\nif os.fork() == 0:\n    while True: pass\nos.wait()",
                    limits=Limits(time_limit_s=0.2, wall_limit_s=5.0))
    assert res.status == "timeout" and res.reason.startswith("CPU time limit 0.2 s exceeded")
    assert res.wall_s < 4.0


def test_stopping_itself(contained):
    res = contained("import os, signal; os.kill(os.getpid(), signal.SIGSTOP)")
    assert res.status == "timeout"


def test_shell_subprocess_sleeping(contained):
    res = contained("import subprocess; subprocess.run(['/bin/sh', '-c', 'sleep 60'])")
    assert res.status == "timeout"


# ---------------------------------------------------------------- processes


def test_process_count_is_capped(caps, nproc_proven):
    if not caps["nproc_enforced"]:
        pytest.skip("no process-count limit here: " + caps["enforced"]["process_count"])
    assert nproc_proven


@pytest.fixture(scope="session")
def nproc_proven(caps) -> bool:
    """Prove the process cap with a bounded program (40 forks at most) before any fork bomb."""
    if not caps["nproc_enforced"]:
        return False
    from r1pipeline.sandbox import run_program

    res = run_program(src("""
        import os, time
        n = 0
        for _ in range(40):
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            n += 1
        print(n)
    """), limits=Limits(max_processes=8, wall_limit_s=5))
    return res.status == "ok" and res.stdout.strip().isdigit() and int(res.stdout) < 8


def test_fork_bomb(contained, nproc_proven):
    if not nproc_proven:
        pytest.skip("process-count limit not proven enforced here: a fork bomb could take the "
                    "machine down")
    res = contained(src("""
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """), limits=Limits(time_limit_s=0.5, wall_limit_s=1.0, max_processes=8))
    assert res.status in KILL_TIMEOUT


def test_thread_bomb(contained, nproc_proven):
    if not nproc_proven:
        pytest.skip("process-count limit not proven enforced here")
    res = contained(src("""
        import threading, time
        while True:
            threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    """))
    assert res.status == "killed", res.reason


def test_double_fork_setsid_daemon(contained, caps):
    if not (caps["uid_drop"] or caps["cgroups"]):
        pytest.skip("neither a run uid nor a cgroup: a setsid daemon escapes the cleanup")
    res = contained(DAEMON)
    assert res.status == "ok"
    assert not alive(int(res.stdout))


def test_detached_child_holding_stdout(contained, caps):
    """A daemon that keeps the pipes open and writes must not hold the run past the program."""
    if not (caps["uid_drop"] or caps["cgroups"]):
        pytest.skip("neither a run uid nor a cgroup: a setsid daemon escapes the cleanup")
    res = contained(src("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            while True:
                print("still here", flush=True)
                time.sleep(0.01)
        time.sleep(0.1)
    """), limits=Limits(time_limit_s=0.5, wall_limit_s=5.0))
    assert res.status == "ok" and res.wall_s < 2.0


def _parent_targets() -> dict[str, int]:
    """kill(2) targets that would hit the test runner, as this process sees them."""
    return {"pid": os.getpid(), "everything": -1, "process group": -os.getpgid(0),
            "session": -os.getsid(0)}


@pytest.mark.parametrize("target", ["pid", "everything", "process group", "session"])
def test_killing_the_parent(contained, caps, target):
    if not caps["uid_drop"]:
        pytest.skip("the program runs as the caller's uid: it could kill the test runner")
    number = _parent_targets()[target]
    if number == 0:  # getsid/getpgid say 0 when the leader lies outside our pid namespace (CI)
        pytest.skip(f"the test runner's {target} leader is outside this pid namespace")
    res = contained(src(f"""
        import os, signal
        try:
            os.kill({number}, signal.SIGKILL)
        except Exception as e:
            print(type(e).__name__)
        print("done")
    """))
    assert res.stdout.endswith("done\n"), res.stderr
    assert alive(os.getpid())


# ---------------------------------------------------------------- memory, output, files


def test_memory_bomb_bytearray(contained):
    res = contained("x = bytearray(10 ** 10)")
    assert (res.status, res.reason) == ("killed", "memory limit 256 MiB exceeded (MemoryError)")


def test_memory_bomb_list(contained):
    res = contained(src("""
        x = []
        while True:
            x.append(b"y" * 10 ** 6)
    """), limits=Limits(time_limit_s=2, memory_mb=64))
    assert res.status == "killed", res.reason


def test_memory_bomb_across_processes(contained, caps):
    """Each process stays under RLIMIT_AS; together they pass the run's memory cgroup."""
    if not caps["cgroup_memory"]:
        pytest.skip("no memory cgroup: memory is only limited per process here")
    res = contained(src("""
        import os, time
        for _ in range(6):
            if os.fork() == 0:
                x = b"z" * (70 << 20)
                time.sleep(0.5)
                os._exit(0)
        for _ in range(6):
            os.wait()
    """), limits=Limits(time_limit_s=2, wall_limit_s=3, memory_mb=128))
    assert (res.status, res.reason) == ("killed", "memory limit 128 MiB exceeded "
                                                  "(out-of-memory kill)")


def test_huge_stdout(contained):
    res = contained("import sys\nwhile True: sys.stdout.write('x' * 65536)")
    assert (res.status, res.reason) == ("killed", "output on stdout exceeded 1 MiB")
    assert len(res.stdout) == FAST.max_output_bytes


def test_huge_stderr(contained):
    res = contained("import sys\nwhile True: sys.stderr.write('e' * 65536)")
    assert (res.status, res.reason) == ("killed", "output on stderr exceeded 1 MiB")


def test_huge_file(contained):
    res = contained("open('big', 'wb').write(b'x' * (64 << 20))")
    assert res.status == "killed" and "file size limit" in res.reason


def test_filling_the_disk(contained, caps):
    if not caps["mountns"]:
        pytest.skip("no private tmpfs: the disk is only limited per file here")
    res = contained(src("""
        for i in range(100):
            with open(f"f{i}", "wb") as f:
                f.write(b"x" * (8 << 20))
    """), limits=Limits(time_limit_s=2, max_disk_mb=32))
    assert res.status == "killed" and "disk limit" in res.reason, res.reason


def test_many_open_files(contained):
    res = contained("fs = [open('/dev/null') for _ in range(100000)]")
    assert res.status == "killed" and "open-file limit" in res.reason


@pytest.mark.parametrize("path", ["/tmp/{marker}", "/var/tmp/{marker}", "/dev/shm/{marker}",
                                  "/run/lock/{marker}", "/root/{marker}",
                                  f"{Path(__file__).resolve().parents[2]}/{{marker}}"])
def test_writing_outside_the_workdir(contained, caps, path):
    if path.startswith(("/tmp", "/var/tmp", "/dev/shm", "/run/lock")):
        if not caps["mountns"]:
            pytest.skip("no private /tmp here: world-writable dirs are writable")
    elif not caps["uid_drop"]:
        pytest.skip("the program runs as the caller: the caller's dirs are writable")
    contained(src(f"""
        try:
            open("{path}", "w").write("escaped")
        except OSError as e:
            print(e)
    """))  # the fixture asserts the file is not there


def test_symlink_out_of_the_workdir(contained, tmp_path):
    """Cleanup removes the link, not what it points to."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("x")
    os.chmod(tmp_path, 0o755)
    contained(f"import os; os.symlink({str(victim)!r}, 'link'); os.symlink('/', 'root')")
    assert (victim / "keep").read_text() == "x"


# ---------------------------------------------------------------- secrets


def test_parent_env_not_visible(contained, monkeypatch):
    monkeypatch.setenv("R1_SANDBOX_SECRET", "hunter2-env")
    res = contained("import os; print(dict(os.environ)); print(open('/proc/self/environ').read())")
    assert res.status == "ok" and "hunter2" not in res.stdout
    assert os.environ["R1_SANDBOX_SECRET"] == "hunter2-env"


def test_parent_proc_environ(contained, caps, monkeypatch):
    if not (caps["uid_drop"] or caps["hidepid"]):
        pytest.skip("the program runs as the caller: its /proc/PID/environ is readable")
    monkeypatch.setenv("R1_SANDBOX_SECRET", "hunter2-proc")
    res = contained(src("""
        for name in ("environ", "cmdline", "status", "maps"):
            try:
                print(open(f"/proc/{ppid}/" + name, "rb").read())
            except OSError as e:
                print(type(e).__name__)
    """))
    assert "hunter2" not in res.stdout


@pytest.fixture
def root_only_file(tmp_path_factory) -> Path:
    """A 0600 root file in a world-searchable dir outside /tmp (which the sandbox may hide)."""
    base = Path("/run") if os.access("/run", os.W_OK) else tmp_path_factory.mktemp("secret")
    d = Path(base, f"r1sbx-secret-{os.getpid()}")
    d.mkdir(mode=0o755, exist_ok=True)
    os.chmod(d, 0o755)
    f = d / "secret.txt"
    f.write_text("TOPSECRET")
    os.chmod(f, 0o600)
    yield f
    f.unlink()
    d.rmdir()


def test_root_only_file_unreadable(contained, caps, root_only_file):
    if os.geteuid() != 0 or not caps["uid_drop"]:
        pytest.skip("the program runs as the caller: the caller's files are readable")
    res = contained(f"print(open({str(root_only_file)!r}).read())")
    assert res.status == "error" and "PermissionError" in res.reason
    assert "TOPSECRET" not in res.stdout + res.stderr


def test_shadow_unreadable(contained, caps):
    if os.geteuid() != 0 or not caps["uid_drop"]:
        pytest.skip("not running as root with a uid drop")
    res = contained("print(open('/etc/shadow').read())")
    assert res.status == "error" and "PermissionError" in res.reason


def test_cannot_regain_root(contained, caps):
    if not caps["uid_drop"]:
        pytest.skip("no uid drop")
    res = contained("import os; os.setuid(0)")
    assert res.status == "error" and "PermissionError" in res.reason


def test_cannot_leave_its_cgroup(contained, caps):
    if not caps["cgroups"]:
        pytest.skip("no cgroups")
    base = caps["cgroups"][0]["base"]
    res = contained(f"import os; open({base + '/cgroup.procs'!r}, 'w').write(str(os.getpid()))")
    assert res.status == "error"


# ---------------------------------------------------------------- network


def test_tcp_to_loopback(contained, caps):
    if not caps["netns"]:
        pytest.skip("no network namespace here")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        res = contained(src(f"""
            import socket
            s = socket.create_connection(("127.0.0.1", {port}), timeout=0.5)
            s.sendall(b"leak")
        """))
        assert res.status == "error" and "OSError" in res.reason
        with pytest.raises(BlockingIOError):
            server.accept()


def test_udp_to_loopback(contained, caps):
    if not caps["netns"]:
        pytest.skip("no network namespace here")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.setblocking(False)
        port = server.getsockname()[1]
        contained(f"import socket; socket.socket(2, 2).sendto(b'leak', ('127.0.0.1', {port}))")
        with pytest.raises(BlockingIOError):
            server.recv(16)


def test_new_user_namespace_does_not_reach_the_host(contained, caps):
    """Even if the program may create its own user+net namespace, its loopback is its own."""
    if not caps["netns"]:
        pytest.skip("no network namespace here")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        contained(src(f"""
            import ctypes, socket
            print(ctypes.CDLL(None).unshare(0x10000000 | 0x40000000))
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=0.5)
            except OSError as e:
                print(e)
        """))
        with pytest.raises(BlockingIOError):
            server.accept()


# ---------------------------------------------------------------- crashes and exits


def test_deep_recursion_segfault(contained):
    res = contained(src("""
        import sys
        sys.setrecursionlimit(10 ** 7)
        def f(n): return list(map(f, [n + 1]))  # through C: the C stack overflows
        f(0)
    """))
    assert (res.status, res.reason) == ("crashed", "killed by SIGSEGV")


def test_ctypes_segfault(contained):
    res = contained("import ctypes; ctypes.string_at(0)")
    assert (res.status, res.reason) == ("crashed", "killed by SIGSEGV")


def test_abort(contained):
    res = contained("import os; os.abort()")
    assert (res.status, res.reason) == ("crashed", "killed by SIGABRT")


@pytest.mark.parametrize("code", [3, 125, 255])
def test_os_exit_codes(contained, code):
    res = contained(f"import os; print('partial', flush=True); os._exit({code})")
    assert (res.status, res.returncode, res.stdout) == ("error", code, "partial\n")


def test_os_exit_zero_after_output(contained):
    res = contained("import os, sys; sys.stdout.write('x'); sys.stdout.flush(); os._exit(0)")
    assert (res.status, res.stdout) == ("ok", "x")


def test_non_utf8_output(contained):
    res = contained("import sys; sys.stdout.buffer.write(b'ok\\xff\\xfe\\n'); "
                    "sys.stderr.buffer.write(b'\\x80')")
    assert res.status == "ok" and res.stdout == "ok\ufffd\ufffd\n" and res.stderr == "\ufffd"


def test_reading_more_stdin_than_given(contained):
    res = contained("import sys; print(len(sys.stdin.read(10 ** 6)), sys.stdin.read())", "12345")
    assert (res.status, res.stdout) == ("ok", "5 \n")


def test_not_reading_a_big_stdin(contained):
    res = contained("print('ignored')", "x" * (8 << 20))
    assert (res.status, res.stdout) == ("ok", "ignored\n")


def test_echoing_a_big_stdin(contained):
    data = "y" * (600 << 10)
    res = contained("import sys; sys.stdout.write(sys.stdin.read())", data)
    assert res.status == "ok" and res.stdout == data
