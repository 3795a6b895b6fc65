"""Helpers for reading Python source that came from data sets or models."""

from __future__ import annotations

import ast
import warnings


def parse(source: str, mode: str = "exec") -> ast.AST:
    """`ast.parse` without the SyntaxWarning/DeprecationWarning noise of invalid escapes in data.

    Raises SyntaxError (and ValueError for null bytes) like `ast.parse`.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))
        return ast.parse(source, mode=mode)
