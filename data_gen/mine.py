"""Stage 1, mine: find functions that can be tested in isolation, with their provenance.

A candidate is a top-level function (or a ``@staticmethod`` that does not refer to its class) whose
behaviour depends only on its arguments. That is decided by reading the AST, never by running it:

- every free name must resolve to a safe builtin, an import of a pure standard module (``math``,
  ``re``, ``itertools``...), a module-level constant made of literals, or another top-level function
  of the same file that passes the same checks (these helpers are copied into the program);
- no I/O, network, randomness, clock, process or interpreter state (imports, builtins such as
  ``open``/``print``/``input``/``id``/``hash``, ``global``/``nonlocal``), no generators or coroutines.

Each function becomes a `MinedFunction` whose ``program`` is a complete, normalised module (imports,
constants, helpers, the function), with file, line, package and license kept for the metadata.
Everything rejected becomes a `Skipped` with a reason that the summary counts.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import os
import re
import sys
import sysconfig
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from codegym.problems import Problem

__all__ = ["MineOptions", "MinedFunction", "Skipped", "mine", "mine_problems", "mine_source"]

PURE_MODULES = frozenset(
    "math cmath string re itertools functools operator collections heapq bisect fractions decimal "
    "statistics typing textwrap unicodedata difflib keyword numbers copy array struct binascii base64 "
    "zlib hashlib colorsys html calendar enum abc dataclasses types string.capwords json codecs "
    "collections.abc typing_extensions".split()
)
_IMPURE_KINDS = {
    "I/O": "os io pathlib shutil tempfile glob fnmatch fileinput sqlite3 pickle shelve dbm csv logging "
    "zipfile tarfile gzip bz2 lzma mmap builtins",
    "network": "socket ssl http urllib ftplib smtplib poplib imaplib xmlrpc asyncio selectors email requests",
    "randomness": "random secrets uuid",
    "time": "time datetime sched timeit",
    "global state": "sys gc inspect importlib threading multiprocessing concurrent signal atexit "
    "subprocess ctypes locale warnings weakref platform resource site sysconfig traceback",
}
IMPURE_MODULES = {mod: kind for kind, mods in _IMPURE_KINDS.items() for mod in mods.split()}
_IMPURE_BUILTINS = {
    "open": "I/O", "print": "I/O", "input": "I/O", "breakpoint": "I/O", "help": "I/O",
    "exec": "dynamic code", "eval": "dynamic code", "compile": "dynamic code", "__import__": "dynamic code",
    "globals": "global state", "locals": "global state", "vars": "global state", "exit": "global state",
    "quit": "global state", "id": "randomness (object ids)", "hash": "randomness (hash seeds)",
    "setattr": "global state", "delattr": "global state", "memoryview": "global state",
}  # fmt: skip
SAFE_BUILTINS = frozenset(n for n in dir(builtins) if not n.startswith("_") and n not in _IMPURE_BUILTINS)
PERMISSIVE_LICENSES = ("PSF", "Python", "MIT", "BSD", "Apache", "ISC", "Unlicense", "Zlib", "CC0", "HPND")


@dataclass(frozen=True)
class MineOptions:
    """What `mine` accepts.

    max_file_bytes: larger files are skipped whole (generated tables, vendored blobs).
    max_function_lines: longer functions are skipped (hard to test well, and poor prompts).
    include_private: also mine ``_names`` (the standard library hides many pure helpers there).
    licenses: accepted license names (substring match, case-insensitive); None accepts any,
        including unknown ones.
    """

    max_file_bytes: int = 1_000_000
    max_function_lines: int = 60
    include_private: bool = True
    licenses: tuple[str, ...] | None = None


@dataclass(frozen=True)
class MinedFunction:
    """A function ready for test generation.

    ``program`` is a complete module; the function under test spans ``lines`` (1-based, inclusive,
    decorators excluded) of it and is called ``entry``. ``prompt`` is the program up to the end of
    the function's docstring (or ``def`` line); ``key`` identifies the function across runs.
    """

    key: str
    entry: str
    program: str
    lines: tuple[int, int]
    prompt: str
    docstring: str | None
    params: tuple[str, ...]
    annotations: dict[str, str]
    source: dict[str, Any] = field(default_factory=dict)
    task_id: str | None = None
    split: str | None = None


@dataclass(frozen=True)
class Skipped:
    """A file or function left out, and why (``reason`` is a short category the summary counts)."""

    key: str
    stage: str
    reason: str
    detail: str = ""
    facts: dict[str, Any] = field(default_factory=dict, compare=False)
    """What the search saw, for ``generate-data --report``: uncovered branches, inputs tried."""


# --------------------------------------------------------------------------------------------
# Name analysis.


def _bound_names(func: ast.FunctionDef | ast.Lambda) -> set[str]:
    """Names local to a function: parameters, assignment targets, loop/with/except names, nested defs."""
    args = func.args
    names = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
    names |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
    for node in ast.walk(func):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node is not func:
            names.add(node.name)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.MatchAs) and node.name:
            names.add(node.name)
    return names


def _free_names(func: ast.FunctionDef) -> set[str]:
    bound = _bound_names(func)
    loaded = {n.id for n in ast.walk(func) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    for node in ast.walk(func):  # decorators and annotations are not run by the tests' calls
        if node is not func and isinstance(node, (ast.FunctionDef, ast.Lambda)):
            bound |= _bound_names(node)
    return loaded - bound


def _module_of(node: ast.Import | ast.ImportFrom, alias: ast.alias) -> str:
    if isinstance(node, ast.ImportFrom):
        return "." * node.level + (node.module or "")
    return alias.name


def _impurity_of_module(module: str) -> str | None:
    """Why importing ``module`` makes a function untestable in isolation, or None if it is pure."""
    if module.startswith("."):
        return "missing import (relative)"
    if module in PURE_MODULES or module.split(".")[0] in PURE_MODULES:
        return None
    kind = IMPURE_MODULES.get(module.split(".")[0])
    return kind or f"missing import ({module.split('.')[0]})"


_IMPURE_METHODS = {"now": "time", "today": "time", "utcnow": "time", "random": "randomness"}


def _impurity_in_body(func: ast.FunctionDef) -> str | None:
    for node in ast.walk(func):
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return "generator"
        if isinstance(node, (ast.Await, ast.AsyncFor, ast.AsyncWith)):
            return "coroutine"
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            return "global state"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                why = _impurity_of_module(_module_of(node, alias))
                if why:
                    return why
        if isinstance(node, ast.Name) and node.id in _IMPURE_BUILTINS and isinstance(node.ctx, ast.Load):
            return _IMPURE_BUILTINS[node.id]
        if isinstance(node, ast.Attribute) and node.attr in _IMPURE_METHODS:
            return _IMPURE_METHODS[node.attr]
        if isinstance(node, ast.Attribute) and node.attr.startswith("__") and node.attr.endswith("__"):
            if node.attr not in ("__name__", "__class__", "__len__"):
                return "global state (dunder access)"
    return None


_CONSTANT_NODES = (
    ast.Constant, ast.Tuple, ast.List, ast.Set, ast.Dict, ast.UnaryOp, ast.BinOp, ast.BoolOp, ast.Compare, ast.Name,
    ast.Call, ast.keyword, ast.expr_context, ast.operator, ast.unaryop, ast.boolop, ast.cmpop,
)  # fmt: skip
_CONSTANT_CALLS = ("frozenset", "set", "tuple", "dict", "list", "range", "str")


def _is_constant_expr(node: ast.expr, constants: dict[str, ast.stmt]) -> bool:
    """A module-level value built only from literals, other such constants and pure builtins."""
    for sub in ast.walk(node):
        if not isinstance(sub, _CONSTANT_NODES):
            return False
        if isinstance(sub, ast.Name) and sub.id not in constants and sub.id not in _CONSTANT_CALLS:
            return False
    return True


@dataclass
class _Module:
    """Top-level definitions of one parsed file that a function may depend on."""

    tree: ast.Module
    functions: dict[str, ast.FunctionDef]
    imports: dict[str, tuple[ast.stmt, str]]
    constants: dict[str, ast.stmt]
    assigned: set[str]

    @classmethod
    def of(cls, tree: ast.Module) -> _Module:
        functions: dict[str, ast.FunctionDef] = {}
        imports: dict[str, tuple[ast.stmt, str]] = {}
        constants: dict[str, ast.stmt] = {}
        assigned: dict[str, int] = {}
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                functions[node.name] = node
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    name = (alias.asname or alias.name).split(".")[0]
                    imports[name] = (ast.Import(names=[alias]) if isinstance(node, ast.Import) else
                                     ast.ImportFrom(module=node.module, names=[alias], level=node.level),
                                     _module_of(node, alias))  # fmt: skip
            elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        assigned[target.id] = assigned.get(target.id, 0) + 1
                        if _is_constant_expr(node.value, constants):
                            constants[target.id] = node
        # a name assigned twice at top level is mutable module state, not a constant
        constants = {k: v for k, v in constants.items() if assigned.get(k) == 1}
        return cls(tree, functions, imports, constants, set(assigned))


def _resolve(func: ast.FunctionDef, module: _Module) -> tuple[list[ast.stmt], str | None]:
    """The top-level statements ``func`` needs (in file order), or the reason it cannot be isolated."""
    needed: dict[int, ast.stmt] = {}
    imports: dict[str, ast.stmt] = {}
    stack, seen = [func], {func.name}
    while stack:
        current = stack.pop()
        why = _impurity_in_body(current)
        if why:
            return [], why if current is func else f"{why} (in helper {current.name})"
        for name in sorted(_free_names(current)):
            if name in module.functions and name != current.name:
                helper = module.functions[name]
                if helper.decorator_list:
                    return [], f"global state (decorated helper {name})"
                if name not in seen:
                    seen.add(name)
                    stack.append(helper)
                    needed[helper.lineno] = helper
            elif name == current.name:
                continue
            elif name in module.constants:
                stmt = module.constants[name]
                needed[stmt.lineno] = stmt
                for sub in ast.walk(stmt.value):  # type: ignore[attr-defined]
                    if isinstance(sub, ast.Name) and sub.id in module.constants:
                        needed[module.constants[sub.id].lineno] = module.constants[sub.id]
            elif name in module.imports:
                stmt, mod = module.imports[name]
                why = _impurity_of_module(mod)
                if why:
                    return [], why
                imports[ast.unparse(stmt)] = stmt
            elif name in SAFE_BUILTINS:
                continue
            elif name in _IMPURE_BUILTINS:
                return [], _IMPURE_BUILTINS[name]
            else:
                return [], "global state" if name in module.assigned else "missing name"
    return [imports[k] for k in sorted(imports)] + [needed[k] for k in sorted(needed)], None


# --------------------------------------------------------------------------------------------
# Building records.


def _strip_decorators(func: ast.FunctionDef) -> ast.FunctionDef:
    clone = ast.FunctionDef(
        name=func.name, args=func.args, body=func.body, decorator_list=[], returns=func.returns,
        type_comment=None, lineno=func.lineno, col_offset=0,
    )  # fmt: skip
    return clone


def split_prompt(program: str, entry: str) -> tuple[str, tuple[int, int], str | None]:
    """(prompt, (first, last) line of ``entry``, docstring) of a complete program.

    The prompt is every line up to the end of the docstring, or of the ``def`` header when there is
    none; ``prompt`` + the rest of the lines is the program again.
    """
    tree = ast.parse(program)
    func = next(
        n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == entry
    )
    docstring = ast.get_docstring(func)
    first = func.body[0]
    if docstring is not None and isinstance(first, ast.Expr):
        cut = first.end_lineno or first.lineno
    else:
        cut = first.lineno - 1
    lines = program.splitlines(keepends=True)
    if cut < func.lineno:  # body on the def line: no clean split point
        cut = func.lineno
    start = func.decorator_list[0].lineno if func.decorator_list else func.lineno
    return "".join(lines[:cut]), (start, func.end_lineno or func.lineno), docstring


def _record(
    func: ast.FunctionDef, deps: list[ast.stmt], origin: dict[str, Any], key_prefix: str
) -> MinedFunction:
    body = [*deps, _strip_decorators(func)]
    program = ast.unparse(ast.Module(body=body, type_ignores=[])) + "\n"
    # two blank lines before each def, so prompts read like ordinary code
    program = re.sub(r"\n(?=def )", "\n\n\n", program)
    prompt, lines, docstring = split_prompt(program, func.name)
    args = func.args
    params = tuple(a.arg for a in args.posonlyargs + args.args)
    annotations = {a.arg: ast.unparse(a.annotation) for a in args.posonlyargs + args.args if a.annotation}
    if func.returns is not None:
        annotations["return"] = ast.unparse(func.returns)
    digest = hashlib.sha256(program.encode()).hexdigest()[:12]
    return MinedFunction(
        key=f"{key_prefix}:{func.name}:{digest}",
        entry=func.name,
        program=program,
        lines=lines,
        prompt=prompt,
        docstring=docstring,
        params=params,
        annotations=annotations,
        source={**origin, "line": func.lineno, "function": func.name},
    )


def _candidates(tree: ast.Module) -> Iterator[ast.FunctionDef]:
    """Top-level functions, then static methods of top-level classes."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            yield node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and any(
                    isinstance(d, ast.Name) and d.id == "staticmethod" for d in item.decorator_list
                ):
                    names = {n.id for n in ast.walk(item) if isinstance(n, ast.Name)}
                    if node.name not in names:
                        yield item


