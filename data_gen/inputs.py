"""Stage 2, inputs: call arguments for the function under test.

Where the arguments come from, in order of trust:

1. **examples** written in the docstring (``>>> f(1, 2)``, ``f([1, 2]) == 3``): what the author
   thought worth showing;
2. **type hints** (annotations, then docstring hints such as ``:type x: int``, ``x (str):``), else
   types **inferred from use** in the body (``len(x)``, ``x.split()``, ``x + 1``...);
3. **boundary values** from the literals in the body (each constant ``c`` gives ``c - 1, c, c + 1``,
   string constants are spliced into strings), and **operand-aware values** (`Operands`): strings
   that start or end with the prefix a ``startswith``/``endswith`` tests, contain the separator a
   ``split``/``in``/``count`` looks for, or repeat a half (``s[h:] == s[:h]``); non-ASCII and
   whitespace-only text; lists with duplicates, sorted and reversed; collections whose length sits
   around the constant a ``len(x)`` is compared with;
4. **random values** of those types from a seeded ``random.Random``; small first;
5. **mutation** of inputs that reached new branches or killed new mutants (coverage- and
   mutation-guided search, driven by `codegym.data_gen.oracle`), including copying a value from
   one argument into another (so that ``x == limit`` or ``needle in haystack`` happen), and
   **shrinking** of the inputs finally kept, so that tests read small.

All values are plain builtins (int, float, str, bytes, bool, None, list, tuple, dict, set) that can
be written as literals, so every input can become ``assert f(<literals>) == <literal>``.
"""

from __future__ import annotations

import ast
import math
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from codegym.execution.plans import UnsafeExpression, safe_eval

__all__ = ["InputGenerator", "InputOptions", "TypeSpec", "parse_type", "size", "to_literal"]

Args = tuple[Any, ...]


@dataclass(frozen=True)
class InputOptions:
    """How many inputs to make. ``initial``: first round; ``per_round``: each guided round."""

    initial: int = 40
    per_round: int = 24
    max_collection: int = 8
    max_int: int = 200


@dataclass(frozen=True)
class TypeSpec:
    """A parameter type: ``kind`` in int, float, str, bytes, bool, none, list, tuple, dict, set,
    union, any; ``args`` the element types (tuple: one per position, or one + ``variadic``)."""

    kind: str
    args: tuple[TypeSpec, ...] = ()
    variadic: bool = False


ANY = TypeSpec("any")
_SCALARS = {"int": "int", "float": "float", "str": "str", "bytes": "bytes", "bool": "bool", "None": "none",
            "complex": "float", "Number": "float", "Real": "float", "Integral": "int", "AnyStr": "str", "Text": "str"}  # fmt: skip
_LISTS = {"list", "List", "Sequence", "Iterable", "Collection", "MutableSequence", "Iterator", "Reversible"}
_DICTS = {"dict", "Dict", "Mapping", "MutableMapping", "defaultdict", "OrderedDict", "Counter"}
_SETS = {"set", "Set", "frozenset", "FrozenSet", "AbstractSet", "MutableSet"}


def parse_type(text: str | None) -> TypeSpec:
    """A `TypeSpec` from an annotation's source (``List[int]``, ``Optional[str]``, ``int | None``)."""
    if not text:
        return ANY
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        return ANY
    return _spec(node)


