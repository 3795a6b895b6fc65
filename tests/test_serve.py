"""``codegym serve``: the HTTP reward server, talked to over 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import psutil

from codegym.execution import Executor
from codegym.integrations.records import to_ground_truth
from codegym.problems import Problem, write_jsonl
from codegym.serve import ServeConfig, create_app

from .test_hostile import ATTACKS, CORRECT

FACT = Problem("t/fact", "import math\n\ndef f(n):\n", "f", ("assert f(7) == 5040", "assert f(3) == 6"))
ADD = Problem("t/add", "def add(a, b):\n", "add", ("assert add(1, 2) == 3", "assert add(2, 2) == 4"))
PROBLEMS = {p.task_id: p for p in (FACT, ADD)}
RIGHT = {"t/fact": "    return math.factorial(n)\n", "t/add": "```python\ndef add(a, b):\n    return a + b\n```"}
WRONG = {"t/fact": "    return n\n", "t/add": "    return a - b\n"}
SLOW = "import time\n\ndef f(n):\n    time.sleep(3)\n    return 5040\n"
HOSTILE = ("infinite_loop", "sleep_past_timeout", "fork_bomb", "memory_bomb_growing", "huge_power", "stdout_flood", "deep_recursion")


@contextlib.contextmanager
def serving(config: ServeConfig, workers: int = 2):
    """The app on a uvicorn server in a thread, on a free port of 127.0.0.1; yields (base url, executor)."""
    import uvicorn

    executor = Executor(workers=workers)
    app = create_app(PROBLEMS, executor, config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    workers: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        workers = [psutil.Process(pid) for pid in executor.backend.worker_pids()]
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", executor
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
    assert not thread.is_alive() and workers
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive  # the shutdown closed the executor: no sandbox worker is left


def reward_body(task_ids, completions, prompt="<|im_start|>assistant\n"):
    labels = [tid if i % 2 else to_ground_truth(PROBLEMS[tid]) for i, tid in enumerate(task_ids)]  # both label kinds
    return {"query": [prompt + c + "<|im_end|>" for c in completions], "prompts": [prompt] * len(completions), "labels": labels}


def test_concurrent_clients_get_correct_replies():
    with serving(ServeConfig(reward="binary", max_queue=64)) as (url, executor):
        health = httpx.get(f"{url}/health").json()
        assert health["status"] == "ok" and health["workers"] == 2 and health["queue_depth"] == 0
        assert "landlock_abi" in health["sandbox"] and health["limits"]["max_queue"] == 64

        def client(k: int) -> int:
            wrong = 0
            with httpx.Client(base_url=url, timeout=120) as http:
                for i in range(20):
                    ids = ["t/fact", "t/add"] if (k + i) % 2 else ["t/add", "t/fact"]
                    right_first = (k * 20 + i) % 3 != 0
                    comps = [RIGHT[ids[0]] if right_first else WRONG[ids[0]], WRONG[ids[1]]]
                    expected = [1.0 if right_first else 0.0, 0.0]
                    if i % 4 == 3:
                        got = http.post("/score", json={"task_id": ids[0], "completions": comps[:1]}).json()["rewards"]
                        wrong += got != expected[:1]
                    else:
                        reply = http.post("/reward", json=reward_body(ids, comps)).json()
                        wrong += reply["rewards"] != expected or reply["extra_logs"]["passed"] != expected
            return wrong

        with ThreadPoolExecutor(32) as pool:
            assert sum(pool.map(client, range(32))) == 0
        assert httpx.get(f"{url}/health").json()["queue_depth"] == 0


def test_hostile_completions_score_zero_and_the_server_keeps_serving(in_tmp):
    inline = {"prompt": "", "entry_point": "f", "tests": list(FACT.tests)}
    with serving(ServeConfig(reward="binary", timeout=1.0)) as (url, executor):
        with httpx.Client(base_url=url, timeout=120) as http:
            reply = http.post("/score", json={"problem": inline, "completions": [textwrap.dedent(ATTACKS[name]) for name in HOSTILE]})
            assert reply.status_code == 200 and reply.json()["rewards"] == [0.0] * len(HOSTILE)
            assert http.post("/score", json={"problem": inline, "completions": [CORRECT]}).json()["rewards"] == [1.0]
            assert http.get("/health").json()["status"] == "ok"


def test_full_queue_answers_429_and_deadlines_504():
    with serving(ServeConfig(reward="binary", max_queue=1, deadline_s=1.0, timeout=5.0), workers=1) as (url, executor):
        slow = {"task_id": "t/fact", "completions": [SLOW], "mode": "auto"}
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(httpx.post, f"{url}/score", json=slow, timeout=60)
            deadline = time.monotonic() + 30
            while httpx.get(f"{url}/health").json()["queue_depth"] < 1:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            busy = httpx.post(f"{url}/score", json={"task_id": "t/add", "completions": [RIGHT["t/add"]]})
            assert busy.status_code == 429 and "busy" in busy.json()["error"]
            late = first.result()
        assert late.status_code == 504 and "deadline" in late.json()["error"]
        deadline = time.monotonic() + 60  # once the slow program is done, the server answers again
        while (reply := httpx.post(f"{url}/score", json={"task_id": "t/add", "completions": [RIGHT["t/add"]]})).status_code == 504:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert reply.json()["rewards"] == [1.0]


def test_malformed_requests_get_4xx_with_a_message():
    with serving(ServeConfig(max_batch=4, max_body_bytes=4096)) as (url, executor):
        with httpx.Client(base_url=url) as http:
            cases = [
                (http.post("/reward", content=b"{not json", headers={"content-type": "application/json"}), 400, "not valid JSON"),
                (http.post("/reward", json={"query": ["x"]}), 422, "labels"),
                (http.post("/reward", json={"query": ["x", "y"], "labels": ["t/add"]}), 422, "same length"),
                (http.post("/reward", json={"query": ["x"], "labels": ["no/such"]}), 422, "neither codegym ground-truth JSON"),
                (http.post("/score", json={"completions": ["x"]}), 422, "exactly one of task_id"),
                (http.post("/score", json={"task_id": "no/such", "completions": ["x"]}), 404, "unknown task_id"),
                (http.post("/score", json={"task_id": "t/add", "completions": ["x"], "mode": "nope"}), 422, "mode must be"),
                (http.post("/score", json={"task_id": "t/add", "completions": ["x"] * 5}), 413, "limit is 4"),
                (http.post("/score", json={"task_id": "t/add", "completions": ["x" * 5000]}), 413, "over the limit"),
                (http.get("/reward"), 405, "not allowed"),
                (http.get("/nowhere"), 404, "no endpoint"),
            ]
            for reply, status, message in cases:
                assert reply.status_code == status, (status, reply.text)
                assert message in reply.json()["error"], reply.text
            assert http.post("/score", json={"task_id": "t/add", "completions": []}).json()["rewards"] == []


def test_wrong_token_gets_401():
    with serving(ServeConfig(token="s3cret")) as (url, executor):
        body = {"task_id": "t/add", "completions": [RIGHT["t/add"]]}
        assert httpx.post(f"{url}/score", json=body).status_code == 401
        wrong = httpx.post(f"{url}/score", json=body, headers={"Authorization": "Bearer s3cre"})
        assert wrong.status_code == 401 and "bearer token" in wrong.json()["error"]
        assert httpx.get(f"{url}/health", headers={"Authorization": "Bearer nope"}).status_code == 401
        right = httpx.post(f"{url}/score", json=body, headers={"Authorization": "Bearer s3cret"})
        assert right.status_code == 200 and right.json()["rewards"] == [1.0]


def test_waiting_requests_are_merged_into_one_sandbox_batch():
    with serving(ServeConfig(timeout=10.0, deadline_s=60.0)) as (url, executor):
        sizes: list[int] = []
        submit = executor.submit
        executor.submit = lambda jobs, **kwargs: (sizes.append(len(jobs)), submit(jobs, **kwargs))[1]
        with ThreadPoolExecutor(4) as pool:
            busy = pool.submit(httpx.post, f"{url}/score", json={"task_id": "t/fact", "completions": [SLOW]}, timeout=60)
            deadline = time.monotonic() + 30
            while not sizes:  # the first request is in the sandbox (for 3 s): the next ones wait together
                assert time.monotonic() < deadline
                time.sleep(0.02)
            waiting = [
                pool.submit(httpx.post, f"{url}/score", json={"task_id": "t/add", "completions": [RIGHT["t/add"], WRONG["t/add"]]}, timeout=60)
                for _ in range(3)
            ]
            replies = [w.result().json() for w in waiting]
            assert busy.result().status_code == 200
        assert sizes == [1, 6]  # three requests, one sandbox batch
        assert all(r["rewards"] == [1.0, 0.0] for r in replies), replies


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_cli_server_binds_localhost_and_leaves_no_worker_after_shutdown(tmp_path, stop):
    source = tmp_path / "problems.jsonl"
    write_jsonl(list(PROBLEMS.values()), source)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "CODEGYM_SERVE_TOKEN": "tok"}
    cli = [sys.executable, "-c", "import typer; from codegym.integrations.commands import serve; typer.run(serve)"]  # `codegym serve`, without the other commands' imports
    proc = subprocess.Popen([*cli, "--problems", str(source), "--port", str(port), "--workers", "2"], env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "codegym serve did not start"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", headers={"Authorization": "Bearer tok"}).status_code == 200:
                    break
            time.sleep(0.2)
        listening = [c.laddr for c in psutil.Process(proc.pid).net_connections() if c.status == psutil.CONN_LISTEN]
        assert listening and all(addr.ip == "127.0.0.1" for addr in listening)
        reply = httpx.post(f"http://127.0.0.1:{port}/reward", json=reward_body(["t/add"], [RIGHT["t/add"]]), headers={"Authorization": "Bearer tok"})
        assert reply.json()["rewards"] == [1.0]
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 2  # the sandbox workers (in sessions of their own: only the server's shutdown stops them)
        proc.send_signal(stop)
        assert proc.wait(60) in (0, -stop)  # uvicorn shuts down, then re-raises the signal it got
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_public_host_without_token_is_refused():
    env = {k: v for k, v in os.environ.items() if k != "CODEGYM_SERVE_TOKEN"}
    cli = [sys.executable, "-c", "import typer; from codegym.integrations.commands import serve; typer.run(serve)"]
    for host in ("0.0.0.0", "192.0.2.7", "::", "example.org"):  # refused before anything is loaded or bound
        done = subprocess.run([*cli, "--host", host, "--problems", "/nonexistent/problems.jsonl"], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0, (host, done.stderr)
        assert "--token" in done.stderr and "--insecure-no-token" in done.stderr, done.stderr
    from codegym.integrations.commands import _loopback

    assert _loopback("127.0.0.1") and _loopback("localhost") and _loopback("::1") and _loopback("127.1.2.3")
    assert not _loopback("0.0.0.0") and not _loopback("10.0.0.1") and not _loopback("my-host")


def test_slow_senders_hold_no_admission_place():
    """64 clients that send their bodies one byte a second: a normal client is still answered within
    the deadline, the slow ones hold no admission place, and each gets a JSON 408 at the read timeout."""
    config = ServeConfig(reward="binary", max_queue=64, deadline_s=30.0)  # read_timeout_s: its default, 10 s
    with serving(config) as (url, executor):
        port = int(url.rsplit(":", 1)[1])
        slow = []
        for _ in range(64):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
            slow.append(sock)
        stop = threading.Event()

        def trickle() -> None:  # one more byte a second on every slow connection
            while not stop.wait(1.0):
                for sock in slow:
                    with contextlib.suppress(OSError):
                        sock.sendall(b" ")

        sender = threading.Thread(target=trickle, daemon=True)
        sender.start()
        try:
            time.sleep(1.5)
            started = time.monotonic()
            with httpx.Client(base_url=url, timeout=30) as http:
                assert http.get("/health").json()["queue_depth"] == 0
                reply = http.post("/score", json={"task_id": "t/add", "completions": [RIGHT["t/add"]]})
            assert reply.status_code == 200 and reply.json()["rewards"] == [1.0]
            assert time.monotonic() - started < 30.0
            answers = []
            for sock in slow:
                sock.settimeout(20)
                data = b""
                with contextlib.suppress(OSError):
                    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                        chunk = sock.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                answers.append(data)
            assert all(a.startswith(b"HTTP/1.1 408") and b'"error"' in a and b"not received within" in a for a in answers), answers[:2]
        finally:
            stop.set()
            sender.join(5)
            for sock in slow:
                sock.close()


def test_reward_failure_answers_json_500_and_the_server_keeps_serving():
    from codegym import rewards

    def broken(problem, completion, result):
        raise RuntimeError("the reward broke")

    rewards.register("test_serve_broken", broken)
    with serving(ServeConfig(reward="test_serve_broken")) as (url, executor):
        with httpx.Client(base_url=url, timeout=60) as http:
            for path, body in (("/score", {"task_id": "t/add", "completions": [RIGHT["t/add"]]}), ("/reward", reward_body(["t/add"], [RIGHT["t/add"]]))):
                reply = http.post(path, json=body)
                assert reply.status_code == 500 and reply.headers["content-type"] == "application/json", reply.text
                assert "RuntimeError: the reward broke" in reply.json()["error"]
            assert http.get("/health").json()["status"] == "ok"


def test_server_runs_programs_under_calibrated_limits_and_fail_fast():
    from codegym import rewards

    seen: list = []

    def strict(problem, completion, result):
        seen.append(result)
        return float(result.passed)

    strict.all_or_nothing = True
    rewards.register("test_serve_strict", strict)
    inline = {"prompt": ADD.prompt, "entry_point": "add", "tests": list(ADD.tests), "time_limit": 2.5}
    with serving(ServeConfig(reward="test_serve_strict")) as (url, executor):
        with httpx.Client(base_url=url, timeout=60) as http:
            reply = http.post("/score", json={"problem": inline, "completions": [WRONG["t/add"]]})
            assert reply.status_code == 200 and reply.json()["rewards"] == [0.0]
            exported = {**ADD.to_dict(), "time_limit": 1.5}
            labels = [to_ground_truth(Problem(**{k: exported[k] for k in ("task_id", "prompt", "entry_point", "tests", "time_limit")}))]
            reply = http.post("/reward", json={"query": [WRONG["t/add"]], "prompts": [""], "labels": labels})
            assert reply.status_code == 200 and reply.json()["rewards"] == [0.0]
    assert [(r.limit, r.time_limit) for r in seen] == [("calibrated", 2.5), ("calibrated", 1.5)]
    assert all(r.test_status == ("failed", "not_run") for r in seen)  # binary-like reward: stopped at the first failure
