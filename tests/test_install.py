"""The suite tests an installed codegym; in a Python without it, this says how to install it."""

from __future__ import annotations

import sys

import pytest

from .conftest import MISSING


def test_codegym_and_its_test_requirements_are_installed():
    if MISSING:
        pytest.fail(
            f"{sys.executable} lacks {', '.join(MISSING)}, so the other test modules were not collected. "
            "Install codegym with its test requirements and run the tests with the README's test command: "
            "python3 -m venv .venv && .venv/bin/pip install -c constraints.txt -e '.[dev]' && .venv/bin/python -m pytest"
        )
