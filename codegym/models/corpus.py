"""The pre-training corpus: Python functions from the sources installed on this machine.

Built offline, with provenance for every function:

1. **Sources.** The standard library (license PSF-2.0; its ``test`` and demo folders are left out)
   and every installed distribution whose metadata declares a permissive license (MIT, BSD,
   Apache, PSF, ISC, ...; read from ``License-Expression``, the ``License ::`` classifiers or the
   ``License`` field of its dist-info). Distributions with a copyleft or unknown license are skipped.
2. **Functions.** Each module-level function and method (``ast``), cut from its ``def`` line to its
   last line and dedented, so it reads like a HumanEval prompt plus its body: signature, docstring,
   body. Tests, stubs and very long or very short functions are dropped.
3. **Deduplication** on the whitespace-normalised text.
4. **Decontamination.** A function is dropped when its name and body match a function of HumanEval,
   MBPP or the bundled ``simple`` problems, with parameters renamed to placeholders and docstrings
   removed before comparing (so ``def add(x, y): return x + y`` matches ``def add(a, b): return a + b``);
   a long enough body (25+ AST nodes) is dropped on a body match alone, whatever its name.
5. **Exercises.** Synthetic exercises from `codegym.models.synthetic` (``source="synthetic"``) and the
   bundled ``basic`` problems of the *training* split with their reference bodies (``source="templates"``,
   a seeded share showing some of their tests as doctests or asserts, as ``+examples`` prompts do),
   through the same deduplication and decontamination. Held out **by template family**: ``basic``'s
   validation and test families never enter, and neither does any synthetic family that is a variant
   of one of them (`codegym.models.synthetic.TEMPLATE_TASKS`), so the held-out generated problems are
   tasks the policy has not seen in any phrasing. Why the training templates are in: a model of a few
   million parameters learns the exercise format (one-sentence docstring, short body) from them, which
   puts the held-out families within reach by composition (``first_even`` → ``index_of_first_even``).
6. **procgen** (``--procgen N``): programs of the procgen *training* distribution with their
   descriptions and examples (``source="procgen"``), for the warm start of the shipped policy; the
   held-out procgen splits never enter (the generator excludes their functions).
7. **Held-out split**: about 2% of the functions, chosen by a hash of their text (stable across runs),
   get ``split="heldout"``; pre-training never trains on them and reports its held-out loss there.

Output: JSONL, one function per line: ``text``, ``name``, ``file``, ``package``, ``license``, ``line``,
``source`` (``stdlib``, ``site-packages``, ``synthetic``, ``templates`` or ``procgen``), ``has_docstring``, ``split``;
procgen records also have ``program`` (the DSL form, for the contamination check's functional test).
"""

from __future__ import annotations

import ast
import copy
import hashlib
import importlib.metadata
import json
import os
import random
import re
import sysconfig
import textwrap
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from codegym.models import synthetic

if TYPE_CHECKING:
    from codegym.problems import Problem

__all__ = [
    "CorpusStats",
    "Decontaminator",
    "build_corpus",
    "distribution_license",
    "extract_functions",
    "is_permissive",
    "read_corpus",
]

STDLIB_LICENSE = "PSF-2.0"
_PERMISSIVE = ("MIT", "BSD", "APACHE", "PSF", "PYTHON SOFTWARE FOUNDATION", "ISC", "UNLICENSE", "ZLIB", "CC0",
               "HPND", "0BSD", "PUBLIC DOMAIN")
_COPYLEFT = ("GPL", "MPL", "MOZILLA", "EUPL", "CDDL", "EPL", "COPYLEFT")
_STDLIB_SKIP = {"test", "tests", "idlelib", "turtledemo", "ensurepip", "site-packages", "__pycache__", "lib2to3"}
_SKIP_DISTRIBUTIONS = {"codegym"}  # our own package holds the held-out fixture: never train on it
_BODY_MATCH_MIN_NODES = 25
PROCGEN_FIRST_LEVEL = 1_000_000  # corpus programs come from training levels far above those of procgen:train


# ------------------------------------------------------------------------------------------
# Licenses.


