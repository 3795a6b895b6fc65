"""Generated list-program problems with compositional held-out splits (ExeDec-style), deterministic in a seed.

Splits (names pinned by issue 23), all from one training distribution:

- ``train``: programs of `TRAIN_LENGTHS` steps; no pair of `HELDOUT_PAIRS` in one program; the
  new operation `NEW_OP` only as a program of one step. An endless stream of *levels*: level ``s``
  is a function of ``s`` (and the dataset seed), Procgen-style (`level`, `levels`).
- ``validation``, ``none``: i.i.d. programs of the training distribution with at least two steps
  (the one-step programs are few and all belong to training: they are the operations shown in isolation).
- ``length``: `LENGTH_SPLIT_LENGTHS` steps, more than any training program, otherwise as training.
- ``compose``: training lengths, with at least one pair of `HELDOUT_PAIRS` in the program; each
  operation of a pair occurs in training, never together with the other.
- ``new_op``: training lengths (at least two steps) using `NEW_OP`, which training shows only alone.

Hygiene (ExeDec, Shi et al. ICLR 2024): every parameter is used (no dead input); no step is
redundant (removing any set of steps changes the output on the probe inputs); a program of two or
more steps computes no function that a shorter program (one or two steps, all enumerated) computes
on the probes; the output is not constant. **Functional de-duplication**: a program's *fingerprint*
is its outputs on `PROBES`, a fixed set of inputs; no two problems of the held-out splits share one,
and a training level never has the fingerprint of a held-out problem (`heldout_fingerprints`).

Each problem is a `codegym.problems.Problem`: the prompt is a typed signature and a docstring with an
English description (one clause per step, several phrasings per operation, seeded choice) and three
doctest examples; the reference is idiomatic Python, one line per step; the tests are those three
examples plus at least five hidden inputs, covering the empty list, one element, duplicates and
negatives wherever the program is defined there, as ``assert solve(...) == VALUE`` (verdicts decided
outside the sandbox). Expected values come from the interpreter (`codegym.procgen.dsl.run`).
"""

from __future__ import annotations

import itertools
import random
import textwrap
from collections.abc import Iterator, Sequence
from functools import lru_cache

from codegym.problems import Problem
from codegym.procgen.dsl import INT_BOOL, INT_INT, OPS, Step, Value, dsl, needs_accumulate, params, python_body, run, step_phrases

__all__ = [
    "ENTRY_POINT", "HELDOUT_PAIRS", "HELDOUT_SIZES", "LENGTH_SPLIT_LENGTHS", "NEW_OP", "PROBES", "SPLITS", "TRAIN_LENGTHS",
    "TRAIN_SIZE", "fingerprint", "generate", "heldout", "heldout_fingerprints", "level", "levels", "parse", "problem",
    "sample_program",
]  # fmt: skip

SPLITS = ("train", "validation", "none", "length", "compose", "new_op")
ENTRY_POINT = "solve"
TRAIN_LENGTHS = {1: 0.10, 2: 0.35, 3: 0.55}  # steps → probability
LENGTH_SPLIT_LENGTHS = {4: 1.0}  # longer than any training program; 4 steps fit the 64 new tokens of training and evaluation
NEW_OP = "Scanl1"  # ExeDec's "compose new operation": training shows it only as a one-step program
HELDOUT_PAIRS = (frozenset({"Map", "Filter"}), frozenset({"Sort", "Take"}), frozenset({"ZipWith", "Maximum"}),
                 frozenset({"Drop", "Count"}), frozenset({"Reverse", "Access"}))  # fmt: skip
HELDOUT_SIZES = {"validation": 200, "none": 300, "length": 300, "compose": 300, "new_op": 300}
CONSTANTS = {"Take": (None, None, 2, 3), "Drop": (None, None, 1, 2), "Access": (None, None, 1, 2)}  # None: the parameter n
TRAIN_SIZE = 5000  # levels 0..TRAIN_SIZE-1 are `load("procgen", split="train")`; the stream itself is unlimited
HIDDEN_TESTS = 5
EXAMPLES = 3


# ---------------------------------------------------------------------------------------------
# Probes and fingerprints.


