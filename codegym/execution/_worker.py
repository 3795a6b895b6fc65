"""A sandbox worker: a long-lived, clean process that forks one locked-down child per program.

This file runs as a script (``python -I -X utf8 _worker.py CONFIG``), never imported by codegym, so
the worker holds nothing but the standard library and the modules programs commonly need. It is
the trusted side's hand in the sandbox: it never runs untrusted code itself. For each job it

1. forks a child that drops every privilege it can before running a byte of the program
   (own session, resource limits, empty environment, only the result pipe left open, Landlock,
   an unprivileged uid when started as root) and then runs the harness;
2. waits for the child with a wall-clock deadline, kills the child's process group and every
   descendant that outlived it (the worker is a child subreaper, so orphans come back to it), and
3. relays the child's raw messages, its exit status and the tail of its stderr to the parent,
   which decides the verdict. The child never sees expected values, only expressions to evaluate.

Protocol with the parent, on the worker's stdin/stdout: frames of a 4-byte big-endian length and
a body. Parent -> worker: one JSON job per frame. Worker -> parent: a JSON hello after start-up,
then per job a JSON header frame followed by one frame with the child's raw message bytes.
Child -> worker (fd 3): frames of JSON messages, see `harness`.
"""

import builtins
import collections
import ctypes
import fcntl
import gc
import io
import json
import math
import os
import re
import resource
import select
import shutil
import signal
import struct
import sys
import time
import traceback

# Modules programs commonly import, loaded once here so a forked child gets them for free.
for _name in (
    "abc", "array", "bisect", "cmath", "collections", "copy", "dataclasses", "datetime", "decimal",
    "enum", "fractions", "functools", "hashlib", "heapq", "itertools", "operator", "random", "re",
    "statistics", "string", "textwrap", "typing", "unicodedata", "collections.abc",
):  # fmt: skip
    try:
        __import__(_name)
    except ImportError:
        pass

_HEADER = struct.Struct(">I")
_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_KEEPCAPS = 8
_CAP_DAC_READ_SEARCH = 2
_CLONE_NEWNET = 0x40000000
_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_MS_NOSUID, _MS_NODEV, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000
_MNT_DETACH = 2
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2
_SYS_LANDLOCK = {"create_ruleset": 444, "add_rule": 445, "restrict_self": 446}

# Landlock access rights (linux/landlock.h).
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_MODIFY_DIR = sum(1 << b for b in range(4, 13))  # remove and make files, dirs, links, nodes
_FS_REFER = 1 << 13  # ABI 2
_FS_TRUNCATE = 1 << 14  # ABI 3
_FS_FILE_ONLY = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE
_FS_READ = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
_NET_TCP = 1 | 2  # ABI 4: bind and connect
_SCOPE_ALL = 1 | 2  # ABI 6: abstract unix sockets and signals


# ------------------------------------------------------------------------------------------------
# Profiling (``profile`` in the config; experiments/benchmarks/profile_sandbox.py): each stage of a
# job writes its time into a shared page, which the header then carries. Off, a stage costs one test.

_marks = None
STAGES = ("fork", "session_and_descriptors", "rlimits", "landlock", "uid_switch", "harness", "exit_and_reap",
          "kill_descendants", "clear_workdir")  # fmt: skip


def _mark(i):
    if _marks is not None:
        struct.pack_into("d", _marks, 8 * i, time.perf_counter())


# ------------------------------------------------------------------------------------------------
# Framing.


def _read_exact(fd, n):
    chunks = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _send(fd, body):
    _write_all(fd, _HEADER.pack(len(body)) + body)


def _recv(fd):
    head = _read_exact(fd, 4)
    if head is None:
        return None
    return _read_exact(fd, _HEADER.unpack(head)[0])


# ------------------------------------------------------------------------------------------------
# What the kernel offers, detected once at start-up.


