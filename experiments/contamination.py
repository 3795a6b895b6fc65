"""Is a test split in the pretraining corpus? Names, normalised ASTs and template families.

The shipped policy is pretrained on real functions (standard library, permissive packages) plus
templated exercises (`codegym.models.synthetic`). `codegym build-corpus` already drops functions
whose name *and* normalised body match a benchmark reference, but a templated variant of the same
task (same family, another name or phrasing) survives that. This check reports, per test split:

- ``name_in_templates``: the entry point is a name of a synthetic family;
- ``name_in_corpus``: the entry point is the name of some corpus function (with ``--corpus``; real
  code reuses common names, so this over-counts: read it next to the other two);
- ``ast_in_templates`` / ``ast_in_corpus``: the reference's body, docstring dropped and parameters
  renamed (`codegym.models.corpus` fingerprints), equals the body of a template rendering (every
  family × body × parameter naming, enumerated) or of a corpus function;
- ``family``: some template body, renamed to the entry point, passes every test of the problem (run
  in the sandbox): the task is a template family whatever its name or phrasing;
- ``template_family_in_corpus`` (with ``--corpus``): a generated ``basic`` problem whose template family
  (``metadata["family"]``) has an instance among the corpus's ``templates`` functions;
- ``procgen_function_in_corpus`` (with ``--corpus``): a procgen problem (``metadata["program"]``)
  computes the same function, on `codegym.procgen.splits.PROBES`, as a procgen program of the corpus
  (the functional de-duplication of issue 23, against what the policy was pretrained on);
- ``procgen_function_in_train``: a procgen problem of a held-out split computes the function of a
  ``procgen:train`` task (the RL training problems);
- ``any``: any of the above but ``name_in_corpus``.

With ``--corpus``, "the templates" are the synthetic families the corpus actually drew from (a family
left out because it is a variant of a held-out task, `codegym.models.synthetic.TEMPLATE_TASKS`, is
not compared); without it, every synthetic family.

    python -m codegym.experiments.contamination --corpus corpus.jsonl simple basic:test stdlib:test mbpp:test humaneval \
        procgen:none procgen:length procgen:compose procgen:new_op

prints a table and ends with one JSON line (figures in ``experiments/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import ast
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from codegym.problems import Problem, join_program

__all__ = ["KEYS", "TemplateIndex", "check"]

KEYS = ("name_in_templates", "name_in_corpus", "ast_in_templates", "ast_in_corpus", "family", "template_family_in_corpus",
        "procgen_function_in_corpus", "procgen_function_in_train", "any")


def _fingerprint(text: str) -> str | None:
    from codegym.models.corpus import _fingerprint as fingerprint
    from codegym.models.corpus import _parse

    try:
        module = _parse(text)
    except (SyntaxError, ValueError):
        return None
    node = next((n for n in module.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
    return fingerprint(node)[0] if node is not None else None


def _reference_function(problem: Problem) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    from codegym.models.corpus import _parse

    for text in (problem.reference or "", problem.prompt + "    pass\n"):
        try:
            module = _parse(text)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(module):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == problem.entry_point:
                return node
    return None


@dataclass
class TemplateIndex:
    """Every rendering of every synthetic family: names, body fingerprints, bodies by arity."""

    names: set[str] = field(default_factory=set)
    fingerprints: set[str] = field(default_factory=set)
    bodies: dict[int, list[tuple[int, str, tuple[str, ...]]]] = field(default_factory=dict)  # arity -> (family, body, params)

    @classmethod
    def build(cls, drawn: set[str] | None = None) -> TemplateIndex:
        """The index of every synthetic family, or of those with a name in ``drawn`` (the corpus's)."""
        from codegym.models.synthetic import FAMILIES

        index = cls()
        for number, family in enumerate(FAMILIES):
            if drawn is not None and not drawn.intersection(family.names):
                continue
            index.names.update(family.names)
            for params in family.params:
                for body in family.bodies:
                    index.bodies.setdefault(len(params), []).append((number, body, tuple(params)))
                    for name in family.names:
                        text = body.format(*params, name=name)
                        source = f"def {name}({', '.join(params)}):\n" + "".join(f"    {line}\n" for line in text.splitlines())
                        fp = _fingerprint(source)
                        if fp:
                            index.fingerprints.add(fp)
        return index

    def programs(self, problem: Problem) -> list[tuple[int, str]]:
        """(family, program) for every template body of the problem's arity, named as its entry point."""
        node = _reference_function(problem)
        if node is None:
            return []
        arity = len(node.args.posonlyargs) + len(node.args.args)
        out = []
        for family, body, params in self.bodies.get(arity, []):
            text = body.format(*params, name=problem.entry_point)
            source = f"def {problem.entry_point}({', '.join(params)}):\n" + "".join(f"    {line}\n" for line in text.splitlines())
            out.append((family, join_program(source, problem.test_setup)))
        return out


@dataclass
class _Corpus:
    names: set[str] = field(default_factory=set)
    fingerprints: set[str] = field(default_factory=set)
    by_source: dict[str, set[str]] = field(default_factory=dict)  # source -> function names
    procgen: set[tuple] = field(default_factory=set)  # fingerprints of the corpus's procgen programs


def _corpus(path: str) -> _Corpus:
    corpus = _Corpus()
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            corpus.names.add(record["name"])
            corpus.by_source.setdefault(record["source"], set()).add(record["name"])
            fp = _fingerprint(record["text"])
            if fp:
                corpus.fingerprints.add(fp)
            if record.get("program"):
                corpus.procgen.add(_function(record["program"]))
    return corpus


def _function(program: str) -> tuple:
    from codegym.procgen import fingerprint, parse

    return fingerprint(parse(program))


def _procgen_train() -> set[tuple]:
    from codegym.problems import load

    return {_function(p.metadata["program"]) for p in load("procgen", split="train")}


def _template_families(names: set[str]) -> set[str]:
    """The template families of the bundled ``basic`` problems whose entry point is in ``names``."""
    from codegym.problems import load

    return {p.metadata["family"] for p in load("basic") if p.entry_point in names and p.metadata.get("family")}


def check(
    sets: dict[str, Sequence[Problem]], corpus: str | None = None, *, behaviour: bool = True, executor: Any = None
) -> dict[str, dict[str, Any]]:
    """Per set: how many problems match the corpus or the templates, by each criterion, and which."""
    from codegym.execution import Executor

    seen = _corpus(corpus) if corpus else _Corpus()
    index = TemplateIndex.build(seen.by_source.get("synthetic", set()) if corpus else None)
    families = _template_families(seen.by_source.get("templates", set())) if corpus else set()
    procgen_train = _procgen_train() if any(p.metadata.get("source") == "procgen" and p.split != "train" for ps in sets.values() for p in ps) else set()
    own = executor is None and behaviour
    executor = executor or (Executor() if behaviour else None)
    report: dict[str, dict[str, Any]] = {}
    try:
        for name, problems in sets.items():
            rows = []
            family_hits: dict[str, int] = {}
            if behaviour:
                jobs, owners = [], []
                for i, p in enumerate(problems):
                    for family, program in index.programs(p):
                        jobs.append((program, list(p.tests)))
                        owners.append((i, family))
                results = executor.run_many(jobs, timeout=2.0)
                for (i, family), result in zip(owners, results):
                    if result.passed:
                        family_hits.setdefault(problems[i].task_id, family)
            for p in problems:
                fp = _fingerprint(p.reference) if p.reference else None
                row = {
                    "task_id": p.task_id,
                    "name_in_templates": p.entry_point in index.names,
                    "name_in_corpus": p.entry_point in seen.names,
                    "ast_in_templates": fp is not None and fp in index.fingerprints,
                    "ast_in_corpus": fp is not None and fp in seen.fingerprints,
                    "family": family_hits.get(p.task_id),
                    "template_family_in_corpus": p.metadata.get("family") in families,
                    "procgen_function_in_corpus": "program" in p.metadata and _function(p.metadata["program"]) in seen.procgen,
                    "procgen_function_in_train": ("program" in p.metadata and p.split != "train"
                                                  and _function(p.metadata["program"]) in procgen_train),
                }
                row["any"] = (row["name_in_templates"] or row["ast_in_templates"] or row["ast_in_corpus"] or row["family"] is not None
                              or row["template_family_in_corpus"] or row["procgen_function_in_corpus"]
                              or row["procgen_function_in_train"])  # fmt: skip
                rows.append(row)
            counts = {key: sum(bool(r[key]) or (key == "family" and r[key] is not None) for r in rows)
                      for key in KEYS}
            report[name] = {"problems": len(rows), **counts, "matches": [r for r in rows if r["any"]]}
    finally:
        if own:
            executor.close()
    return report


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Compare test splits with the pretraining corpus: names, normalised ASTs, template families.")
    parser.add_argument("sets", nargs="*", default=["simple", "basic:test", "stdlib:test", "mbpp:test", "humaneval"], help="data specs")
    parser.add_argument("--corpus", help="corpus JSONL from `codegym build-corpus` (without it, only the templates are compared)")
    parser.add_argument("--no-behaviour", action="store_true", help="skip running template bodies against the tests")
    parser.add_argument("--details", help="write every match (JSON) to this file")
    args = parser.parse_args(list(argv) if argv is not None else None)

    from codegym.experiments.data import parse_spec
    from codegym.problems import load

    sets = {}
    for text in args.sets:
        spec = parse_spec(text)
        sets[text] = load(spec.source, split=spec.split)
    report = check(sets, args.corpus, behaviour=not args.no_behaviour)
    print("| set | problems | " + " | ".join(KEYS) + " |")
    print("|---|---|" + "---|" * len(KEYS))
    for name, r in report.items():
        print(f"| {name} | {r['problems']} | " + " | ".join(str(r[k]) for k in KEYS) + " |")
    if args.details:
        with open(args.details, "w") as fh:
            json.dump(report, fh, indent=1)
    print(json.dumps({name: {k: v for k, v in r.items() if k != "matches"} for name, r in report.items()} | {"corpus": args.corpus}))


if __name__ == "__main__":
    main()