def _function_problem(func: ast.FunctionDef, options: MineOptions) -> str | None:
    args = func.args
    if not options.include_private and func.name.startswith("_"):
        return "private"
    if func.name.startswith("__"):
        return "dunder method"
    if (func.end_lineno or func.lineno) - func.lineno + 1 > options.max_function_lines:
        return "too long"
    if not (args.posonlyargs or args.args):
        return "no parameters"
    if args.vararg or args.kwarg or [d for d in args.kw_defaults if d is None]:
        return "variadic or keyword-only parameters"
    if args.args and args.args[0].arg in ("self", "cls"):
        return "method"
    if any(not (isinstance(d, ast.Name) and d.id == "staticmethod") for d in func.decorator_list):
        return "decorated"
    return None


def mine_source(
    text: str, origin: dict[str, Any], options: MineOptions = MineOptions(), key_prefix: str | None = None
) -> Iterator[MinedFunction | Skipped]:
    """Mine one module's source text; ``origin`` (file, package, license) goes into each record."""
    prefix = key_prefix or str(origin.get("file", "<string>"))
    try:
        with warnings.catch_warnings():  # invalid escapes and the like in mined code are not errors
            warnings.simplefilter("ignore")
            tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        yield Skipped(prefix, "mine", "does not parse", str(exc)[:200])
        return
    module = _Module.of(tree)
    seen: set[str] = set()
    for func in _candidates(tree):
        key = f"{prefix}:{func.name}"
        if func.name in seen:
            yield Skipped(key, "mine", "duplicate name")
            continue
        seen.add(func.name)
        why = _function_problem(func, options)
        if why is None:
            deps, why = _resolve(func, module)
        if why is not None:  # "missing import (torch) (in helper f)": count the category, keep the rest
            category, _, detail = why.partition(" (")
            yield Skipped(key, "mine", category, detail.removesuffix(")"))
            continue
        try:
            yield _record(func, deps, origin, prefix)
        except (SyntaxError, ValueError, RecursionError) as exc:
            yield Skipped(key, "mine", "cannot normalise", str(exc)[:200])


