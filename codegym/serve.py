"""``codegym serve``: an HTTP reward server over the sandbox (FastAPI on uvicorn).

Endpoints:

- ``POST /reward``: OpenRLHF's remote reward contract. ``{"query": [...], "prompts": [...],
  "labels": [...]}`` in (a query is the prompt followed by the response; a label is a task id of
  ``--problems`` or the ``ground_truth`` JSON of ``codegym export``), ``{"rewards", "scores",
  "extra_logs"}`` back (`codegym.integrations.openrlhf.score_queries`).
- ``POST /score``: codegym's own form. ``{"task_id": ...}`` or ``{"problem": {"prompt",
  "entry_point", "tests", "test_setup"}}``, plus ``"completions": [...]`` (and optionally
  ``"mode": "auto" | "body"``); back ``{"rewards", "outcomes", "pass_ratio", "info"}``.
- ``GET /health``: workers, queue depth, limits and what the sandbox enforces.

Behaviour, and why:

- **Batching.** Requests waiting at the same time are merged into one sandbox batch (up to
  ``max_programs`` programs), so many small concurrent requests keep every worker busy, as one big
  in-process call would.
- **Bounded everything.** Bodies above ``max_body_bytes`` get 413, and a body not received within
  ``read_timeout_s`` gets 408: a request is admitted only once its body is in, so slow senders
  never hold the places of others. Requests with more than ``max_batch`` completions get 413, and
  when ``max_queue`` requests are already admitted (running or waiting) the next one gets 429 at
  once: a trainer retries, and the server never builds an unbounded backlog. A request not answered
  within ``deadline_s`` gets 504 (and is dropped if it has not started).
- **Errors are JSON** ``{"error": message}``: a 4xx status for anything the client got wrong, 500
  (with the exception's type and message) when the reward or the executor fails.
- **Time limits and fail-fast as in-process.** Each program runs under its problem's calibrated
  limit (a loaded data set's, or the ``time_limit`` of an inline problem or exported ground truth)
  unless ``timeout`` is set; with an all-or-nothing reward (``binary``,
  `codegym.rewards.all_or_nothing`) programs stop at their first failing test.
- **Optional bearer token** (``--token`` or ``CODEGYM_SERVE_TOKEN``), compared in constant time
  (`hmac.compare_digest`); without it, or with a wrong one, every endpoint answers 401.
- **127.0.0.1 by default.** The server runs whatever it is sent (in the sandbox, but still CPU time
  and a way to probe the machine's limits); reachable only from this machine unless ``--host``
  says otherwise. ``codegym serve`` refuses another address without a token (or an explicit
  ``--insecure-no-token``); put it behind TLS too before binding a public address.
- **Clean shutdown.** On SIGINT/SIGTERM uvicorn stops accepting, the batcher thread ends, and the
  executor kills its sandbox workers: no process is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.exceptions import HTTPException

from codegym import scoring
from codegym.execution import Executor
from codegym.integrations.openrlhf import resolve_label, responses
from codegym.integrations.records import from_record
from codegym.problems import Problem
from codegym.rewards import get_reward

__all__ = ["ServeConfig", "create_app"]


@dataclass
class ServeConfig:
    """Settings of the reward server.

    Attributes:
        reward: registered reward name (`codegym.rewards`).
        timeout: seconds per program in the sandbox (None: each problem's calibrated limit, else the
            executor's default).
        max_body_bytes: largest request body accepted (413 above).
        read_timeout_s: seconds a client may take to send its body (408 after); the body is read
            before the request is admitted.
        max_batch: most completions in one request (413 above).
        max_queue: most requests admitted at once, running or waiting (429 above).
        max_programs: most programs merged into one sandbox batch.
        deadline_s: seconds a request may take before it is answered 504.
        token: bearer token required on every endpoint (None: no authentication).
    """

    reward: str = "paper"
    timeout: float | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    read_timeout_s: float = 10.0
    max_batch: int = 256
    max_queue: int = 64
    max_programs: int = 256
    deadline_s: float = 120.0
    token: str | None = field(default=None, repr=False)


class _ClientError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class _Job:
    problems: list[Problem]
    completions: list[str]
    mode: str
    deadline: float
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[scoring.Score]]


class _Batcher:
    """One thread that merges waiting requests into sandbox batches and hands each its scores."""

    def __init__(self, executor: Executor, config: ServeConfig) -> None:
        self.executor = executor
        self.config = config
        self.reward = get_reward(config.reward)
        self._jobs: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="codegym-serve-batcher", daemon=True)
        self._thread.start()

    def put(self, job: _Job) -> None:
        with self._cond:
            self._jobs.append(job)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join()

    def _take(self) -> list[_Job]:
        with self._cond:
            while not self._jobs and not self._stop:
                self._cond.wait()
            taken: list[_Job] = []
            size = 0
            while self._jobs and (not taken or size + len(self._jobs[0].completions) <= self.config.max_programs):
                job = self._jobs.popleft()
                taken.append(job)
                size += len(job.completions)
            return taken

    def _loop(self) -> None:
        while True:
            jobs = self._take()
            if not jobs:
                return  # stopped and drained
            now = time.monotonic()
            live = [j for j in jobs if j.deadline > now and not j.future.done()]
            for mode in {j.mode for j in live}:
                group = [j for j in live if j.mode == mode]
                try:
                    scores = scoring.score(
                        [p for j in group for p in j.problems],
                        [c for j in group for c in j.completions],
                        reward=self.reward, executor=self.executor, timeout=self.config.timeout, mode=mode,
                    )  # fmt: skip
                except Exception as exc:  # noqa: BLE001  (a reward or executor failure answers 500, the server keeps serving)
                    for j in group:
                        j.loop.call_soon_threadsafe(_settle, j.future, None, exc)
                    continue
                start = 0
                for j in group:
                    part = scores[start : start + len(j.completions)]
                    start += len(j.completions)
                    j.loop.call_soon_threadsafe(_settle, j.future, part, None)


class RewardRequest(BaseModel):
    """POST /reward: OpenRLHF's remote reward request (``prompts`` optional: then a query is all response,
    and only the rules of `codegym.scoring.program` separate the answer from an instruction before it)."""

    model_config = ConfigDict(extra="ignore")
    query: list[str]
    prompts: list[str] | None = None
    labels: list[Any]


class InlineProblem(BaseModel):
    """A problem sent with the request: its code prompt (may be empty), entry point, tests and setup."""

    model_config = ConfigDict(extra="forbid")
    prompt: str = ""
    entry_point: str
    tests: list[str]
    test_setup: str = ""
    time_limit: float | None = None


class ScoreRequest(BaseModel):
    """POST /score: completions of one problem, named by ``task_id`` or given inline."""

    model_config = ConfigDict(extra="forbid")
    completions: list[str]
    task_id: str | None = None
    problem: InlineProblem | None = None
    mode: str = "auto"


class FeedbackRequest(BaseModel):
    """POST /feedback: one completion of one problem (``task_id`` or inline), for a multi-turn repair loop."""

    model_config = ConfigDict(extra="forbid")
    completion: str
    task_id: str | None = None
    problem: InlineProblem | None = None
    mode: str = "auto"
    feedback: str = "first_failure"
    visible_tests: int | None = None


def _settle(future: asyncio.Future[Any], value: Any, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(value)


def create_app(problems: Mapping[str, Problem], executor: Executor, config: ServeConfig | None = None, *, close_executor: bool = True) -> FastAPI:
    """The FastAPI application; ``problems`` by task id; ``executor`` is closed at shutdown when ``close_executor``."""
    cfg = config or ServeConfig()
    if (cfg.max_queue < 1 or cfg.max_batch < 1 or cfg.max_programs < 1 or cfg.deadline_s <= 0 or cfg.read_timeout_s <= 0
            or cfg.timeout is not None and cfg.timeout <= 0):  # fmt: skip
        raise ValueError(f"server limits must be positive: {cfg!r}")
    get_reward(cfg.reward)  # an unknown name fails at start, not on the first request
    state: dict[str, Any] = {"admitted": 0}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["capabilities"] = await asyncio.to_thread(executor.capabilities)  # starts the workers now
        state["batcher"] = _Batcher(executor, cfg)
        try:
            yield
        finally:
            await asyncio.to_thread(state["batcher"].close)
            if close_executor:
                await asyncio.to_thread(executor.close)

    app = FastAPI(title="codegym reward server", lifespan=lifespan)

    @app.exception_handler(_ClientError)
    async def client_error(request: Request, exc: _ClientError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers={"WWW-Authenticate": "Bearer"} if exc.status == 401 else None)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = f"no endpoint {request.method} {request.url.path}; use POST /reward, POST /score or GET /health"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.middleware("http")
    async def server_error(request: Request, call_next: Any) -> Any:  # the reward or the executor failed: still JSON
        try:
            return await call_next(request)
        except Exception as exc:  # noqa: BLE001  (answered, and the server keeps serving)
            return JSONResponse({"error": f"the server failed on this request: {type(exc).__name__}: {exc}"}, status_code=500)

    def authorize(request: Request) -> None:
        if cfg.token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if not (scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), cfg.token.encode())):
            raise _ClientError(401, "missing or wrong bearer token; send 'Authorization: Bearer <token>'")

    async def read(request: Request, model: type[BaseModel]) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > cfg.max_body_bytes:
            raise _ClientError(413, f"request body of {declared} bytes is over the limit of {cfg.max_body_bytes}")
        body = bytearray()

        async def receive() -> None:
            async for chunk in request.stream():
                body.extend(chunk)
                if len(body) > cfg.max_body_bytes:
                    raise _ClientError(413, f"request body is over the limit of {cfg.max_body_bytes} bytes")

        try:
            await asyncio.wait_for(receive(), cfg.read_timeout_s)
        except asyncio.TimeoutError:
            raise _ClientError(408, f"request body not received within {cfg.read_timeout_s} s") from None
        try:
            return model.model_validate_json(bytes(body))
        except ValidationError as exc:
            errors = exc.errors()
            if errors and errors[0]["type"] == "json_invalid":
                raise _ClientError(400, f"body is not valid JSON: {errors[0]['msg']}") from None
            detail = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'body'}: {e['msg']}" for e in errors[:5])
            raise _ClientError(422, f"malformed request: {detail}") from None

    async def run(problems_: Sequence[Problem], completions: Sequence[str], mode: str, started: float) -> list[scoring.Score]:
        if len(completions) > cfg.max_batch:
            raise _ClientError(413, f"{len(completions)} completions in one request; the limit is {cfg.max_batch}")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[scoring.Score]] = loop.create_future()
        if not completions:
            return []
        state["batcher"].put(_Job(list(problems_), list(completions), mode, started + cfg.deadline_s, loop, future))
        try:
            return await asyncio.wait_for(future, max(0.0, started + cfg.deadline_s - time.monotonic()))
        except asyncio.TimeoutError:
            raise _ClientError(504, f"not scored within the deadline of {cfg.deadline_s} s; retry later or send smaller batches") from None

    @contextlib.contextmanager
    def admitted() -> Any:
        if state["admitted"] >= cfg.max_queue:
            raise _ClientError(429, f"the server is busy ({cfg.max_queue} requests queued); retry later")
        state["admitted"] += 1
        try:
            yield
        finally:
            state["admitted"] -= 1

    def request_problem(body: ScoreRequest | FeedbackRequest) -> Problem:
        """The problem a /score or /feedback request names: a loaded ``task_id`` or an inline ``problem``."""
        if (body.task_id is None) == (body.problem is None):
            raise _ClientError(422, "give exactly one of task_id (a problem the server loaded) or problem (inline tests)")
        if body.task_id is not None:
            if body.task_id not in problems:
                raise _ClientError(404, f"unknown task_id {body.task_id!r}; the server has {len(problems)} problems")
            return problems[body.task_id]
        assert body.problem is not None
        return from_record({"task_id": "inline", **body.problem.model_dump()})

    @app.post("/reward")
    async def reward(request: Request) -> dict[str, Any]:
        started = time.monotonic()
        authorize(request)
        body = await read(request, RewardRequest)  # before admission: a slow sender holds no place
        with admitted():
            prompts = body.prompts if body.prompts is not None else [""] * len(body.query)
            if not len(body.query) == len(prompts) == len(body.labels):
                raise _ClientError(422, f"query, prompts and labels must have the same length, got {len(body.query)}, {len(prompts)} and {len(body.labels)}")
            try:
                chosen = [resolve_label(label, problems) for label in body.labels]
            except ValueError as exc:
                raise _ClientError(422, str(exc)) from None
            scores = await run(chosen, responses(body.query, prompts), "auto", started)
        extra: dict[str, list[float]] = {"passed": [float(s.result.passed) for s in scores]}
        for key in sorted({k for s in scores for k in s.info}):
            extra[key] = [s.info.get(key, float("nan")) for s in scores]
        return {"rewards": [s.reward for s in scores], "scores": [s.result.pass_ratio for s in scores], "extra_logs": extra}

    @app.post("/score")
    async def score(request: Request) -> dict[str, Any]:
        started = time.monotonic()
        authorize(request)
        body = await read(request, ScoreRequest)
        with admitted():
            if body.mode not in scoring.MODES:
                raise _ClientError(422, f"mode must be one of {', '.join(scoring.MODES)}, got {body.mode!r}")
            problem = request_problem(body)
            scores = await run([problem] * len(body.completions), body.completions, body.mode, started)
        return {
            "rewards": [s.reward for s in scores],
            "outcomes": [s.result.outcome for s in scores],
            "pass_ratio": [s.result.pass_ratio for s in scores],
            "info": [s.info for s in scores],
        }

    @app.post("/feedback")
    async def feedback_(request: Request) -> dict[str, Any]:
        """The feedback `codegym/CodeRepair-v0` gives (from the visible tests only), and the score on all tests."""
        from codegym import feedback

        started = time.monotonic()
        authorize(request)
        body = await read(request, FeedbackRequest)
        with admitted():
            if body.mode not in scoring.MODES or body.feedback not in feedback.FORMS or (body.visible_tests or 0) < 0:
                raise _ClientError(422, f"mode must be one of {', '.join(scoring.MODES)}, feedback one of {', '.join(feedback.FORMS)}, visible_tests None or >= 0")
            problem = request_problem(body)
            future = feedback.submit(
                [problem], [body.completion], visible=body.visible_tests, form=body.feedback, reward=cfg.reward, executor=executor, timeout=cfg.timeout, mode=body.mode
            )
            try:
                attempt = (await asyncio.wait_for(asyncio.wrap_future(future), max(0.0, started + cfg.deadline_s - time.monotonic())))[0]
            except asyncio.TimeoutError:
                raise _ClientError(504, f"not checked within the deadline of {cfg.deadline_s} s; retry later") from None
        return {
            "feedback": attempt.feedback.text,
            "fields": attempt.feedback.to_dict(),
            "score": attempt.score.reward,
            "outcome": attempt.score.result.outcome,
            "pass_ratio": attempt.score.result.pass_ratio,
            "accepted": attempt.feedback.accepted,
        }

    @app.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        authorize(request)
        backend = executor.backend
        return {
            "status": "ok",
            "workers": getattr(backend, "size", None) or state["capabilities"].get("actors"),
            "queue_depth": state["admitted"],
            "problems": len(problems),
            "limits": {k: v for k, v in asdict(cfg).items() if k != "token"},
            "sandbox": state["capabilities"],
        }

    return app