def _spec(node: ast.expr) -> TypeSpec:
    if isinstance(node, ast.Constant):
        if node.value is None:
            return TypeSpec("none")
        if isinstance(node.value, str):
            return parse_type(node.value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return TypeSpec("union", (_spec(node.left), _spec(node.right)))
    name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
    if isinstance(node, ast.Subscript):
        base = node.value
        name = base.attr if isinstance(base, ast.Attribute) else base.id if isinstance(base, ast.Name) else None
        inner = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        specs = tuple(_spec(e) for e in inner if not (isinstance(e, ast.Constant) and e.value is Ellipsis))
        variadic = any(isinstance(e, ast.Constant) and e.value is Ellipsis for e in inner)
        if name in _LISTS:
            return TypeSpec("list", specs[:1])
        if name in _SETS:
            return TypeSpec("set", specs[:1])
        if name in _DICTS:
            return TypeSpec("dict", specs[:2] if len(specs) == 2 else (ANY, ANY))
        if name in ("tuple", "Tuple"):
            return TypeSpec("tuple", specs, variadic)
        if name == "Optional":
            return TypeSpec("union", (specs[0], TypeSpec("none")))
        if name == "Union":
            return TypeSpec("union", specs)
        return ANY
    if name in _SCALARS:
        return TypeSpec(_SCALARS[name])
    if name in _LISTS:
        return TypeSpec("list", (ANY,))
    if name in _DICTS:
        return TypeSpec("dict", (ANY, ANY))
    if name in _SETS:
        return TypeSpec("set", (ANY,))
    if name in ("tuple", "Tuple"):
        return TypeSpec("tuple", (ANY,), True)
    return ANY


# --------------------------------------------------------------------------------------------
# What the source tells about the arguments.


def _docstring_types(docstring: str | None, params: Sequence[str]) -> dict[str, TypeSpec]:
    """Types named in a docstring: reST ``:type x: T``/``:param T x:``, Google ``x (T):``, NumPy ``x : T``."""
    found: dict[str, TypeSpec] = {}
    if not docstring:
        return found
    for name in params:
        n = re.escape(name)
        for pattern in (rf":type\s+{n}\s*:\s*([\w\[\], |.]+)", rf":param\s+([\w\[\], |.]+)\s+{n}\s*:",
                        rf"^\s*{n}\s*\(([\w\[\], |.]+?)(?:,\s*optional)?\)\s*:", rf"^\s*{n}\s*:\s*([\w\[\], |.]+?)\s*$"):  # fmt: skip
            match = re.search(pattern, docstring, re.MULTILINE)
            if match:
                spec = parse_type(match.group(1).replace(" of ", "[").strip())
                if spec.kind != "any":
                    found[name] = spec
                    break
    return found


_USE_HINTS = {
    "str": {"lower", "upper", "split", "strip", "startswith", "endswith", "replace", "join", "isdigit", "isalpha",
            "find", "rstrip", "lstrip", "encode", "format", "title", "capitalize", "isspace", "splitlines", "swapcase",
            "isupper", "islower", "partition", "rpartition", "zfill", "center", "ljust", "rjust", "expandtabs"},
    "list": {"append", "extend", "pop", "insert", "sort", "reverse", "remove"},
    "dict": {"items", "keys", "values", "get", "setdefault", "update"},
    "bytes": {"decode", "hex"},
}  # fmt: skip


_NAME_HINTS = (
    ("str", r"(s|str\d*|string\d*|text\d*|txt|word\d*|sentence|line|name|char|ch|pattern|prefix|suffix|sep)"),
    ("list", r"(nums?|arr\d*|array|lst\d*|list\d*|items|numbers|values|elements|xs)"),
    ("int", r"(n|k|m|num|count|size|limit|index|idx|base)"),
)
"""Parameter names that say their type (a tie-breaker between the votes of uses)."""


def _infer_from_use(func: ast.FunctionDef, name: str) -> TypeSpec:
    """A type for an unannotated parameter, judged from how the body uses it."""
    votes: dict[str, int] = {}
    pairs: TypeSpec | None = None

    def vote(kind: str, weight: int = 1) -> None:
        votes[kind] = votes.get(kind, 0) + weight

    for node in ast.walk(func):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == name:
            for kind, methods in _USE_HINTS.items():
                if node.attr in methods:
                    vote(kind, 5 if kind == "str" else 3)  # str methods say more than len() or indexing
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _REGEX_CALLS:
            if any(isinstance(a, ast.Name) and a.id == name for a in node.args[:2]):  # re.search(P, x), p.match(x)
                vote("str", 3)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
            first = node.args[0]
            if node.func.id in ("min", "max") and len(node.args) > 1:  # min(a, b): numbers, not a sequence
                if any(isinstance(a, ast.Name) and a.id == name for a in node.args):
                    vote("int", 2)
            elif isinstance(first, ast.Name) and first.id == name:
                if node.func.id in ("len", "sorted", "sum", "max", "min", "enumerate", "reversed", "list", "set", "zip"):
                    vote("list", 2)
                elif node.func.id in ("range", "abs", "bin", "hex", "chr"):
                    vote("int", 3)
                elif node.func.id in ("ord",):
                    vote("str", 3)
                elif node.func.id in ("int", "float"):
                    vote("str", 1)
            if node.func.id == "range" and any(isinstance(a, ast.Name) and a.id == name for a in node.args):
                vote("int", 3)
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == name:
            vote("list", 2 if not isinstance(node.slice, ast.Slice) else 1)
            vote("str", 0 if not isinstance(node.slice, ast.Slice) else 1)
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Name) and node.slice.id == name:
            vote("int", 2)
        elif isinstance(node, (ast.BinOp, ast.AugAssign, ast.Compare)):
            operands = [node.left, node.right] if isinstance(node, ast.BinOp) else (
                [node.target, node.value] if isinstance(node, ast.AugAssign) else [node.left, *node.comparators])
            if any(isinstance(o, ast.Name) and o.id == name for o in operands):
                for o in operands:
                    if isinstance(o, ast.Constant) and type(o.value) in (int, float, str):
                        vote({int: "int", float: "float", str: "str"}[type(o.value)], 2)
                if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.FloorDiv, ast.Pow, ast.BitAnd,
                                                                        ast.RShift, ast.LShift, ast.Sub)):  # fmt: skip
                    vote("int", 1)
        elif isinstance(node, ast.comprehension) or isinstance(node, ast.For):
            iterable = node.iter
            if isinstance(iterable, ast.Name) and iterable.id == name:
                vote("list", 2)
                if isinstance(node.target, ast.Tuple):  # for a, b in pairs: a list of tuples
                    pairs = TypeSpec("tuple", (TypeSpec("int"),) * len(node.target.elts))
    for kind, pattern in _NAME_HINTS:
        if re.fullmatch(pattern, name):
            vote(kind, 2)
    if not votes:
        return ANY
    kind = max(sorted(votes), key=lambda k: votes[k])
    if kind == "list" and pairs is not None:
        return TypeSpec("list", (pairs,))
    if kind in ("list", "str") and 2 * votes.get("str", 0) >= votes[kind] and 2 * votes.get("list", 0) >= votes[kind]:
        return TypeSpec("union", (TypeSpec("str"), TypeSpec("list", (ANY,))))  # len, indexing, loops: either
    return TypeSpec(kind, (ANY,) if kind == "list" else (ANY, ANY) if kind == "dict" else ())