# --------------------------------------------------------------------------------------------
# Files, packages, provenance.

_STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()


def _license_of(path: Path) -> tuple[str, str | None]:
    """(license, package) of a file: PSF for the standard library, the distribution's metadata for
    installed packages, a LICENSE file next to it (or above) otherwise."""
    resolved = path.resolve()
    if resolved.is_relative_to(_STDLIB) and "site-packages" not in resolved.parts:
        rel = resolved.relative_to(_STDLIB)
        return "PSF-2.0", "stdlib:" + (rel.parts[0].removesuffix(".py") if rel.parts else "")
    if "site-packages" in resolved.parts:
        index = resolved.parts.index("site-packages")
        top = resolved.parts[index + 1].removesuffix(".py") if len(resolved.parts) > index + 1 else ""
        return _distribution_license(top), top
    for parent in resolved.parents:
        for name in ("LICENSE", "LICENSE.txt", "LICENSE.md", "COPYING"):
            candidate = parent / name
            if candidate.is_file():
                return _license_text_name(candidate.read_text(errors="replace")[:2000]), parent.name
    return "unknown", None


@lru_cache(maxsize=None)
def _distributions() -> dict[str, list[str]]:
    from importlib import metadata

    return metadata.packages_distributions()


@lru_cache(maxsize=None)
def _distribution_license(top: str) -> str:
    from importlib import metadata

    for dist in _distributions().get(top, []):
        meta = metadata.metadata(dist)
        expr = meta.get("License-Expression") or ""
        classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License")]
        text = expr or "; ".join(classifiers) or (meta.get("License") or "")[:100]
        return text or "unknown"
    return "unknown"


