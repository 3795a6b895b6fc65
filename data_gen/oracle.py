"""Stage 3, oracle (with the guided search that feeds it): run the reference in the sandbox.

For each function, rounds of inputs go to the sandbox (`codegym.data_gen.harness`), one job per
function per round, the functions of a batch side by side on all workers
(`Executor.evaluate_many`). A round returns, per input, the reference's result (called twice; a
disagreement drops the input as flaky), the arcs it executed, and which live mutants it kills.
The next round mutates the inputs that reached new arcs or killed new mutants, and the inputs that
reach the line of a mutant still alive (so the fault gets a chance to show); it stops when
``patience`` rounds in a row bring nothing new, every mutant is dead and every branch covered, or
after ``rounds`` rounds. A
last round shrinks the inputs a preliminary selection would keep, so that tests stay small.

After the rounds comes the **branch-directed stage**, spent only on functions at risk of being
dropped (a single result so far, or branch coverage below ``hunt_below``): a Hypothesis search in the sandbox
(strategies from the inferred types, full-Unicode text, structured collections, and the body's
operands: string literals, separators, prefixes, regexes via ``from_regex``, numbers around
constants), every call traced, keeping inputs that reach a missing outcome or a new result; then,
with ``symbolic``, CrossHair's symbolic path cover on what is still missing. The inputs found go
through one ordinary round, so they are checked for determinism and scored on the mutants like any
other. Why Hypothesis by default and CrossHair as an option: Hypothesis costs about a tenth of a
second per function and finds what the operands point at (prefixes, regex matches, repeated
halves); CrossHair also solves arithmetic conditions (``x * 3 == 2962962963``) but costs seconds per
function, too much for the default ≥ 20 functions/s.

Only results that can be written as literal asserts become `Case` s: returned builtin values,
exception type names, and arguments changed in place. Timeouts, non-builtin results, huge outputs,
flaky results and ``TypeError``/``AttributeError`` on generated inputs (the input's fault, unless
the function raises them itself) are counted in ``dropped`` instead.
"""

from __future__ import annotations

import ast
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codegym.data_gen.branches import BranchPoint, branch_points, covered_outcomes
from codegym.data_gen.inputs import InputGenerator, InputOptions, TypeSpec, to_literal, unique
from codegym.data_gen.mine import MinedFunction, Skipped
from codegym.data_gen.mutate import Mutant, MutateOptions, mutant_set
from codegym.execution import EvalResult, Executor

__all__ = ["Case", "ExploreOptions", "Explored", "explore"]

HARNESS = Path(__file__).with_name("harness.py").read_text(encoding="utf-8")
_INPUT_ERRORS = ("TypeError", "AttributeError")
"""Exceptions that say the generated input had the wrong type, not what the function does: such
cases are dropped unless the function raises that exception itself (``raise TypeError(...)``)."""


@dataclass(frozen=True)
class ExploreOptions:
    """Search settings.

    rounds: guided rounds after the first; patience: rounds in a row without a new arc or kill
    before giving up; hunt: run the branch-directed search (Hypothesis, in the sandbox) on functions
    that returned one constant so far or whose inputs cover less than ``hunt_below`` of the branch
    outcomes (above 1: every function that misses one), ``hunt_examples`` calls each (Hypothesis
    derandomized, so the same inputs every run; ``hunt_seconds`` of CPU time is only a safety
    net), ``hunt_group`` functions per sandbox job (one import of Hypothesis for all of them);
    symbolic: then run CrossHair (symbolic execution over z3; ``pip install 'codegym[crosshair]'``)
    for ``symbolic_seconds`` on what is still uncovered: it reaches branches no sampling does
    (``x == 987654321``) but costs seconds per function, so it is off by default (and its search is
    bounded by wall-clock time, so what it finds may vary between runs); budget: seconds one reference call may take;
    job_timeout: wall-clock limit of one round of one function; max_output: longest ``repr`` of a
    result kept as a test; max_kills: inputs tried on a mutant after it is killed (a few killers
    per mutant let the selection choose; all of them would cost a call per input); batch: functions explored side by side; shrink: run the shrinking round.
    """

    rounds: int = 3
    patience: int = 1
    hunt: bool = True
    hunt_examples: int = 40
    hunt_seconds: float = 2.0
    hunt_group: int = 8
    hunt_below: float = 0.5
    symbolic: bool = False
    symbolic_seconds: float = 2.0
    budget: float = 0.1
    job_timeout: float = 30.0
    max_output: int = 1000
    max_kills: int = 3
    batch: int = 32
    shrink: bool = True
    seed: int = 0
    inputs: InputOptions = field(default_factory=InputOptions)
    mutate: MutateOptions = field(default_factory=MutateOptions)


