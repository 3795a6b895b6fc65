"""Feedback on a failed attempt, for a model that repairs its own program: computed from the tests
the prompt shows (the *visible* tests), never from the hidden ones.

`check` runs each completion twice, in one sandbox batch: against **all** of the problem's tests
(the verdict and the reward, exactly as `codegym.scoring.score` computes them) and against the
**visible** tests alone (the feedback). The feedback run is a separate sandboxed program that never
receives a hidden test, so nothing the program prints, raises or returns there can carry one: it
cannot read what was never sent to it. The all-tests run's stderr and values are never shown. When
every test is visible (the visible tests are the problem's tests, in order: MBPP's prompt shows all
three), there is nothing to hide and the one all-tests run gives both.

## Visible tests (`visible_tests`)

- ``None`` (default): the examples the prompt already shows, turned into tests: every ``assert``
  line of the prompt (MBPP's "Your code should pass these tests"), and every doctest example
  ``>>> CALL`` followed by a literal ``VALUE`` line as ``assert CALL == VALUE`` (HumanEval's
  docstrings, `codegym.problems.with_examples`). Examples in other shapes (prose, printed output)
  are not tests. A prompt with no example has no visible tests: the feedback then only says whether
  the program compiles and defines its function without raising.
- ``k`` (an int): the first ``k`` of the problem's tests. `shown_prompt` removes the other tests'
  example lines from the prompt (MBPP shows every test), so the model sees exactly its visible tests.

## Forms (`FORMS`)

- ``first_failure`` (default): the first failing visible test as written, then the value its call
  returned (decoded outside the sandbox, written with `ascii`) or the exception type and message,
  and the traceback with every frame outside the program removed (the sandbox's harness, the
  standard library: host paths);
- ``all_failures``: the same for every failing visible test;
- ``outcome_only``: the outcome and how many visible tests pass.

Bounds and hygiene: at most ``max_chars`` characters (default 1,024), each value at most 200, each
message 300, a traceback's last 600; printable ASCII only; no durations (a timeout says "time limit",
not how long); absolute paths of the host (``/usr/...``, ``/tmp/...``, ``/home/...``, the Python
installation, ...) become ``<path>``; the sandbox's own notes (``[codegym] ...``) are dropped. Text
the program controls (its values, messages, tracebacks) is its own output on the visible tests, and
as a last line of defence every hidden test's text, call and expected value that does not also
appear in the prompt or the visible tests is cut out of it (``<hidden>``). When every visible test
passes but a hidden one fails, the feedback says so (one bit: the attempt is not accepted), without
saying which.
"""

from __future__ import annotations

import ast
import functools
import re
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any

from codegym import scoring
from codegym.execution import Evaluated, ExecResult, Executor, default_executor
from codegym.execution.plans import UnsafeExpression, plan_test, safe_eval
from codegym.problems import Problem
from codegym.rewards import Reward, RewardFn

__all__ = ["FORMS", "Attempt", "Feedback", "TestReport", "check", "examples", "hidden_tests", "shown_prompt", "submit", "visible_tests"]

FORMS = ("first_failure", "all_failures", "outcome_only")
"""The feedback forms, from most to least detailed."""

MAX_CHARS = 1024
_VALUE_CHARS, _MESSAGE_CHARS, _TRACEBACK_CHARS = 200, 300, 600
_NOTHING_SHOWN = "assert True"  # the feedback run of a problem without visible tests: the program alone


# -- visible tests ----------------------------------------------------------------------------------


def _norm(test: str) -> str:
    try:
        return ast.unparse(ast.parse(test.strip()))
    except (SyntaxError, ValueError, RecursionError):
        return test.strip()


def _doctest_want(lines: list[str], start: int) -> tuple[str, int]:
    """The expected-value lines of a doctest example starting at ``start``: (text, next line index)."""
    want: list[str] = []
    j = start
    while j < len(lines):
        text = lines[j].strip()
        if not text or text.startswith(">>>"):
            break
        closing = text.endswith(('"""', "'''"))
        text = text[:-3].rstrip() if closing else text
        if text:
            want.append(text)
        j += 1
        if closing:
            break
    return " ".join(want), j