def _license_text_name(text: str) -> str:
    for marker, name in (("Apache License", "Apache-2.0"), ("MIT License", "MIT"), ("Permission is hereby granted", "MIT"),
                         ("Redistribution and use in source", "BSD"), ("PYTHON SOFTWARE FOUNDATION", "PSF-2.0"),
                         ("GNU GENERAL PUBLIC", "GPL"), ("GNU LESSER", "LGPL"), ("Mozilla Public", "MPL-2.0")):  # fmt: skip
        if marker.lower() in text.lower():
            return name
    return "unknown"


def license_allowed(license: str, allowed: tuple[str, ...] | None) -> bool:
    """Whether ``license`` matches one of ``allowed`` (None allows everything)."""
    if allowed is None:
        return True
    low = license.lower()
    return any(a.lower() in low for a in allowed) and "gpl" not in low


def _python_files(source: Path) -> Iterator[Path]:
    if source.is_file():
        yield source
        return
    for root, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in ("__pycache__", "test", "tests",
                                                                                "site-packages", "idlelib"))  # fmt: skip
        for name in sorted(files):
            if name.endswith(".py"):
                yield Path(root) / name


def _resolve_source(source: str) -> Path | None:
    """A path, or an importable package/module name (``json``, ``email.utils``)."""
    path = Path(source)
    if path.exists():
        return path
    if re.fullmatch(r"[A-Za-z_][\w.]*", source):
        from importlib.util import find_spec

        try:
            spec = find_spec(source)
        except (ImportError, ValueError):
            return None
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            return Path(spec.origin).parent if spec.submodule_search_locations else Path(spec.origin)
    return None