@dataclass
class Case:
    """One input and what the reference did with it.

    ``result`` is ``("ok", value, args_after_or_None, seconds)`` or ``("raise", exception_name)``;
    ``outcomes`` the branch outcomes it covered; ``kills`` the mutants it is known to kill.
    """

    args: tuple[Any, ...]
    result: tuple[Any, ...]
    arcs: frozenset[tuple[int, int]]
    outcomes: frozenset[tuple[int, bool]]
    kills: set[int] = field(default_factory=set)
    origin: str = "search"
    """Which stage made the input: ``search`` (examples, types, literals, random, guided mutation),
    ``operand`` (operand-aware values), or the branch-directed stage's ``hypothesis`` or
    ``crosshair``."""


@dataclass
class Explored:
    """A function with its mutants and every usable case found for it."""

    function: MinedFunction
    mutants: list[Mutant]
    points: list[BranchPoint]
    cases: list[Case]
    dropped: Counter[str]
    failed: list[tuple[Any, ...]] = field(default_factory=list)
    """A few inputs that gave no usable result (for the report)."""
    same_bytecode: int = 0
    """Mutants dropped because they compile to the original's bytecode (trivially equivalent)."""
    hunt: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The branch-directed stage, per engine that ran: outcomes wanted and reached, inputs found,
    examples (Hypothesis) or paths (CrossHair), CPU seconds in the sandbox (left out of the
    emitted metadata, which must not vary between runs)."""

    @property
    def killed(self) -> set[int]:
        return set().union(*(c.kills for c in self.cases)) if self.cases else set()

    def uncovered(self, cases: Iterable[Case] | None = None) -> list[dict[str, Any]]:
        """The branch outcomes ``cases`` (default: every case found) never reached, each as
        ``{"line", "taken", "test"}`` (the decision's first line and source)."""
        cases = self.cases if cases is None else cases
        seen = set().union(*(c.outcomes for c in cases)) if cases else set()
        lines = self.function.program.splitlines()
        return [
            {"line": p.first, "taken": taken, "test": lines[p.first - 1].strip()[:120] if p.first <= len(lines) else ""}
            for i, p in enumerate(self.points) for taken in (True, False) if (i, taken) not in seen
        ]  # fmt: skip

    def facts(self, cases: Iterable[Case] | None = None) -> dict[str, Any]:
        """What ``generate-data --report`` says about a function it skipped."""
        tried = len(self.cases) + sum(self.dropped.values())
        return {
            "uncovered": self.uncovered(cases),
            "inputs_tried": tried,
            "inputs_dropped": dict(self.dropped.most_common()),
            "inputs": [to_literal(c.args) for c in self.cases[:8]] + [to_literal(a) for a in self.failed[:4]],
            "results": dict(Counter(c.result[0] if c.result[0] == "ok" else f"raise {c.result[1]}" for c in self.cases)),
            "mutants": len(self.mutants),
            "mutants_killed": len(self.killed),
            "branch_directed": self.hunt,
        }


@dataclass
class _State:
    explored: Explored
    generator: InputGenerator
    arcs: set[tuple[int, int]] = field(default_factory=set)
    pending: list[tuple[Any, ...]] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)
    rounds: int = 0
    idle: int = 0
    done: bool = False
    raises: frozenset[str] = frozenset()


def _job(state: _State, options: ExploreOptions) -> tuple[str, list[str]]:
    fn = state.explored.function
    sources = [state.explored.mutants[i].program for i in state.targets]
    inputs = "[" + ", ".join(to_literal(a) or "()" for a in state.pending) + "]"
    # a function that already timed out a few times gets a tenth of the budget from now on
    budget = options.budget if state.explored.dropped["timeout"] < 3 else options.budget / 10
    program = (
        HARNESS
        + f"\n_cg_args = ({fn.program!r}, {fn.entry!r}, {inputs}, {sources!r}, {budget!r}, {options.max_output!r}, {options.max_kills!r})\n"
    )
    return program, ["_cg_round(*_cg_args)"]


