"""Reward server throughput: scored completions/s through ``codegym serve`` against in-process ``scoring.score``.

One run, the same completions both ways, each side with its own sandbox pool of ``--workers``
processes and the result cache off (every completion really runs):

- HTTP: the server (`codegym.serve.create_app` on uvicorn, in a process of its own, as
  ``codegym serve`` runs it) and ``--clients`` concurrent clients (threads, one keep-alive HTTP connection
  each) sending ``POST /reward`` requests of ``--batch`` completions in OpenRLHF's form; p50 and p99
  are the request latencies;
- in-process: one ``codegym.scoring.score`` call on all completions, the best case for a trainer
  that calls the sandbox directly; run once before and once after the HTTP run, and averaged, so
  that load drifting on a shared machine hits both sides alike.

The clients run on the same machine as the server and take CPU from its sandbox workers; a trainer
on other machines would not.

Completions are MBPP training references (whole functions in a fenced chat answer, each made unique
by a comment) and wrong bodies, 3 to 1. Target: HTTP >= 0.8x in-process. Ends with one JSON line.

    python experiments/benchmarks/bench_serve.py [--clients 32] [--requests 2] [--batch 16] [--workers 2]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SERVER = """
import sys, uvicorn
from codegym import problems
from codegym.execution import Executor
from codegym.serve import ServeConfig, create_app
loaded = {p.task_id: p for p in problems.load(sys.argv[1])}
app = create_app(loaded, Executor(int(sys.argv[3]), cache_size=0), ServeConfig(max_queue=1024, max_programs=256))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def completions(problems, total: int) -> tuple[list, list[str]]:
    """``total`` (problem, completion) pairs, every program distinct: 3 references to 1 wrong body."""
    chosen, texts = [], []
    for k in range(total):
        p = problems[k % len(problems)]
        chosen.append(p)
        if k % 4 == 3:
            texts.append(f"    return None  # wrong {k}\n")
        else:
            texts.append(f"```python\n{p.reference.rstrip()}\n# variant {k}\n```")
    return chosen, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32, help="Concurrent HTTP clients.")
    parser.add_argument("--requests", type=int, default=2, help="Requests per client.")
    parser.add_argument("--batch", type=int, default=16, help="Completions per request.")
    parser.add_argument("--workers", type=int, default=2, help="Sandbox workers on each side.")
    parser.add_argument("--problems", type=int, default=64, help="MBPP training problems the completions are drawn from.")
    args = parser.parse_args()

    import httpx
    import psutil

    from codegym import problems as sources
    from codegym import scoring
    from codegym.execution import Executor
    from codegym.integrations.records import to_ground_truth

    pool = [p for p in sources.load("mbpp", split="train") if p.reference][: args.problems]
    total = args.clients * args.requests * args.batch
    chosen, texts = completions(pool, total)

    executor = Executor(args.workers, cache_size=0)
    executor.capabilities()  # workers started before any clock, as the server's are

    def in_process() -> tuple[float, list]:
        start = time.perf_counter()
        scores = scoring.score(chosen, texts, reward="paper", executor=executor)
        return time.perf_counter() - start, scores

    before_s, scores = in_process()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "problems.jsonl"
        sources.write_jsonl(pool, source)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(source), str(port), str(args.workers)], cwd=tmp)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server did not start")
                try:
                    if httpx.get(f"{url}/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            prompt = "<|im_start|>assistant\n"
            bodies = []
            for start in range(0, total, args.batch):
                ids = [p.task_id for p in chosen[start : start + args.batch]]
                part = texts[start : start + args.batch]
                labels = [tid if i % 2 else to_ground_truth(p) for i, (tid, p) in enumerate(zip(ids, chosen[start : start + args.batch]))]
                bodies.append({"query": [prompt + t + "<|im_end|>" for t in part], "prompts": [prompt] * len(part), "labels": labels})
            latencies: list[float] = []
            http_rewards: list[float] = []

            encoded = [json.dumps(b).encode() for b in bodies]

            def client(k: int) -> list[tuple[int, list[float]]]:
                out = []  # one keep-alive connection per client; the standard library's client is the lightest here
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
                try:
                    for i in range(k, len(bodies), args.clients):
                        t0 = time.perf_counter()
                        connection.request("POST", "/reward", body=encoded[i], headers={"Content-Type": "application/json"})
                        reply = connection.getresponse()
                        data = reply.read()
                        latencies.append(time.perf_counter() - t0)
                        if reply.status != 200:
                            raise SystemExit(f"POST /reward answered {reply.status}: {data[:200]!r}")
                        out.append((i, json.loads(data)["rewards"]))
                finally:
                    connection.close()
                return out

            me, served = psutil.Process(), psutil.Process(server.pid)
            cpu0 = (sum(me.cpu_times()[:2]), sum(served.cpu_times()[:2]))
            start = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as threads:
                results = [r for part in threads.map(client, range(args.clients)) for r in part]
            http_s = time.perf_counter() - start
            client_cpu, server_cpu = sum(me.cpu_times()[:2]) - cpu0[0], sum(served.cpu_times()[:2]) - cpu0[1]
            for _, rewards in sorted(results):
                http_rewards += rewards
        finally:
            server.terminate()
            server.wait(60)

    after_s, _ = in_process()
    executor.close()
    inprocess_s = (before_s + after_s) / 2

    http_per_s = total / http_s
    inprocess_per_s = total / inprocess_s
    ordered = sorted(latencies)
    report = {
        "benchmark": "serve",
        "completions": total,
        "clients": args.clients,
        "batch": args.batch,
        "workers": args.workers,
        "passed": sum(s.result.passed for s in scores),
        "mismatches": sum(a != s.reward for a, s in zip(http_rewards, scores)),  # timeouts under load can differ
        "http_per_s": round(http_per_s, 1),
        "inprocess_per_s": round(inprocess_per_s, 1),
        "ratio": round(http_per_s / inprocess_per_s, 3),
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1),
        "client_cpu_s": round(client_cpu, 2),  # the HTTP clients' CPU time (same machine)
        "server_cpu_s": round(server_cpu, 2),  # the server process's own CPU time (not its sandbox workers)
        "http_s": round(http_s, 2),
        "cpus": os.cpu_count(),
    }
    print(f"HTTP {http_per_s:.1f}/s vs in-process {inprocess_per_s:.1f}/s: ratio {report['ratio']}", file=sys.stderr)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