def _is_literal(text: str) -> bool:
    try:
        safe_eval(ast.parse(text, mode="eval").body)
    except (SyntaxError, ValueError, TypeError, ArithmeticError, RecursionError, UnsafeExpression):
        return False
    return True


def _is_expression(text: str) -> bool:
    try:
        ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        return False
    return True


def _example_spans(prompt: str) -> list[tuple[int, int, str]]:
    """(first line, end line, test) for every example of ``prompt`` (see the module docstring)."""
    lines = prompt.splitlines()
    spans: list[tuple[int, int, str]] = []
    i = 0
    while i < len(lines):
        text = lines[i].strip()
        if text.startswith("assert "):
            test = text[:-3].rstrip() if text.endswith(('"""', "'''")) else text
            try:
                module = ast.parse(test)
                if len(module.body) == 1 and isinstance(module.body[0], ast.Assert):
                    spans.append((i, i + 1, test))
            except (SyntaxError, ValueError, RecursionError):
                pass
        elif text.startswith(">>> "):
            call = text[4:].strip()
            want, j = _doctest_want(lines, i + 1)
            if want and _is_expression(call) and _is_literal(want):
                spans.append((i, j, f"assert {call} == {want}"))
            i = max(j, i + 1)
            continue
        i += 1
    return spans


def examples(prompt: str) -> tuple[str, ...]:
    """The tests ``prompt`` shows as examples (``assert`` lines and literal doctest examples), in order, once each."""
    seen: dict[str, str] = {}
    for _, _, test in _example_spans(prompt):
        seen.setdefault(_norm(test), test)
    return tuple(seen.values())


def visible_tests(problem: Problem, k: int | None = None) -> tuple[str, ...]:
    """The tests feedback is computed from: the prompt's examples (``k`` None), or the first ``k`` tests."""
    if k is None:
        return examples(problem.prompt)
    if k < 0:
        raise ValueError(f"visible_tests must be >= 0, got {k}")
    return tuple(problem.tests[:k])


def hidden_tests(problem: Problem, k: int | None = None) -> tuple[str, ...]:
    """The problem's tests that are not visible (they decide the reward, never the feedback)."""
    shown = {_norm(t) for t in visible_tests(problem, k)}
    return tuple(t for t in problem.tests if _norm(t) not in shown)


@functools.lru_cache(maxsize=4096)
def shown_prompt(problem: Problem, k: int | None = None) -> str:
    """The prompt the model sees: with ``k``, the example lines of hidden tests are removed."""
    if k is None:
        return problem.prompt
    hidden = {_norm(t) for t in hidden_tests(problem, k)}
    drop = {n for start, end, test in _example_spans(problem.prompt) if _norm(test) in hidden for n in range(start, end)}
    if not drop:
        return problem.prompt
    out = []
    for n, line in enumerate(problem.prompt.splitlines(keepends=True)):
        if n not in drop:
            out.append(line)
            continue
        stripped = line.rstrip()
        if stripped.endswith(('"""', "'''")):  # it also closed the docstring (alone on its line or after the output)
            out.append(line[: len(line) - len(line.lstrip())] + stripped[-3:] + "\n")
    return "".join(out)


# -- the feedback ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestReport:
    """One visible test's result, as shown: ``status`` is ``passed``, ``failed``, ``error`` or ``not_run``;
    ``got`` the value its call returned (``ascii``), ``error`` the exception (``Type: message``),
    ``traceback`` the program's frames of it."""

    test: str
    status: str
    got: str | None = None
    error: str | None = None
    traceback: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"test": self.test, "status": self.status, "got": self.got, "error": self.error, "traceback": self.traceback}


@dataclass(frozen=True)
class Feedback:
    """What a repairing model is told about one attempt.

    Attributes:
        text: the rendered feedback (the form chosen, at most ``max_chars``).
        outcome: the outcome of the visible-tests run (`codegym.execution.OUTCOMES`).
        tests: one `TestReport` per visible test (empty for ``outcome_only``).
        n_visible, n_passed: visible tests, and how many pass.
        accepted: the attempt passes every test, hidden ones included.
    """

    text: str
    outcome: str
    tests: tuple[TestReport, ...]
    n_visible: int
    n_passed: int
    accepted: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "outcome": self.outcome,
            "n_visible": self.n_visible,
            "n_passed": self.n_passed,
            "accepted": self.accepted,
            "tests": [t.to_dict() for t in self.tests],
        }