def _probes() -> tuple[tuple[list[int], list[int], int], ...]:
    rng = random.Random("codegym.procgen/probes")
    fixed = [([], [1, 2], 0), ([5], [-3], 1), ([3, -1, 3], [2, 2, 2], 2), ([-4, -7, 0, 2], [1], 3), ([2, 2, 2, 2], [0, -1, 5, 9], 1)]
    while len(fixed) < 24:
        xs = [rng.randint(-9, 9) for _ in range(rng.randint(1, 7))]
        ys = [rng.randint(-9, 9) for _ in range(rng.randint(0, 7))]
        fixed.append((xs, ys, rng.randint(0, max(0, len(xs) - 1))))
    return tuple(fixed)


PROBES = _probes()
"""The fixed inputs ``(xs, ys, n)`` on which programs are compared (fingerprints, hygiene)."""


def fingerprint(steps: Sequence[Step]) -> tuple[Value, ...]:
    """The program's outputs on `PROBES`: equal fingerprints mean the same function as far as we test."""
    return _fingerprint(tuple(steps))


@lru_cache(maxsize=1 << 18)
def _fingerprint(steps: tuple[Step, ...]) -> tuple[Value, ...]:
    return tuple(_freeze(run(steps, list(xs), list(ys), n)) for xs, ys, n in PROBES)


def _freeze(value: Value) -> Value:
    return tuple(value) if isinstance(value, list) else value  # type: ignore[return-value]


def _all_steps() -> list[Step]:
    steps = []
    for op in OPS.values():
        fns: Sequence[str | None] = op.lambdas or (None,)
        others: Sequence[str | None] = ("ys", "xs") if op.name == "ZipWith" else (None,)
        counts: Sequence[int | None] = CONSTANTS[op.name] if op.uses_n else (None,)
        steps += [Step(op.name, fn, other, k) for fn in fns for other in others for k in counts]
    return steps


ALL_STEPS = tuple(_all_steps())


def _valid(steps: Sequence[Step]) -> bool:
    return bool(steps) and all(not OPS[s.op].returns_int for s in steps[:-1]) and not (steps[0].other == "xs")


@lru_cache(maxsize=1)
def _short_fingerprints() -> dict[int, frozenset]:
    """Fingerprints of every valid program of one and of two steps (the minimality check)."""
    one = frozenset(fingerprint([s]) for s in ALL_STEPS if _valid([s]))
    two = frozenset(fingerprint([a, b]) for a in ALL_STEPS for b in ALL_STEPS if _valid([a, b]))
    return {1: one, 2: one | two}


def hygienic(steps: Sequence[Step]) -> bool:
    """ExeDec's hygiene on the probes: defined often enough, not constant, minimal (see the module docstring)."""
    if not _valid(steps):
        return False
    fp = fingerprint(steps)
    defined = [v for v in fp if v is not None]
    if len(defined) < len(fp) // 2 or len(set(defined)) < 3:
        return False
    shorter = _short_fingerprints()
    if len(steps) >= 2 and fp in shorter[min(len(steps) - 1, 2)]:
        return False
    for r in range(1, len(steps)):
        for removed in itertools.combinations(range(len(steps)), r):
            rest = [s for i, s in enumerate(steps) if i not in removed]
            if _valid(rest) and fingerprint(rest) == fp:
                return False
    return True


# ---------------------------------------------------------------------------------------------
# Sampling programs.


def _ops_of(steps: Sequence[Step]) -> set[str]:
    return {s.op for s in steps}


def _has_heldout_pair(steps: Sequence[Step]) -> bool:
    ops = _ops_of(steps)
    return any(pair <= ops for pair in HELDOUT_PAIRS)


def _in_split(steps: Sequence[Step], split: str) -> bool:
    """Whether a (hygienic) program belongs to ``split``'s distribution."""
    length, ops = len(steps), _ops_of(steps)
    if split == "compose":
        return length in TRAIN_LENGTHS and length >= 2 and _has_heldout_pair(steps) and NEW_OP not in ops
    if split == "new_op":
        return length in TRAIN_LENGTHS and length >= 2 and NEW_OP in ops and not _has_heldout_pair(steps)
    if _has_heldout_pair(steps) or (NEW_OP in ops and length > 1):
        return False
    if split == "length":
        return length in LENGTH_SPLIT_LENGTHS
    if split in ("validation", "none"):
        return length in TRAIN_LENGTHS and length >= 2
    return length in TRAIN_LENGTHS  # train


def _draw_length(rng: random.Random, split: str) -> int:
    weights = LENGTH_SPLIT_LENGTHS if split == "length" else TRAIN_LENGTHS
    lengths = [k for k in weights if split == "train" or split == "length" or k >= 2]
    return rng.choices(lengths, [weights[k] for k in lengths])[0]


