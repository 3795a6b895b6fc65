"""Hostile programs: each must end without a pass, within its time limit, leave no process behind,
and leave the pool able to pass a correct program right after.

The programs are given a test whose expected value they cannot know in advance (``f(7) == 5040``).
Attacks on the verdict (forged output or frames, lying ``__eq__``, tampering with the harness) come
with a wrong or missing ``f``: the only way to "pass" would be to forge the verdict. Attacks on a
limit or on the result channel (memory, CPU, exiting or crashing before the tests, garbage on or
closing the channel, killing the worker) come with the *correct* ``f``, so "not passed" is not
free: without the protection they would pass. All of them run from a temporary directory (the
``in_tmp`` fixture).
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

from .conftest import ORDINARY_UID, is_root, ordinary_user_python, sandbox_leftovers

TESTS = ["assert f(7) == 5040", "assert f(3) == 6"]
CORRECT = "import math\n\ndef f(n):\n    return math.factorial(n)\n"
TIMEOUT = 2.0
SLACK = 4.0  # the parent's own grace plus process start-up on a loaded machine

ATTACKS: dict[str, str] = {
    "infinite_loop": "def f(n):\n    while True:\n        pass\n",
    "sleep_past_timeout": "import math, time\n\ndef f(n):\n    time.sleep(60)\n    return math.factorial(n)\n",
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
    # over RLIMIT_AS (1 GiB), within this machine; bytes(n) is calloc'd, so without the limit it succeeds at
    # once (no 2 GiB to zero that a loaded machine could turn into a timeout, which would hide the limit)
    "memory_bomb_at_once": CORRECT + "x = bytes(2 * 1024 ** 3)\n",
    "memory_bomb_growing": """
        chunks = []
        while True:
            chunks.append(bytearray(50 * 1024 ** 2))
    """,
    "huge_power": CORRECT + "x = 10 ** 10 ** 8\n",
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
    "sys_exit_before_tests": CORRECT + "import sys\nsys.exit(0)\n",
    "os_exit_before_tests": CORRECT + "import os\nos._exit(0)\n",
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
    "garbage_on_result_channel": CORRECT + 'import os\nos.write(3, b"\\x00\\x00\\x00\\x05passed" * 10)\n',
    "close_result_channel": CORRECT + "import os\nos.close(3)\n",
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
    "ctypes_segfault": CORRECT + "import ctypes\nctypes.string_at(0)\n",
    "exhaust_file_descriptors": CORRECT + "files = []\nwhile True:\n    files.append(open('/dev/null'))\n",
    "kill_process_group": CORRECT + "import os, signal\nos.killpg(0, signal.SIGKILL)\n",
    "kill_everything": "import os, signal\nos.kill(-1, signal.SIGKILL)\n",  # spares the caller itself: the check is that all else survives
    "kill_parent_worker": CORRECT + "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
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


# -- claims of the README's sandbox table, each probe with a positive control --------------------
#
# Every probe below is also run where the protection is absent (a plain subprocess outside the
# sandbox, or a whole-test shape that hands the child what the probe looks for) and must find
# there what it looks for: a probe that could never see anything would prove nothing.


def _plain(program: str, call: str, python: str | None = None, **kwargs) -> object:
    """``call``'s value (a literal) after running ``program`` in a plain ``python -I`` outside the sandbox."""
    import ast
    import subprocess
    import sys

    script = program + f"\nprint(repr({call}))\n"
    done = subprocess.run([python or sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=60, env={}, **kwargs)
    assert done.returncode == 0, done.stderr
    return ast.literal_eval(done.stdout.strip().splitlines()[-1])


SECRET_PROBES = '''
import gc, re, sys
_PATTERN = re.compile("PREFIX" + "-[0-9a-f]{32}")  # split, so the probe's own text never matches


def _strings(values):
    found = []
    for v in values:
        if isinstance(v, (bytes, bytearray)):
            v = bytes(v).decode("latin-1")
        if isinstance(v, str):
            found += _PATTERN.findall(v)
    return found


def _contents(obj):
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return list(obj)
    code = getattr(obj, "__code__", None)
    return list(code.co_consts) if code is not None else []


def by_gc():
    found = []
    for obj in gc.get_objects():
        found += _strings(_contents(obj))
    return sorted(set(found))


def by_frames():
    found, frame = [], sys._getframe()
    while frame is not None:
        found += _strings(frame.f_code.co_consts)
        for value in list(frame.f_locals.values()):
            found += _strings([value, *_contents(value)])
        frame = frame.f_back
    return sorted(set(found))


def by_memory():
    found, pattern, chunk = [], re.compile(_PATTERN.pattern.encode()), 1 << 22
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
        for line in list(maps):
            addresses, perms = line.split()[:2]
            if not perms.startswith("r") or "[v" in line:
                continue
            start, end = (int(x, 16) for x in addresses.split("-"))
            for offset in range(start, end, chunk):
                try:
                    mem.seek(offset)
                    data = mem.read(min(chunk + 64, end - offset))
                except (OSError, ValueError, OverflowError):
                    break
                found += [m.decode() for m in pattern.findall(data)]
    return sorted(set(found))
'''


@pytest.mark.parametrize("probe", ["by_gc", "by_frames", "by_memory"])
def test_program_never_sees_the_expected_value(executor, in_tmp, probe):
    import secrets

    def secret_and_program() -> tuple[str, str]:
        prefix = "cg" + secrets.token_hex(4)  # its own prefix per run: no other run's secret can match
        return f"{prefix}-{secrets.token_hex(16)}", SECRET_PROBES.replace("PREFIX", prefix)

    for fail_fast in (False, True):  # fail fast gives the worker the expected values: still not the child
        secret, program = secret_and_program()
        result = executor.run(program, [f"assert {probe}() == [{secret!r}]"], timeout=20, fail_fast=fail_fast)
        assert result.trusted == (True,) and result.outcome == "failed", (fail_fast, result)
    # positive control: a test shape that runs whole in the child hands it the value, and the probe finds it
    secret, program = secret_and_program()
    control = executor.run(program, [f"if {probe}() != [{secret!r}]:\n    raise AssertionError"], timeout=20)
    assert control.trusted == (False,) and control.outcome == "passed", control
    _check_clean_after(executor)


READ_PROBE = """
def read(path):
    try:
        with open(path) as fh:
            return fh.read()
    except OSError as exc:
        return type(exc).__name__
"""


@pytest.mark.parametrize("where", ["tmp", "home"])
def test_landlock_confines_reads_of_world_readable_files(any_executor, in_tmp, where):
    import shutil
    import tempfile
    from pathlib import Path

    caps = any_executor.capabilities()
    assert caps["landlock_filesystem"], "this kernel has no Landlock; `codegym doctor` says more"
    folder = tempfile.mkdtemp(prefix="codegym-readable-", dir=None if where == "tmp" else Path.home())
    try:
        os.chmod(folder, 0o755)
        path = os.path.join(folder, "caller.txt")
        with open(path, "w") as fh:
            fh.write("the caller's data")
        os.chmod(path, 0o644)
        result = any_executor.evaluate(READ_PROBE, [f"read({path!r})", "read('/etc/hostname') != 'PermissionError'"], timeout=10)
        assert result.outcome == "ok", result
        assert result.values[0].value == "PermissionError", result.values[0]
        # positive control: outside the sandbox the same probe reads it, as the caller and (world-readable) as another user
        assert _plain(READ_PROBE, f"read({path!r})") == "the caller's data"
        if where == "tmp" and is_root():
            other = ordinary_user_python()
            assert _plain(READ_PROBE, f"read({path!r})", other, user=ORDINARY_UID, group=ORDINARY_UID, extra_groups=[], cwd="/") == "the caller's data"
    finally:
        shutil.rmtree(folder)


DATA_LOOKUP = r'''
import ast, ctypes, glob, gzip, importlib.util, json, os, re, site, struct, sys, zlib

NAME = "procgen.jsonl.gz"


def _near(folder):
    """Where codegym keeps its bundled problems, relative to a package, a checkout or a site folder."""
    for tail in ("", "data", "codegym", "codegym/data"):
        yield os.path.join(folder, tail, NAME)


def _paths_in(text):
    return re.findall(r"(/[^'\"\s:,=]+)", text)


def _guesses():
    try:  # where the import system says codegym is (codegym.__file__), without running it
        spec = importlib.util.find_spec("codegym")
        yield from (p for folder in spec.submodule_search_locations or [] for p in _near(folder))
    except Exception:
        pass
    try:
        import importlib.resources

        yield str(importlib.resources.files("codegym") / "data" / NAME)
    except Exception:
        pass
    # sys.path and the site folders, the packages in them, and the paths that editable installs name
    for entry in [p for p in sys.path if p] + site.getsitepackages() + [sys.prefix, sys.base_prefix]:
        yield from _near(entry)
        yield from glob.glob(os.path.join(entry, "*", "data", NAME))
        for hook in glob.glob(os.path.join(entry, "*.pth")) + glob.glob(os.path.join(entry, "__editable__*")):
            try:
                text = open(hook).read()
            except OSError:
                continue
            for path in _paths_in(text):
                yield from _near(path)
                yield from _near(os.path.dirname(path))
    folder = os.getcwd()  # the working directory and every folder above it
    while True:
        yield from _near(folder)
        if folder == "/":
            break
        folder = os.path.dirname(folder)
    # other processes (the worker, the caller): their working and root folders, the files they hold
    # open, the paths in their command lines and environments
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        base = "/proc/" + pid
        yield from _near(base + "/cwd")
        try:
            for fd in os.listdir(base + "/fd"):
                if os.readlink(base + "/fd/" + fd).endswith(NAME):
                    yield base + "/fd/" + fd
        except OSError:
            pass
        for leaf in ("cmdline", "environ"):
            try:
                text = open(base + "/" + leaf).read().replace("\0", " ")
            except OSError:
                continue
            for path in _paths_in(text):
                for up in (path, os.path.dirname(path), os.path.dirname(os.path.dirname(path))):
                    yield from _near(up)
    seen = 0  # a bounded walk of where Pythons and their packages live
    for top in (sys.prefix, sys.base_prefix, "/usr/lib", "/usr/local/lib", "/opt"):
        for root, dirs, files in os.walk(top):
            seen += 1
            if root.count(os.sep) - top.count(os.sep) >= 5 or seen > 20000:
                dirs[:] = []
            if NAME in files:
                yield os.path.join(root, NAME)


def _by_handle(path):
    """The file's bytes through a file handle (open_by_handle_at: the capability to read files that
    a root-started sandbox keeps), or None."""
    libc = ctypes.CDLL(None, use_errno=True)
    handle, mount_id = ctypes.create_string_buffer(8 + 128), ctypes.c_int()
    struct.pack_into("I", handle, 0, 128)
    if libc.name_to_handle_at(-100, path.encode(), handle, ctypes.byref(mount_id), 0) != 0:
        return None
    mount = os.open(sys.prefix, os.O_RDONLY | os.O_DIRECTORY)  # any folder on the same file system
    fd = libc.open_by_handle_at(mount, handle, os.O_RDONLY)
    os.close(mount)
    if fd < 0:
        return None
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def _content(path):
    """The bytes of the procgen problems file at ``path``, read in every way there is, or None."""
    ways = [lambda: open(path, "rb").read(), lambda: _by_handle(path)]
    if path.startswith("/") and not path.startswith("/proc/"):
        ways.append(lambda: open("/proc/self/root" + path, "rb").read())
    for way in ways:
        try:
            data = way()
            if data and b'"task_id": "procgen/' in zlib.decompressobj(31).decompress(data, 200):
                return data
        except (OSError, zlib.error):
            pass
    return None


def _readable():
    """(path, file bytes) for each place the bundled procgen problems can be read from, one per file."""
    done = set()
    for path in dict.fromkeys(_guesses()):
        try:
            real = os.path.realpath(path)
        except OSError:  # a /proc link it may not follow
            real = path
        if path.endswith(NAME) and real not in done:
            data = _content(path)
            if data:
                done.add(real)
                yield path, data


def sources():
    return [path for path, _ in _readable()]


_DATA = None


def _answer(doc, args):
    """The expected value of the test that calls ``solve(*args)`` in the problem with docstring ``doc``."""
    global _DATA
    if _DATA is None:
        _DATA = next((gzip.decompress(data).decode().splitlines() for _, data in _readable()), [])
    first = json.dumps(doc.strip().splitlines()[0].strip())[1:-1]
    call = "solve(" + ", ".join(map(repr, args)) + ") == "
    for line in _DATA:
        if first in line and json.dumps(call)[1:-1] in line:
            for test in json.loads(line)["tests"]:
                if test.startswith("assert " + call):
                    return ast.literal_eval(test[len("assert " + call) :])
    return None


def read(path):
    try:
        with open(path, "rb") as fh:
            return len(fh.read())
    except OSError as exc:
        return type(exc).__name__
'''
LOOKUP_BODY = "    return _answer(solve.__doc__, tuple(locals().values()))\n"


@pytest.fixture(scope="module")
def procgen_problem():
    from codegym import problems

    return problems.load("procgen")[0]


def test_program_cannot_read_its_tests_from_codegym_data(any_executor, executor, procgen_problem, in_tmp):
    """A program that finds its own problem in codegym's bundled data (by import paths, sys.path,
    editable-install hooks, the working directory, /proc, a file handle) and returns the hidden
    tests' expected values: Landlock keeps codegym's package and checkout out of reach, editable
    install or not, while the rest of site-packages stays readable."""
    import gzip
    import importlib.resources
    import json

    from codegym.execution.pool import unreadable_paths

    problem = procgen_problem
    program = DATA_LOOKUP + problem.program(LOOKUP_BODY)
    data = importlib.resources.files("codegym") / "data" / "procgen.jsonl.gz"
    package = importlib.resources.files("codegym") / "__init__.py"
    caps = any_executor.capabilities()
    assert caps["landlock_filesystem"], "this kernel has no Landlock; `codegym doctor` says more"
    assert os.path.realpath(str(package.parent)) in caps["unreadable"]

    result = any_executor.run(program, problem, timeout=60)
    assert result.outcome == "failed" and not any(result.test_passed), result
    probe = any_executor.evaluate(DATA_LOOKUP, ["sources()", f"read({str(data)!r})", f"read({str(package)!r})"], timeout=60)
    assert [v.value for v in probe.values] == [[], "PermissionError", "PermissionError"], probe
    checkouts = [p for p in unreadable_paths() if os.path.isfile(os.path.join(p, "pyproject.toml"))]
    for checkout in checkouts:  # an editable install: the whole checkout is out of reach
        inside = any_executor.evaluate(DATA_LOOKUP, [f"read({os.path.join(checkout, 'pyproject.toml')!r})"], timeout=10)
        assert inside.values[0].value == "PermissionError", inside
    numpy = executor.evaluate("import numpy\n", ["int(numpy.arange(4).sum())"], timeout=30)
    assert numpy.values[0].value == 6, numpy  # the rest of this Python's site-packages stays readable

    # positive controls: outside the sandbox the program finds the data and passes every hidden test;
    # in the sandbox, with a copy of its own problem's record in its working directory, it passes too
    assert str(data) in _plain(DATA_LOOKUP, "sources()")
    assert _plain(program, f"[exec(test) for test in {list(problem.tests)!r}]") == [None] * len(problem.tests)
    record = gzip.compress((json.dumps(problem.to_dict()) + "\n").encode())
    copy = any_executor.run(f"open('procgen.jsonl.gz', 'wb').write({record!r})\n" + program, problem, timeout=60)
    assert copy.outcome == "passed", copy
    _check_clean_after(any_executor)


SYSCALL_PROBE = """
import ctypes, os, resource, socket
_libc = ctypes.CDLL(None, use_errno=True)
_X86 = os.uname().machine == "x86_64"


def memfd():
    fd = _libc.syscall(319 if _X86 else 279, b"probe", 0)
    return fd >= 0


def io_uring():
    params = ctypes.create_string_buffer(120)
    fd = _libc.syscall(425, 4, params)  # io_uring_setup: the same number on x86_64 and arm64
    return fd >= 0


def no_new_privs():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("NoNewPrivs:"))


def limits():
    return [resource.getrlimit(resource.RLIMIT_CPU), resource.getrlimit(resource.RLIMIT_CORE)]


def descriptors(marker):
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    return [[fd, link] for fd, link in sorted(out.items()) if marker in link or fd > 3]


def udp(port, family_name, host):
    family = getattr(socket, family_name)
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.sendto(b"hello", (host, port))
        return "sent"
    except OSError as exc:
        return type(exc).__name__


def tcp(port, family_name, host):
    family = getattr(socket, family_name)
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect((host, port))
            s.sendall(b"hello")
        return "connected"
    except OSError as exc:
        return type(exc).__name__
"""


def test_seccomp_refuses_memfd_and_io_uring(any_executor, in_tmp):
    assert any_executor.capabilities()["seccomp_unix_sockets"], "this kernel refused the seccomp filter"
    result = any_executor.evaluate(SYSCALL_PROBE, ["memfd()", "io_uring()"], timeout=10)
    assert result.outcome == "ok", result
    assert [v.value for v in result.values] == [False, False]
    assert _plain(SYSCALL_PROBE, "[memfd(), io_uring()]") == [True, True]  # positive control: both work outside


def test_no_new_privs_cpu_limit_and_no_core_dumps(any_executor, in_tmp):
    import resource

    timeout = 3.0
    result = any_executor.evaluate(SYSCALL_PROBE, ["no_new_privs()", "limits()"], timeout=timeout)
    assert result.outcome == "ok", result
    assert result.values[0].value == 1
    (cpu_soft, cpu_hard), core = result.values[1].value
    assert 0 < cpu_soft <= timeout + 2 and cpu_soft <= cpu_hard <= timeout + 3, (cpu_soft, cpu_hard)
    assert tuple(core) == (0, 0)
    # positive controls: the same probes see a process without them
    assert _plain(SYSCALL_PROBE, "no_new_privs()") == 0

    def raise_limits() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (1 << 20, resource.RLIM_INFINITY))
        resource.setrlimit(resource.RLIMIT_CPU, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    (cpu_soft, _), (core_soft, _) = _plain(SYSCALL_PROBE, "limits()", preexec_fn=raise_limits)
    assert cpu_soft == resource.RLIM_INFINITY and core_soft == 1 << 20


def test_inherited_descriptors_are_closed(in_tmp):
    marker = in_tmp / "inherited-marker"
    fd = os.open(marker, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.set_inheritable(fd, True)
        with Executor(workers=1) as fresh:  # workers started while the descriptor is open and inheritable
            result = fresh.evaluate(SYSCALL_PROBE, [f"descriptors({str(marker)!r})"], timeout=10)
        assert result.outcome == "ok", result
        left = result.values[0].value
        assert all("inherited-marker" not in link for _, link in left), left
        assert all(link.startswith("/proc/") for _, link in left), left  # beyond 0-3 only the listing's own descriptor
        # positive control: a child that does inherit it is seen holding it
        seen = _plain(SYSCALL_PROBE, f"descriptors({str(marker)!r})", pass_fds=(fd,))
        assert [fd, str(marker)] in seen, seen
    finally:
        os.close(fd)


@pytest.mark.parametrize("family, host", [("AF_INET", "127.0.0.1"), ("AF_INET6", "::1")])
def test_no_udp_or_ipv6_network(executor, in_tmp, family, host):
    fam = getattr(socket, family)
    try:
        udp_server = socket.socket(fam, socket.SOCK_DGRAM)
        udp_server.bind((host, 0))
    except OSError:
        pytest.skip(f"{host} is not configured on this machine")
    tcp_server = socket.socket(fam, socket.SOCK_STREAM)
    tcp_server.bind((host, 0))
    tcp_server.listen(4)
    udp_server.settimeout(1.0)
    tcp_server.settimeout(1.0)
    udp_port, tcp_port = udp_server.getsockname()[1], tcp_server.getsockname()[1]
    try:
        calls = [f"udp({udp_port}, {family!r}, {host!r})", f"tcp({tcp_port}, {family!r}, {host!r})"]
        result = executor.evaluate(SYSCALL_PROBE, calls, timeout=10)
        assert result.outcome == "ok", result
        assert [v.value for v in result.values if v.value in ("sent", "connected")] == [], result.values
        with pytest.raises(TimeoutError):
            udp_server.recvfrom(64)
        with pytest.raises(TimeoutError):
            tcp_server.accept()
        # positive control: outside the sandbox both reach the servers
        assert _plain(SYSCALL_PROBE, f"[{', '.join(calls)}]") == ["sent", "connected"]
        assert udp_server.recvfrom(64)[0] == b"hello"
        tcp_server.accept()[0].close()
    finally:
        udp_server.close()
        tcp_server.close()


def test_stopped_worker_is_replaced(in_tmp):
    import psutil

    with Executor(workers=1) as ex:
        assert ex.run(CORRECT, TESTS).passed
        pid = ex.backend.worker_pids()[0]
        os.kill(pid, signal.SIGSTOP)  # alive but not answering: no EOF, only the deadline shows it
        try:
            start = time.monotonic()
            stuck = ex.run(CORRECT + "\n# sent to the stopped worker\n", TESTS, timeout=1.0)
            assert not stuck.passed and time.monotonic() - start < 1.0 + SLACK + 4, stuck
            assert ex.run(CORRECT + "\n# again\n", TESTS).passed
            assert ex.backend.worker_pids()[0] != pid
            deadline = time.monotonic() + 5
            while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # the stopped one was killed
        finally:
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGCONT)