def _call_args(text: str, entry: str) -> Iterator[Args]:
    """Literal argument tuples of calls to ``entry`` written in ``text`` (docstring examples)."""
    for match in re.finditer(rf"(?<![\w.]){re.escape(entry)}\(", text):
        depth, quote, end = 0, "", None
        for i in range(match.end() - 1, min(len(text), match.end() + 2000)):
            ch = text[i]
            if quote:
                if ch == quote and text[i - 1] != "\\":
                    quote = ""
            elif ch in "'\"":
                quote = ch
            elif ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth -= 1
                if depth == 0:
                    end = i + 1
                    break
        if end is None:
            continue
        try:
            call = ast.parse(text[match.start() : end].replace("\n", " "), mode="eval").body
            assert isinstance(call, ast.Call) and not call.keywords
            yield tuple(safe_eval(a) for a in call.args)
        except (SyntaxError, AssertionError, UnsafeExpression, TypeError, ValueError, ArithmeticError):
            continue


def _literals(func: ast.FunctionDef) -> tuple[list[int | float], list[str]]:
    numbers: set[int | float] = set()
    strings: set[str] = set()
    doc = func.body[0] if ast.get_docstring(func) is not None else None
    for node in ast.walk(func):
        if node is doc or (doc is not None and node is getattr(doc, "value", None)):
            continue
        if isinstance(node, ast.Constant):
            value = node.value
            if type(value) in (int, float) and abs(value) < 10**6:
                numbers |= {value, -value}
                if type(value) is int:
                    numbers |= {value - 1, value + 1, -value - 1, -value + 1}
            elif type(value) is str and len(value) <= 20:
                strings.add(value)
    return sorted(numbers, key=lambda v: (abs(v), v)), sorted(strings)


_AFFIX_METHODS = {"startswith": "prefix", "endswith": "suffix", "removeprefix": "prefix", "removesuffix": "suffix"}
_PART_METHODS = {"split", "rsplit", "count", "find", "rfind", "index", "rindex", "replace", "partition", "rpartition",
                 "strip", "lstrip", "rstrip", "join"}  # fmt: skip
_UNUSUAL_TEXT = ("é", "naïve café", "日本語", "Straße", "ÀB", "a\u00e9b", "😀x", " ", "   ", "\t\n", " a ", "A", "aA1 ")