def _landlock_abi():
    try:
        abi = _libc.syscall(_SYS_LANDLOCK["create_ruleset"], None, 0, 1)  # LANDLOCK_CREATE_RULESET_VERSION
    except Exception:
        return 0
    return max(abi, 0)


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def readable_roots():
    """What a program may read: this Python's installation and the system's libraries, nothing else
    (no home directories, no project files, no /etc secrets), less codegym's own files (`_read_rules`)."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots.add(os.path.dirname(os.path.realpath(sys.executable)))
    roots.update(p for p in sys.path if p)
    roots.update(("/usr", "/lib", "/lib64", "/bin", "/proc", "/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"))
    roots.update("/etc/" + name for name in ("localtime", "ld.so.cache", "passwd", "group", "nsswitch.conf", "mime.types"))
    return sorted(os.path.realpath(r) for r in roots if os.path.exists(r))


def _holds(folder, path):
    return path.startswith(folder.rstrip("/") + "/")


def _read_rules(roots, hidden):
    """{path: Landlock rights} reading every root but nothing in ``hidden`` (real paths: codegym's
    package with the bundled problems and their tests, and its checkout; see ``pool.unreadable_paths``).

    Landlock only grants, so a root that holds a hidden folder is granted piece by piece: listing
    it (names, not contents), and reading each of its entries, descending into those on the way to
    a hidden folder, which gets no rule at all. Symbolic links get no rule either: Landlock checks
    the file they lead to, readable only where its own folder is. A root that is itself hidden (an
    editable install's checkout on sys.path) is left out; a root inside one (a virtual environment
    in the checkout) stays readable."""
    rules = {}

    def grant(path):
        if path in hidden or path in rules:
            return
        if not os.path.isdir(path) or not any(_holds(path, h) for h in hidden):
            rules[path] = _FS_READ
            return
        rules[path] = _FS_READ_DIR
        try:
            entries = [e.path for e in os.scandir(path) if not e.is_symlink()]
        except OSError:  # a folder the worker cannot list: none of its entries is granted
            entries = []
        for entry in entries:
            grant(entry)

    for root in roots:
        grant(root)
    return rules


def _landlock_ruleset(abi, writable_dir, hidden):
    """A Landlock ruleset fd: read only `readable_roots` less ``hidden``, write only beneath ``writable_dir``,
    no TCP, and (ABI >= 6) no signals or abstract sockets out of the sandbox. -1 when unavailable."""
    if abi < 1:
        return -1
    fs = _FS_READ | _FS_WRITE_FILE | _FS_MODIFY_DIR | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
    attr = (ctypes.c_uint64 * 3)(fs, _NET_TCP if abi >= 4 else 0, _SCOPE_ALL if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = _libc.syscall(_SYS_LANDLOCK["create_ruleset"], ctypes.byref(attr), size, 0)
    if ruleset < 0:
        return -1
    rules = list(_read_rules(readable_roots(), {os.path.realpath(h) for h in hidden}).items())
    rules += [(writable_dir, fs), ("/dev/null", _FS_READ | _FS_WRITE_FILE)]
    for path, rights in rules:
        if not os.path.isdir(path):
            rights &= _FS_FILE_ONLY & fs
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except FileNotFoundError:  # gone since it was listed: nothing to grant
            continue
        rule = _PathBeneath(rights, fd)
        ok = _libc.syscall(_SYS_LANDLOCK["add_rule"], ruleset, 1, ctypes.byref(rule), 0) == 0
        os.close(fd)
        if not ok:
            os.close(ruleset)
            return -1
    return ruleset


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _become(uid, keep_read_search):
    """Switch to ``uid`` with no capability but, if asked, CAP_DAC_READ_SEARCH: the sandbox user
    must read this Python's files even where they sit in a private home (pyenv under /root), while
    Landlock limits what it can read to `readable_roots`."""
    _libc.prctl(_PR_SET_KEEPCAPS, 1 if keep_read_search else 0, 0, 0, 0)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    data = (_CapData * 2)()
    if keep_read_search:
        data[0].effective = data[0].permitted = 1 << _CAP_DAC_READ_SEARCH
    if _libc.capset(ctypes.byref(_CapHeader(0x20080522, 0)), data) != 0:
        os._exit(72)


# Seccomp: no unix-domain sockets. Landlock does not cover connect() to a pathname socket, and as
# an ordinary user the child shares the user's uid, so without this a program could reach the
# session D-Bus, an ssh-agent or X11. socket(AF_UNIX) is refused; socketpair() only for connected
# stream/seqpacket pairs, which cannot be pointed at another address (connect and sendto with an
# address fail on them); io_uring is refused because it can open and connect sockets without
# passing these system calls. To keep the disk bound, memfd_create (an anonymous file the tmpfs does
# not count) and new namespaces (unshare, clone with CLONE_NEW*: a user namespace of its own would
# let a program mount a tmpfs of its own where Landlock is missing) are refused; clone3, whose flags
# a filter cannot read, answers ENOSYS so the C library falls back to clone. Any other
# architecture's calling convention is refused outright.
_SECCOMP_ARCH = {  # machine: AUDIT_ARCH, then the numbers of the system calls below, first x32 number
    "x86_64": (0xC000003E, {"socket": 41, "socketpair": 53, "memfd_create": 319, "unshare": 272, "clone": 56}, 0x40000000),
    "aarch64": (0xC00000B7, {"socket": 198, "socketpair": 199, "memfd_create": 279, "unshare": 97, "clone": 220}, None),
}
_IO_URING = (425, 426, 427)  # io_uring_setup, io_uring_enter, io_uring_register (all architectures)
_CLONE3 = 435  # all architectures
_CLONE_NEW_ANY = 0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_AF_UNIX, _SOCK_STREAM, _SOCK_SEQPACKET, _SOCK_TYPE_MASK = 1, 1, 5, 0xF
_RET_ALLOW, _RET_KILL, _RET_EACCES, _RET_ENOSYS = 0x7FFF0000, 0x80000000, 0x00050000 | 13, 0x00050000 | 38


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def _seccomp_program(machine):
    """The BPF program (list of (code, jt, jf, k)), or None on an architecture we have no table for."""
    if machine not in _SECCOMP_ARCH:
        return None
    arch, nr, x32 = _SECCOMP_ARCH[machine]
    ld, jeq, jge, jset, ret, alu_and = 0x20, 0x15, 0x35, 0x45, 0x06, 0x54
    prog = [(ld, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, _RET_KILL), (ld, 0, 0, 0)]
    if x32 is not None:
        prog += [(jge, 0, 1, x32), (ret, 0, 0, _RET_EACCES)]
    for number in (*_IO_URING, nr["memfd_create"], nr["unshare"]):
        prog += [(jeq, 0, 1, number), (ret, 0, 0, _RET_EACCES)]
    prog += [
        (jeq, 0, 1, _CLONE3),
        (ret, 0, 0, _RET_ENOSYS),
        (jeq, 3, 0, nr["socket"]),  # -> socket block
        (jeq, 6, 0, nr["socketpair"]),  # -> socketpair block
        (jeq, 11, 0, nr["clone"]),  # -> clone block
        (ret, 0, 0, _RET_ALLOW),
        (ld, 0, 0, 16),  # socket: args[0], the domain
        (jeq, 0, 1, _AF_UNIX),
        (ret, 0, 0, _RET_EACCES),
        (ret, 0, 0, _RET_ALLOW),
        (ld, 0, 0, 24),  # socketpair: args[1], the type (flags masked off)
        (alu_and, 0, 0, _SOCK_TYPE_MASK),
        (jeq, 1, 0, _SOCK_STREAM),
        (jeq, 0, 1, _SOCK_SEQPACKET),
        (ret, 0, 0, _RET_ALLOW),
        (ret, 0, 0, _RET_EACCES),
        (ld, 0, 0, 16),  # clone: args[0], the flags (low 32 bits)
        (jset, 0, 1, _CLONE_NEW_ANY),
        (ret, 0, 0, _RET_EACCES),
        (ret, 0, 0, _RET_ALLOW),
    ]
    return prog


def _install_seccomp():
    """Install the filter on this process (every child inherits it); False when the kernel refuses."""
    prog = _seccomp_program(os.uname().machine)
    if prog is None:
        return False
    filters = (_SockFilter * len(prog))(*(_SockFilter(*ins) for ins in prog))
    fprog = _SockFprog(len(prog), filters)
    return _libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) == 0


# ------------------------------------------------------------------------------------------------
# Namespaces: a private mount namespace whose working directory is a size-limited tmpfs, so the
# total bytes a program writes are bounded (RLIMIT_FSIZE caps each file, not their sum).


def _write_file(path, text):
    with open(path, "w") as fh:
        fh.write(text)


def _enter_namespaces(cfg, caps):
    """Unshare the mount (and network) namespace; as an ordinary user, inside a new user namespace
    that maps only this uid. Sets caps["user_namespace"], caps["network_namespace"]; returns
    whether a private mount namespace was entered."""
    flags = _CLONE_NEWNS | (_CLONE_NEWNET if cfg["isolate_network"] else 0)
    caps["user_namespace"] = False
    if os.geteuid() != 0:
        uid, gid = os.getuid(), os.getgid()
        if _libc.unshare(_CLONE_NEWUSER) != 0:
            caps["network_namespace"] = False
            return False
        _write_file("/proc/self/setgroups", "deny")
        _write_file("/proc/self/uid_map", f"{uid} {uid} 1")
        _write_file("/proc/self/gid_map", f"{gid} {gid} 1")
        caps["user_namespace"] = True
    if _libc.unshare(flags) == 0:
        caps["network_namespace"] = bool(cfg["isolate_network"])
        return True
    caps["network_namespace"] = cfg["isolate_network"] and _libc.unshare(_CLONE_NEWNET) == 0
    return False


def _mount_tmpfs(workdir, size, uid):
    """Make the mount tree private, then mount a tmpfs of ``size`` bytes on ``workdir``."""
    if _libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        return False
    owner = f",uid={uid},gid={uid}" if uid is not None else ""
    options = f"size={size},nr_inodes=4096,mode=0700{owner}".encode()
    return _libc.mount(b"tmpfs", workdir.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, options) == 0


def _drop_capabilities():
    """Drop every capability (a child in our own user namespace holds them all until now)."""
    if _libc.capset(ctypes.byref(_CapHeader(0x20080522, 0)), (_CapData * 2)()) != 0:
        os._exit(72)


# ------------------------------------------------------------------------------------------------
# The child: lock down, then run the harness. Nothing here returns.


class _Sink(io.TextIOBase):
    """Where the program's print() goes: counted and dropped (verdicts never depend on output)."""

    def writable(self):
        return True

    def write(self, s):
        return len(s)