def _payload(result: EvalResult) -> dict[str, Any] | None:
    if result.outcome != "ok" or not result.values or result.values[0].status != "ok":
        return None
    value = result.values[0].value
    return value if isinstance(value, dict) and {"results", "arcs", "kills"} <= set(value) else None


def _absorb(state: _State, payload: dict[str, Any]) -> tuple[bool, list[int]]:
    """Add a round's results to the state; (progress made?, indices of the new cases)."""
    explored = state.explored
    progress = False
    new_cases: list[int] = []
    index_of: dict[int, int] = {}
    for i, (args, result, arcs) in enumerate(zip(state.pending, payload["results"], payload["arcs"])):
        tag = result[0] if result else "malformed"
        why = None
        if tag not in ("ok", "raise"):
            why = tag
        elif tag == "raise" and result[1] in _INPUT_ERRORS and result[1] not in state.raises:
            why = "ill-typed input"
        elif tag == "ok" and (to_literal(result[1]) is None or result[2] is not None and to_literal(result[2]) is None):
            why = "not a literal"
        if why is not None:
            explored.dropped[why] += 1
            if len(explored.failed) < 4:
                explored.failed.append(tuple(args))
            continue
        arc_set = frozenset(tuple(a) for a in arcs)
        if not arc_set <= state.arcs:
            progress = True
            state.arcs |= arc_set
            new_cases.append(len(explored.cases))
        index_of[i] = len(explored.cases)
        origin = state.generator.origins.get(to_literal(tuple(args)) or "", "search")
        outcomes = frozenset(covered_outcomes(explored.points, arc_set))
        explored.cases.append(Case(tuple(args), tuple(result), arc_set, outcomes, origin=origin))
    already = explored.killed
    for mutant, killed in zip(state.targets, payload["kills"]):
        hits = list(index_of.values()) if killed == "invalid" else [index_of[k] for k in killed if k in index_of]
        for case in hits:
            explored.cases[case].kills.add(mutant)
        if hits and mutant not in already:
            progress = True
            new_cases.append(hits[0])
    return progress, sorted(set(new_cases))