def distribution_license(dist: importlib.metadata.Distribution) -> str | None:
    """The license a distribution declares: SPDX expression, else classifier, else short License field."""
    meta = dist.metadata
    expression = meta.get("License-Expression")
    if expression:
        return expression.strip()
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    if classifiers:
        return "; ".join(classifiers)
    text = (meta.get("License") or "").strip()
    if text and len(text) <= 80 and "\n" not in text and text.upper() != "UNKNOWN":
        return text
    return None


def is_permissive(license: str | None) -> bool:
    """True for licenses that allow redistribution of derived weights without conditions we can't meet."""
    if not license:
        return False
    upper = license.upper()
    return any(k in upper for k in _PERMISSIVE) and not any(k in upper for k in _COPYLEFT)


# ------------------------------------------------------------------------------------------
# Function extraction.


def _is_stub(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
    if not body:
        return True
    if len(body) == 1:
        stmt = body[0]
        if isinstance(stmt, ast.Pass) or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)):
            return True
        if isinstance(stmt, ast.Raise) and "NotImplementedError" in ast.unparse(stmt):
            return True
    return False


def _parse(source: str) -> ast.Module:
    """``ast.parse`` without the warnings that old code raises (invalid escape sequences and the like)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(source)


def _function_nodes(module: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in module.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node
        elif isinstance(node, ast.ClassDef):
            yield from (n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))


def extract_functions(source: str, min_lines: int = 3, max_lines: int = 60, max_chars: int = 2500) -> Iterator[tuple[str, str, int, bool]]:
    """(name, dedented text, line, has_docstring) of each module-level function and method in ``source``."""
    try:
        module = _parse(source)
    except (SyntaxError, ValueError):
        return
    lines = source.splitlines()
    for node in _function_nodes(module):
        if node.name.startswith("test") or _is_stub(node) or node.end_lineno is None:
            continue
        count = node.end_lineno - node.lineno + 1
        if not min_lines <= count <= max_lines:
            continue
        text = textwrap.dedent("\n".join(lines[node.lineno - 1 : node.end_lineno])).rstrip() + "\n"
        if len(text) > max_chars or "\t" in text[: len(text) - len(text.lstrip())] or max(map(len, text.splitlines())) > 160:
            continue
        try:
            _parse(text)
        except SyntaxError:
            continue
        yield node.name, text, node.lineno, ast.get_docstring(node) is not None


# ------------------------------------------------------------------------------------------
# Decontamination.


def _fingerprint(node: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[str, int]:
    """The body without docstring, parameters renamed to placeholders, as an AST dump; and its size."""
    node = copy.deepcopy(node)
    body = node.body[1:] if ast.get_docstring(node) is not None else node.body
    params = [a.arg for a in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)]
    params += [a.arg for a in (node.args.vararg, node.args.kwarg) if a is not None]
    rename = {p: f"_p{i}" for i, p in enumerate(params)}
    module = ast.Module(body=body, type_ignores=[])
    for sub in ast.walk(module):
        if isinstance(sub, ast.Name) and sub.id in rename:
            sub.id = rename[sub.id]
    return ast.dump(module, annotate_fields=False), sum(1 for _ in ast.walk(module))


@dataclass
class Decontaminator:
    """Fingerprints of benchmark functions; `matches` says whether a corpus function copies one."""

    by_name: set[tuple[str, str]] = field(default_factory=set)
    by_body: set[str] = field(default_factory=set)

    def add_program(self, program: str) -> None:
        """Register every function defined in ``program`` (a benchmark reference solution)."""
        try:
            module = _parse(program)
        except SyntaxError:
            return
        for node in ast.walk(module):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                fingerprint, size = _fingerprint(node)
                self.by_name.add((node.name, fingerprint))
                if size >= _BODY_MATCH_MIN_NODES:
                    self.by_body.add(fingerprint)

    def matches(self, text: str) -> bool:
        """True when the function in ``text`` has a benchmark function's name and body, or a long benchmark body."""
        node = next(n for n in _parse(text).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))  # after any imports
        fingerprint, _ = _fingerprint(node)
        return (node.name, fingerprint) in self.by_name or fingerprint in self.by_body

    @classmethod
    def from_benchmarks(cls, sources: Iterable[str] = ("humaneval", "mbpp", "simple")) -> Decontaminator:
        """Fingerprints of the references of the named problem sets (names or paths for `codegym.problems.load`)."""
        from codegym import problems

        self = cls()
        for source in sources:
            if source == "simple" and "simple" not in problems.available():
                source = str(Path(__file__).resolve().parent.parent / "data" / "simple.jsonl")
            for problem in problems.load(source):
                if problem.reference:
                    self.add_program(problem.reference.replace("\r\n", "\n").expandtabs(4))
        return self


