"""The DeepCoder-style list language of `codegym.procgen`: operations, lambdas, interpreter, renderings.

A program is a chain of steps over a list of integers ``xs`` (inputs ``ys``, a second list, and
``n``, an integer, when a step needs them). Every step but the last maps a list to a list; the last
maps a list to a list or to an integer. Operations (DeepCoder's, Balog et al. 2017):

- first-order: ``Head``, ``Last``, ``Take(n)``, ``Drop(n)``, ``Access(n)``, ``Minimum``, ``Maximum``,
  ``Reverse``, ``Sort``, ``Sum``;
- higher-order: ``Map(f)``, ``Filter(p)``, ``Count(p)``, ``ZipWith(g, ys | xs)``, ``Scanl1(g)``, over
  the lambdas int→int ``+1 -1 *2 //2 neg sq *3 *4``, int→bool ``>0 <0 even odd`` and
  (int, int)→int ``+ - * min max``.

Each step has one idiomatic Python rendering (what the reference and the policy write) and several
English phrasings (what the prompt says). `run` is the interpreter: it returns ``None`` where
DeepCoder's semantics are undefined (``Head`` of an empty list, an index out of range) or a value
leaves ``[-LIMIT, LIMIT]``, so the tests only use inputs on which the program is defined, and the
Python reference then agrees with the interpreter (checked in the sandbox by the tests of this module).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Union

__all__ = ["LAMBDAS", "LIMIT", "OPS", "Op", "Step", "Value", "dsl", "params", "python_body", "run", "step_phrases"]

Value = Union[int, list, None]
LIMIT = 10_000  # values outside ±LIMIT count as undefined (DeepCoder clips to a small range too)


@dataclass(frozen=True)
class Lambda:
    """A lambda: its DSL name, Python expression over ``x`` (and ``y``), meaning, and phrasings."""

    name: str
    python: str
    fn: Callable[..., int | bool]
    phrases: tuple[str, ...]


INT_INT = {
    "+1": Lambda("+1", "x + 1", lambda x: x + 1, ("add 1 to each element of {src}", "increment every number in {src}",
                                                  "increase each element of {src} by one")),
    "-1": Lambda("-1", "x - 1", lambda x: x - 1, ("subtract 1 from each element of {src}", "decrement every number in {src}",
                                                  "decrease each element of {src} by one")),
    "*2": Lambda("*2", "x * 2", lambda x: x * 2, ("double each element of {src}", "multiply every number in {src} by 2",
                                                  "replace each element of {src} with twice its value")),
    "//2": Lambda("//2", "x // 2", lambda x: x // 2, ("halve each element of {src}, rounding down",
                                                      "integer-divide every number in {src} by 2",
                                                      "replace each element of {src} with its half, rounded down")),
    "neg": Lambda("neg", "-x", lambda x: -x, ("negate each element of {src}", "flip the sign of every number in {src}",
                                              "replace each element of {src} with its negative")),
    "sq": Lambda("sq", "x * x", lambda x: x * x, ("square each element of {src}", "replace every number in {src} with its square",
                                                  "multiply each element of {src} by itself")),
    "*3": Lambda("*3", "x * 3", lambda x: x * 3, ("triple each element of {src}", "multiply every number in {src} by 3",
                                                  "replace each element of {src} with three times its value")),
    "*4": Lambda("*4", "x * 4", lambda x: x * 4, ("quadruple each element of {src}", "multiply every number in {src} by 4",
                                                  "replace each element of {src} with four times its value")),
}
INT_BOOL = {
    ">0": Lambda(">0", "x > 0", lambda x: x > 0, ("positive numbers", "numbers greater than zero", "elements above 0")),
    "<0": Lambda("<0", "x < 0", lambda x: x < 0, ("negative numbers", "numbers less than zero", "elements below 0")),
    "even": Lambda("even", "x % 2 == 0", lambda x: x % 2 == 0, ("even numbers", "numbers divisible by 2", "even elements")),
    "odd": Lambda("odd", "x % 2 == 1", lambda x: x % 2 == 1, ("odd numbers", "numbers not divisible by 2", "odd elements")),
}
INT_INT_INT = {
    "+": Lambda("+", "x + y", lambda x, y: x + y, ("sum", "total", "addition")),
    "-": Lambda("-", "x - y", lambda x, y: x - y, ("difference", "subtraction", "difference")),
    "*": Lambda("*", "x * y", lambda x, y: x * y, ("product", "multiplication", "product")),
    "min": Lambda("min", "min(x, y)", min, ("minimum", "smaller value", "minimum")),
    "max": Lambda("max", "max(x, y)", max, ("maximum", "larger value", "maximum")),
}
LAMBDAS = {**INT_INT, **INT_BOOL, **INT_INT_INT}


@dataclass(frozen=True)
class Op:
    """An operation: whether it returns an int, which lambdas it takes, whether it reads ``n``."""

    name: str
    returns_int: bool
    lambdas: tuple[str, ...] = ()
    uses_n: bool = False


OPS: dict[str, Op] = {op.name: op for op in (
    Op("Head", True), Op("Last", True), Op("Take", False, uses_n=True), Op("Drop", False, uses_n=True),
    Op("Access", True, uses_n=True), Op("Minimum", True), Op("Maximum", True), Op("Reverse", False), Op("Sort", False),
    Op("Sum", True), Op("Map", False, tuple(INT_INT)), Op("Filter", False, tuple(INT_BOOL)), Op("Count", True, tuple(INT_BOOL)),
    Op("ZipWith", False, tuple(INT_INT_INT)), Op("Scanl1", False, tuple(INT_INT_INT)),
)}  # fmt: skip


@dataclass(frozen=True)
class Step:
    """One step: an operation, its lambda (higher-order ops) and, for ZipWith, the other list (``ys`` or ``xs``)."""

    op: str
    fn: str | None = None
    other: str | None = None
    k: int | None = None  # Take, Drop, Access: a constant count or index instead of the parameter n

    @property
    def count(self) -> str:
        """What Take, Drop and Access read: ``n`` or the constant."""
        return "n" if self.k is None else str(self.k)

    def __str__(self) -> str:
        args = [a for a in (self.fn, self.other) if a is not None] + ([self.count] if OPS[self.op].uses_n else [])
        return f"{self.op}({', '.join(args)})" if args else self.op


def dsl(steps: Sequence[Step]) -> str:
    """The program in DSL form: ``xs | Filter(>0) | Sort | Sum``."""
    return " | ".join(["xs", *map(str, steps)])


def params(steps: Sequence[Step]) -> tuple[str, ...]:
    """The function's parameters, in order: ``xs``, then ``ys`` and ``n`` where a step reads them."""
    uses = {"xs"} | {s.other for s in steps if s.other} | {"n" for s in steps if OPS[s.op].uses_n and s.k is None}
    return tuple(p for p in ("xs", "ys", "n") if p in uses)