def _draw_step(rng: random.Random, position: int, last: bool, split: str, length: int) -> Step:
    names = [n for n, op in OPS.items() if last or not op.returns_int]
    if split != "new_op" and not (split == "train" and length == 1):
        names = [n for n in names if n != NEW_OP]
    op = OPS[rng.choice(names)]
    fn = rng.choice(op.lambdas) if op.lambdas else None
    other = ("ys" if position == 0 else rng.choice(("ys", "xs"))) if op.name == "ZipWith" else None
    k = rng.choice(CONSTANTS[op.name]) if op.uses_n else None
    return Step(op.name, fn, other, k)


def sample_program(rng: random.Random, split: str) -> list[Step]:
    """A hygienic program of ``split``'s distribution (rejection sampling)."""
    if split not in SPLITS:
        raise ValueError(f"unknown procgen split {split!r}; choose one of {', '.join(SPLITS)}")
    length = _draw_length(rng, split)  # drawn once, so rejection keeps the length distribution
    while True:
        steps = [_draw_step(rng, i, i == length - 1, split, length) for i in range(length)]
        if split == "new_op" and NEW_OP not in _ops_of(steps):
            steps[rng.randrange(length - 1) if OPS[steps[-1].op].returns_int else rng.randrange(length)] = Step(NEW_OP, rng.choice(OPS[NEW_OP].lambdas))
        if split == "compose" and not _has_heldout_pair(steps):
            continue
        if _in_split(steps, split) and hygienic(steps):
            return steps


# ---------------------------------------------------------------------------------------------
# Problems: prompt, reference, tests.


def _random_list(rng: random.Random, low: int, high: int) -> list[int]:
    return [rng.randint(-9, 9) for _ in range(rng.randint(low, high))]


def _candidate_inputs(rng: random.Random) -> Iterator[tuple[str, list[int], list[int], int]]:
    """(kind, xs, ys, n): typical inputs first (they become the examples), then edge cases, then more random ones."""
    for _ in range(12):
        xs = _random_list(rng, 3, 6)
        yield "typical", xs, _random_list(rng, 2, 6), rng.randint(0, len(xs))
    yield "empty", [], _random_list(rng, 0, 3), 0
    for _ in range(3):
        yield "one element", [rng.randint(-9, 9)], _random_list(rng, 1, 3), rng.randint(0, 1)
    for _ in range(3):
        base = _random_list(rng, 2, 4)
        xs = base + [rng.choice(base) for _ in range(2)]
        rng.shuffle(xs)
        yield "duplicates", xs, _random_list(rng, 2, 6), rng.randint(0, len(xs))
    for _ in range(3):
        xs = [-rng.randint(1, 9) for _ in range(rng.randint(2, 5))] + [rng.randint(-9, 9)]
        rng.shuffle(xs)
        yield "negatives", xs, _random_list(rng, 2, 6), rng.randint(0, len(xs))
    for _ in range(20):
        xs = _random_list(rng, 0, 7)
        yield "random", xs, _random_list(rng, 0, 7), rng.randint(0, len(xs))


def _call(names: Sequence[str], xs: list[int], ys: list[int], n: int) -> str:
    values = {"xs": xs, "ys": ys, "n": n}
    return f"{ENTRY_POINT}({', '.join(repr(values[p]) for p in names)})"


def _tests(steps: Sequence[Step], rng: random.Random) -> tuple[list[tuple[str, Value]], list[tuple[str, Value]]] | None:
    """(examples, hidden): distinct calls with their outputs; None when the program is defined on too few inputs."""
    names = params(steps)
    accesses = any(s.op == "Access" for s in steps)
    seen: set[str] = set()
    examples: list[tuple[str, Value]] = []
    edges: dict[str, tuple[str, Value]] = {}
    extra: list[tuple[str, Value]] = []
    for kind, xs, ys, n in _candidate_inputs(rng):
        if accesses and xs:
            n = min(n, len(xs) - 1)  # an index the list may have
        call = _call(names, xs, ys, n)
        value = run(steps, xs, ys, n)
        if call in seen or value is None:
            continue
        seen.add(call)
        if kind == "typical":
            if len(examples) < EXAMPLES and all(value != v for _, v in examples):
                examples.append((call, value))
        elif kind != "random":
            edges.setdefault(kind, (call, value))
        elif len(extra) < HIDDEN_TESTS + 1:
            extra.append((call, value))
    hidden = [*edges.values(), *extra][: max(HIDDEN_TESTS + 1, len(edges) + 2)]
    if len(examples) < 2 or len(hidden) < HIDDEN_TESTS:
        return None
    return examples, hidden


