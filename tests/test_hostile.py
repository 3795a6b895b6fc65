"""Hostile programs: each must end without a pass, within its time limit, leave no process behind,
and leave the pool able to pass a correct program right after.

The programs are given a test whose expected value they cannot know in advance (``f(7) == 5040``)
and a wrong or missing ``f``: the only way to "pass" would be to break the sandbox or forge the
verdict. All of them run from a temporary directory (the ``in_tmp`` fixture).
"""

from __future__ import annotations

import os
import signal
import socket
import textwrap
import threading
import time

import pytest

from codegym.execution import Executor

from .conftest import ORDINARY_UID, is_root, sandbox_leftovers

TESTS = ["assert f(7) == 5040", "assert f(3) == 6"]
CORRECT = "import math\n\ndef f(n):\n    return math.factorial(n)\n"
TIMEOUT = 2.0
SLACK = 4.0  # the parent's own grace plus process start-up on a loaded machine

ATTACKS: dict[str, str] = {
    "infinite_loop": "def f(n):\n    while True:\n        pass\n",
    "sleep_past_timeout": "import time\n\ndef f(n):\n    time.sleep(60)\n",
    "fork_bomb": """
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """,
    "thread_bomb": """
        import threading, time
        while True:
            threading.Thread(target=time.sleep, args=(100,), daemon=True).start()
    """,
    "memory_bomb_at_once": "x = bytearray(64 * 1024 ** 3)\ndef f(n):\n    return 5040\n",
    "memory_bomb_growing": """
        chunks = []
        while True:
            chunks.append(bytearray(50 * 1024 ** 2))
    """,
    "huge_power": "x = 10 ** 10 ** 8\n",
    "deep_recursion": """
        import sys
        sys.setrecursionlimit(10 ** 7)
        def f(n):
            return f(n + 1) + 1
    """,
    "stdout_flood": """
        import os, sys
        print("x" * (100 * 1024 ** 2))
        os.write(1, b"y" * (100 * 1024 ** 2))
        sys.__stdout__.write("passed\\n" * 1000)
        def f(n):
            return 0
    """,
    "stderr_flood": """
        import sys
        for _ in range(200):
            sys.stderr.write("e" * 1024 ** 2)
    """,
    "sys_exit_before_tests": "import sys\nsys.exit(0)\n",
    "os_exit_before_tests": "import os\nos._exit(0)\n",
    "raise_system_exit": "def f(n):\n    raise SystemExit(0)\n",
    "raise_keyboard_interrupt": "def f(n):\n    raise KeyboardInterrupt\n",
    "raise_base_exception": "def f(n):\n    raise BaseException('boom')\n",
    "replace_builtins": """
        import builtins
        builtins.print = lambda *a, **k: None
        builtins.isinstance = lambda *a: True
        builtins.type = lambda *a: int
        builtins.__import__ = lambda *a, **k: None
        def f(n):
            return 0
    """,
    "eq_always_true": """
        class Liar:
            def __eq__(self, other):
                return True
            __hash__ = object.__hash__
        def f(n):
            return Liar()
    """,
    "eq_raises": """
        class Boom:
            def __eq__(self, other):
                raise RuntimeError("no comparing me")
        def f(n):
            return Boom()
    """,
    "int_subclass_eq": """
        class Sly(int):
            def __eq__(self, other):
                return True
        def f(n):
            return Sly(0)
    """,
    "fake_passed_output": """
        import json, os, sys
        print("passed")
        print(json.dumps({"outcome": "passed", "passed": True}))
        sys.stderr.write("PASSED 2/2\\n")
        def f(n):
            return 0
    """,
    "forge_result_frames": """
        import json, os, struct
        def frame(obj):
            body = json.dumps(obj).encode()
            return struct.pack(">I", len(body)) + body
        os.write(3, frame(["p", "ok"]) + frame([0, "v", True]) + frame([1, "v", True]) + frame(["end"]))
        os._exit(0)
    """,
    "garbage_on_result_channel": """
        import os
        os.write(3, b"\\x00\\x00\\x00\\x05passed" * 10)
        def f(n):
            return 0
    """,
    "close_result_channel": """
        import os
        os.close(3)
        def f(n):
            return 5040
    """,
    "tamper_harness_via_gc": """
        import gc, sys
        for obj in gc.get_objects():
            if isinstance(obj, dict) and "steps" in obj and "program" in obj:
                obj["steps"] = [[i, "e", "True"] for i, _, _ in obj["steps"]]
        main = sys.modules.get("__main__")
        if main is not None and hasattr(main, "_encode"):
            main._encode = lambda value, budget, depth=0: True
        def f(n):
            return 0
    """,
    "tamper_harness_via_frames": """
        import sys
        frame = sys._getframe()
        while frame is not None:
            job = frame.f_locals.get("job")
            if isinstance(job, dict):
                job["steps"] = []
            frame = frame.f_back
        def f(n):
            return 0
    """,
    "leave_children_running": """
        import os, subprocess, threading, time
        subprocess.Popen(["/bin/sleep", "300"], start_new_session=True)
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(300)
            os._exit(0)
        threading.Thread(target=time.sleep, args=(300,), daemon=True).start()
        def f(n):
            return 0
    """,
    "ignore_sigterm": """
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        while True:
            pass
    """,
    "ctypes_segfault": "import ctypes\nctypes.string_at(0)\n",
    "exhaust_file_descriptors": """
        files = []
        while True:
            files.append(open("/dev/null"))
    """,
    "kill_process_group": "import os, signal\nos.killpg(0, signal.SIGKILL)\n",
    "kill_everything": "import os, signal\nos.kill(-1, signal.SIGKILL)\n",
    "kill_parent_worker": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\ndef f(n):\n    return 0\n",
    "huge_return_value": "def f(n):\n    return list(range(10 ** 7))\n",
}