# ------------------------------------------------------------------------------------------
# Sources.


@dataclass(frozen=True)
class _SourceFile:
    path: Path
    display: str  # path shown in the provenance: relative to its library root
    package: str
    license: str
    source: str  # "stdlib" or "site-packages"


def _stdlib_files(root: Path) -> Iterator[_SourceFile]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _STDLIB_SKIP and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(".py"):
                path = Path(dirpath) / name
                yield _SourceFile(path, str(path.relative_to(root)), "python-stdlib", STDLIB_LICENSE, "stdlib")


def _package_files(site: Path, skipped: dict[str, str]) -> Iterator[_SourceFile]:
    dists = {d.metadata["Name"]: d for d in importlib.metadata.distributions(path=[str(site)]) if d.metadata["Name"]}
    for name in sorted(dists, key=str.lower):
        dist = dists[name]
        license = distribution_license(dist)
        if name.lower() in _SKIP_DISTRIBUTIONS or not is_permissive(license):
            skipped[name] = license or "no license metadata"
            continue
        for file in sorted(dist.files or [], key=str):
            if file.suffix == ".py" and "/tests/" not in f"/{file}" and "/test/" not in f"/{file}":
                path = Path(dist.locate_file(file))
                if path.is_file():
                    yield _SourceFile(path, str(file), name, license or "", "site-packages")


@dataclass
class CorpusStats:
    """What `build_corpus` read, kept and dropped, for the command's report."""

    files: int = 0
    functions: int = 0
    duplicates: int = 0
    contaminated: int = 0
    synthetic: int = 0
    templates: int = 0
    procgen: int = 0
    held_out_families: int = 0  # template families kept out (validation and test), with their synthetic variants
    heldout: int = 0
    per_package: dict[str, int] = field(default_factory=dict)
    skipped_packages: dict[str, str] = field(default_factory=dict)


def _heldout(key: str, permille: int) -> bool:
    return int(key[:8], 16) % 1000 < permille


