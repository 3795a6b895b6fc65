"""Build the bundled data sets: ``python -m codegym.data_gen.build_bundled [basic|stdlib|all]``.

- ``basic`` (`codegym/data/basic.jsonl.gz`): every template of `codegym.data_gen.templates`
  through the pipeline (license Apache-2.0, like codegym).
- ``stdlib`` (`codegym/data/stdlib.jsonl.gz`): functions mined from the standard library of the
  running Python (PSF-2.0) and from the installed packages whose license is permissive (PSF, MIT,
  BSD, Apache, ISC...), at most ``--per-package`` functions each, provenance in each problem's
  metadata. What gets mined depends on what is installed, so rebuilds elsewhere may differ.

Both are decontaminated against HumanEval and MBPP, and every reference is run against its tests
again in three fresh executors (failures are dropped). ``stdlib`` is split train/validation/test by a
hash of the task id; ``basic`` by template family (`family_splits`): a task's variants (``count_even``,
``count_odd``, ...) are all in one split, so the test split holds tasks no training problem is a
variant of. Work in
progress is kept in ``--work`` (default ``/tmp/codegym-build``): an interrupted build resumes.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import shutil
import sysconfig
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from codegym.data_gen.mine import PERMISSIVE_LICENSES, MinedFunction, MineOptions, Skipped, mine_source
from codegym.data_gen.pipeline import Options, collect, run
from codegym.data_gen.templates import Template, functions
from codegym.execution import Executor
from codegym.problems import load, write_jsonl

DATA = Path(__file__).resolve().parent.parent / "codegym" / "data"


def family_splits(templates: list[Template], splits: tuple[tuple[str, float], ...], seed: int = 0) -> dict[str, str]:
    """A split for every template family, so that all variants of a task land in the same split.

    Families differ a lot in size (one condition family has 178 instances, many have one), so a plain
    hash per family leaves the small splits anywhere between 2% and 20% of the problems. Instead the
    families, in an order fixed by a hash of ``seed`` and the family, fill the splits from the last
    (test) to the first (train), each up to its share of the instances.
    """
    sizes = Counter(t.family for t in templates)
    order = sorted(sizes, key=lambda f: hashlib.sha256(f"{seed}:{f}".encode()).hexdigest())
    total = sum(sizes.values())
    targets = [(name, share * total) for name, share in reversed(splits)]
    filled = Counter[str]()
    chosen: dict[str, str] = {}
    for family in order:
        name = next((n for n, target in targets[:-1] if filled[n] < target), targets[-1][0])
        chosen[family] = name
        filled[name] += sizes[family]
    return chosen


def template_functions(splits: tuple[tuple[str, float], ...], seed: int) -> Iterator[MinedFunction | Skipped]:
    """The template instances as mined functions, each in its family's split."""
    templates = list(functions())
    split = family_splits(templates, splits, seed)
    for name, source, family in templates:
        origin = {"file": f"templates/{name}.py", "package": "codegym.data_gen.templates", "license": "Apache-2.0",
                  "source": "codegym-templates", "family": family}  # fmt: skip
        for item in mine_source(source, origin, key_prefix=f"template:{name}"):
            yield replace(item, split=split[family]) if isinstance(item, MinedFunction) else item


def stdlib_sources() -> list[str]:
    """The standard library, then the installed packages (only permissive licenses are mined)."""
    return [sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"]]


def stdlib_functions(options: Options, per_package: int) -> Iterator[MinedFunction | Skipped]:
    """Every standard-library candidate, and at most ``per_package`` from each installed package
    (so that one big package does not make up the set)."""
    counts: Counter[str] = Counter()
    for item in collect(stdlib_sources(), options):
        if isinstance(item, MinedFunction):
            package = str(item.source.get("package") or "")
            if not package.startswith("stdlib:"):
                counts[package] += 1
                if counts[package] > per_package:
                    continue
        yield item


def gzip_to(source: Path, target: Path) -> None:
    """Compress ``source`` into ``target`` atomically (reproducibly: no name or time in the header)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as raw, source.open("rb") as fh:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
                shutil.copyfileobj(fh, gz)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def recheck(path: Path, workers: int | None, rounds: int = 3) -> tuple[int, int]:
    """Run every reference against its tests again in ``rounds`` fresh executors (fresh workers,
    fresh string-hash seeds) and drop the problems that fail once: results that depend on the
    iteration order of a set of strings can pass both runs of the confirm stage when they land in
    workers with the same hash seed. (kept, dropped)."""
    problems = load(str(path))
    kept = problems
    for i in range(rounds):
        with Executor(workers=workers) as executor:  # the comment keeps the executor's cache from answering
            results = executor.run_many([(p.reference_program() + f"\n# recheck {i}\n", p.tests) for p in kept])
        kept = [p for p, r in zip(kept, results) if r.passed]
    write_jsonl(kept, path)
    return len(kept), len(problems) - len(kept)


def build(name: str, work: Path, workers: int | None, max_functions: int | None, seed: int, per_package: int) -> None:
    work.mkdir(parents=True, exist_ok=True)
    out = work / f"{name}.jsonl"
    options = Options(max_functions=max_functions)
    options = replace(options, emit=replace(options.emit, task_prefix=name, seed=seed))
    if name == "basic":
        summary = run([], out, options, workers=workers, functions=template_functions(options.emit.splits, seed))
    else:
        options = replace(options, mine=MineOptions(licenses=PERMISSIVE_LICENSES))
        summary = run([], out, options, workers=workers, functions=stdlib_functions(options, per_package))
    kept, dropped = recheck(out, workers)
    gzip_to(out, DATA / f"{name}.jsonl.gz")
    data = summary.as_dict()
    print(f"{name}: {kept} problems -> {DATA / f'{name}.jsonl.gz'} in {data['seconds']:.0f}s "
          f"({dropped} dropped by the recheck in a fresh executor)")  # fmt: skip
    for reason, count in list(data["skipped"].items())[:25]:
        print(f"  skipped {count:6d}  {reason}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="?", default="all", choices=["basic", "stdlib", "all"])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "codegym-build")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--max-functions", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-package", type=int, default=150, help="most functions mined from one installed package")
    args = parser.parse_args(argv)
    for name in ("basic", "stdlib") if args.which == "all" else (args.which,):
        build(name, args.work, args.workers, args.max_functions, args.seed, args.per_package)


if __name__ == "__main__":
    main()