@dataclass(frozen=True)
class Attempt:
    """One completion checked: its `codegym.scoring.Score` on all tests, and its `Feedback` from the visible ones."""

    score: scoring.Score
    feedback: Feedback


_HOST_ROOTS = ("usr", "tmp", "home", "root", "work", "proc", "sys", "etc", "var", "opt", "dev", "run", "mnt", "srv", "lib", "lib64", "bin", "sbin", "snap", "nix", "private", "Users")
_PATH = re.compile(r"(?<![\w.])/(?:" + "|".join(_HOST_ROOTS) + r")(?:/[^\s'\"<>|,;:()\[\]{}]*)?")
_NONPRINTABLE = re.compile(r"[^\x20-\x7e\n]")


def _host_prefixes() -> list[str]:
    found = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    return sorted((p for p in found if p and len(p) > 1), key=len, reverse=True)


class _Scrub:
    """Cleans text the program controls: host paths, non-printable characters, hidden test fragments."""

    def __init__(self, hidden: Sequence[str], visible_material: str) -> None:
        fragments: set[str] = set()
        for test in hidden:
            fragments.add(test.strip())
            plan = plan_test(test)
            if plan.source:
                fragments.add(plan.source.removeprefix("assert ").strip())
            for value in plan.expect:
                fragments.add(_show(value, 10_000))
                fragments.add(repr(value))
            for side in _comparison_sides(test):
                fragments.add(side)
        self.fragments = sorted((f for f in fragments if len(f) >= 4 and f not in visible_material and f not in ("True", "False", "None")), key=len, reverse=True)

    def __call__(self, text: str, limit: int) -> str:
        for prefix in _host_prefixes():
            text = text.replace(prefix, "<path>")
        text = _PATH.sub("<path>", text)
        text = _NONPRINTABLE.sub("?", text)
        for fragment in self.fragments:
            text = text.replace(fragment, "<hidden>")
        return _cut(text, limit)


def _comparison_sides(test: str) -> list[str]:
    try:
        module = ast.parse(test)
    except (SyntaxError, ValueError, RecursionError):
        return []
    out = []
    for node in ast.walk(module):
        if isinstance(node, ast.Compare):
            out += [ast.unparse(node.left)] + [ast.unparse(c) for c in node.comparators]
        elif isinstance(node, ast.Call):
            out += [ast.unparse(a) for a in node.args]
    return out


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 15)] + " ...[truncated]"


def _show(value: Any, limit: int = _VALUE_CHARS) -> str:
    try:
        text = ascii(value)
    except (ValueError, RecursionError):  # an int too large for str(), a structure too deep
        text = f"<{type(value).__name__} too large to show>"
    return _cut(text, limit)


_FRAME = re.compile(r'^\s*File "(<program>|<test>)", line \d+')


def _tracebacks(stderr: str) -> list[tuple[str, str]]:
    """(program frames, last line) of each traceback in ``stderr``; frames outside the program are dropped."""
    blocks = stderr.split("Traceback (most recent call last):")[1:]
    out = []
    for block in blocks:
        lines = [line for line in block.splitlines() if line.strip() and not line.startswith("[codegym]")]
        frames = [line.strip() for line in lines if _FRAME.match(line)]
        last = lines[-1].strip() if lines else ""
        out.append(("\n".join(frames), last))
    return out


def _syntax_message(stderr: str) -> str:
    """The compiler's message for a program that does not compile (from `traceback.print_exception`)."""
    lines = [line.rstrip() for line in stderr.splitlines() if line.strip() and not line.startswith("[codegym]")]
    start = next((i for i, line in enumerate(lines) if line.strip().startswith('File "<program>"')), None)
    return "\n".join(lines[start:]) if start is not None else (lines[-1] if lines else "SyntaxError")