class _Unserializable(Exception):
    pass


_type, _len, _float_hex, _isfinite, _hex = type, len, float.hex, math.isfinite, hex
_int, _float, _str, _bytes, _bool = int, float, str, bytes, bool
_list, _tuple, _dict, _set, _frozenset, _none = list, tuple, dict, set, frozenset, type(None)
_complex, _dict_items, _Match = complex, dict.items, re.Match
_DICT_SUBCLASSES = (collections.Counter, collections.OrderedDict, collections.defaultdict)
_dumps, _write, _exit, _compile, _eval, _exec = json.dumps, os.write, os._exit, compile, eval, exec
_MAX_NODES = 1_000_000


def _encode(value, budget, depth=0):
    """A JSON-able image of a value made only of exact builtin types; anything else is refused."""
    budget[0] -= 1
    if budget[0] < 0 or depth > 200:
        raise _Unserializable("value too large or too deep")
    t = _type(value)
    if t is _none or t is _bool or t is _str:
        return value
    if t is _int:
        return value if -(2**53) < value < 2**53 else {"i": _hex(value)}
    if t is _float:
        return value if _isfinite(value) else {"f": _float_hex(value)}
    if t is _list:
        return [_encode(v, budget, depth + 1) for v in value]
    if t is _tuple:
        return {"t": [_encode(v, budget, depth + 1) for v in value]}
    if t is _dict:
        return {"d": [[_encode(k, budget, depth + 1), _encode(v, budget, depth + 1)] for k, v in value.items()]}
    if t is _set or t is _frozenset:
        return {"s" if t is _set else "z": [_encode(v, budget, depth + 1) for v in value]}
    if t is _bytes:
        return {"b": value.hex()}
    if t is _complex:
        return {"c": [_encode(value.real, budget, depth + 1), _encode(value.imag, budget, depth + 1)]}
    if t in _DICT_SUBCLASSES:  # compared as the plain dict they hold, with dict's own iteration
        return {"d": [[_encode(k, budget, depth + 1), _encode(v, budget, depth + 1)] for k, v in _dict_items(value)]}
    raise _Unserializable(t.__name__)