def _describe(steps: Sequence[Step], rng: random.Random) -> str:
    """One English sentence (or a few) saying what the program does, clause by clause."""
    clauses = []
    for i, step in enumerate(steps):
        phrase = rng.choice(step_phrases(step))
        src = "xs" if i == 0 else rng.choice(("the result", "it", "the list"))
        clauses.append(phrase.format(src=src))
    if not OPS[steps[-1].op].returns_int:
        clauses[-1] += rng.choice((" and return the result", " and return the new list", ", then return it"))
    if len(clauses) == 1:
        text = clauses[0]
    else:
        style = rng.randrange(3)
        if style == 0:
            text = ", then ".join(clauses[:-1]) + ", and finally " + clauses[-1]
        elif style == 1:
            text = ". Then ".join(clauses)
        else:
            text = "First " + "; next ".join(clauses)
    text = text[0].upper() + text[1:]
    return text + "."


def _signature(steps: Sequence[Step]) -> str:
    hints = {"xs": "list[int]", "ys": "list[int]", "n": "int"}
    returns = "int" if OPS[steps[-1].op].returns_int else "list[int]"
    return f"def {ENTRY_POINT}({', '.join(f'{p}: {hints[p]}' for p in params(steps))}) -> {returns}:\n"


def problem(steps: Sequence[Step], rng: random.Random, task_id: str, split: str, **metadata: object) -> Problem | None:
    """The `Problem` for a program, or None when too few inputs define it (the caller draws another)."""
    tests = _tests(steps, rng)
    if tests is None:
        return None
    examples, hidden = tests
    description = textwrap.fill(_describe(steps, rng), width=92, initial_indent="    ", subsequent_indent="    ").lstrip()
    doc_examples = "".join(f"    >>> {call}\n    {value!r}\n" for call, value in examples)
    header = "from itertools import accumulate\n\n\n" if needs_accumulate(steps) else ""
    prompt = f'{header}{_signature(steps)}    """{description}\n\n{doc_examples}    """\n'
    tests_text = tuple(f"assert {call} == {value!r}" for call, value in [*examples, *hidden])
    return Problem(
        task_id=task_id, prompt=prompt, entry_point=ENTRY_POINT, tests=tests_text, reference=prompt + python_body(steps),
        split=split,
        metadata={"source": "procgen", "program": dsl(steps), "length": len(steps), "operations": [s.op for s in steps],
                  "split": split, "examples": len(examples), **metadata},
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Held-out splits and training levels.


def _rng(*parts: object) -> random.Random:
    return random.Random("/".join(map(str, ("codegym.procgen", *parts))))


@lru_cache(maxsize=4)
def _heldout(seed: int) -> dict[str, tuple[Problem, ...]]:
    splits: dict[str, tuple[Problem, ...]] = {}
    taken: set[tuple] = set()
    for split, size in HELDOUT_SIZES.items():
        chosen: list[Problem] = []
        index = 0
        while len(chosen) < size:
            rng = _rng(seed, split, index)
            index += 1
            steps = sample_program(rng, split)
            fp = fingerprint(steps)
            if fp in taken:
                continue
            made = problem(steps, rng, f"procgen/{split}/{len(chosen)}", split)
            if made is not None:
                taken.add(fp)
                chosen.append(made)
        splits[split] = tuple(chosen)
    return splits


def heldout(split: str, seed: int = 0) -> list[Problem]:
    """The problems of a held-out split (validation, none, length, compose, new_op)."""
    if split not in HELDOUT_SIZES:
        raise ValueError(f"{split!r} is not a held-out procgen split; choose one of {', '.join(HELDOUT_SIZES)}")
    return list(_heldout(seed)[split])


SHIPPED = "procgen.jsonl.gz"
"""The dataset of seed 0 as shipped in ``codegym/data/`` (built by ``python -m codegym.procgen``), so
loading takes a fraction of a second instead of generating (≈ 30 s); `codegym.problems` registers it as ``procgen``."""


@lru_cache(maxsize=1)
def _shipped() -> dict[str, tuple[Problem, ...]]:
    from codegym.problems import load as load_source

    by_split: dict[str, list[Problem]] = {}
    for p in load_source("procgen"):
        by_split.setdefault(p.split or "", []).append(p)
    return {k: tuple(v) for k, v in by_split.items()}


def _from_file(seed: int) -> bool:
    from importlib import resources

    return seed == 0 and resources.files("codegym").joinpath("data", SHIPPED).is_file()


@lru_cache(maxsize=4)
def heldout_fingerprints(seed: int = 0) -> frozenset:
    """The fingerprints of every held-out problem: no training level computes one of these functions."""
    splits = {s: _shipped()[s] for s in HELDOUT_SIZES} if _from_file(seed) else _heldout(seed)
    return frozenset(fingerprint(_steps_of(p)) for problems in splits.values() for p in problems)


def _steps_of(p: Problem) -> list[Step]:
    return parse(p.metadata["program"])


def parse(program: str) -> list[Step]:
    """The steps of a DSL program (`codegym.procgen.dsl.dsl`'s form)."""
    steps = []
    for part in program.split(" | ")[1:]:
        name, _, rest = part.partition("(")
        args = [a.strip() for a in rest.rstrip(")").split(",") if a.strip() and a.strip() != "n"]
        k = next((int(a) for a in args if a.isdigit()), None)
        fn = next((a for a in args if a not in ("ys", "xs") and not a.isdigit()), None)
        other = next((a for a in args if a in ("ys", "xs")), None)
        steps.append(Step(name, fn, other, k))
    return steps


@lru_cache(maxsize=20_000)
def level(seed: int, dataset_seed: int = 0) -> Problem:
    """Training level ``seed``: a problem of the training distribution that is no held-out function."""
    if seed < 0:
        raise ValueError(f"level seeds are non-negative, got {seed}")
    rng = _rng(dataset_seed, "train", seed)
    banned = heldout_fingerprints(dataset_seed)
    while True:
        steps = sample_program(rng, "train")
        if fingerprint(steps) in banned:
            continue
        made = problem(steps, rng, f"procgen/train/{seed}", "train", level=seed)
        if made is not None:
            return made


def levels(num_levels: int, start_level: int = 0, dataset_seed: int = 0) -> list[Problem]:
    """``num_levels`` training problems computing distinct functions: levels ``start_level``, ``start_level + 1``, ...,
    skipping a level whose function an earlier one of the list already computes (so the tasks are distinct)."""
    if num_levels < 1:
        raise ValueError("num_levels must be at least 1 here (0, the unlimited stream, is drawn level by level)")
    if start_level == 0 and num_levels <= TRAIN_SIZE and _from_file(dataset_seed):
        return list(_shipped()["train"][:num_levels])
    chosen: list[Problem] = []
    seen: set[tuple] = set()
    seed = start_level
    while len(chosen) < num_levels:
        p = level(seed, dataset_seed)
        seed += 1
        fp = fingerprint(_steps_of(p))
        if fp not in seen:
            seen.add(fp)
            chosen.append(p)
    return chosen


def generate(seed: int = 0) -> list[Problem]:
    """Every split of the dataset of ``seed``, generated (not read from the shipped file): the first `TRAIN_SIZE`
    distinct training levels, then the held-out splits in the order of `HELDOUT_SIZES`."""
    held = _heldout(seed)
    banned = frozenset(fingerprint(_steps_of(p)) for problems in held.values() for p in problems)
    train: list[Problem] = []
    seen: set[tuple] = set()
    index = 0
    while len(train) < TRAIN_SIZE:
        rng = _rng(seed, "train", index)
        while True:
            steps = sample_program(rng, "train")
            if fingerprint(steps) in banned:
                continue
            made = problem(steps, rng, f"procgen/train/{index}", "train", level=index)
            if made is not None:
                break
        index += 1
        fp = fingerprint(steps)
        if fp not in seen:
            seen.add(fp)
            train.append(made)
    return train + [p for s in HELDOUT_SIZES for p in held[s]]


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m codegym.procgen --out codegym/data/procgen.jsonl.gz``: write the dataset of a seed."""
    import argparse
    import gzip
    import json

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", required=True, help="codegym JSONL(.gz) file to write")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (the shipped file is seed 0)")
    args = parser.parse_args(argv)
    problems = generate(args.seed)
    lines = "".join(json.dumps(p.to_dict(), ensure_ascii=False) + "\n" for p in problems).encode()
    if args.out.endswith(".gz"):
        with open(args.out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as fh:
            fh.write(lines)
    else:
        with open(args.out, "wb") as fh:
            fh.write(lines)
    counts = {s: sum(p.split == s for p in problems) for s in SPLITS}
    print(json.dumps({"out": args.out, "seed": args.seed, **counts}))