def _reports(tests: Sequence[str], result: ExecResult, scrub: _Scrub) -> list[TestReport]:
    values: Sequence[Evaluated] = result.values or [Evaluated("not_run")] * len(tests)
    errored = [i for i, (status, v) in enumerate(zip(result.test_status, values)) if status == "error" and v.error != "AssertionError"]
    blocks = _tracebacks(result.stderr_tail)
    matched: dict[int, tuple[str, str]] = {}
    for i, block in zip(reversed(errored), reversed(blocks)):  # the tail may have lost the first ones: align from the end
        matched[i] = block
    out = []
    for i, test in enumerate(tests):
        status = result.test_status[i] if i < len(result.test_status) else "not_run"
        value = values[i]
        got = error = None
        trace = ""
        if status == "failed" and value.status == "ok":
            got = scrub(_show(value.value), _VALUE_CHARS)
        elif status == "failed" and value.status == "unserializable":
            got = "<an object that is not made of builtin types>"
        elif status == "error":
            kind = value.error or "an exception"
            frames, last = matched.get(i, ("", ""))
            message = last if last and kind in last.split(":", 1)[0] else kind
            error = scrub(message, _MESSAGE_CHARS)
            trace = scrub(frames, _TRACEBACK_CHARS) if frames else ""
        out.append(TestReport(test, status, got, error, trace))
    return out


def _call_of(test: str) -> str:
    plan = plan_test(test)
    return plan.source if plan.kind in ("value", "truth") else ""


def _describe(report: TestReport, timed_out: bool = False) -> list[str]:
    lines = [f"Failed: {report.test}"]
    call = _call_of(report.test)
    if report.status == "failed":
        if report.got is not None and call:
            lines.append(f"  {call} returned {report.got}")
        elif report.got is not None:
            lines.append(f"  got {report.got}")
        else:
            lines.append("  the assertion does not hold")
    elif report.status == "error":
        lines.append(f"  raised {report.error}")
        if report.traceback:
            lines += ["  Traceback (program frames):"] + [f"    {line}" for line in report.traceback.splitlines()]
    elif report.status == "not_run":
        lines.append("  did not finish within the time limit" if timed_out else "  not reached: the program stopped before this test")
    return lines


@functools.lru_cache(maxsize=4096)
def _view(problem: Problem, k: int | None) -> tuple[tuple[str, ...], _Scrub]:
    """(visible tests, scrubber) of a problem: computed once per problem, as episodes revisit problems."""
    visible = visible_tests(problem, k)
    return visible, _Scrub(hidden_tests(problem, k), shown_prompt(problem, k) + "\n" + "\n".join(visible))


def _feedback(visible: Sequence[str], scrub: _Scrub, result: ExecResult, accepted: bool, form: str, max_chars: int) -> Feedback:
    shown = list(visible)
    n = len(shown)
    if not shown:  # the feedback run had the placeholder test only
        result = replace(result, test_passed=(), test_status=(), values=())
    reports = _reports(shown, result, scrub) if shown else []
    passed = sum(r.status == "passed" for r in reports)
    lines: list[str] = []
    if result.outcome == "syntax_error":
        lines = ["The program does not compile:", scrub(_syntax_message(result.stderr_tail), _MESSAGE_CHARS + _TRACEBACK_CHARS)]
        reports = [replace(r, status="not_run") for r in reports]
    elif result.outcome == "runtime_error" and all(r.status == "not_run" for r in reports):
        blocks = _tracebacks(result.stderr_tail)
        frames, last = blocks[-1] if blocks else ("", "")
        lines = [f"The program raised {scrub(last, _MESSAGE_CHARS) if last else 'an exception'} before any test ran."]
        if frames:
            lines += ["Traceback (program frames):"] + [f"  {line}" for line in scrub(frames, _TRACEBACK_CHARS).splitlines()]
    elif not n:
        lines = ["No tests are shown for this problem; the program compiles and runs."]
        if not accepted:
            lines.append("It is not accepted: some of the problem's tests fail.")
    elif passed == n:
        lines = [f"All {n} tests shown in the prompt pass."]
        if not accepted:
            lines.append("It is not accepted: other tests of the problem fail.")
    else:
        summary = f"{passed} of {n} tests shown in the prompt pass."
        if result.outcome == "timeout":
            summary += " The program ran out of its time limit."
        lines = [summary]
        if form != "outcome_only":
            failing = [r for r in reports if r.status != "passed"]
            stuck = next((r for r in failing if r.status == "not_run"), None) if result.outcome == "timeout" else None
            for report in failing[:1] if form == "first_failure" else failing:
                lines += _describe(report, report is stuck)
    if form == "outcome_only":
        lines = lines[:2] if result.outcome != "syntax_error" else ["The program does not compile."]
        reports = []
    text = _cut("\n".join(lines), max_chars)
    return Feedback(text, result.outcome, tuple(reports), n, passed, accepted)