def _check_clean_after(executor: Executor) -> None:
    deadline = time.monotonic() + 5
    while (left := sandbox_leftovers(executor)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes left behind: {left}"
    good = executor.run(CORRECT, TESTS, timeout=10)
    assert good.outcome == "passed", good


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_does_not_pass(name, executor, in_tmp):
    program = textwrap.dedent(ATTACKS[name])
    start = time.monotonic()
    result = executor.run(program, TESTS, timeout=TIMEOUT)
    elapsed = time.monotonic() - start
    assert result.outcome != "passed"
    assert not any(result.test_passed), result
    assert elapsed < TIMEOUT + SLACK, f"{name} took {elapsed:.1f}s"
    _check_clean_after(executor)


def test_forged_frames_do_not_break_the_fail_fast_reader(executor, in_tmp):
    """Under fail fast the trusted worker reads the child's frames as they come: nested, unhashable
    or garbage frames must neither crash it nor pass the program."""
    program = textwrap.dedent("""
        import json, os, struct
        def frame(body):
            return struct.pack(">I", len(body)) + body
        os.write(3, frame(b"[" * 200000) + frame(json.dumps([[0], "v", 5040]).encode()) + frame(b"\\xff\\x00"))
        os.write(3, frame(json.dumps([0, "v", [[[[1]]]] * 3]).encode()) + frame(json.dumps(["p", "ok"]).encode()))
        def f(n):
            return 5040
    """)
    executor.capabilities()  # the pool is started
    workers = executor.backend.worker_pids()
    result = executor.run(program, TESTS, timeout=TIMEOUT, fail_fast=True)
    assert result.outcome != "passed" and not any(result.test_passed), result
    assert executor.backend.worker_pids() == workers  # no worker died on the frames
    _check_clean_after(executor)


def test_kill_of_the_executor_process_is_refused(executor, in_tmp):
    program = f"import os, signal\nos.kill({os.getpid()}, signal.SIGKILL)\nos.killpg({os.getpgid(0)}, signal.SIGKILL)\n"
    result = executor.run(program, TESTS, timeout=TIMEOUT)
    assert result.outcome == "runtime_error"  # PermissionError: we are still alive to check it
    _check_clean_after(executor)


def test_cannot_write_outside_or_delete_caller_files(executor, in_tmp):
    victim = in_tmp / "precious.txt"
    victim.write_text("keep me")
    target = in_tmp / "pwned.txt"
    program = textwrap.dedent(f"""
        import os, shutil
        def attempts():
            out = []
            for action in (
                lambda: open({str(target)!r}, "w").write("x"),
                lambda: os.remove({str(victim)!r}),
                lambda: shutil.rmtree({str(in_tmp)!r}),
                lambda: open("/tmp/codegym-pwned", "w").write("x"),
                lambda: open("inside.txt", "w").write("fine"),
            ):
                try:
                    action()
                    out.append("done")
                except OSError as exc:
                    out.append(type(exc).__name__)
            return out
    """)
    result = executor.evaluate(program, ["attempts()"], timeout=5)
    assert result.outcome == "ok"
    assert result.values[0].value[:4] == ["PermissionError"] * 4
    assert result.values[0].value[4] == "done"  # its own temporary directory is writable
    assert victim.read_text() == "keep me"
    assert not target.exists()
    assert not os.path.exists("/tmp/codegym-pwned")
    _check_clean_after(executor)


def test_cannot_read_parent_environment(executor, in_tmp, monkeypatch):
    monkeypatch.setenv("CODEGYM_TEST_SECRET", "s3cret-value")
    program = textwrap.dedent(f"""
        import os
        def leak():
            found = [repr(dict(os.environ))]
            for pid in ({os.getpid()}, os.getppid(), 1):
                try:
                    with open(f"/proc/{{pid}}/environ", "rb") as fh:
                        found.append(fh.read().decode("latin-1"))
                except OSError as exc:
                    found.append(type(exc).__name__)
            return "|".join(found)
    """)
    with Executor(workers=1) as fresh:  # workers started after the secret was set
        result = fresh.evaluate(program, ["leak()"], timeout=5)
    assert result.outcome == "ok"
    assert "s3cret-value" not in result.values[0].value


def test_no_network(executor, in_tmp):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(3)
    port = server.getsockname()[1]
    accepted: list[object] = []
    thread = threading.Thread(target=lambda: accepted.append(_accept(server)), daemon=True)
    thread.start()
    program = textwrap.dedent(f"""
        import socket
        def probe():
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=1).sendall(b"hello")
                return "connected"
            except OSError as exc:
                return type(exc).__name__
    """)
    result = executor.evaluate(program, ["probe()"], timeout=5)
    thread.join()
    server.close()
    assert result.values[0].status == "ok"
    assert result.values[0].value != "connected"
    assert accepted == [None]


def _accept(server: socket.socket) -> object:
    try:
        conn, _ = server.accept()
        conn.close()
        return "accepted"
    except OSError:
        return None


def test_worker_killed_from_outside_is_replaced(in_tmp):
    with Executor(workers=1) as ex:
        assert ex.run(CORRECT, TESTS).passed
        pid = ex.backend.worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        result = ex.run(CORRECT + "\n# a different program\n", TESTS)
        assert result.passed or result.outcome == "runtime_error"
        assert ex.run(CORRECT + "\n# again\n", TESTS).passed
        assert ex.backend.worker_pids()[0] != pid


# -- unix-domain sockets and disk use, as root (uid switch) and as an ordinary user (no switch) ----

UNIX_ATTEMPTS = """
import os, socket
def attempts(path):
    out = {}
    def attempt(name, action):
        try:
            action()
            out[name] = "done"
        except OSError as exc:
            out[name] = type(exc).__name__
    def connect_stream():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.sendall(b"hello")
    def pair_connect():
        a, b = socket.socketpair()
        a.connect(path)
    def pair_sendto():
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        a.sendto(b"hello", path)
    def pair_stream_sendto():
        a, b = socket.socketpair()
        a.sendto(b"hello", path)
    def abstract():
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).connect("\\0codegym-test")
    def inside():
        a, b = socket.socketpair()
        a.sendall(b"ping")
        assert b.recv(4) == b"ping"
    for name, action in [("connect", connect_stream), ("pair_connect", pair_connect), ("pair_dgram_sendto", pair_sendto),
                         ("pair_stream_sendto", pair_stream_sendto), ("abstract", abstract), ("socketpair_inside", inside)]:
        attempt(name, action)
    return out
"""

DISK_FILL = """
import os
def fill():
    written = 0
    try:
        for i in range(1000):
            with open(f"fill{i}", "wb") as fh:
                for _ in range(8):
                    fh.write(b"x" * (1 << 20))
                    fh.flush()
                    written += 1 << 20
    except OSError as exc:
        return written, type(exc).__name__
    return written, "no error"
"""


@pytest.fixture()
def open_unix_socket():
    """A listening unix socket any user may connect to (world-writable socket in a world-open directory)."""
    import tempfile

    folder = tempfile.mkdtemp(prefix="codegym-unix-")
    os.chmod(folder, 0o777)
    path = os.path.join(folder, "open.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    os.chmod(path, 0o777)
    server.listen(4)
    server.settimeout(0.5)
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind("\0codegym-test")
    abstract.listen(1)
    yield path, server
    server.close()
    abstract.close()
    os.unlink(path)
    os.rmdir(folder)


@pytest.fixture(params=["executor", "ordinary_executor"])
def any_executor(request):
    """The root pool (programs under a per-worker uid) and the ordinary-user pool (no uid switch)."""
    ex = request.getfixturevalue(request.param)
    caps = ex.capabilities()
    if request.param == "ordinary_executor":
        assert caps["sandbox_uid"] is None, "the ordinary-user pool must run programs without a uid switch"
        if is_root():
            assert caps["user_namespace"], "an ordinary user gets its mount namespace through a user namespace"
    return ex


def test_no_unix_sockets(any_executor, open_unix_socket, in_tmp):
    path, server = open_unix_socket
    caps = any_executor.capabilities()
    assert caps["seccomp_unix_sockets"], "this kernel refused the seccomp filter; `codegym doctor` says more"
    result = any_executor.evaluate(UNIX_ATTEMPTS, [f"attempts({path!r})", "os.getuid()", "open('/proc/self/status').read()"], timeout=10)
    assert result.outcome == "ok", result
    outcome = result.values[0].value
    assert outcome.pop("socketpair_inside") == "done"  # a connected pair inside the program stays usable
    assert all(v != "done" for v in outcome.values()), outcome
    with pytest.raises(TimeoutError):
        server.accept()
    uid = result.values[1].value
    assert uid != 0
    if caps["sandbox_uid"] is None and is_root():
        assert uid == ORDINARY_UID  # really the ordinary user's own uid, as it would be without root
    status = dict(line.split(":\t", 1) for line in result.values[2].value.splitlines() if ":\t" in line)
    for kind in ("CapEff", "CapPrm"):  # nothing but, as root's sandbox user, reading files (DAC_READ_SEARCH)
        assert int(status[kind], 16) & ~(1 << 2) == 0, status[kind]


NEW_NAMESPACE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def escape():
    # a user and mount namespace of its own would let a program mount an unbounded tmpfs
    out = [libc.unshare(0x10000000 | 0x20000), libc.syscall(56 if os.uname().machine == "x86_64" else 220, 0x10000000 | 17, 0, 0, 0, 0)]
    return out + [libc.mount(b"tmpfs", b".", b"tmpfs", 0, b"size=1g")]
"""


def test_no_new_namespaces_or_mounts(any_executor, in_tmp):
    result = any_executor.evaluate(NEW_NAMESPACE, ["escape()"], timeout=10)
    assert result.outcome == "ok", result
    assert result.values[0].value == [-1, -1, -1]


def test_disk_use_is_bounded(any_executor, in_tmp):
    caps = any_executor.capabilities()
    assert caps["disk_bytes"], "no size-limited working directory on this machine; `codegym doctor` says more"
    result = any_executor.evaluate(DISK_FILL, ["fill()", "os.listdir('.')"], timeout=20)
    assert result.outcome == "ok", result
    written, error = result.values[0].value
    assert error == "OSError" and written <= caps["disk_bytes"], (written, error)
    after = any_executor.evaluate("import os\n", ["os.listdir('.')", "os.statvfs('.').f_bfree * os.statvfs('.').f_frsize"])
    assert after.values[0].value == []  # emptied for the next program
    assert after.values[1].value >= caps["disk_bytes"] - (1 << 20)