def _message(obj):
    body = _dumps(obj).encode()
    _write_all(3, _HEADER.pack(_len(body)) + body)


def harness(job):
    """Run the program, then each step in order, reporting one message per step on fd 3.

    Steps are "e" (evaluate an expression), "t" (the same, for a truth test) or "s" (run a
    statement). Messages: ["p", "syntax"|"ok"|"x", exc] for the program; then per step i
    [i, "v", encoded] (an expression's value), [i, "u"] (value not serializable),
    [i, "ok"] / [i, "f"] (a statement ran / raised AssertionError), [i, "x", exc] (raised);
    then ["end"]. With ``fail_fast`` the steps stop after the first that raised, failed or could
    not be sent. The program sees none of the expected values: those stay with the parent.
    """
    sys.stdout = _Sink()
    try:
        code = _compile(job["program"], "<program>", "exec", dont_inherit=True)
    except BaseException as exc:  # SyntaxError, ValueError (null bytes), RecursionError, MemoryError
        traceback.print_exception(_type(exc), exc, None, file=sys.__stderr__)
        _message(["p", "syntax"])
        _exit(0)
    namespace = {"__name__": "__program__", "__builtins__": builtins}
    try:
        _exec(code, namespace)
    except BaseException as exc:
        traceback.print_exc(file=sys.__stderr__)
        _message(["p", "x", _type(exc).__name__[:100]])
        _exit(0)
    _message(["p", "ok"])
    fail_fast = job.get("fail_fast", False)
    for index, kind, source in job["steps"]:
        try:
            if kind in "et":
                value = _eval(_compile(source, "<test>", "eval", dont_inherit=True), namespace)
                if kind == "t" and _type(value) is _Match:  # truth test: a match object is always true
                    value = True
                try:
                    message = [index, "v", _encode(value, [_MAX_NODES])]
                except _Unserializable:
                    message = [index, "u"]
            else:
                _exec(_compile(source, "<test>", "exec", dont_inherit=True), namespace)
                message = [index, "ok"]
        except AssertionError:
            message = [index, "f"] if kind == "s" else [index, "x", "AssertionError"]
        except BaseException as exc:
            traceback.print_exc(file=sys.__stderr__)
            message = [index, "x", _type(exc).__name__[:100]]
        _message(message)
        if fail_fast and message[1] in ("x", "f", "u"):
            break  # fail fast: this test cannot pass, the rest are not run
    _mark(6)
    _message(["end"])
    _exit(0)


