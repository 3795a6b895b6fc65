"""The command line: eval-references, doctor, --help everywhere."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from codegym.cli import app

runner = CliRunner()


def test_help_everywhere():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "eval-references" in result.output
    for command in app.registered_commands:
        sub = runner.invoke(app, [command.name, "--help"])
        assert sub.exit_code == 0, (command.name, sub.output)


def test_eval_references_humaneval_all_pass(in_tmp):
    result = runner.invoke(app, ["eval-references", "humaneval", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["total"] == 164 and summary["passed"] == 164 and summary["not_passed"] == []


def test_eval_references_lists_failures_with_reasons(in_tmp):
    rows = [
        {"task_id": 700, "text": "Add.", "code": "def add(a, b):\n    return a + b", "test_list": ["assert add(1, 2) == 3"], "test_setup_code": "", "challenge_test_list": []},
        {"task_id": 701, "text": "Add.", "code": "def add(a, b):\n    return a - b", "test_list": ["assert add(1, 2) == 3"], "test_setup_code": "", "challenge_test_list": []},
        {"task_id": 702, "text": "Add.", "code": "def add(a, b):\n    return a +", "test_list": ["assert add(1, 2) == 3"], "test_setup_code": "", "challenge_test_list": []},
    ]
    path = in_tmp / "mini.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = runner.invoke(app, ["eval-references", str(path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["passed"] == 1 and summary["not_passed"] == ["MBPP/701", "MBPP/702"]
    assert summary["outcomes"] == {"passed": 1, "failed": 1, "syntax_error": 1}
    table = runner.invoke(app, ["eval-references", str(path)])
    assert "MBPP/702" in table.output and "syntax_error" in table.output


def test_eval_references_bad_source(in_tmp):
    result = runner.invoke(app, ["eval-references", "no-such-thing"])
    assert result.exit_code != 0
    assert "no problem source named" in result.output


def test_calibrate_writes_limits_from_the_reference(in_tmp):
    rows = [
        {"task_id": "c/fast", "prompt": "def f(x):\n", "entry_point": "f", "tests": ["assert f(1) == 1"], "reference": "def f(x):\n    return x\n"},
        {"task_id": "c/slow", "prompt": "def f(x):\n", "entry_point": "f", "tests": ["assert f(1) == 1", "assert f(2) == 2"],
         "reference": "import time\n\ndef f(x):\n    time.sleep(0.1)\n    return x\n"},
        {"task_id": "c/wrong", "prompt": "def f(x):\n", "entry_point": "f", "tests": ["assert f(1) == 2"], "reference": "def f(x):\n    return x\n"},
    ]
    path = in_tmp / "p.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = runner.invoke(app, ["calibrate", str(path), "--out", str(in_tmp / "limits.json"), "--k", "1", "--t-min", "0.05", "--factor", "2"])
    assert result.exit_code == 0, result.output
    sidecar = json.loads((in_tmp / "limits.json").read_text())
    assert sidecar["factor"] == 2 and sidecar["t_min"] == 0.05 and sidecar["machine"]
    assert set(sidecar["limits"]) == {"c/fast", "c/slow"} and sidecar["not_passed"] == {"c/wrong": "failed"}
    assert sidecar["limits"]["c/slow"] >= 2 * 0.2 and sidecar["limits"]["c/fast"] >= 0.05
    assert len(sidecar["per_test_seconds"]["c/slow"]) == 2 and min(sidecar["per_test_seconds"]["c/slow"]) >= 0.1
    result = runner.invoke(app, ["calibrate", str(path), "--out", str(in_tmp / "calibrated.jsonl"), "--k", "1", "--no-per-test"])
    assert result.exit_code == 0, result.output
    from codegym import problems

    loaded = {p.task_id: p.time_limit for p in problems.load(in_tmp / "calibrated.jsonl")}
    assert loaded["c/fast"] == 0.5 and loaded["c/slow"] >= 0.5 and loaded["c/wrong"] is None


def test_doctor(in_tmp):
    result = runner.invoke(app, ["doctor"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Landlock" in result.output and "passed" in result.output
    assert re.search(r"codegym's own files unreadable.*│ yes \(/", result.output), result.output
    assert "seccomp" in result.output and "tmpfs" in result.output


def test_evaluate_takes_the_directory_given_to_train_out(in_tmp):
    """``codegym train --out DIR`` then ``codegym evaluate --checkpoint DIR`` (or ``DIR/checkpoint``)."""
    from codegym.agents.toy import toy_policy, toy_problems
    from codegym.problems import write_jsonl

    toy = toy_policy(1, sft_steps=0)
    toy.model.save_pretrained(in_tmp / "model")
    toy.tokenizer.save_pretrained(in_tmp / "model")
    write_jsonl(toy_problems(1), in_tmp / "toy.jsonl")
    trained = runner.invoke(app, ["train", "--agent", "clm", "--problems", "toy.jsonl", "--policy", "model", "--steps", "1", "--set", "max_new_tokens=8", "--out", "run"])
    assert trained.exit_code == 0, trained.output
    for given in ("run", "run/checkpoint"):
        result = runner.invoke(app, ["evaluate", "--checkpoint", given, "--problems", "toy.jsonl", "--n", "2", "--k", "1"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout.strip().splitlines()[-1])["agent"] == "clm"
    (in_tmp / "empty").mkdir()
    result = runner.invoke(app, ["evaluate", "--checkpoint", "empty", "--problems", "toy.jsonl"])
    assert result.exit_code != 0 and "codegym train --out" in result.output
