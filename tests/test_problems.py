"""Problem loading: bundled sets, file formats, strict errors, skipping, atomic writes, hub loader."""

from __future__ import annotations

import ast
import glob
import gzip
import json
import os

import pytest

from codegym import problems
from codegym.problems import InvalidLineWarning, Problem, ProblemLoadError


def test_humaneval_offline():
    loaded = problems.load("humaneval")
    assert len(loaded) == 164
    first = loaded[0]
    assert first.task_id == "HumanEval/0" and first.entry_point == "has_close_elements"
    assert first.tests[0].startswith("assert has_close_elements(")
    assert first.reference.startswith(first.prompt)
    whole = next(p for p in loaded if p.task_id == "HumanEval/32")
    assert len(whole.tests) == 1 and "check(find_zero)" in whole.tests[0]


def test_mbpp_splits():
    every = problems.load("mbpp")
    assert len(every) == 974
    sizes = {s: len(problems.load("mbpp", split=s)) for s in ("prompt", "test", "validation", "train")}
    assert sizes == {"prompt": 10, "test": 500, "validation": 90, "train": 374}
    assert problems.mbpp_split(11) == "test" and problems.mbpp_split(601) == "train"
    sanitized = problems.load("mbpp-sanitized")
    assert len(sanitized) == 427
    p = next(p for p in every if p.task_id == "MBPP/11")
    assert p.entry_point == "remove_Occ"
    assert p.prompt.startswith("def remove_Occ(s, ch):")
    assert "Your code should pass these tests:" in p.prompt
    assert p.metadata["license"] == "CC-BY-4.0"
    compile(p.prompt + "    pass\n", "<prompt>", "exec")


def test_mbpp_prompts_compile_with_a_body():
    for p in problems.load("mbpp") + problems.load("mbpp-sanitized"):
        compile(p.prompt + "    pass\n", p.task_id, "exec")


def test_unknown_split_and_source():
    with pytest.raises(ProblemLoadError, match="no problems in split 'nope'.*test"):
        problems.load("humaneval", split="nope")
    with pytest.raises(ProblemLoadError, match="known names: .*humaneval"):
        problems.load("no-such-dataset")


def _write(path, lines):
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else json.dumps(line).encode() for line in lines))
    return path


GOOD = {"task_id": "t/1", "prompt": "def f(x):\n", "entry_point": "f", "tests": ["assert f(1) == 1"], "reference": "def f(x):\n    return x\n"}


def test_codegym_format_round_trip(tmp_path):
    original = [
        Problem("a", "def f(x):\n", "f", ("assert f(1) == 1",), "def f(x):\n    return x\n", split="train", metadata={"k": 1}),
        Problem("b", "def g():\n", "g", ["assert g() is None"], test_setup="import math", time_limit=0.75),
    ]
    path = problems.write_jsonl(original, tmp_path / "sub" / "p.jsonl")
    assert problems.load(path) == original
    assert problems.load(path, split="train") == original[:1]
    assert [f.name for f in path.parent.iterdir()] == ["p.jsonl"]  # no temporary file left


def test_time_limit_field_and_bundled_limits(tmp_path):
    with pytest.raises(ProblemLoadError, match="field 'time_limit' must be a positive number"):
        problems.load(_write(tmp_path / "neg.jsonl", [{**GOOD, "time_limit": 0}]))
    with pytest.raises(ProblemLoadError, match="field 'time_limit' must be int or float"):
        problems.load(_write(tmp_path / "str.jsonl", [{**GOOD, "time_limit": "1s"}]))
    assert problems.load(_write(tmp_path / "ok.jsonl", [{**GOOD, "time_limit": 2}]))[0].time_limit == 2.0
    for name in ("simple", "humaneval", "mbpp", "mbpp-sanitized", "basic", "stdlib"):  # shipped calibrated (sidecars in codegym/data/limits/, or inline)
        loaded = problems.load(name)
        assert all(p.time_limit is not None and p.time_limit > 0 for p in loaded), name


def test_gzip_and_json_array(tmp_path):
    gz = tmp_path / "p.jsonl.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(json.dumps(GOOD) + "\n")
    assert problems.load(gz)[0].task_id == "t/1"
    array = tmp_path / "p.json"
    array.write_text(json.dumps([GOOD]))
    assert problems.load(array)[0].entry_point == "f"


