"""Helpers for reading Python source that came from data sets or models."""

from __future__ import annotations

import ast
import re
import warnings

TOP_LEVEL_LINE = re.compile(r"\n(?=\S)")
"""A newline followed by a line that starts with code (no indentation): the end of a function body."""


def parse(source: str, mode: str = "exec") -> ast.AST:
    """`ast.parse` without the SyntaxWarning/DeprecationWarning noise of invalid escapes in data.

    Raises SyntaxError (and ValueError for null bytes) like `ast.parse`.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))
        return ast.parse(source, mode=mode)


def truncate_completion(completion: str, prompt_ends_line: bool = True) -> str:
    """``completion`` up to the end of the function body: cut before the first non-indented, non-blank line
    (and the blank lines before it).

    The one rule for where a completion of a function ends: the policy's sampler stops there, and
    `codegym.scoring` cuts body completions there in ``auto`` mode.
    ``prompt_ends_line``: whether the prompt ended with a newline, so the completion starts a line.
    """
    if prompt_ends_line and completion[:1].strip():
        return ""
    match = TOP_LEVEL_LINE.search(completion)
    if match is None:
        return completion
    body = completion[: match.start()].rstrip()
    return body + "\n" if body else ""