# ---------------------------------------------------------------------------------------------
# Interpreter.


def _apply(step: Step, value: list, env: dict[str, Value]) -> Value:
    op = step.op
    n = env.get("n") if step.k is None else step.k
    if op in ("Head", "Last", "Minimum", "Maximum") and not value:
        return None
    if op == "Head":
        return value[0]
    if op == "Last":
        return value[-1]
    if op == "Take":
        return value[:n]
    if op == "Drop":
        return value[n:]
    if op == "Access":
        return value[n] if 0 <= n < len(value) else None
    if op == "Minimum":
        return min(value)
    if op == "Maximum":
        return max(value)
    if op == "Reverse":
        return value[::-1]
    if op == "Sort":
        return sorted(value)
    if op == "Sum":
        return sum(value)
    fn = LAMBDAS[step.fn].fn  # type: ignore[index]
    if op == "Map":
        return [fn(x) for x in value]
    if op == "Filter":
        return [x for x in value if fn(x)]
    if op == "Count":
        return sum(1 for x in value if fn(x))
    if op == "ZipWith":
        return [fn(x, y) for x, y in zip(value, env[step.other])]  # type: ignore[index,arg-type]
    if op == "Scanl1":
        out: list[int] = []
        for x in value:
            out.append(fn(out[-1], x) if out else x)
        return out
    raise ValueError(f"unknown operation {op!r}")


def _bounded(value: Value) -> bool:
    if isinstance(value, list):
        return all(-LIMIT <= v <= LIMIT for v in value)
    return value is None or -LIMIT <= value <= LIMIT


def run(steps: Sequence[Step], xs: list[int], ys: list[int] | None = None, n: int | None = None) -> Value:
    """The program's output on these inputs, or ``None`` where it is undefined (see the module docstring)."""
    env: dict[str, Value] = {"xs": xs, "ys": ys, "n": n}
    value: Value = xs
    for step in steps:
        if not isinstance(value, list):
            return None
        value = _apply(step, value, env)
        if value is None or not _bounded(value):
            return None
    return value


# ---------------------------------------------------------------------------------------------
# Python.

_SCAN = {"+": "list(accumulate({v}))", "-": "list(accumulate({v}, lambda a, b: a - b))",
         "*": "list(accumulate({v}, lambda a, b: a * b))", "min": "list(accumulate({v}, min))",
         "max": "list(accumulate({v}, max))"}  # fmt: skip