def test_humaneval_and_mbpp_format_files(tmp_path):
    he = {"task_id": "X/0", "prompt": "def f(x):\n", "canonical_solution": "    return x\n", "entry_point": "f",
          "test": "def check(candidate):\n    assert candidate(1) == 1\n    assert candidate(2) == 2\n"}
    mbpp = {"task_id": 700, "text": "Return x.", "code": "def f(x):\r\n\treturn x", "test_list": ["assert f(1) == 1"],
            "test_setup_code": "", "challenge_test_list": []}
    loaded = problems.load(_write(tmp_path / "mixed.jsonl", [he, mbpp]))
    assert [p.task_id for p in loaded] == ["X/0", "MBPP/700"]
    assert loaded[0].tests == ("assert f(1) == 1", "assert f(2) == 2")
    assert loaded[1].split == "train" and "\r" not in loaded[1].reference
    with pytest.raises(ProblemLoadError, match="field 'text' is missing"):
        problems.load(_write(tmp_path / "forced.jsonl", [he]), format="mbpp")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{not json", r"bad\.jsonl:2: malformed JSON"),
        (b'{"task_id": "x", "prompt": "\xff"}', r"bad\.jsonl:2: not valid UTF-8"),
        ({**GOOD, "task_id": "t/2", "tests": "assert f(1) == 1"}, r"bad\.jsonl:2: field 'tests' must be list"),
        ({**GOOD, "task_id": "t/2", "tests": [1]}, r"bad\.jsonl:2: field 'tests' item 0 must be str"),
        ({k: v for k, v in GOOD.items() if k != "prompt"} | {"task_id": "t/2"}, r"bad\.jsonl:2: unknown record format"),
        ({**GOOD, "task_id": "t/2", "entry_point": None}, r"bad\.jsonl:2: field 'entry_point' is missing"),
        (GOOD, r"bad\.jsonl:2: field 'task_id' duplicate task_id 't/1' \(first at .*bad\.jsonl:1\)"),
        ([1, 2], r"bad\.jsonl:2: expected a JSON object"),
    ],
)
def test_bad_lines_name_file_line_and_field(tmp_path, line, message):
    path = _write(tmp_path / "bad.jsonl", [GOOD, line])
    with pytest.raises(ProblemLoadError, match=message):
        problems.load(path)
    with pytest.warns(InvalidLineWarning, match=message):
        kept = problems.load(path, skip_invalid=True)
    assert [p.task_id for p in kept] == ["t/1"]


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ProblemLoadError, match="holds no problems"):
        problems.load(tmp_path / "empty.jsonl")
    with pytest.raises(ProblemLoadError, match="unknown format 'yaml'"):
        problems.load(_write(tmp_path / "ok.jsonl", [GOOD]), format="yaml")


def test_program_joins_prompt_completion_and_setup():
    p = Problem("t", "def f():\n", "f", ["assert f() == 1"], test_setup="import math")
    assert p.program("    return 1\n") == "def f():\n    return 1\n\nimport math\n"
    with pytest.raises(ValueError, match="no reference"):
        p.reference_program()


def test_hub_loader_reads_through_datasets(tmp_path):
    path = _write(tmp_path / "hub.jsonl", [GOOD])
    loaded = problems.load_hub("json", split="train", data_files=str(path))
    assert loaded[0].task_id == "t/1" and loaded[0].split == "train"


def test_hub_loader_offline_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ProblemLoadError, match="offline"):
        problems.load("hf:codegym-test/definitely-not-a-dataset")


def test_register_dataset():
    problems.register_dataset("tiny-test-set", lambda: [Problem("z", "def f():\n", "f", ["assert f() == 0"])])
    assert "tiny-test-set" in problems.available()
    assert problems.load("tiny-test-set")[0].task_id == "z"
    assert os.path.exists(problems.resources.files("codegym").joinpath("data", "mbpp", "README.md"))


def test_with_examples_shows_plain_tests_in_the_docstring():
    p = Problem(
        "t/1", 'def second(nums: list[int]) -> int | None:\n    """Return the second largest number of nums."""\n', "second",
        ("assert codegym_raises(second, None) == 'TypeError'", "assert second([1, 3, 2]) == 2", "assert second([]) == None",
         "assert second([5]) == None", "assert second([4, 4, 1]) == 1"),
    )  # fmt: skip
    shown = p.with_examples()
    assert shown.prompt == (
        'def second(nums: list[int]) -> int | None:\n    """Return the second largest number of nums.\n'
        "    >>> second([1, 3, 2])\n    2\n    >>> second([])\n    None\n    >>> second([5])\n    None\n    \"\"\"\n"
    )
    assert shown.tests == p.tests and shown.metadata["examples"] == 3 and shown.task_id == p.task_id
    mbpp_style = p.with_examples(k=1, style="assert").prompt
    assert mbpp_style.endswith("    Your code should pass these tests:\n    assert second([1, 3, 2]) == 2\n    \"\"\"\n")
    compile(shown.prompt + "    return None\n", "<prompt>", "exec")


def test_with_examples_counts_shown_tests_and_handles_bare_signatures():
    tests = ("assert f(1) == 2", "assert f(2) == 4", "assert f(3) == 6", "assert f(4) == 8")
    already = Problem("t/2", 'def f(x):\n    """Double x.\n    >>> f(1)\n    2\n    """\n', "f", tests)
    assert already.with_examples(k=2).prompt.count(">>>") == 2  # f(1) was shown already: one added
    assert already.with_examples(k=1) is already
    bare = Problem("t/3", "def g(a, b):\n", "g", ("assert g(1, 2) == 3", "assert g(0, 0)", "assert g(2, 2) == 4"))
    assert bare.with_examples().prompt == 'def g(a, b):\n    """Examples:\n    >>> g(1, 2)\n    3\n    """\n'
    with pytest.raises(ValueError, match="doctest, assert"):
        bare.with_examples(style="prose")