# -- running ---------------------------------------------------------------------------------------


def check(
    problems: Sequence[Problem],
    completions: Sequence[str],
    *,
    visible: int | None = None,
    form: str = "first_failure",
    reward: str | Reward | RewardFn = "paper",
    executor: Executor | None = None,
    timeout: float | None = None,
    mode: str = "auto",
    special_tokens: Iterable[str] = (),
    max_chars: int = MAX_CHARS,
) -> list[Attempt]:
    """Score ``completions[i]`` of ``problems[i]`` on all tests and give feedback from the visible ones (one batch).

    ``visible``: `visible_tests`'s ``k`` (None: the prompt's examples); ``form``: one of `FORMS`;
    ``reward``, ``executor``, ``timeout``, ``mode``, ``special_tokens``: as in `codegym.scoring.score`
    (every test is run: no fail-fast, so the reward is the same whatever the reward preset);
    ``max_chars``: the feedback text's bound.
    """
    return submit(
        problems, completions, visible=visible, form=form, reward=reward, executor=executor, timeout=timeout, mode=mode, special_tokens=special_tokens, max_chars=max_chars
    ).result()


def submit(
    problems: Sequence[Problem],
    completions: Sequence[str],
    *,
    visible: int | None = None,
    form: str = "first_failure",
    reward: str | Reward | RewardFn = "paper",
    executor: Executor | None = None,
    timeout: float | None = None,
    mode: str = "auto",
    special_tokens: Iterable[str] = (),
    max_chars: int = MAX_CHARS,
) -> Future[list[Attempt]]:
    """`check` in the background: a Future at once."""
    if form not in FORMS:
        raise ValueError(f"unknown feedback form {form!r}; choose one of {', '.join(FORMS)}")
    if max_chars < 64:
        raise ValueError(f"max_chars must be at least 64, got {max_chars}")
    problems, completions = list(problems), list(completions)
    if len(problems) != len(completions):
        raise ValueError(f"need one problem per completion, got {len(problems)} problems and {len(completions)} completions")
    scoring.judge([], [], [], reward)  # an unknown reward name fails here, before anything runs
    tokens = tuple(special_tokens)
    programs = [scoring.program(p, c, mode=mode, special_tokens=tokens) for p, c in zip(problems, completions)]
    views = [_view(p, visible) for p in problems]
    jobs = [(prog, p) for prog, p in zip(programs, problems)]
    # A second, visible-tests-only run where some tests are hidden (its child never receives them);
    # where every test is visible (MBPP's prompt shows all three) the one run serves both.
    second = {i: len(jobs) + n for n, i in enumerate(i for i, (p, (shown, _)) in enumerate(zip(problems, views)) if tuple(shown) != p.tests)}
    jobs += [(programs[i], replace(problems[i], tests=views[i][0] or (_NOTHING_SHOWN,))) for i in second]
    inner = (executor or default_executor()).submit(jobs, timeout=timeout, values=True)
    out: Future[list[Attempt]] = Future()
    n = len(problems)

    def finish(done: Future[list[ExecResult]]) -> None:
        try:
            results = done.result()
            full = [replace(r, values=()) for r in results[:n]]  # hidden tests' values are never kept
            scores = scoring.judge(problems, completions, full, reward)
            attempts = []
            for i, ((shown, scrub), s) in enumerate(zip(views, scores)):
                fb = _feedback(shown, scrub, results[second.get(i, i)], s.result.passed, form, max_chars)
                attempts.append(Attempt(s, fb))
            out.set_result(attempts)
        except BaseException as exc:  # noqa: BLE001  (re-raised by out.result())
            out.set_exception(exc)

    inner.add_done_callback(finish)
    return out