@dataclass(frozen=True)
class Operands:
    """What the body compares a parameter with, for building inputs that reach the other side.

    prefixes/suffixes: strings a ``startswith``/``endswith`` tests; parts: separators and
    substrings (``split``, ``in``, ``count``, ``replace``...); lengths: constants a ``len(param)`` is
    compared with; halves: the body slices a parameter (``s[:h]``), so repeated halves and
    palindromes are worth a try.
    """

    prefixes: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()
    parts: tuple[str, ...] = ()
    lengths: tuple[int, ...] = ()
    halves: bool = False
    patterns: tuple[str, ...] = ()
    """Regular expressions the body matches (``re.search(P, x)``): the branch-directed search
    draws strings from them (``hypothesis.strategies.from_regex``)."""


_REGEX_CALLS = {"search", "match", "fullmatch", "findall", "finditer", "compile", "sub", "subn", "split"}


def _operands(func: ast.FunctionDef, module: ast.Module | None = None) -> Operands:
    constants: dict[str, str] = {}  # names bound to a string (module level or in the body): regexes
    for node in [*(module.body if module else []), *ast.walk(func)]:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and type(node.value.value) is str:
            constants.update((t.id, node.value.value) for t in node.targets if isinstance(t, ast.Name))
    patterns: set[str] = set()
    prefixes: set[str] = set()
    suffixes: set[str] = set()
    parts: set[str] = set()
    lengths: set[int] = set()
    halves = False

    def strings(node: ast.expr) -> list[str]:
        if isinstance(node, ast.Constant) and type(node.value) is str and len(node.value) <= 20:
            return [node.value]
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return [v for e in node.elts for v in strings(e)]
        return []

    for node in ast.walk(func):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method = node.func.attr
            if method in _REGEX_CALLS and isinstance(node.func.value, ast.Name) and node.func.value.id == "re" and node.args:
                first = node.args[0]
                pattern = first.value if isinstance(first, ast.Constant) else constants.get(getattr(first, "id", ""))
                if type(pattern) is str and len(pattern) <= 500:
                    patterns.add(pattern)
            found = [v for a in node.args[:1] for v in strings(a)]
            if isinstance(node.func.value, ast.Constant) and method == "join":
                found += strings(node.func.value)
            if method in _AFFIX_METHODS:
                (prefixes if _AFFIX_METHODS[method] == "prefix" else suffixes).update(found)
            elif method in _PART_METHODS:
                parts.update(found)
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for op, left, right in zip(node.ops, operands, operands[1:]):
                if isinstance(op, (ast.In, ast.NotIn)):
                    parts.update(v for v in strings(left) if v)
                for a, b in ((left, right), (right, left)):
                    if isinstance(a, ast.Call) and isinstance(a.func, ast.Name) and a.func.id == "len":
                        if isinstance(b, ast.Constant) and type(b.value) is int and 0 <= b.value <= 64:
                            lengths.add(b.value)
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
            halves = True
    return Operands(tuple(sorted(prefixes)), tuple(sorted(suffixes)), tuple(sorted(parts - {""})),
                    tuple(sorted(lengths)), halves, tuple(sorted(patterns)))  # fmt: skip


# --------------------------------------------------------------------------------------------
# Values.


