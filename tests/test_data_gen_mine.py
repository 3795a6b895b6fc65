"""data_gen stage 1: mining functions that can be tested in isolation (pure AST work, nothing runs)."""

from __future__ import annotations

import ast

from codegym.data_gen.mine import MinedFunction, MineOptions, Skipped, mine, mine_problems, mine_source, split_prompt
from codegym.problems import Problem

SOURCE = '''
import math
import os
import random
from socket import socket

SCALE = 3
TABLE = (1, 2, SCALE)
counter = 0
counter = 1


def helper(x):
    return x * SCALE


def uses_helper(x: int) -> int:
    """Scale and round."""
    return math.floor(helper(x) + TABLE[0])


def reads(path):
    return open(path).read()


def env(name):
    return os.environ[name]


def dice(n):
    return random.randint(1, n)


def net(host):
    return socket(host)


def bumps(x):
    global counter
    counter += x
    return counter


def reads_state(x):
    return x + counter


def unknown(x):
    return x + not_defined_anywhere


def gen(x):
    yield x


def no_params():
    return 1


class Box:
    @staticmethod
    def double(x):
        return 2 * x

    def method(self, x):
        return x
'''


def _by_name(items):
    return {getattr(i, "entry", None) or i.key.rsplit(":", 1)[-1]: i for i in items}


def test_mine_keeps_pure_functions_with_their_dependencies():
    items = _by_name(mine_source(SOURCE, {"file": "m.py", "license": "MIT", "package": "m"}))
    kept = items["uses_helper"]
    assert isinstance(kept, MinedFunction)
    module = ast.parse(kept.program)  # a complete program: import, constants, helper, function
    names = [getattr(n, "name", None) or ast.unparse(n) for n in module.body]
    assert "import math" in names and "helper" in names and names[-1] == "uses_helper"
    assert "SCALE = 3" in kept.program and "TABLE = (1, 2, SCALE)" in kept.program
    assert "import os" not in kept.program
    assert kept.docstring == "Scale and round."
    assert kept.annotations == {"x": "int", "return": "int"}
    assert kept.source["license"] == "MIT" and kept.source["line"] > 1
    assert isinstance(items["double"], MinedFunction)  # a static method that does not use its class


def test_mine_skips_untestable_functions_with_reasons():
    items = _by_name(mine_source(SOURCE, {"file": "m.py"}))
    reasons = {name: item.reason for name, item in items.items() if isinstance(item, Skipped)}
    assert reasons["reads"] == "I/O"
    assert reasons["env"] == "I/O"
    assert reasons["dice"] == "randomness"
    assert reasons["net"] == "network"
    assert reasons["bumps"] == "global state"
    assert reasons["reads_state"] == "global state"
    assert reasons["unknown"] == "missing name"
    assert reasons["gen"] == "generator"
    assert reasons["no_params"] == "no parameters"


def test_prompt_is_a_prefix_of_the_program():
    item = next(i for i in mine_source(SOURCE, {"file": "m.py"}) if getattr(i, "entry", "") == "uses_helper")
    assert item.program.startswith(item.prompt)
    assert item.prompt.rstrip().endswith('"""Scale and round."""')
    prompt, lines, doc = split_prompt(item.program, "uses_helper")
    assert prompt == item.prompt and doc == "Scale and round."
    assert item.program.splitlines()[lines[0] - 1].startswith("def uses_helper")


def test_bad_files_are_skipped_with_reasons(tmp_path):
    (tmp_path / "broken.py").write_text("def f(:\n")
    (tmp_path / "binary.py").write_bytes(b"\x00\x01\x02def f(x): return x\n")
    (tmp_path / "latin.py").write_bytes("x = 'caf\xe9'\n".encode("latin-1"))
    (tmp_path / "huge.py").write_text("X = 1\n" * 50)
    (tmp_path / "good.py").write_text("def inc(x):\n    return x + 1\n")
    items = list(mine([tmp_path], MineOptions(max_file_bytes=200)))
    reasons = sorted(i.reason for i in items if isinstance(i, Skipped))
    assert reasons == ["binary file", "binary file", "does not parse", "huge file"]
    assert [i.entry for i in items if isinstance(i, MinedFunction)] == ["inc"]


def test_licenses_filter(tmp_path):
    (tmp_path / "LICENSE").write_text("GNU GENERAL PUBLIC LICENSE Version 3")
    (tmp_path / "m.py").write_text("def inc(x):\n    return x + 1\n")
    items = list(mine([tmp_path], MineOptions(licenses=("MIT",))))
    assert [i.reason for i in items] == ["license not allowed"]


def test_mine_problems_keeps_task_ids():
    problem = Problem("X/1", 'def f(x):\n    """Doc."""\n', "f", ("assert f(1) == 2",), 'def f(x):\n    """Doc."""\n    return x + 1\n')
    (item,) = mine_problems([problem])
    assert item.task_id == "X/1" and item.entry == "f" and item.prompt == problem.prompt
    assert item.lines == (1, 3)