def build_corpus(
    output: str | os.PathLike[str],
    roots: Iterable[str | os.PathLike[str]] | None = None,
    *,
    max_per_package: int = 5000,
    synthetic_count: int = 30000,
    heldout_permille: int = 20,
    decontaminate: Iterable[str] = ("humaneval", "mbpp", "simple"),
    templates: str | None = "train",
    procgen: int = 0,
    seed: int = 0,
) -> CorpusStats:
    """Write the corpus JSONL to ``output`` and return what was kept and dropped.

    ``roots``: directories of ``.py`` files to read instead of the installed libraries (package name
    = the directory's name, license ``unknown``: for tests and custom corpora). By default: the
    standard library and the permissively licensed distributions of this interpreter's site-packages.
    ``max_per_package`` caps functions per distribution (drawn from its files in a seeded random
    order) so that a few huge packages do not dominate; the standard library is not capped.
    ``templates``: the split of the bundled ``basic`` problems whose reference functions join the
    exercises, its other splits' template families staying out (also as synthetic variants); ``None``
    adds no template and drops no synthetic family. ``procgen``: this many problems of the procgen *training*
    distribution (`codegym.procgen.level`, levels from `PROCGEN_FIRST_LEVEL` on, so not the levels of
    ``procgen:train`` that RL trains on), each as its reference (prompt with description and examples, then the
    body), ``source="procgen"``; no held-out procgen function can enter (the generator excludes them).
    """
    stats = CorpusStats()
    rng = random.Random(seed)
    checker = Decontaminator.from_benchmarks(decontaminate)
    if roots is None:
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        files: list[_SourceFile] = [*_stdlib_files(stdlib), *_package_files(Path(sysconfig.get_paths()["purelib"]), stats.skipped_packages)]
    else:
        files = [
            _SourceFile(p, str(p.relative_to(root)), Path(root).name, "unknown", "local")
            for root in map(Path, roots)
            for p in sorted(Path(root).rglob("*.py"))
        ]
    by_package: dict[str, list[_SourceFile]] = {}
    for f in files:
        by_package.setdefault(f.package, []).append(f)

    seen: set[str] = set()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w", encoding="utf-8") as out:

        def emit(name: str, text: str, file: str, package: str, license: str, line: int, source: str, doc: bool, **extra: str) -> bool:
            key = hashlib.sha1(re.sub(r"\s+", " ", text).strip().encode()).hexdigest()
            if key in seen:
                stats.duplicates += 1
                return False
            seen.add(key)
            if checker.matches(text):
                stats.contaminated += 1
                return False
            split = "heldout" if _heldout(key, heldout_permille) else "train"
            stats.heldout += split == "heldout"
            record = {"text": text, "name": name, "file": file, "package": package, "license": license,
                      "line": line, "source": source, "has_docstring": doc, "split": split, **extra}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            stats.functions += 1
            return True

        for package, package_files in by_package.items():
            rng.shuffle(package_files)
            cap = None if package == "python-stdlib" else max_per_package
            kept = 0
            for f in package_files:
                if cap is not None and kept >= cap:
                    break
                try:
                    source = f.path.read_text(encoding="utf-8")
                except (UnicodeDecodeError, OSError):
                    continue
                stats.files += 1
                for name, text, line, doc in extract_functions(source):
                    kept += emit(name, text, f.display, package, f.license, line, f.source, doc)
            stats.per_package[package] = kept

        held_out: set[str] = set()
        if templates is not None:
            train, held_out = _template_split(templates)
            for problem in train:
                text = _template_text(problem, rng)
                stats.templates += emit(problem.entry_point, text, problem.metadata.get("file", ""),
                                        "codegym-templates", "Apache-2.0", 1, "templates", True)  # fmt: skip
            stats.held_out_families = len(held_out)
        for name, text in synthetic.generate(synthetic_count, seed=seed, exclude_tasks=held_out):
            stats.synthetic += emit(name, text, "codegym/models/synthetic.py", "codegym-synthetic", "Apache-2.0", 0, "synthetic", True)
        if procgen:
            from codegym.procgen import level

            for i in range(procgen):
                p = level(PROCGEN_FIRST_LEVEL + i)
                stats.procgen += emit(p.entry_point, p.reference, p.task_id, "codegym-procgen", "Apache-2.0", 0, "procgen", True,
                                      program=p.metadata["program"])
    return stats


def _template_split(split: str) -> tuple[list[Problem], set[str]]:
    """The bundled ``basic`` problems of ``split``, and the template families of every other split."""
    from codegym import problems

    basic = problems.load("basic")
    kept = [p for p in basic if p.split == split]
    if not kept:
        raise ValueError(f"the bundled basic set has no {split!r} split; choose train, validation or test")
    kept_families = {p.metadata.get("family") for p in kept}
    return kept, {p.metadata["family"] for p in basic if p.metadata.get("family") not in kept_families}


def _template_text(problem: Problem, rng: random.Random) -> str:
    """The problem's reference function; in a seeded 60% its docstring shows 1-3 of its tests."""
    body = problem.reference[len(problem.prompt):] if problem.reference.startswith(problem.prompt) else None
    if body is None:
        return problem.reference
    draw = rng.random()
    if draw < 0.6:
        problem = problem.with_examples(k=rng.randint(1, 3), style="doctest" if draw < 0.4 else "assert")
    return problem.prompt + body


def read_corpus(path: str | os.PathLike[str], split: str | None = None) -> list[dict]:
    """The records of a corpus JSONL file, optionally only one split (``train`` or ``heldout``)."""
    with open(path, encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh if line.strip()]
    return [r for r in records if split is None or r["split"] == split]