def size(value: Any) -> int:
    """A rough size, for preferring small inputs (shrinking, tie-breaks)."""
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int):
        return 1 + int(math.log2(abs(value) + 1))
    if isinstance(value, float):
        return 3 + (0 if value.is_integer() else 2)
    if isinstance(value, (str, bytes)):
        return 1 + len(value)
    if isinstance(value, dict):
        return 1 + sum(size(k) + size(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return 1 + sum(size(v) for v in value)
    return 100


def to_literal(value: Any) -> str | None:
    """Python source that `codegym.execution.plans.safe_eval` turns back into ``value``, or None.

    Written by construction for the plain builtin types (no eval of any kind); NaN has no literal.
    """
    return _literal(value)


def _literal(value: Any) -> str | None:
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return repr(value) if math.isfinite(value) else ('float("inf")' if value > 0 else '-float("inf")')
    if value is None or isinstance(value, (bool, int, str, bytes)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        items = [_literal(v) for v in value]
        if any(i is None for i in items):
            return None
        if isinstance(value, list):
            return "[" + ", ".join(items) + "]"  # type: ignore[arg-type]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"  # type: ignore[arg-type]
    if isinstance(value, (set, frozenset)):
        items = [_literal(v) for v in sorted(value, key=repr)]
        if any(i is None for i in items):
            return None
        body = "{" + ", ".join(items) + "}" if items else ""  # type: ignore[arg-type]
        if isinstance(value, frozenset):
            return f"frozenset({body})"
        return body or "set()"
    if isinstance(value, dict):
        pairs = [(_literal(k), _literal(v)) for k, v in value.items()]
        if any(k is None or v is None for k, v in pairs):
            return None
        return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    return None


@dataclass
class InputGenerator:
    """Seeded, type-aware argument generator for one function.

    Built from the function's AST with `InputGenerator.of`; `initial` gives the first round,
    `evolve` mutates chosen inputs, `shrink` proposes smaller versions of one input.
    """

    params: tuple[str, ...]
    types: tuple[TypeSpec, ...]
    defaults: tuple[Any, ...]
    examples: list[Args]
    numbers: list[int | float]
    strings: list[str]
    options: InputOptions = field(default_factory=InputOptions)
    seed: int = 0
    operands: Operands = field(default_factory=Operands)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.origins: dict[str, str] = {}
        """Where inputs that did not come from the random/guided search came from, by literal:
        ``operand`` (`operand_inputs`), ``hypothesis`` or ``crosshair`` (the oracle's branch-directed stage)."""

    @classmethod
    def of(
        cls,
        program: str,
        entry: str,
        docstring: str | None = None,
        options: InputOptions = InputOptions(),
        seed: int = 0,
    ) -> InputGenerator:
        tree = ast.parse(program)
        func = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == entry)
        args = func.args.posonlyargs + func.args.args
        params = tuple(a.arg for a in args)
        hinted = _docstring_types(docstring, params)
        types = []
        for arg in args:
            spec = parse_type(ast.unparse(arg.annotation)) if arg.annotation is not None else ANY
            if spec.kind == "any":
                spec = hinted.get(arg.arg) or _infer_from_use(func, arg.arg)
            types.append(spec)
        defaults: list[Any] = [...] * (len(args) - len(func.args.defaults))
        for d in func.args.defaults:
            try:
                defaults.append(safe_eval(d))
            except (UnsafeExpression, TypeError, ValueError, ArithmeticError):
                defaults.append(...)
        for i, default in enumerate(defaults):
            if types[i].kind == "any" and default is not ... and default is not None:
                types[i] = _spec_of_value(default)
        text = (docstring or "") + "\n" + "\n".join(
            ast.unparse(n) for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))
        )
        examples = [a for a in _call_args(text, entry) if len(a) == len(params)]
        numbers, strings = _literals(func)
        return cls(params, tuple(types), tuple(defaults), examples, numbers, strings, options, seed, _operands(func, tree))

    # ---- random values -------------------------------------------------------------------

    def value(self, spec: TypeSpec, depth: int = 0) -> Any:
        rng = self.rng
        kind = spec.kind
        if kind == "any":
            kind = rng.choice(["int", "int", "str", "list", "float", "bool"] if depth < 2 else ["int", "str"])
            spec = TypeSpec(kind, (TypeSpec("int"),) if kind == "list" else ())
        if kind == "union":
            return self.value(rng.choice(spec.args), depth)
        if kind == "none":
            return None
        if kind == "bool":
            return rng.random() < 0.5
        if kind == "int":
            roll = rng.random()
            if self.numbers and roll < 0.35:
                return int(rng.choice(self.numbers))
            if roll < 0.75:
                return rng.randint(-10, 10)
            return rng.randint(-self.options.max_int, self.options.max_int)
        if kind == "float":
            roll = rng.random()
            if self.numbers and roll < 0.3:
                return float(rng.choice(self.numbers))
            return round(rng.uniform(-100, 100), rng.choice([0, 1, 2, 3]))
        if kind in ("str", "bytes"):
            text = self._string()
            return text.encode("latin-1", "replace") if kind == "bytes" else text
        n = self._length(depth)
        element = spec.args[0] if spec.args else ANY
        if element.kind == "any" and kind in ("list", "set", "tuple") and (kind != "tuple" or spec.variadic or not spec.args):
            # unknown elements: one type for the whole collection (mixed ones mostly raise TypeError)
            element = rng.choice([TypeSpec("int"), TypeSpec("int"), TypeSpec("str"), TypeSpec("float"),
                                  TypeSpec("tuple", (TypeSpec("int"), TypeSpec("int"))), ANY])  # fmt: skip
        if kind == "list":
            return [self.value(element, depth + 1) for _ in range(n)]
        if kind == "set":
            return {self._hashable(self.value(element, depth + 1)) for _ in range(n)}
        if kind == "tuple":
            if spec.variadic or not spec.args:
                return tuple(self.value(element, depth + 1) for _ in range(n))
            return tuple(self.value(a, depth + 1) for a in spec.args)
        if kind == "dict":
            key, val = (spec.args + (ANY, ANY))[:2]
            if key.kind == "any":
                key = TypeSpec("str")
            return {self._hashable(self.value(key, depth + 1)): self.value(val, depth + 1) for _ in range(n)}
        return None

    def _length(self, depth: int) -> int:
        limit = max(1, self.options.max_collection // (depth + 1))
        return min(int(self.rng.expovariate(0.35)), limit)

    @staticmethod
    def _hashable(value: Any) -> Any:
        if isinstance(value, list):
            return tuple(InputGenerator._hashable(v) for v in value)
        if isinstance(value, (dict, set)):
            return str(sorted(map(repr, value)))
        return value

    def _string(self) -> str:
        rng = self.rng
        roll = rng.random()
        if self.strings and roll < 0.3:
            base = rng.choice(self.strings)
            if rng.random() < 0.5:
                return base
            return self._string_mutation(base)
        if self.strings and roll < 0.45:  # several literals in a row: "three one five"
            sep = rng.choice([" ", " ", ",", ""])
            return sep.join(rng.choice(self.strings) for _ in range(rng.randint(2, 5)))
        alphabet = rng.choice(["abcde", "abcxyz ", "aeiouAEIOU", "0123456789", "ab1 ,.-_ABC", "hello world"])
        if self.strings and rng.random() < 0.3:
            alphabet += "".join(self.strings)
        n = min(int(rng.expovariate(0.2)), 24)
        return "".join(rng.choice(alphabet) for _ in range(n))

    def _string_mutation(self, text: str) -> str:
        rng = self.rng
        choice = rng.randrange(6)
        pool = "".join(self.strings) or "ab "
        pos = rng.randint(0, len(text))
        if choice == 0 and text:
            return text[:pos] + text[pos + 1 :]
        if choice == 1:
            return text[:pos] + rng.choice(pool + "aZ 1") + text[pos:]
        if choice == 2:
            return text.swapcase()
        if choice == 3:
            return text + text
        if choice == 4 and self.strings:
            return text[:pos] + rng.choice(self.strings) + text[pos:]
        return text[::-1]

    # ---- rounds ------------------------------------------------------------------------

    def initial(self) -> list[Args]:
        """First round: docstring examples, boundary values, defaults, then random values."""
        found: list[Args] = list(self.examples)
        for number in self.numbers[:12]:
            args = tuple(number if t.kind in ("int", "float") else self.value(t) for t in self.types)
            found.append(args)
        for text in self.strings[:6]:
            found.append(tuple(text if t.kind == "str" else self.value(t) for t in self.types))
        found.append(tuple(_empty(t) for t in self.types))
        found += self.operand_inputs()
        if any(d is not ... for d in self.defaults):
            found.append(tuple(d if d is not ... else self.value(t) for d, t in zip(self.defaults, self.types)))
        while len(found) < self.options.initial + len(self.examples):
            found.append(tuple(self.value(t) for t in self.types))
        return unique(found)

    def operand_values(self, spec: TypeSpec) -> list[Any]:
        """Values of type ``spec`` built from the body's operands (see `Operands`): the ones random
        search rarely hits."""
        rng, ops = self.rng, self.operands
        if spec.kind == "union":
            return [v for s in spec.args for v in self.operand_values(s)]
        if spec.kind in ("str", "bytes"):
            word = lambda: "".join(rng.choice("abcxyz") for _ in range(rng.randint(1, 4)))  # noqa: E731
            out = [p + word() for p in ops.prefixes] + [p for p in ops.prefixes]
            out += [word() + s for s in ops.suffixes] + [w + s for s in ops.suffixes for w in ("x" + s,)]
            out += [word() + p + word() + p + word() for p in ops.parts] + [p + word() for p in ops.parts[:4]]
            out += ["a" * n for n in ops.lengths] + ["ab" * n for n in ops.lengths[:2]]
            if ops.halves:
                for _ in range(3):
                    half = self._string() or word()
                    out += [half + half, half + half[::-1]]
                out += ["abcba", "abba", "aa"]
            out += list(_UNUSUAL_TEXT) + [w + "é" for w in self.strings[:2]]
            if spec.kind == "bytes":
                return [v.encode("utf-8") for v in out]
            return out
        if spec.kind in ("list", "tuple", "set") and not (spec.kind == "tuple" and spec.args and not spec.variadic):
            element = spec.args[0] if spec.args else TypeSpec("int")
            element = element if element.kind != "any" else TypeSpec("int")
            items = [self.value(element, 1) for _ in range(4)]
            try:
                ordered = sorted(items)
            except TypeError:
                ordered = items
            out = [items + items[:2], [items[0]] * 3, ordered, ordered[::-1], items[:1]]
            out += [[self.value(element, 1) for _ in range(n)] for n in {n + d for n in ops.lengths for d in (-1, 0, 1)}
                    if 0 <= n <= 16]  # fmt: skip
            if spec.kind == "tuple":
                return [tuple(v) for v in out]
            if spec.kind == "set":
                return [{self._hashable(x) for x in v} for v in out]
            return out
        if spec.kind in ("int", "float"):
            # each constant c with c - 1 and c + 1 (already in numbers; the mirrored -c are left to the random pool)
            edges = [n for n in self.numbers if type(n) is int and n >= 0]
            cast = int if spec.kind == "int" else float
            out = [cast(n) for n in edges] + [cast(n + d) for n in ops.lengths for d in (-1, 0, 1)]
            if spec.kind == "float":
                out += [n + 0.5 for n in edges] + [n - 0.5 for n in edges]
            return out
        return []

    def operand_inputs(self, limit: int = 24) -> list[Args]:
        """Inputs with one argument taken from `operand_values` (the others random), at most
        ``limit``, spread over the parameters."""
        pools = [unique([(v,) for v in self.operand_values(t)]) for t in self.types]
        out: list[Args] = []
        for rank in range(max((len(p) for p in pools), default=0)):
            for i, pool in enumerate(pools):
                if rank < len(pool) and len(out) < limit:
                    base = [self.value(t) for t in self.types]
                    base[i] = pool[rank][0]
                    out.append(tuple(base))
                    self.origins.setdefault(to_literal(out[-1]) or "", "operand")
        return out

    def evolve(self, parents: Sequence[Args], n: int | None = None) -> list[Args]:
        """``n`` new inputs, each a parent with one argument mutated (coverage/mutation guided)."""
        n = n or self.options.per_round
        if not parents:
            return [tuple(self.value(t) for t in self.types) for _ in range(n)]
        out = []
        for i in range(n):
            parent = list(parents[i % len(parents)])
            if not parent:
                break
            j = self.rng.randrange(len(parent))
            shared = _scalars(parent[:j] + parent[j + 1 :])
            if shared and type(parent[j]) in (int, float, str) and self.rng.random() < 0.25:
                # make two arguments meet (x == limit, needle in haystack): boundaries between them
                same_type = [v for v in shared if type(v) is type(parent[j])]
                parent[j] = self.rng.choice(same_type or [parent[j]])
            else:
                parent[j] = self.mutate(parent[j], self.types[j] if j < len(self.types) else ANY)
            out.append(tuple(parent))
        return unique(out)

    def mutate(self, value: Any, spec: TypeSpec = ANY) -> Any:
        """A nearby value of the same type."""
        rng = self.rng
        if rng.random() < 0.1:
            return self.value(spec)
        if isinstance(value, bool):
            return not value
        if isinstance(value, int):
            ops = [lambda v: v + 1, lambda v: v - 1, lambda v: -v, lambda v: v * 2, lambda v: v // 2,
                   lambda v: rng.choice(self.numbers) if self.numbers else 0, lambda v: v + rng.randint(-20, 20)]  # fmt: skip
            return int(rng.choice(ops)(value))
        if isinstance(value, float):
            return rng.choice([value + 1.0, value - 0.5, -value, value * 2, 0.0, round(value), value / 3])
        if isinstance(value, str):
            return self._string_mutation(value)
        if isinstance(value, bytes):
            return self._string_mutation(value.decode("latin-1")).encode("latin-1", "replace")
        element = spec.args[0] if spec.args else ANY
        if isinstance(value, list):
            items = list(value)
            choice = rng.randrange(5)
            if choice == 0 and items:
                del items[rng.randrange(len(items))]
            elif choice == 1 or not items:
                items.insert(rng.randint(0, len(items)), self.value(element, 1) if element.kind != "any" or not items
                             else rng.choice(items))  # fmt: skip
            elif choice == 2 and len(items) > 1:
                i, j = rng.randrange(len(items)), rng.randrange(len(items))
                items[i], items[j] = items[j], items[i]
            elif choice == 3:
                items.sort(key=repr) if rng.random() < 0.5 else items.reverse()
            else:
                i = rng.randrange(len(items))
                items[i] = self.mutate(items[i], element)
            return items
        if isinstance(value, tuple):
            if not value:
                return value
            items = list(value)
            i = rng.randrange(len(items))
            items[i] = self.mutate(items[i], spec.args[i] if i < len(spec.args) else element)
            return tuple(items)
        if isinstance(value, dict):
            items = dict(value)
            if items and rng.random() < 0.4:
                del items[rng.choice(list(items))]
            else:
                key_spec, val_spec = (spec.args + (ANY, ANY))[:2]
                key = self._hashable(self.value(key_spec if key_spec.kind != "any" else TypeSpec("str"), 1))
                items[key] = self.value(val_spec, 1)
            return items
        if isinstance(value, set):
            items = set(value)
            if items and rng.random() < 0.5:
                items.discard(rng.choice(sorted(items, key=repr)))
            else:
                items.add(self._hashable(self.value(element, 1)))
            return items
        return self.value(spec)

    def shrink(self, args: Args) -> list[Args]:
        """Smaller versions of ``args``: one argument simplified at a time."""
        out = []
        for i, value in enumerate(args):
            for smaller in _shrink_value(value):
                out.append(args[:i] + (smaller,) + args[i + 1 :])
        return unique(out)


def _scalars(values: Sequence[Any], depth: int = 0) -> list[Any]:
    """The ints, floats and strings in ``values``, looking into containers."""
    found: list[Any] = []
    for value in values:
        if type(value) in (int, float, str):
            found.append(value)
        elif isinstance(value, (list, tuple, set, frozenset)) and depth < 3:
            found += _scalars(list(value), depth + 1)
        elif isinstance(value, dict) and depth < 3:
            found += _scalars(list(value) + list(value.values()), depth + 1)
    return found


def _spec_of_value(value: Any) -> TypeSpec:
    if isinstance(value, bool):
        return TypeSpec("bool")
    for kind, t in (("int", int), ("float", float), ("str", str), ("bytes", bytes)):
        if isinstance(value, t):
            return TypeSpec(kind)
    if isinstance(value, (list, tuple, set)):
        inner = _spec_of_value(next(iter(value))) if value else ANY
        return TypeSpec({list: "list", tuple: "tuple", set: "set"}[type(value)], (inner,), True)
    if isinstance(value, dict):
        return TypeSpec("dict", (ANY, ANY))
    return ANY


def _empty(spec: TypeSpec) -> Any:
    return {"int": 0, "float": 0.0, "str": "", "bytes": b"", "bool": False, "list": [], "dict": {}, "set": set(),
            "tuple": (), "none": None}.get(spec.kind, 0)  # fmt: skip


def _shrink_value(value: Any) -> list[Any]:
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, int):
        return [v for v in {0, value // 2, value - 1 if value > 0 else value + 1} if abs(v) < abs(value)]
    if isinstance(value, float):
        return [v for v in {0.0, float(round(value)), value / 2} if abs(v) < abs(value) or v != value and v.is_integer()]
    if isinstance(value, (str, bytes, list, tuple)):
        n = len(value)
        out = [value[: n // 2], value[1:], value[:-1]] if n else []
        if isinstance(value, (list, tuple)):
            for i, item in enumerate(value[:4]):
                for smaller in _shrink_value(item)[:1]:
                    out.append(value[:i] + type(value)([smaller]) + value[i + 1 :])
        return [v for v in out if len(v) < n or v != value]
    if isinstance(value, dict) and value:
        keys = list(value)
        return [{k: value[k] for k in keys[: len(keys) // 2]}, {k: value[k] for k in keys[1:]}]
    if isinstance(value, set) and value:
        items = sorted(value, key=repr)
        return [set(items[: len(items) // 2]), set(items[1:])]
    return []


def unique(items: Sequence[Args]) -> list[Args]:
    """Inputs without repeats (by literal form), in order; inputs with no literal form are dropped."""
    seen: set[str] = set()
    out = []
    for args in items:
        text = to_literal(tuple(args))
        if text is None or text in seen or len(text) > 2000:
            continue
        seen.add(text)
        out.append(tuple(args))
    return out