def _next_round(state: _State, options: ExploreOptions, progress: bool, fresh: list[int]) -> None:
    """Choose the next inputs (or finish): mutate novel cases and cases reaching live mutants."""
    explored = state.explored
    alive = [i for i in range(len(explored.mutants)) if i not in explored.killed]
    n_outcomes = 2 * len(explored.points)
    covered = set().union(*(c.outcomes for c in explored.cases)) if explored.cases else set()
    state.rounds += 1
    state.idle = 0 if progress else state.idle + 1
    if state.rounds > options.rounds or state.idle >= options.patience or (not alive and len(covered) == n_outcomes):
        state.done = True
        return
    cases = explored.cases
    parents = [cases[i].args for i in fresh]
    lines = {explored.mutants[i].line for i in alive}
    reaching = [c.args for c in cases if any(dest in lines for _, dest in c.arcs)]
    parents += reaching[:: max(1, len(reaching) // 16)]
    if not parents:
        parents = [c.args for c in cases]
    seen = {to_literal(c.args) for c in cases}
    state.pending = [a for a in state.generator.evolve(parents) if to_literal(a) not in seen]
    state.targets = alive
    if not state.pending:
        state.done = True


def _split_retry(executor: Executor, state: _State, options: ExploreOptions) -> dict[str, Any] | None:
    """A round whose job died (a hang in C code, a crash): reference alone, then each mutant alone."""
    targets = state.targets
    state.targets = []
    alone = _payload(executor.evaluate_many([_job(state, options)], timeout=options.job_timeout)[0])
    if alone is None:
        return None
    kills: list[Any] = []
    if targets:
        jobs = []
        for mutant in targets:
            state.targets = [mutant]
            jobs.append(_job(state, options))
        for result in executor.evaluate_many(jobs, timeout=options.job_timeout):
            payload = _payload(result)
            kills.append(payload["kills"][0] if payload else "invalid")
    state.targets = targets
    alone["kills"] = kills
    return alone


def _start(function: MinedFunction, options: ExploreOptions) -> _State | Skipped:
    try:
        found, same_bytecode = mutant_set(function.program, function.entry, function.lines, options.mutate)
        points = branch_points(function.program, function.entry)
        generator = InputGenerator.of(function.program, function.entry, function.docstring, options.inputs, options.seed)
    except Exception as exc:  # odd code must cost one function, never the run
        return Skipped(function.key, "inputs", "cannot analyse", f"{type(exc).__name__}: {exc}"[:200])
    if not generator.params:
        return Skipped(function.key, "inputs", "no parameters")
    state = _State(Explored(function, found, points, [], Counter(), same_bytecode=same_bytecode), generator,
                   raises=_raised_names(function))  # fmt: skip
    state.pending = generator.initial()
    state.targets = list(range(len(found)))
    return state


def _raised_names(function: MinedFunction) -> frozenset[str]:
    """Exception names the program raises explicitly (``raise TypeError(...)``)."""
    names = set()
    for node in ast.walk(ast.parse(function.program)):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name):
                names.add(target.id)
    return frozenset(names)


def _wants_hunt(explored: Explored, options: ExploreOptions) -> bool:
    """Whether the branch-directed stage is worth its cost here: the function has returned one
    result so far, or its inputs cover less than ``hunt_below`` of the branch outcomes."""
    if _constant(explored):
        return True
    if not explored.points:
        return False
    return 1 - len(explored.uncovered()) / (2 * len(explored.points)) < options.hunt_below


def _constant(explored: Explored) -> bool:
    """Every usable result so far is the same returned value (the function looks trivial)."""
    return len({(to_literal(c.result[1]), to_literal(c.result[2])) if c.result[0] == "ok" else c.result[1]
                for c in explored.cases}) < 2  # fmt: skip


def _spec(spec: TypeSpec) -> tuple[str, list[Any], bool]:
    return (spec.kind, [_spec(a) for a in spec.args], spec.variadic)


def _hunt_args(state: _State, options: ExploreOptions) -> tuple[Any, ...]:
    explored, generator = state.explored, state.generator
    outcomes = set().union(*(c.outcomes for c in explored.cases))
    wanted = [[i, taken] for i in range(len(explored.points)) for taken in (True, False) if (i, taken) not in outcomes]
    ops = generator.operands
    strings = sorted(set(generator.strings) | set(ops.prefixes) | set(ops.suffixes) | set(ops.parts))
    numbers = [n for n in generator.numbers if isinstance(n, int)][:24] + list(ops.lengths)
    points = [[p.first, p.last, p.target] for p in explored.points]
    known = sorted({repr((c.result[1], c.result[2]))[:200] if c.result[0] == "ok" else "raise " + c.result[1]
                    for c in explored.cases})  # fmt: skip
    args = (explored.function.program, explored.function.entry, [_spec(t) for t in generator.types], strings, numbers,
            list(ops.patterns), points, wanted, known, options.hunt_examples, options.hunt_seconds, options.budget,
            options.seed)  # fmt: skip
    return args


def _symbolic_args(state: _State, options: ExploreOptions) -> tuple[Any, ...]:
    function = state.explored.function
    return (function.program, function.entry, [_spec(t) for t in state.generator.types], options.symbolic_seconds)


_ENGINES = {"hypothesis": ("_cg_hunt_many", _hunt_args), "crosshair": ("_cg_symbolic_many", _symbolic_args)}


def _hunt_round(states: Sequence[_State], executor: Executor, options: ExploreOptions) -> None:
    """Branch-directed stage: for each function that still misses branch outcomes (or has returned
    one constant so far), Hypothesis and then, if ``symbolic``, CrossHair on what is still missing."""
    _engine_round(states, executor, options, "hypothesis")
    if options.symbolic:
        _engine_round([s for s in states if s.explored.uncovered()], executor, options, "crosshair")


def _engine_round(states: Sequence[_State], executor: Executor, options: ExploreOptions, engine: str) -> None:
    """One engine of the branch-directed stage, in the sandbox (``hunt_group`` functions per job),
    then one ordinary round (reference, arcs, mutants) on the inputs it found. Records in
    ``explored.hunt[engine]``: outcomes wanted and reached, inputs found, examples or paths, CPU s."""
    if not states:
        return
    call, make_args = _ENGINES[engine]
    groups = [states[i : i + options.hunt_group] for i in range(0, len(states), options.hunt_group)]
    jobs = [(HARNESS + f"\n_cg_args = {[make_args(s, options) for s in group]!r}\n", [f"{call}(_cg_args)"])
            for group in groups]  # fmt: skip
    values: list[Any] = []
    for group, result in zip(groups, executor.evaluate_many(jobs, timeout=options.job_timeout)):
        ok = result.outcome == "ok" and result.values and result.values[0].status == "ok"
        value = result.values[0].value if ok else None
        values += value if isinstance(value, list) and len(value) == len(group) else [result.outcome] * len(group)
    owners, wanted = [], {}
    for state, value in zip(states, values):
        wanted[id(state)] = len(state.explored.uncovered())
        record: dict[str, Any] = {"wanted": wanted[id(state)], "reached": 0}
        state.explored.hunt[engine] = record
        if not isinstance(value, dict):
            record["error"] = str(value)[:100]
            continue
        seen = {to_literal(c.args) for c in state.explored.cases}
        found = [a for a in unique([tuple(a) for a in value["found"]]) if to_literal(a) not in seen]
        record.update({k: value[k] for k in ("examples", "paths", "results") if k in value})
        record.update(inputs=len(found), seconds=round(value["seconds"], 4))
        for args in found:
            state.generator.origins[to_literal(args) or ""] = engine
        if found:
            state.pending = found
            state.targets = [i for i in range(len(state.explored.mutants)) if i not in state.explored.killed]
            owners.append(state)
    for state, result in zip(owners, executor.evaluate_many([_job(s, options) for s in owners], timeout=options.job_timeout)):
        payload = _payload(result)
        if payload is not None:
            _absorb(state, payload)
            state.explored.hunt[engine]["reached"] = wanted[id(state)] - len(state.explored.uncovered())


def _shrink_round(states: Sequence[_State], executor: Executor, options: ExploreOptions) -> None:
    from codegym.data_gen.select import SelectOptions, greedy

    jobs, owners = [], []
    for state in states:
        explored = state.explored
        chosen = greedy(explored, SelectOptions())
        seen = {to_literal(c.args) for c in explored.cases}
        candidates = [a for i in chosen for a in state.generator.shrink(explored.cases[i].args)]
        state.pending = [a for a in unique(candidates) if to_literal(a) not in seen][:32]
        state.targets = sorted(explored.killed)
        if state.pending:
            jobs.append(_job(state, options))
            owners.append(state)
    for state, result in zip(owners, executor.evaluate_many(jobs, timeout=options.job_timeout)):
        payload = _payload(result)
        if payload is not None:
            _absorb(state, payload)


def explore(
    functions: Iterable[MinedFunction | Skipped], executor: Executor, options: ExploreOptions = ExploreOptions()
) -> Iterator[Explored | Skipped]:
    """Run the guided search for each function; `Skipped` records pass through unchanged."""
    stream = iter(functions)
    while True:
        batch = list(itertools.islice(stream, options.batch))
        if not batch:
            return
        states: list[_State] = []
        for item in batch:
            if isinstance(item, Skipped):
                yield item
                continue
            started = _start(item, options)
            if isinstance(started, Skipped):
                yield started
            else:
                states.append(started)
        yield from _explore_batch(states, executor, options)


def _explore_batch(states: list[_State], executor: Executor, options: ExploreOptions) -> Iterator[Explored | Skipped]:
    failed: dict[int, Skipped] = {}
    while True:
        active = [s for s in states if not s.done and id(s) not in failed]
        if not active:
            break
        results = executor.evaluate_many([_job(s, options) for s in active], timeout=options.job_timeout)
        for state, result in zip(active, results):
            payload = _payload(result) or _split_retry(executor, state, options)
            if payload is None:
                if state.rounds == 0:
                    reason = "hangs" if result.outcome == "timeout" else "crashes at import or in the harness"
                    failed[id(state)] = Skipped(state.explored.function.key, "oracle", reason, result.stderr_tail[-200:])
                state.done = True
                continue
            progress, fresh = _absorb(state, payload)
            _next_round(state, options, progress, fresh)
    live = [s for s in states if id(s) not in failed and s.explored.cases]
    if options.hunt:
        _hunt_round([s for s in live if _wants_hunt(s.explored, options)], executor, options)
    if options.shrink and live:
        _shrink_round(live, executor, options)
    for state in states:
        if id(state) in failed:
            yield failed[id(state)]
        elif not state.explored.cases:
            reasons = ", ".join(f"{k} {v}" for k, v in state.explored.dropped.most_common(3))
            yield Skipped(state.explored.function.key, "oracle", "no usable result", reasons, state.explored.facts())
        else:
            yield state.explored
