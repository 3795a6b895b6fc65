"""Decode the values a sandboxed child sends back, trusting nothing about them.

The child encodes a value as JSON made of exact builtin types (see ``_worker._encode``): lists stay
lists; other containers and non-JSON scalars are one-key objects: ``{"t": [...]}`` tuple,
``{"s": [...]}`` set, ``{"z": [...]}`` frozenset, ``{"d": [[k, v], ...]}`` dict, ``{"b": hex}``
bytes, ``{"i": hex}`` large int, ``{"f": float.hex}`` nan or infinity, ``{"c": [re, im]}`` complex.
Counter, OrderedDict and defaultdict arrive as plain dicts. Anything else is malformed.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MalformedValue", "decode", "encode_expected"]


class MalformedValue(ValueError):
    """The bytes are not a value the harness could have produced."""


_SCALARS = (str, int, float, bool, type(None))


def _decode(node: Any, depth: int) -> Any:
    if depth > 250:
        raise MalformedValue("too deep")
    if isinstance(node, _SCALARS):
        return node
    if isinstance(node, list):
        return [_decode(v, depth + 1) for v in node]
    if not (isinstance(node, dict) and len(node) == 1):
        raise MalformedValue(f"unexpected {type(node).__name__}")
    ((tag, body),) = node.items()
    try:
        if tag == "t":
            return tuple(_decode(v, depth + 1) for v in _list(body))
        if tag == "s":
            return {_decode(v, depth + 1) for v in _list(body)}
        if tag == "z":
            return frozenset(_decode(v, depth + 1) for v in _list(body))
        if tag == "d":
            pairs = [_list(p) for p in _list(body)]
            if any(len(p) != 2 for p in pairs):
                raise MalformedValue("dict item is not a pair")
            return {_decode(k, depth + 1): _decode(v, depth + 1) for k, v in pairs}
        if tag == "b":
            return bytes.fromhex(_str(body))
        if tag == "i":
            return int(_str(body), 16)
        if tag == "f":
            return float.fromhex(_str(body))
        if tag == "c":
            real, imag = (_decode(v, depth + 1) for v in _list(body))
            if not all(isinstance(x, float) for x in (real, imag)):
                raise MalformedValue("complex parts must be floats")
            return complex(real, imag)
    except TypeError as exc:  # unhashable set member or dict key
        raise MalformedValue(str(exc)) from None
    raise MalformedValue(f"unknown tag {tag!r}")


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedValue("expected a list")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise MalformedValue("expected a string")
    return value


def decode(node: Any) -> Any:
    """The value an already JSON-parsed encoding stands for; `MalformedValue` if it is not valid."""
    try:
        return _decode(node, 0)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, MalformedValue):
            raise
        raise MalformedValue(str(exc)) from None


def loads(data: bytes) -> Any:
    """Parse one JSON message body; `MalformedValue` on any error."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise MalformedValue(str(exc)) from None


def encode_expected(value: Any, depth: int = 0) -> Any:
    """The harness encoding of an expected value made only of None, bool, int, float, str, lists and
    tuples (what the worker's fail-fast check compares exactly); `MalformedValue` for anything else."""
    if depth > 50:
        raise MalformedValue("too deep")
    t = type(value)
    if value is None or t in (bool, str) or (t is int and -(2**53) < value < 2**53):
        return value
    if t is float and value == value and value not in (float("inf"), float("-inf")):
        return value
    if t is list:
        return [encode_expected(v, depth + 1) for v in value]
    if t is tuple:
        return {"t": [encode_expected(v, depth + 1) for v in value]}
    raise MalformedValue(f"no fail-fast check for {t.__name__}")