_SYS_CLOSE_RANGE = 436  # the same number on every architecture (Linux 5.9+)


def _close_from(first):
    """Close every descriptor from ``first`` up: one close_range(2) call where the kernel has it
    (os.closerange falls back to one close() per descriptor number when Python was built without it)."""
    if _libc.syscall(_SYS_CLOSE_RANGE, first, 0xFFFFFFFF, 0) != 0:
        os.closerange(first, 1 << 16)


def _child(job, cfg, workdir, result_fd, stderr_fd, ruleset):
    _mark(1)
    os.setsid()
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if ruleset >= 0:
        ruleset = fcntl.fcntl(ruleset, fcntl.F_DUPFD, 10)  # out of the way of fds 0-4 set up below
    os.dup2(cfg["devnull"], 0)
    os.dup2(cfg["devnull"], 1)
    os.dup2(stderr_fd, 2)
    os.dup2(result_fd, 3)
    if ruleset >= 0:
        os.dup2(ruleset, 4)
        ruleset = 4
    _close_from(5 if ruleset >= 0 else 4)
    os.chdir(workdir)
    if os.environ:  # the worker starts with an empty environment; this is the belt to its braces
        os.environ.clear()
    _mark(2)
    limits = job["limits"]
    cpu = int(math.ceil(job["timeout"])) + 1
    for which, value in (
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_AS, (limits["memory_bytes"],) * 2),
        (resource.RLIMIT_FSIZE, (limits["file_size_bytes"],) * 2),
        (resource.RLIMIT_NOFILE, (limits["open_files"],) * 2),
        (resource.RLIMIT_NPROC, (cfg["nproc_base"] + limits["processes"],) * 2),
        (resource.RLIMIT_CORE, (0, 0)),
    ):
        resource.setrlimit(which, value)
    _mark(3)
    confined = ruleset >= 0
    if confined:
        if _libc.syscall(_SYS_LANDLOCK["restrict_self"], ruleset, 0) != 0:
            os._exit(71)  # promised isolation could not be applied: refuse to run the program
        os.close(ruleset)
    _mark(4)
    if cfg["uid"] is not None:
        _become(cfg["uid"], keep_read_search=confined)
    elif cfg["drop_caps"]:
        _drop_capabilities()
    _mark(5)
    harness(job)


# ------------------------------------------------------------------------------------------------
# The worker.


