"""Mutation testing of the modules whose arithmetic decides results, with mutmut.

For each module in ``mutation.toml`` (beside this file) mutmut makes small faults (an operator, a
constant, a comparison, a returned value) one at a time and runs the module's focused tests against
each: a *killed* mutant made a test fail, a *survivor* did not, so no test notices that fault. The
score is killed / mutants. Survivors are printed with their diffs; each must be killed by a new test
or be equivalent (the same behaviour, e.g. a change to a message no caller reads), as
``experiments/RESULTS.md`` records.

mutmut finds a module by its file path (``codegym/agents/passk.py`` is module
``codegym.agents.passk``), but codegym installs the top-level folders ``agents/``, ``envs/``,
``data_gen/`` and ``experiments/`` as ``codegym.*`` subpackages. So the script first lays the package
out as it is installed, in a scratch directory (``codegym/`` with those folders inside it, plus
``tests/``), writes mutmut's configuration there and runs ``mutmut run`` in it; the repository is
never modified. mutmut imports the package and the tests once and forks a child per mutant that
runs only the selected tests that reach the mutated function.

Not part of CI: CPU heavy (run it under ``nice``). Ends with one JSON line: per module ``mutants``,
``killed``, ``survived`` and ``score``, and the date, machine and load.

    nice -n 10 python -m codegym.experiments.benchmarks.mutation [--jobs 2] [--keep DIR] [--only codegym/rewards.py]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None  # type: ignore[assignment]

CONFIG = Path(__file__).with_name("mutation.toml")
REPO = Path(__file__).resolve().parents[2]
SUBPACKAGES = {"agents": "agents", "envs": "envs", "data_gen": "data_gen", "experiments": "experiments"}
"""Repository folder -> its name inside the installed ``codegym`` package."""

DETECTED = {"killed", "timeout", "segfault", "caught by type check"}
"""mutmut statuses that count as killed: a test failed, hung or crashed on the mutant."""


def installed_path(repo_path: str) -> str:
    """``agents/passk.py`` -> ``codegym/agents/passk.py`` (the path that names its module)."""
    top, _, rest = repo_path.partition("/")
    return f"codegym/{SUBPACKAGES[top]}/{rest}" if top in SUBPACKAGES else repo_path


def lay_out(tree: Path) -> None:
    """The package as installed (``codegym/`` with the subpackages inside) and the tests, under ``tree``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")
    shutil.copytree(REPO / "codegym", tree / "codegym", ignore=ignore)
    for folder, name in SUBPACKAGES.items():
        shutil.copytree(REPO / folder, tree / "codegym" / name, ignore=ignore)
    shutil.copytree(REPO / "tests", tree / "tests", ignore=ignore)
    (tree / "mutation_signatures.py").write_text(SIGNATURES_PLUGIN)


SIGNATURES_PLUGIN = '''"""pytest plugin of the scratch tree: mutmut's trampolines keep the signature of the function they wrap.

mutmut replaces each mutated function by a ``(*args, **kwargs)`` trampoline; `codegym.rewards`
reads a reward's signature (``inspect.signature(fn, follow_wrapped=False)``) to tell the one- and
three-argument shapes apart, so without this every preset would look like the three-argument shape.
"""

import inspect

import mutmut.mutation.trampoline as trampoline

_wrap = trampoline.wrap_in_trampoline


def wrap_in_trampoline(mutants_dict, is_classmethod=False):
    decorate = _wrap(mutants_dict, is_classmethod)

    def keep_signature(func):
        wrapper = decorate(func)
        wrapper.__signature__ = inspect.signature(func)
        return wrapper

    return keep_signature


trampoline.wrap_in_trampoline = wrap_in_trampoline
'''


def mutmut_config(modules: dict[str, list[str]]) -> str:
    """The ``pyproject.toml`` of the scratch tree: pytest's options and mutmut's."""

    def toml_list(items: list[str]) -> str:
        return "[" + ", ".join(json.dumps(i) for i in items) + "]"

    tests = sorted({t for selection in modules.values() for t in selection})
    return "\n".join(
        [
            "[tool.pytest.ini_options]",
            'testpaths = ["tests"]',
            "timeout = 300",
            "",
            "[tool.mutmut]",
            f"source_paths = {toml_list([installed_path(m) for m in modules])}",
            'also_copy = ["codegym", "mutation_signatures.py"]',
            f"pytest_add_cli_args_test_selection = {toml_list(tests)}",
            'pytest_add_cli_args = ["-x", "-q", "-p", "no:cacheprovider", "-p", "mutation_signatures"]',
            "",
        ]
    )


def statuses(tree: Path, module: str) -> dict[str, str]:
    """mutant name -> mutmut status, from the run's record of ``module``."""
    from mutmut.stats import status_by_exit_code

    meta = tree / "mutants" / f"{installed_path(module)}.meta"
    if not meta.exists():
        return {}
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    return {name: status_by_exit_code[code] for name, code in codes.items()}


def load() -> str:
    return " ".join(os.getloadavg().__repr__().strip("()").split(", "))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--keep", type=Path, help="lay the tree out in this directory and keep it (default: a temporary one, removed)")
    parser.add_argument("--only", action="append", help="a module of mutation.toml to test (repeatable; default all)")
    args = parser.parse_args(argv)
    if tomllib is None:
        parser.error("needs Python 3.11+ (tomllib) to read mutation.toml")
    if shutil.which("mutmut") is None and not (Path(sys.executable).parent / "mutmut").exists():
        parser.error("mutmut is not installed: pip install -c constraints.txt -e '.[dev]'")
    modules = {m: spec["tests"] for m, spec in tomllib.loads(CONFIG.read_text())["modules"].items()}
    if args.only:
        unknown = sorted(set(args.only) - set(modules))
        if unknown:
            parser.error(f"not in mutation.toml: {', '.join(unknown)}; choose from {', '.join(modules)}")
        modules = {m: t for m, t in modules.items() if m in args.only}
    tree = args.keep or Path(tempfile.mkdtemp(prefix="codegym-mutation-"))
    if args.keep and tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True, exist_ok=True)
    load_before = load()
    try:
        lay_out(tree)
        (tree / "pyproject.toml").write_text(mutmut_config(modules))
        mutmut = shutil.which("mutmut") or str(Path(sys.executable).parent / "mutmut")
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        print(f"mutmut run in {tree} ({len(modules)} modules)", file=sys.stderr, flush=True)
        run = subprocess.run([mutmut, "run", "--max-children", str(args.jobs)], cwd=tree, env=env)
        if run.returncode not in (0, 2, 4, 8) and not (tree / "mutants").exists():
            print(f"mutmut failed (exit {run.returncode})", file=sys.stderr)
            return 1
        report: dict[str, dict[str, object]] = {}
        for module in modules:
            found = statuses(tree, module)
            killed = sum(s in DETECTED for s in found.values())
            survivors = sorted(n for n, s in found.items() if s not in DETECTED)
            report[module] = {"mutants": len(found), "killed": killed, "survived": len(survivors), "score": round(killed / len(found), 3) if found else None}
            for name in survivors:
                shown = subprocess.run([mutmut, "show", name], cwd=tree, env=env, capture_output=True, text=True)
                print(f"--- survivor ({found[name]}) {name}\n{shown.stdout.strip()}\n", file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(tree, ignore_errors=True)
    from codegym.calibration import machine

    line = {"bench": "mutation", "modules": report, "date": datetime.date.today().isoformat(), "machine": machine(), "load_before": load_before, "load_after": load()}
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