def _expression(step: Step, v: str) -> str:
    simple = {"Head": "{v}[0]", "Last": "{v}[-1]", "Take": "{v}[:{n}]", "Drop": "{v}[{n}:]", "Access": "{v}[{n}]",
              "Minimum": "min({v})", "Maximum": "max({v})", "Reverse": "{v}[::-1]", "Sort": "sorted({v})", "Sum": "sum({v})"}  # fmt: skip
    if step.op in simple:
        return simple[step.op].format(v=v, n=step.count)
    body = LAMBDAS[step.fn].python if step.fn else ""
    if step.op == "Map":
        return f"[{body} for x in {v}]"
    if step.op == "Filter":
        return f"[x for x in {v} if {body}]"
    if step.op == "Count":
        return f"sum(1 for x in {v} if {body})"
    if step.op == "ZipWith":
        return f"[{body} for x, y in zip({v}, {step.other})]"
    if step.op == "Scanl1":
        return _SCAN[step.fn].format(v=v)  # type: ignore[index]
    raise ValueError(f"unknown operation {step.op!r}")


def python_body(steps: Sequence[Step], var: str = "result") -> str:
    """The function body (4-space indented lines): one assignment to ``var`` per step, the last step
    in the ``return``; a one-step program is written in the same shape (``var = step(xs)``, then
    ``return var``).

    Why the one-step shape: training shows the new operation (`codegym.procgen.splits.NEW_OP`) only
    in one-step programs, and a policy that only ever saw it as ``return list(accumulate(xs))``
    seldom writes it as an assignment, the line it takes inside a longer program (with the earlier
    rendering the policy solved ``new_op`` at pass@64 0.00; with this one 0.10, experiments/RESULTS.md).
    """
    if len(steps) == 1:
        return f"    {var} = {_expression(steps[0], 'xs')}\n    return {var}\n"
    lines, source = [], "xs"
    for i, step in enumerate(steps):
        expr = _expression(step, source)
        lines.append(f"    return {expr}\n" if i == len(steps) - 1 else f"    {var} = {expr}\n")
        source = var
    return "".join(lines)


def needs_accumulate(steps: Sequence[Step]) -> bool:
    return any(s.op == "Scanl1" for s in steps)


# ---------------------------------------------------------------------------------------------
# English: imperative clauses over {src}, the list the step reads.

_LIST_PHRASES: dict[str, tuple[str, ...]] = {
    "Take": ("keep the first {n} elements of {src}", "take the first {n} items of {src}", "cut {src} down to its first {n} elements"),
    "Drop": ("drop the first {n} elements of {src}", "remove the first {n} items of {src}", "skip the first {n} elements of {src}"),
    "Reverse": ("reverse {src}", "put {src} in reverse order", "flip the order of {src}"),
    "Sort": ("sort {src} in ascending order", "arrange {src} from smallest to largest", "put {src} in increasing order"),
    "Filter": ("keep only the {p} of {src}", "select the {p} from {src}", "filter {src} down to its {p}"),
    "ZipWith": ("combine {src} with {other} element by element, taking the {g} of each pair",
                "pair each element of {src} with the element of {other} at the same position and take their {g}",
                "compute the element-wise {g} of {src} and {other}, stopping at the shorter list"),
    "Scanl1": ("compute the running {g} of {src}", "replace each element of {src} with the {g} of all elements up to it",
               "take the prefix {g}s of {src}"),
}
_INT_PHRASES: dict[str, tuple[str, ...]] = {
    "Head": ("return the first element of {src}", "return the element at the front of {src}", "return the item at the start of {src}"),
    "Last": ("return the last element of {src}", "return the element at the end of {src}", "return the item at the end of {src}"),
    "Access": ("return the element of {src} at index {n}", "return element number {n} of {src}, counting from 0",
               "return the item at position {n} of {src}"),
    "Minimum": ("return the smallest element of {src}", "return the minimum of {src}", "return the lowest value in {src}"),
    "Maximum": ("return the largest element of {src}", "return the maximum of {src}", "return the highest value in {src}"),
    "Sum": ("return the sum of {src}", "add up the elements of {src} and return the total", "return the total of {src}"),
    "Count": ("return how many {p} {src} has", "count the {p} in {src} and return the count", "return the number of {p} in {src}"),
}


def step_phrases(step: Step) -> tuple[str, ...]:
    """The phrasings of one step, with ``{src}`` left for the list it reads."""
    if step.op == "Map":
        return LAMBDAS[step.fn].phrases  # type: ignore[index]
    table = _INT_PHRASES if OPS[step.op].returns_int else _LIST_PHRASES
    fill = {"src": "{src}", "n": step.count}
    if step.fn in INT_BOOL:
        fill["p"] = INT_BOOL[step.fn].phrases[0]
    if step.fn in INT_INT_INT:
        fill["g"] = INT_INT_INT[step.fn].phrases[0]
    if step.other:
        fill["other"] = step.other
    out = []
    for i, phrase in enumerate(table[step.op]):
        if step.fn in INT_BOOL:
            fill["p"] = INT_BOOL[step.fn].phrases[i % len(INT_BOOL[step.fn].phrases)]
        out.append(phrase.format(**fill))
    return tuple(out)