def _children():
    """Pids of this worker's live children (the subreaper collects orphaned descendants here)."""
    me = os.getpid()
    try:
        with open(f"/proc/self/task/{me}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        pass
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == me:
                        kids.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return kids


def _kill_descendants():
    """SIGKILL and reap every process left behind, including ones that forked while we killed."""
    for _ in range(10_000):
        kids = _children()
        if not kids:
            return
        for pid in kids:
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _clear_dir(workdir):
    for entry in os.scandir(workdir):
        if entry.is_dir(follow_symlinks=False):
            for root, dirs, _ in os.walk(entry.path):
                for d in dirs:
                    try:
                        os.chmod(os.path.join(root, d), 0o700)
                    except OSError:
                        pass
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            try:
                os.unlink(entry.path)
            except OSError:
                pass


_SCALARS = (type(None), bool, int, float, str)
_CERTAINLY_NOT_SCALAR = ("t", "s", "z", "d", "b", "f")  # tags no None/bool/int/float/str is equal to


def _differs(got, exp, depth=0):
    """True only when the value the child encoded (``got``) is certainly not == the expected value
    (``exp``, encoded by the parent from a literal of scalars, lists and tuples). Unsure: False."""
    if depth > 50:
        return False
    if type(exp) is list or type(exp) is dict:  # a list, or {"t": [...]} a tuple
        if type(exp) is list:
            same_kind, items, want = type(got) is list, got, exp
        else:
            same_kind = type(got) is dict and list(got) == ["t"] and type(got["t"]) is list
            items, want = (got["t"] if same_kind else None), exp["t"]
        if not same_kind:
            return True  # a list equals only a list, a tuple only a tuple
        return len(items) != len(want) or any(_differs(g, e, depth + 1) for g, e in zip(items, want))
    if type(got) in _SCALARS:
        return got != exp  # these JSON scalars are the decoded values themselves
    if type(got) is list:
        return True
    return type(got) is dict and len(got) == 1 and next(iter(got)) in _CERTAINLY_NOT_SCALAR


def _first_wrong(payload, start, expect):
    """(offset after the complete frames from ``start``, whether one of them is certainly wrong)."""
    while len(payload) - start >= 4:
        size = _HEADER.unpack_from(payload, start)[0]
        if len(payload) - start - 4 < size:
            break
        body = bytes(payload[start + 4 : start + 4 + size])
        start += 4 + size
        try:
            message = json.loads(body)
        except (ValueError, RecursionError):
            continue  # malformed: the parent refuses the whole report
        if type(message) is list and len(message) == 3 and type(message[0]) is int and message[1] == "v" and message[0] in expect:
            if _differs(message[2], expect[message[0]]):
                return start, True
    return start, False


def _run_job(job, cfg, workdir, ruleset):
    timeout = float(job["timeout"])
    cap = int(job["limits"]["message_bytes"])
    read_fd, write_fd = os.pipe()
    stderr_fd = cfg["stderr"]
    start = time.monotonic()
    _mark(0)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            _child(job, cfg, workdir, write_fd, stderr_fd, ruleset)
        finally:
            os._exit(70)
    os.close(write_fd)
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    poller.register(read_fd, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    payload = bytearray()
    deadline = start + timeout
    ended = timed_out = overflow = stopped = False
    # The expected values of fail fast arrive only now, after the fork: the child never had them.
    expect = {i: v for i, v in json.loads(_recv(0) or b"[]")} if job.get("expect_follows") else {}
    scanned = 0
    while not ended and not stopped:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        for fd, _ in poller.poll(remaining * 1000):
            if fd == pidfd:
                ended = True
            elif fd == read_fd:
                chunk = os.read(read_fd, 1 << 16)
                if chunk:
                    payload += chunk
                    overflow = len(payload) > cap
                    if expect and not overflow:
                        scanned, stopped = _first_wrong(payload, scanned, expect)
                else:
                    poller.unregister(read_fd)
        if overflow:
            break
    duration = time.monotonic() - start
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except OSError:
            pass
    _, status = os.waitpid(pid, 0)
    _mark(7)
    os.set_blocking(read_fd, False)
    while len(payload) <= cap and not stopped:
        try:
            chunk = os.read(read_fd, 1 << 16)
        except BlockingIOError:
            break
        if not chunk:
            break
        payload += chunk
    os.close(read_fd)
    os.close(pidfd)
    _kill_descendants()
    _mark(8)
    size = os.lseek(stderr_fd, 0, os.SEEK_END)
    os.lseek(stderr_fd, max(0, size - 4096), os.SEEK_SET)
    stderr_tail = os.read(stderr_fd, 4096).decode("utf-8", "replace")
    os.ftruncate(stderr_fd, 0)
    os.lseek(stderr_fd, 0, os.SEEK_SET)
    _clear_dir(workdir)
    _mark(9)
    header = {
        "id": job["id"],
        "timed_out": timed_out,
        "overflow": overflow or len(payload) > cap,
        "stopped": stopped,
        "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "duration": duration,
        "stderr_tail": stderr_tail,
    }
    if _marks is not None:
        header["stages"] = struct.unpack_from("10d", _marks)
    return header, bytes(payload[: scanned if stopped else cap + 1])


def _setup(cfg):
    """Apply the worker-wide protections and describe them (reported by ``codegym doctor``)."""
    caps = {"python": sys.version.split()[0], "pid": os.getpid()}
    caps["subreaper"] = _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    # No program may gain privileges through execve (setuid binaries); inherited by every child.
    caps["no_new_privs"] = _libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
    cfg["devnull"] = os.open("/dev/null", os.O_RDWR)
    cfg["stderr"] = os.memfd_create("stderr")  # one per worker, emptied after each program
    if os.geteuid() == 0 and cfg["drop_privileges"]:
        cfg["uid"] = cfg["uid_base"] + os.getpid()
        cfg["nproc_base"] = 0
    else:
        cfg["uid"] = None
        cfg["nproc_base"] = sum(1 for e in os.listdir("/proc") if e.isdigit() and os.stat(f"/proc/{e}").st_uid == os.getuid())
    caps["sandbox_uid"] = cfg["uid"]
    base = os.path.join(cfg["tmp_root"], f"codegym-sandbox-{os.getpid()}")
    os.makedirs(base, mode=0o711)
    workdir = os.path.join(base, "work")
    os.mkdir(workdir, 0o700)
    if cfg["uid"] is not None:
        os.chown(workdir, cfg["uid"], cfg["uid"])
    private_mounts = _enter_namespaces(cfg, caps)
    caps["mount_namespace"] = private_mounts
    disk = int(cfg["disk_bytes"])
    cfg["tmpfs"] = private_mounts and _mount_tmpfs(workdir, disk, cfg["uid"])
    caps["disk_bytes"] = disk if cfg["tmpfs"] else None
    cfg["drop_caps"] = caps["user_namespace"]  # children of a user-namespace worker hold its capabilities
    abi = _landlock_abi() if cfg["landlock"] else 0
    ruleset = _landlock_ruleset(abi, workdir, cfg["hidden"])
    caps["landlock_abi"] = abi if ruleset >= 0 else 0
    caps["landlock_filesystem"] = ruleset >= 0
    caps["unreadable"] = sorted(cfg["hidden"]) if ruleset >= 0 else []
    caps["landlock_network"] = ruleset >= 0 and abi >= 4
    caps["landlock_signals"] = ruleset >= 0 and abi >= 6
    if ruleset >= 0:
        os.set_inheritable(ruleset, False)
    caps["seccomp_unix_sockets"] = _install_seccomp() if cfg["seccomp"] else False
    caps["rlimits"] = ["cpu", "address_space", "file_size", "open_files", "processes", "core"]
    return base, workdir, ruleset, caps


def main():
    global _marks
    cfg = json.loads(sys.argv[1])
    if cfg.get("profile"):
        import mmap

        _marks = mmap.mmap(-1, 4096)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the user's terminal is the parent's to handle
    base, workdir, ruleset, caps = _setup(cfg)
    _send(1, _dumps({"ready": True, "capabilities": caps}).encode())
    gc.freeze()  # keep the pre-fork heap shared between children
    try:
        while True:
            body = _recv(0)
            if body is None:
                break
            header, payload = _run_job(json.loads(body), cfg, workdir, ruleset)
            head = _dumps(header).encode()  # both frames in one write: one wake-up of the parent
            _write_all(1, _HEADER.pack(len(head)) + head + _HEADER.pack(len(payload)) + payload)
    finally:
        _kill_descendants()
        if cfg["tmpfs"]:
            _libc.umount2(workdir.encode(), _MNT_DETACH)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