def mine(sources: Iterable[str | os.PathLike[str]], options: MineOptions = MineOptions()) -> Iterator[MinedFunction | Skipped]:
    """Mine every ``.py`` file under each source (a file, a directory, or an importable package name)."""
    for source in sources:
        path = _resolve_source(os.fspath(source))
        if path is None:
            yield Skipped(os.fspath(source), "mine", "not found", "not a path nor an importable package")
            continue
        for file in _python_files(path):
            yield from _mine_file(file, options)


def _mine_file(file: Path, options: MineOptions) -> Iterator[MinedFunction | Skipped]:
    key = str(file)
    try:
        size = file.stat().st_size
        if size > options.max_file_bytes:
            yield Skipped(key, "mine", "huge file", f"{size} bytes")
            return
        data = file.read_bytes()
    except OSError as exc:
        yield Skipped(key, "mine", "unreadable file", str(exc))
        return
    if b"\0" in data:
        yield Skipped(key, "mine", "binary file")
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        yield Skipped(key, "mine", "binary file", "not UTF-8")
        return
    license, package = _license_of(file)
    if not license_allowed(license, options.licenses):
        yield Skipped(key, "mine", "license not allowed", license)
        return
    origin = {"file": _display_path(file), "package": package, "license": license}
    yield from mine_source(text, origin, options, key_prefix=_display_path(file))


def _display_path(file: Path) -> str:
    resolved = file.resolve()
    if resolved.is_relative_to(_STDLIB):
        return f"<stdlib>/{resolved.relative_to(_STDLIB)}"
    for entry in sys.path:
        if entry and "site-packages" in entry and resolved.is_relative_to(Path(entry).resolve()):
            return f"<site-packages>/{resolved.relative_to(Path(entry).resolve())}"
    return str(file)


def mine_problems(problems: Iterable[Problem]) -> Iterator[MinedFunction | Skipped]:
    """Existing problems as mining results: their reference is the program, their task id is kept.

    Used to regenerate tests for a problems file (and to test against HumanEval): the reference is
    trusted as testable, so only its shape is checked here.
    """
    for problem in problems:
        key = f"problem:{problem.task_id}"
        if problem.reference is None:
            yield Skipped(key, "mine", "no reference solution")
            continue
        try:
            prompt, lines, docstring = split_prompt(problem.reference, problem.entry_point)
            tree = ast.parse(problem.reference)
        except (SyntaxError, StopIteration, ValueError):
            yield Skipped(key, "mine", "entry point not found in reference")
            continue
        func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == problem.entry_point)
        args = func.args
        params = tuple(a.arg for a in args.posonlyargs + args.args)
        annotations = {a.arg: ast.unparse(a.annotation) for a in args.posonlyargs + args.args if a.annotation}
        source = {k: v for k, v in problem.metadata.items() if k in ("source", "license", "file", "package", "text")}
        yield MinedFunction(
            key=key,
            entry=problem.entry_point,
            program=problem.reference,
            lines=lines,
            prompt=problem.prompt,
            docstring=docstring,
            params=params,
            annotations=annotations,
            source={"task_id": problem.task_id, **source},
            task_id=problem.task_id,
            split=problem.split,
        )
