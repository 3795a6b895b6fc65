"""A replay buffer of sampled programs and their rewards, kept diverse by syntax tree.

PAPER.md (confirmed): samples go through a replay buffer, filtered by AST so that duplicates up to the
syntax tree are dropped. Our reading of "duplicate": two programs are the same when their normalised
ASTs are equal — identifiers renamed in order of first use (builtins kept, so ``len`` ≠ ``size``),
docstrings removed; comments and whitespace are gone in any AST. Programs that do not parse are
compared by their text without whitespace. Eviction is first in, first out (ours).
"""

from __future__ import annotations

import ast
import builtins
import random
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["Experience", "ReplayBuffer", "normalized_ast"]

_BUILTINS = frozenset(dir(builtins))


class _Canonical(ast.NodeTransformer):
    """Renames user identifiers to v0, v1, ... in order of first appearance and drops docstrings."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def _name(self, name: str) -> str:
        if name in _BUILTINS:
            return name
        return self.names.setdefault(name, f"v{len(self.names)}")

    def _strip_docstring(self, node: ast.AST) -> None:
        body = getattr(node, "body", None)
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]

    def generic_visit(self, node: ast.AST) -> ast.AST:
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self._strip_docstring(node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            node.name = self._name(node.name)
        elif isinstance(node, ast.Name):
            node.id = self._name(node.id)
        elif isinstance(node, ast.arg):
            node.arg = self._name(node.arg)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            node.names = [self._name(n) for n in node.names]
        return super().generic_visit(node)


def normalized_ast(program: str) -> str:
    """A key equal for programs that differ only in identifier names, whitespace, comments or docstrings."""
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError):
        return "unparsed:" + "".join(program.split())
    return ast.dump(_Canonical().visit(tree), annotate_fields=False, include_attributes=False)


@dataclass(frozen=True)
class Experience:
    """One sampled completion of a problem, with the reward and outcome its program earned, and the exact
    ids and behaviour log-probs it was sampled with (an update re-scores them, it never re-tokenizes)."""

    task_id: str
    completion: str
    reward: float
    outcome: str
    prompt_ids: tuple[int, ...] = ()
    token_ids: tuple[int, ...] = ()
    logprobs: tuple[float, ...] = ()


class ReplayBuffer:
    """At most ``capacity`` samples; with ``ast_filter`` a program whose normalised AST is already
    stored for the same problem is not added again."""

    def __init__(self, capacity: int, ast_filter: bool = True, seed: int = 0) -> None:
        if capacity < 0:
            raise ValueError(f"replay buffer capacity must be >= 0 (0 switches it off), got {capacity}")
        self.capacity = capacity
        self.ast_filter = ast_filter
        self._items: OrderedDict[tuple[str, str], Experience] = OrderedDict()
        self._serial = 0
        self._rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, sample: Experience, program: str) -> bool:
        """Store ``sample`` (``program`` is its full program, used for the AST key); False if filtered out."""
        if self.capacity == 0:
            return False
        if self.ast_filter:
            key = (sample.task_id, normalized_ast(program))
            if key in self._items:
                return False
        else:
            key = (sample.task_id, str(self._serial))
            self._serial += 1
        self._items[key] = sample
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return True

    def draw(self, k: int) -> list[Experience]:
        """Up to ``k`` stored samples, uniformly without replacement."""
        items = list(self._items.values())
        return self._rng.sample(items, min(k, len(items)))

    def state_dict(self) -> dict:
        return {"items": [(list(k), {**vars(s), "prompt_ids": list(s.prompt_ids), "token_ids": list(s.token_ids), "logprobs": list(s.logprobs)}) for k, s in self._items.items()], "serial": self._serial, "rng": self._rng.getstate()}

    def load_state_dict(self, state: dict) -> None:
        items = [(tuple(k), Experience(**{**s, **{f: tuple(s.get(f, ())) for f in ("prompt_ids", "token_ids", "logprobs")}})) for k, s in state["items"]]
        self._items = OrderedDict(items)
        self._serial = state["serial"]
        self._rng.setstate(state["rng"])