def _shown_examples(problem: Problem) -> dict[str, str]:
    """The entry point's calls the prompt shows with their outputs (``>>> call`` + output line, or
    ``assert call == value``), as {call with the entry point renamed to ``_cg_key``: output source}."""
    lines = [line.strip() for line in problem.prompt.splitlines()]
    shown = {}
    for i, line in enumerate(lines):
        try:
            if line.startswith(">>> ") and i + 1 < len(lines):
                call, value = ast.parse(line[4:], mode="eval").body, ast.parse(lines[i + 1], mode="eval").body
            elif line.startswith("assert "):
                test = ast.parse(line).body[0].test
                if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
                    continue
                call, value = test.left, test.comparators[0]
            else:
                continue
        except SyntaxError:
            continue
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == problem.entry_point:
            call.func.id = "_cg_key"
            shown[ast.unparse(call)] = ast.unparse(value)
    return shown


def _shown_calls(problem: Problem) -> set[str]:
    return {call.replace("_cg_key(", f"{problem.entry_point}(", 1) for call in _shown_examples(problem)}


def _test_call(test: str) -> str | None:
    """The call of ``assert CALL == VALUE`` (normalised by `ast.unparse`), else None."""
    try:
        expr = ast.parse(test).body[0].test
    except (SyntaxError, AttributeError, IndexError):
        return None
    return ast.unparse(expr.left) if isinstance(expr, ast.Compare) else None


def _lookup_answer(problem: Problem) -> str:
    """A whole program whose entry point returns the shown outputs by table lookup (and raises KeyError
    for anything it was not shown): copying the examples, not solving the problem."""
    rows = "".join(f"try:\n    _CG_SHOWN[{call}] = {value}\nexcept Exception:\n    pass\n" for call, value in _shown_examples(problem).items())
    return (
        "def _cg_key(*a, **k):\n    return repr((a, sorted(k.items())))\n\n_CG_SHOWN = {}\n" + rows
        + f"\ndef {problem.entry_point}(*a, **k):\n    return _CG_SHOWN[_cg_key(*a, **k)]\n"
    )


def _preset_problems() -> list[Problem]:
    """Every problem of the presets' band specs (before the band is chosen: a superset of it) and
    evaluation specs, with the prompts the agents see."""
    import yaml

    from codegym.experiments.data import _first, parse_spec

    specs = set()
    for path in glob.glob(os.path.join(os.path.dirname(__file__), "..", "experiments", "presets", "*.yaml")):
        preset = yaml.safe_load(open(path))
        specs.update(s for s in preset.get("train", []) if "+band" in s)
        specs.update(s for group in preset.get("eval_sets", {}).values() for s in group)
    chosen = {}
    for text in sorted(specs):
        spec = parse_spec(text)
        for p in _first(problems.load(spec.source, split=spec.split), spec.limit):
            p = p.with_examples() if spec.examples else p
            chosen[(p.task_id, p.prompt)] = p
    return list(chosen.values())


def test_with_examples_leaves_two_tests_hidden_on_every_basic_problem():
    basic = [p for p in problems.load("basic") if len(p.tests) >= 3]
    assert len(basic) > 2000
    for p in basic:
        shown = p.with_examples(3)
        calls = _shown_calls(shown)
        hidden = [t for t in p.tests if _test_call(t) not in calls]
        assert len(hidden) >= 2, (p.task_id, shown.prompt)
        assert shown.metadata.get("examples", 0) <= len(p.tests) - 2


def test_copying_shown_examples_fails_every_preset_problem(executor):
    from codegym import scoring

    chosen = _preset_problems()
    assert len(chosen) > 2000 and {p.task_id.split("/")[0] for p in chosen} >= {"MBPP", "HumanEval"}
    answers = [_lookup_answer(p) for p in chosen]
    results = [s.result for s in scoring.score(chosen, answers, reward="pass_ratio", executor=executor)]
    copied = [p.task_id for p, r in zip(chosen, results) if r.passed]
    assert not copied, f"copying the shown examples passes {len(copied)} problems: {copied[:10]}"
    # the copy is a real one: where the prompt shows a test's call, that test passes
    shown_passed = shown_total = 0
    for p, r in zip(chosen, results):
        keys = _shown_calls(p)
        for test, ok in zip(p.tests, r.test_passed):
            if _test_call(test) in keys:
                shown_total += 1
                shown_passed += ok
    assert shown_total > 1000 and shown_passed >= 0.9 * shown_total, (shown_passed, shown_total)
