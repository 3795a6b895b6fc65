"""README claims checked by hand-computed cases: calibration's median over k runs, pass@k evaluation
against known per-problem counts (and self-repair against known solve turns), GRPO's loss
normalisation and clipping, the dapo preset, the importance cap and the evaluation nucleus. Fast
(no training), so mutation testing can run them."""

from __future__ import annotations

import copy
import json
import math
from concurrent.futures import Future
from dataclasses import replace

import pytest
import torch

from codegym.execution import ExecResult
from codegym.problems import Problem

# -- calibration: the median over k runs -------------------------------------------------------


class TimedExecutor:
    """Answers ``run_many`` with results whose durations come from ``durations(program, tests)``, in order."""

    def __init__(self, durations, passed=lambda program: True) -> None:
        self.durations, self.passed, self.jobs = durations, passed, []

    def run_many(self, jobs, progress=False):
        self.jobs += list(jobs)
        out = []
        for program, tests, timeout in jobs:
            ok = self.passed(program)
            out.append(ExecResult("passed" if ok else "failed", (ok,) * len(tests), duration=self.durations(program, tests)))
        return out


def _run_and_test(program: str) -> tuple[int, int]:
    """(run, test) from the comment `calibrate` adds to each measurement."""
    words = program.rstrip().splitlines()[-1].split()
    return int(words[-3]), int(words[-1])


ADD = Problem("t/add", "def add(a, b):\n", "add", ("assert add(1, 2) == 3", "assert add(2, 2) == 4"), "def add(a, b):\n    return a + b\n")
SUB = Problem("t/sub", "def sub(a, b):\n", "sub", ("assert sub(1, 2) == -1",), "def sub(a, b):\n    return a - b\n")


def test_calibration_takes_the_median_of_k_runs():
    from codegym.calibration import calibrate

    # whole list: run r takes (0.9, 0.1, 0.2, 5.0, 0.15)[r]: median of 5 = 0.2 (the mean would be 1.27)
    whole = (0.9, 0.1, 0.2, 5.0, 0.15)
    per_test = {0: (1.0, 0.01, 0.03, 0.02, 2.0), 1: (0.5, 0.4, 0.3, 0.2, 0.1)}

    def durations(program, tests):
        run, test = _run_and_test(program)
        return whole[run] if test == -1 else per_test[test][run]

    ex = TimedExecutor(durations)
    (add,) = calibrate([ADD], ex, k=5, t_min=0.05, factor=4.0)
    assert add.total == pytest.approx(0.2) and add.per_test == pytest.approx((0.03, 0.3))
    assert add.time_limit == pytest.approx(0.8) and add.outcome == "passed"
    assert len(ex.jobs) == 5 * 3 and len({p for p, _, _ in ex.jobs}) == 15  # every run its own cache entry
    assert all(t == 60.0 for _, _, t in ex.jobs)
    # the floor and the factor; an even k takes the middle two's mean
    (add,) = calibrate([ADD], TimedExecutor(lambda p, t: (0.01, 0.03, 0.02, 0.5)[_run_and_test(p)[0]]), k=4, t_min=0.5, factor=2.0, per_test=False)
    assert add.total == pytest.approx(0.025) and add.time_limit == 0.5 and add.per_test == ()
    (add,) = calibrate([ADD], TimedExecutor(lambda p, t: 0.3), k=1, t_min=0.1, factor=3.0, per_test=False)
    assert add.time_limit == pytest.approx(0.9)
    (add,) = calibrate([ADD], TimedExecutor(lambda p, t: 0.1234567), k=1, t_min=0.1, factor=2.0, per_test=False)
    assert add.time_limit == 0.247  # rounded to milliseconds
    (exact,) = calibrate([ADD], TimedExecutor(lambda p, t: 0.25), k=1, t_min=0.5, factor=2.0, per_test=False)
    assert exact.time_limit == 0.5  # max(t_min, factor x median) at the boundary


def test_calibration_of_a_failing_reference_and_several_problems():
    from codegym.calibration import calibrate

    ex = TimedExecutor(lambda p, t: 0.1 * len(t), passed=lambda program: "a - b" in program or "run 1" not in program)
    add, sub = calibrate([ADD, replace(SUB, task_id="t/sub"), replace(ADD, task_id="t/none", reference=None)], ex, k=3, t_min=0.05, factor=4.0)
    assert (add.task_id, add.outcome, add.time_limit) == ("t/add", "failed", None)  # one of its 3 runs failed: no limit
    assert (sub.task_id, sub.outcome, sub.time_limit, sub.total) == ("t/sub", "passed", pytest.approx(0.4), pytest.approx(0.1))
    assert add.per_test == pytest.approx((0.1, 0.1)) and sub.per_test == pytest.approx((0.1,))
    for bad in ({"k": 0}, {"t_min": 0.0}, {"factor": 0.0}):
        with pytest.raises(ValueError, match="need k >= 1"):
            calibrate([ADD], ex, **bad)


def test_calibration_limits_files(tmp_path):
    from codegym.calibration import Calibration, write_limits

    cals = [Calibration("t/add", 0.123456, (0.1, 0.2), 0.5, "passed"), Calibration("t/sub", 1.0, (), None, "timeout")]
    sidecar = json.loads(write_limits(cals, [ADD, SUB], tmp_path / "l.json", source="s", k=3, t_min=0.5, factor=4.0, note="n").read_text())
    assert sidecar["limits"] == {"t/add": 0.5} and sidecar["not_passed"] == {"t/sub": "timeout"}
    assert sidecar["reference_seconds"] == {"t/add": 0.12346, "t/sub": 1.0} and sidecar["per_test_seconds"] == {"t/add": [0.1, 0.2]}
    assert (sidecar["k"], sidecar["t_min"], sidecar["factor"], sidecar["source"], sidecar["note"]) == (3, 0.5, 4.0, "s", "n")
    from codegym import problems

    written = write_limits(cals, [ADD, replace(SUB, time_limit=2.0)], tmp_path / "p.jsonl", source="s", k=3, t_min=0.5, factor=4.0)
    assert [p.time_limit for p in problems.load(written)] == [0.5, 2.0]
    with pytest.raises(ValueError, match=".json sidecar or a .jsonl"):
        write_limits(cals, [ADD], tmp_path / "l.txt", source="s", k=3, t_min=0.5, factor=4.0)



def test_calibration_defaults_programs_and_progress():
    from codegym.calibration import FACTOR, T_MIN, calibrate

    class Recording(TimedExecutor):
        def run_many(self, jobs, progress=False):
            self.progress = progress
            return super().run_many(jobs, progress)

    ex = Recording(lambda p, t: 0.15)
    (add,) = calibrate([ADD], ex)  # k=3, per-test runs, 60 s, T_MIN and FACTOR
    assert (T_MIN, FACTOR) == (0.5, 4.0) and ex.progress is False
    assert add.time_limit == pytest.approx(0.6) and add.per_test == pytest.approx((0.15, 0.15)) and add.total == pytest.approx(0.15)
    assert len(ex.jobs) == 3 * (1 + 2) and all(t == 60.0 for _, _, t in ex.jobs)
    assert [tests for _, tests, _ in ex.jobs[:3]] == [list(ADD.tests), [ADD.tests[0]], [ADD.tests[1]]]
    assert all(program.startswith(ADD.reference_program()) for program, _, _ in ex.jobs)  # the reference is what is measured
    assert [_run_and_test(program) for program, _, _ in ex.jobs[:4]] == [(0, -1), (0, 0), (0, 1), (1, -1)]
    (slow,) = calibrate([ADD], Recording(lambda p, t: 0.1), per_test=False, progress=True, timeout=5.0)
    assert slow.time_limit == 0.5  # the floor, T_MIN
    (once,) = calibrate([ADD], Recording(lambda p, t: 0.6), k=1, t_min=0.1, factor=1.0, per_test=False)
    assert once.time_limit == 0.6  # any positive factor, 1 included
    ex = Recording(lambda p, t: 0.1, passed=lambda program: False)
    (bad,) = calibrate([ADD], ex, k=1, per_test=False, progress=True, timeout=5.0)
    assert ex.progress is True and [t for _, _, t in ex.jobs] == [5.0] and (bad.outcome, bad.time_limit) == ("failed", None)


def test_machine_and_limits_sidecar(tmp_path):
    import datetime
    import os
    import platform

    from codegym.calibration import Calibration, machine, write_limits

    described = machine()
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), None)
    assert described == f"{model or platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} usable cores, {platform.system()} {platform.release()}"
    cals = [Calibration("t/add", 0.1, (), 0.5, "passed")]
    target = write_limits(cals, [ADD], tmp_path / "new" / "dir" / "l.json", source="s", k=1, t_min=0.5, factor=4.0)
    assert target == tmp_path / "new" / "dir" / "l.json" and os.listdir(target.parent) == ["l.json"]  # no temporary file left
    assert (target.stat().st_mode & 0o777) == 0o644  # data for every user
    text = target.read_text()
    record = json.loads(text)
    assert text == json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
    assert record["machine"] == described and record["measured"] == datetime.date.today().isoformat() and record["note"] == ""
    assert record["rule"] == "time_limit = max(t_min, factor * median seconds of the reference over k runs, whole test list)"
    assert record["per_test_seconds"] == {} and record["not_passed"] == {}
    cals = [Calibration("t/add", 0.1234567, (0.1234567,), 0.5, "passed")]
    record = json.loads(write_limits(cals, [ADD], target, source="s", k=1, t_min=0.5, factor=4.0).read_text())
    assert record["per_test_seconds"] == {"t/add": [0.12346]} and record["reference_seconds"] == {"t/add": 0.12346}


def test_limits_sidecar_is_written_beside_its_target_and_renamed(tmp_path, monkeypatch):
    """A reader never sees half a sidecar: it is written to a hidden file in the same directory, then renamed."""
    import os

    from codegym.calibration import Calibration, write_limits

    renamed = []
    replace_file = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (renamed.append((str(src), str(dst))), replace_file(src, dst))[1])
    target = write_limits([Calibration("t/add", 0.1, (), 0.5, "passed")], [ADD], tmp_path / "l.json", source="s", k=1, t_min=0.5, factor=4.0)
    ((src, dst),) = renamed
    assert dst == str(target) and os.path.dirname(src) == str(tmp_path) and os.path.basename(src).startswith(".l.json.")


@pytest.mark.parametrize(
    "cpuinfo, expected",
    [
        ("processor\t: 0\nmodel name\t: Fancy CPU: v2 @ 3GHz\nflags\t: x\n", "Fancy CPU: v2 @ 3GHz"),  # a colon in the name
        ("processor\t: 0\nCPU part\t: 0xd0c\n", "aarch64"),  # no model name (ARM): platform's answer
        (None, "aarch64"),  # no /proc/cpuinfo
    ],
)
def test_machine_names_the_cpu(monkeypatch, cpuinfo, expected):
    import io
    import os
    import platform

    from codegym import calibration

    def fake_open(path, *args, **kwargs):
        if cpuinfo is None:
            raise FileNotFoundError(path)
        return io.StringIO(cpuinfo)

    monkeypatch.setattr(calibration, "open", fake_open, raising=False)
    monkeypatch.setattr(platform, "processor", lambda: "")
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert calibration.machine() == f"{expected}, {len(os.sched_getaffinity(0))} usable cores, {platform.system()} {platform.release()}"

# -- evaluate_agent: pass@k from known per-problem counts --------------------------------------


class KnownAgent:
    """Returns, for each problem, ``right[entry_point]`` correct completions out of ``n``, wrong ones after."""

    def __init__(self, right: dict[str, int]) -> None:
        self.right, self.calls = right, []

    def generate(self, prompts, n=1, temperature=None, seed=None):
        self.calls.append((len(prompts), n, temperature, seed))
        rows = []
        for prompt in prompts:
            name = prompt.split("(")[0].removeprefix("def ")
            value = int(name.rsplit("_", 1)[1]) % 4
            rows.append([f"    return {value if j < self.right[name] else value + 1}\n" for j in range(n)])
        return rows


def test_evaluate_agent_against_known_counts(executor, in_tmp):
    from codegym.agents import evaluate_agent
    from codegym.agents.toy import toy_problems

    problems = toy_problems(3)
    agent = KnownAgent({"answer_0": 3, "answer_1": 1, "answer_2": 0})
    summary = evaluate_agent(agent, problems, n=4, ks=[1, 2, 4, 9], executor=executor, out=in_tmp / "e.jsonl", temperature=0.5, seed=11)
    assert agent.calls == [(3, 4, 0.5, 11)]
    # by hand: pass@1 = mean(3/4, 1/4, 0); pass@2 = mean(1 - C(1,2)/C(4,2), 1 - C(3,2)/C(4,2), 0) = mean(1, 1/2, 0)
    assert summary == {"pass@1": pytest.approx(1 / 3), "pass@2": pytest.approx(0.5), "pass@4": pytest.approx(2 / 3), "n_problems": 3, "n_samples": 4}
    records = [json.loads(line) for line in (in_tmp / "e.jsonl").read_text().splitlines()]
    assert [(r["task_id"], r["n"], r["correct"]) for r in records] == [(p.task_id, 4, c) for p, c in zip(problems, (3, 1, 0))]
    assert records[0]["outcomes"] == ["passed"] * 3 + ["failed"] and records[1]["completions"][0] == "    return 1\n"
    with pytest.raises(ValueError, match="every k is larger than n=4"):
        evaluate_agent(agent, problems, n=4, ks=[5], executor=executor)



WRONG = "    return 9\n"


class ScriptedRepairer:
    """First attempts ``first[problem]`` (one list of n bodies per problem); at turn t, the episodes of a
    problem still unsolved get ``later[problem][t]`` bodies in order (the rest stay wrong)."""

    def __init__(self, first, later):
        self.first, self.later, self.calls = first, later, []

    def generate(self, prompts, n=1, temperature=None, seed=None):
        import re

        self.calls.append((list(prompts), n, temperature, seed))
        turn = len(self.calls) - 1
        if turn == 0:
            return [list(self.first[re.findall(r"def (answer_\d)", p)[-1]]) for p in prompts]
        rows, used = [], {}
        for prompt in prompts:
            name = re.findall(r"def (answer_\d)", prompt)[-1]
            script = self.later[name].get(turn, [])
            i = used[name] = used.get(name, -1) + 1
            rows.append([script[i] if i < len(script) else WRONG])
        return rows



def test_evaluate_repair_against_a_scripted_repairer(executor, in_tmp):
    """Self-repair vs resampling from known solve turns: answer_0's episodes solve at turns 1, 2, 2;
    answer_1's at turn 3 and never (twice)."""
    from codegym.agents import evaluate_repair
    from codegym.agents.toy import toy_problems
    from codegym.envs.repair import render_prompt
    from codegym.feedback import check, shown_prompt

    problems = toy_problems(2)
    right = {"answer_0": "    return 0\n", "answer_1": "    return 1\n"}
    agent = ScriptedRepairer(
        {"answer_0": [right["answer_0"], WRONG, WRONG], "answer_1": [WRONG] * 3},
        {"answer_0": {1: [right["answer_0"]] * 2}, "answer_1": {2: [right["answer_1"]]}},
    )
    summary = evaluate_repair(agent, problems, n=3, max_turns=3, executor=executor, out=in_tmp / "rep" / "new" / "r.jsonl", temperature=0.7, seed=5)
    assert summary["pass@1_turn_1"] == pytest.approx((1 / 3 + 0) / 2)
    assert summary["pass@1_turn_2"] == pytest.approx((1 + 0) / 2) and summary["pass@1_turn_3"] == pytest.approx((1 + 1 / 3) / 2)
    assert summary["repair_rate"] == pytest.approx(3 / 5)  # of the 5 episodes whose first attempt failed, 3 were repaired
    assert summary["resample@3"] == pytest.approx((1.0 + 0.0) / 2)  # pass@3 from the first attempts: 1 of 3 correct, 0 of 3
    diff = summary["repair_minus_resample"]
    assert diff["mean"] == pytest.approx((0.0 + 1 / 3) / 2) and diff["low"] <= diff["mean"] <= diff["high"] and diff["level"] == 0.95
    assert summary["programs_per_episode"] == pytest.approx((1 + 2 + 2 + 3 + 3 + 3) / 6)
    assert {k: summary[k] for k in ("n_problems", "n_samples", "max_turns", "feedback", "visible_tests")} == {
        "n_problems": 2, "n_samples": 3, "max_turns": 3, "feedback": "first_failure", "visible_tests": None}  # fmt: skip
    # what the agent was asked: n first attempts per problem, then one attempt per unsolved episode
    (first, n0, t0, s0), (second, n1, t1, s1), (third, n2, t2, s2) = agent.calls
    assert first == [shown_prompt(p) for p in problems] and (n0, t0, s0) == (3, 0.7, 5)
    assert (len(second), n1, t1, s1) == (5, 1, 0.7, 5 + 7919) and (len(third), n2, t2, s2) == (3, 1, 0.7, 5 + 2 * 7919)
    feedback = {p.entry_point: check([p], [WRONG], executor=executor)[0].feedback.text for p in problems}  # the default form
    assert second == [render_prompt({"prompt": p.prompt, "attempts": (WRONG,), "feedback": (feedback[p.entry_point],)}) for p in (problems[0],) * 2 + (problems[1],) * 3]
    assert third == [render_prompt({"prompt": problems[1].prompt, "attempts": (WRONG, WRONG), "feedback": (feedback["answer_1"],) * 2})] * 3
    assert all(WRONG.strip() in prompt for prompt in second + third)  # each later prompt shows the failed attempts
    records = [json.loads(line) for line in (in_tmp / "rep" / "new" / "r.jsonl").read_text().splitlines()]  # folders made as needed
    assert [(r["task_id"], r["n"], r["solved_at_turn"]) for r in records] == [("toy/0", 3, [1, 2, 2]), ("toy/1", 3, [3, None, None])]
    assert records[0]["attempts"] == [[right["answer_0"]], [WRONG, right["answer_0"]], [WRONG, right["answer_0"]]]
    assert records[1]["attempts"] == [[WRONG, WRONG, right["answer_1"]], [WRONG] * 3, [WRONG] * 3]
    with pytest.raises(ValueError, match="resample@3 needs n >= max_turns first attempts per problem, got n=2; raise --n"):
        evaluate_repair(agent, problems, n=2, max_turns=3, executor=executor)


class RecordingExecutor:
    """Hands every batch to a real executor and keeps what it was given: programs, timeout, options."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, []

    def submit(self, jobs, timeout=None, **options):
        jobs = list(jobs)
        self.calls.append(([program for program, _ in jobs], timeout, options))
        return self.inner.submit(jobs, timeout=timeout, **options)


class Bodies:
    """Writes ``turns[t]`` for every prompt at call t (the last one after that). ``n`` has no default:
    the caller must say how many it wants."""

    def __init__(self, *turns) -> None:
        self.turns, self.calls = turns, []

    def generate(self, prompts, n, temperature=None, seed=None):
        self.calls.append((list(prompts), n, temperature, seed))
        body = self.turns[min(len(self.calls), len(self.turns)) - 1]
        return [[body] * n for _ in prompts]


def _no_shared_executor(monkeypatch):
    def refuse():
        raise AssertionError("the shared executor was used although one was passed")

    from codegym import feedback, scoring

    monkeypatch.setattr(scoring, "default_executor", refuse)
    monkeypatch.setattr(feedback, "default_executor", refuse)


def test_evaluate_agent_hands_its_settings_on(executor, monkeypatch):
    """The programs run are prompt + completion as written (body mode), under the given timeout, fail-fast,
    on the given executor; n defaults to 10 and seed to 0."""
    from codegym.agents import evaluate_agent
    from codegym.agents.toy import toy_problems

    _no_shared_executor(monkeypatch)
    spy = RecordingExecutor(executor)
    problems = toy_problems(1)
    tail = "    return 0\nassert False\n"  # right, then a top-level line that fails: auto mode would cut it and pass
    agent = Bodies(tail)
    summary = evaluate_agent(agent, problems, ks=[1], executor=spy, timeout=4.5)
    assert agent.calls == [([problems[0].prompt], 10, None, 0)] and summary["n_samples"] == 10 and summary["pass@1"] == 0.0
    ((programs, timeout, options),) = spy.calls
    assert programs == [problems[0].program(tail)] * 10 and timeout == 4.5 and options == {"fail_fast": True}


def test_evaluate_repair_hands_its_settings_on(executor, monkeypatch):
    """visible_tests, the feedback form, the timeout, body mode and the executor reach every attempt's check."""
    from codegym.agents import evaluate_repair
    from codegym.envs.repair import render_prompt
    from codegym.feedback import check, shown_prompt

    _no_shared_executor(monkeypatch)
    add = Problem("t/ex", 'def add(a, b):\n    """Return a + b.\n    >>> add(1, 2)\n    3\n    >>> add(2, 2)\n    4\n\n    Adds.\n    """\n', "add",
                  ("assert add(1, 2) == 3", "assert add(2, 2) == 4"))  # fmt: skip
    shown = shown_prompt(add, 1)
    assert shown != add.prompt  # the second example is hidden
    wrong, right = "    return a - b\n", "    return a + b\nprint(add(1, 2))\n"  # auto mode would cut the print
    spy = RecordingExecutor(executor)
    agent = Bodies(wrong, right)
    summary = evaluate_repair(agent, [add], n=2, max_turns=2, executor=spy, timeout=6.5, visible_tests=1, feedback="outcome_only")
    text = check([add], [wrong], visible=1, form="outcome_only", executor=executor)[0].feedback.text
    assert text != check([add], [wrong], visible=1, executor=executor)[0].feedback.text  # the form shows in the prompt
    assert agent.calls == [([shown], 2, None, 0), ([render_prompt({"prompt": shown, "attempts": (wrong,), "feedback": (text,)})] * 2, 1, None, 7919)]
    assert [programs[0] for programs, _, _ in spy.calls] == [add.program(wrong), add.program(right)]
    assert all(timeout == 6.5 for _, timeout, _ in spy.calls) and len(spy.calls[0][0]) == 4  # two episodes, and the visible test alone
    assert summary == {**summary, "pass@1_turn_1": 0.0, "pass@1_turn_2": 1.0, "visible_tests": 1, "feedback": "outcome_only", "max_turns": 2, "n_samples": 2}
    assert set(summary) == {"pass@1_turn_1", "pass@1_turn_2", "repair_rate", "resample@2", "repair_minus_resample", "programs_per_episode",
                            "n_problems", "n_samples", "max_turns", "feedback", "visible_tests"}  # fmt: skip
    agent = Bodies(wrong)  # one episode of one turn: the first attempt's prompt is the problem's
    assert evaluate_repair(agent, [add], n=1, max_turns=1, executor=spy)["pass@1_turn_1"] == 0.0 and agent.calls == [([add.prompt], 1, None, 0)]
    agent = Bodies(right)  # the defaults: 10 episodes, 3 turns, seed 0
    assert evaluate_repair(agent, [add], executor=spy)["max_turns"] == 3 and agent.calls == [([add.prompt], 10, None, 0)]

# -- GRPO / RLOO: loss normalisation, clipping, the dapo preset --------------------------------


@pytest.fixture(scope="module")
def fresh_policy():
    from codegym.agents.toy import toy_policy

    return toy_policy(1, sft_steps=0)


def _grpo_batch(agent, n=6):
    from codegym.agents.toy import toy_problems

    samples = [s for row in agent.sample([toy_problems(1)[0].prompt], n, seed=0) for s in row]
    # cut to unequal lengths (a prefix keeps its recorded log-probs), which tell the two normalisations apart
    # (one of a single token: the sequence normalisation divides by each completion's own length)
    samples = [replace(s, token_ids=list(s.token_ids[: 1 + 2 * i]), logprobs=list(s.logprobs[: 1 + 2 * i])) for i, s in enumerate(samples)]
    lengths = [len(s.token_ids) for s in samples]
    assert len(set(lengths)) > 1, lengths  # unequal lengths tell the two normalisations apart
    return agent.batch(samples), torch.tensor(lengths, dtype=torch.float32)


def _stats():
    return {"pg_loss": [], "clipfrac": [], "entropy": [], "kl": [], "initial_ratio_error": []}


@pytest.mark.parametrize("name", ["grpo", "rloo"])
def test_loss_norm_token_and_sequence(fresh_policy, name):
    from codegym import agents

    for norm in ("token", "sequence"):
        agent = agents.make(name, policy=copy.deepcopy(fresh_policy), preset="tiny", max_new_tokens=12, loss_norm=norm, kl_coef=0.0, samples_per_problem=6)
        batch, lengths = _grpo_batch(agent)
        advantage = torch.linspace(-1.0, 1.5, len(lengths))
        stats = _stats()
        loss = agent._loss(batch, advantage, stats)  # ratio 1 (no update yet): every token's loss is −Â
        if norm == "token":  # DAPO: over all tokens of the minibatch
            expected = -(advantage * lengths).sum() / lengths.sum()
        else:  # per completion, then the mean over completions
            expected = -advantage.mean()
        assert float(loss.detach()) == pytest.approx(float(expected), abs=1e-4), norm
        assert stats["initial_ratio_error"][0] <= 1e-4 and stats["clipfrac"] == [0.0] and stats["kl"] == []
        assert stats["entropy"][0] > 0


@pytest.mark.parametrize("clip_low, clip_high", [(0.2, 0.2), (0.1, 0.28), (0.3, 0.05)])
def test_clip_low_and_clip_high_bound_the_ratio(fresh_policy, clip_low, clip_high):
    from codegym import agents

    agent = agents.make("grpo", policy=copy.deepcopy(fresh_policy), preset="tiny", max_new_tokens=12, clip_low=clip_low, clip_high=clip_high)
    batch, lengths = _grpo_batch(agent)
    ones = torch.ones(len(lengths))
    cases = [  # (ratio π/μ on every action, advantage, expected per-token loss)
        (2.0, ones, -(1 + clip_high)),  # above 1 + ε_high with Â > 0: clipped
        (0.5, -ones, 1 - clip_low),  # below 1 − ε_low with Â < 0: clipped
        (2.0, -ones, 2.0),  # the pessimistic side is never clipped
        (0.5, ones, -0.5),
        (1.0 + clip_high / 2, ones, -(1.0 + clip_high / 2)),  # inside the range: the ratio itself
        (2.0, 0 * ones, 0.0),  # Â = 0: nothing to clip, on either side
        (0.5, 0 * ones, 0.0),
        (0.5, 0.5 * ones, -0.25),  # a small positive Â below the range: the ratio itself, not clipped
    ]
    for ratio, advantage, expected in cases:
        shifted = replace(batch, behaviour_logprobs=batch.behaviour_logprobs - math.log(ratio) * batch.action_mask)
        stats = _stats()
        loss = agent._loss(shifted, advantage, stats)
        assert float(loss.detach()) == pytest.approx(expected, abs=1e-3), (ratio, float(advantage[0]))
        clipped = (ratio > 1 + clip_high and advantage[0] > 0) or (ratio < 1 - clip_low and advantage[0] < 0)
        assert stats["clipfrac"][0] == pytest.approx(float(clipped)), (ratio, float(advantage[0]))


def test_grpo_kl_term_is_k3_to_the_reference(fresh_policy):
    from codegym import agents

    agent = agents.make("grpo", policy=copy.deepcopy(fresh_policy), preset="tiny", max_new_tokens=12, kl_coef=0.5)
    assert agent.wants_reference() and not agents.make("grpo", policy=copy.deepcopy(fresh_policy), preset="tiny", max_new_tokens=8, kl_coef=0.0).wants_reference()
    batch, lengths = _grpo_batch(agent)
    zero = torch.zeros(len(lengths))
    stats = _stats()
    assert float(agent._loss(batch, zero, stats).detach()) == pytest.approx(0.0, abs=1e-5) and stats["kl"][0] == pytest.approx(0.0, abs=1e-5)
    with torch.no_grad():
        for p in agent.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    stats = _stats()
    loss = agent._loss(batch, zero, stats)  # Â = 0: the loss is β · KL (token mean)
    assert stats["kl"][0] > 1e-4 and float(loss.detach()) == pytest.approx(0.5 * stats["kl"][0], rel=1e-3)
    # k3 of GRPO's paper, computed here from the two models' log-probs: exp(ref − new) − (ref − new) − 1
    from codegym.agents.rollout import masked_mean, reference_logprobs, token_view

    with torch.no_grad():
        new = token_view(agent.model, batch, False, agent.config.temperature).logprobs
        delta = (reference_logprobs(agent.reference, batch, False, agent.config.temperature) - new) * batch.action_mask
        expected = masked_mean(delta.exp() - delta - 1, batch.action_mask)
    assert stats["kl"][0] == pytest.approx(float(expected), rel=1e-4)


def test_grpo_advantages_and_update_metrics(fresh_policy, executor, in_tmp):
    from codegym import agents
    from codegym.agents.rollout import Rollout

    agent = agents.make("grpo", policy=copy.deepcopy(fresh_policy), preset="tiny", max_new_tokens=12, samples_per_problem=4)
    rollout = Rollout([None] * 4, [None] * 4, [None] * 4, [1.0, 0.0, 0.0, 1.0], [0, 0, 0, 0])
    assert agent.advantages(rollout).tolist() == pytest.approx([0.5 / (1 / math.sqrt(3) + 1e-4) * (1 if r else -1) for r in (1, 0, 0, 1)], rel=1e-5)
    unscaled = agents.make("grpo", policy=copy.deepcopy(fresh_policy), preset="tiny", max_new_tokens=8, scale_rewards=False)
    assert unscaled.advantages(rollout).tolist() == pytest.approx([0.5, -0.5, -0.5, 0.5])
    rloo = agents.make("rloo", policy=copy.deepcopy(fresh_policy), preset="tiny", max_new_tokens=8)
    assert rloo.advantages(rollout).tolist() == pytest.approx([1 - 1 / 3, -2 / 3, -2 / 3, 1 - 1 / 3])
    from codegym.agents.toy import toy_problems

    history = agent.fit(toy_problems(1), 1, executor=executor)
    m = history[0]
    assert m["episodes"] == agent.config.batch_problems * 4 and {"pg_loss", "clipfrac", "entropy", "initial_ratio_error"} <= set(m)
    assert "advantage_abs" in m and m["advantage_abs"] >= 0


def test_grpo_config_checks_and_dapo_preset(fresh_policy):
    from codegym import agents
    from codegym.agents.config import ConfigError, build_config
    from codegym.agents.critic_free import GRPOConfig, RLOOConfig

    dapo = build_config(GRPOConfig, "dapo", {})
    assert (dapo.clip_low, dapo.clip_high, dapo.loss_norm, dapo.filter_groups, dapo.kl_coef) == (0.2, 0.28, "token", True, 0.0)
    default = build_config(GRPOConfig, "default", {})
    assert (default.clip_high, default.loss_norm, default.filter_groups, default.scale_rewards, default.samples_per_problem) == (0.2, "token", False, True, 8)
    assert (default.update_epochs, default.num_minibatches, default.kl_coef) == (1, 1, 0.0)
    rloo = build_config(RLOOConfig, "default", {})
    assert (rloo.kl_coef, rloo.loss_norm) == (0.05, "sequence")
    assert build_config(RLOOConfig, "dapo", {}).clip_high == 0.28
    with pytest.raises(ConfigError, match="loss_norm must be one of sequence, token"):
        build_config(GRPOConfig, "default", {"loss_norm": "batch"})
    with pytest.raises(ConfigError, match="samples_per_problem >= 2"):
        build_config(GRPOConfig, "default", {"samples_per_problem": 1})
    build_config(GRPOConfig, "default", {"samples_per_problem": 2})  # the smallest group
    assert agents.make("grpo", policy=copy.deepcopy(fresh_policy), preset="dapo", max_new_tokens=8).config.filter_groups  # the preset by name



def test_grpo_update_epochs_minibatches_and_optimizer_state(fresh_policy):
    """update_epochs x num_minibatches optimizer steps over the rollout, each on its share of the samples;
    the logged losses are their mean; a minibatch left empty still steps; the optimizer's state is saved."""
    from codegym import agents
    from codegym.agents.rollout import Rollout
    from codegym.agents.toy import toy_problems

    def make(**settings):
        return agents.make("grpo", policy=copy.deepcopy(fresh_policy), preset="tiny", max_new_tokens=6, scale_rewards=False, **settings)

    agent = make(update_epochs=2, num_minibatches=2, lr=3e-3, kl_coef=0.1)
    assert agent.optimizer.param_groups[0]["lr"] == 3e-3
    samples = [s for row in agent.sample([toy_problems(1)[0].prompt], 5, seed=0) for s in row]
    rollout = Rollout([None] * 5, samples, [None] * 5, [1.0, 0.0, 0.0, 1.0, 0.5], [0, 0, 0, 0, 1])
    sizes, losses, steps = [], [], []
    loss_fn, step_fn = agent._loss, agent._optimizer_step

    def spy_loss(mb, advantage, stats):
        loss = loss_fn(mb, advantage, stats)
        sizes.append(len(advantage))
        losses.append(float(loss.detach()))
        return loss

    agent._loss = spy_loss
    agent._optimizer_step = lambda optimizer, loss, params, what: (steps.append((optimizer, what)), step_fn(optimizer, loss, params, what))[1]
    metrics = agent.update(rollout)
    assert sorted(sizes) == [2, 2, 3, 3] and [w for _, w in steps] == ["grpo loss"] * 4 and all(o is agent.optimizer for o, _ in steps)
    assert metrics["pg_loss"] == pytest.approx(sum(losses) / 4) and set(metrics) == {"pg_loss", "clipfrac", "entropy", "kl", "initial_ratio_error", "advantage_abs"}
    assert metrics["advantage_abs"] == pytest.approx(0.4)  # |0.5, -0.5, -0.5, 0.5| and a group of one: 0
    assert metrics["initial_ratio_error"] <= 1e-4  # measured once, before the first step
    other = make(update_epochs=2, num_minibatches=2, lr=3e-3, kl_coef=0.1)
    other.load_state_dict(agent.state_dict())
    saved, restored = agent.optimizer.state_dict()["state"], other.optimizer.state_dict()["state"]
    assert saved and saved.keys() == restored.keys() and all(torch.equal(saved[k]["exp_avg"], restored[k]["exp_avg"]) for k in saved)
    # one sample, two minibatches: the empty one still takes its (zero-gradient) step
    single = make(num_minibatches=2)
    steps.clear()
    step_fn = single._optimizer_step
    single._optimizer_step = lambda optimizer, loss, params, what: (steps.append(float(loss.detach())), step_fn(optimizer, loss, params, what))[1]
    metrics = single.update(Rollout([None], samples[:1], [None], [1.0], [0]))
    assert len(steps) == 2 and 0.0 in steps and metrics["advantage_abs"] == 0.0
    steps.clear()
    assert single.update(Rollout([], [], [], [], [])) == {} and steps == [0.0, 0.0]  # nothing drawn on this rank: still two steps


SCALED = [c / (math.sqrt((0.6**2 + 0.4**2 + 0.2**2) / 2) + 1e-4) for c in (0.6, 0.6, -0.4, -0.2, -0.2)]  # the group's std over episodes


@pytest.mark.parametrize(
    "name, scale, expected",
    [("grpo", False, [0.6, 0.6, -0.4, -0.2, -0.2]), ("grpo", True, SCALED), ("rloo", False, [0.9, 0.9, -0.6, -0.3, -0.3])],
)
def test_multi_turn_advantages_compare_episode_returns(fresh_policy, name, scale, expected):
    """Multi-turn, each episode's return (its first attempt's) is compared with the other episodes of
    its group, and every attempt of the episode gets its episode's advantage."""
    from codegym import agents
    from codegym.agents.rollout import Rollout

    agent = agents.make(name, policy=copy.deepcopy(fresh_policy), preset="tiny", max_new_tokens=6, scale_rewards=scale)
    rollout = Rollout([None] * 5, [None] * 5, [None] * 5, [1.0, 0.5, 0.0, 0.2, 0.1], [0] * 5, trajectories=[5, 5, 2, 9, 9])
    assert agent.advantages(rollout).tolist() == pytest.approx(expected)  # episodes 5, 2, 9 return 1.0, 0.0, 0.2


def test_grpo_constructor_keeps_a_given_reference_and_defaults_to_the_shipped_policy(fresh_policy):
    from codegym.agents.config import build_config
    from codegym.agents.critic_free import GRPO, GRPOConfig
    from codegym.models.policy import DEFAULT_DIR

    reference = copy.deepcopy(fresh_policy.model)  # a loaded checkpoint's reference: the initial policy, not the trained one
    agent = GRPO(build_config(GRPOConfig, "tiny", {"kl_coef": 0.1, "max_new_tokens": 8}), copy.deepcopy(fresh_policy), reference)
    assert agent.reference is reference
    shipped = GRPO(build_config(GRPOConfig, "tiny", {}))
    assert shipped.tokenizer.name_or_path == str(DEFAULT_DIR) and shipped.optimizer.param_groups[0]["lr"] == 1e-4


def test_grpo_presets():
    from codegym.agents.config import build_config
    from codegym.agents.critic_free import GRPOConfig

    tiny = build_config(GRPOConfig, "tiny", {})
    assert (tiny.samples_per_problem, tiny.lr) == (4, 1e-4)
    paper = build_config(GRPOConfig, "paper", {})
    assert (paper.samples_per_problem, paper.temperature, paper.max_new_tokens) == (8, 0.8, 256)

# -- importance_cap and eval_top_p -------------------------------------------------------------


def test_truncated_importance_weights():
    from codegym.agents.rollout import truncated_importance_weights

    logprobs = torch.log(torch.tensor([[0.5, 0.2, 0.9]]))
    behaviour = torch.log(torch.tensor([[0.25, 0.4, 0.3]]))  # ratios 2, 0.5, 3
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    assert truncated_importance_weights(logprobs, behaviour, mask, 1.0)[0].tolist() == pytest.approx([1.0, 0.5, 1.0])
    assert truncated_importance_weights(logprobs, behaviour, mask, 1.5)[0].tolist() == pytest.approx([1.5, 0.5, 1.0])
    assert truncated_importance_weights(logprobs, behaviour, mask, 0.0).tolist() == [[1.0, 1.0, 1.0]]  # 0: off


@pytest.mark.parametrize("name", ["actor_critic", "coderl"])
def test_importance_cap_reaches_the_update(fresh_policy, executor, in_tmp, name):
    from codegym import agents
    from codegym.agents.toy import toy_problems

    # on-policy, the first update's ratio is 1, so every weight is min(cap, 1) = cap for a cap below 1
    agent = agents.make(name, policy=copy.deepcopy(fresh_policy), preset="tiny", batch_problems=1, samples_per_problem=4, max_new_tokens=8,
                        pipeline=False, importance_cap=0.25, **({"kl_coef": 0.0} if name == "actor_critic" else {}))  # fmt: skip
    seen = []
    import codegym.agents.rollout as rollout_module

    original = rollout_module.truncated_importance_weights

    def spy(logprobs, behaviour, mask, cap):
        weights = original(logprobs, behaviour, mask, cap)
        seen.append((cap, float((weights * mask).sum() / mask.sum())))
        return weights

    module = __import__(f"codegym.agents.{name}", fromlist=["truncated_importance_weights"])
    module.truncated_importance_weights = spy
    try:
        agent.fit(toy_problems(1), 1, executor=executor)
    finally:
        module.truncated_importance_weights = original
    assert seen and all(cap == 0.25 and mean == pytest.approx(0.25, abs=1e-4) for cap, mean in seen), seen


def test_eval_top_p_is_for_evaluation_only(fresh_policy):
    from codegym import agents

    agent = agents.make("grpo", policy=copy.deepcopy(fresh_policy), preset="tiny", eval_top_p=0.7, max_new_tokens=4)
    calls = []
    policy_sample = agent.policy.sample

    def spy(prompts, n=1, **kwargs):
        calls.append(kwargs.get("top_p"))
        return policy_sample(prompts, n=n, **kwargs)

    agent.policy.sample = spy
    agent.generate(["def answer_0():\n"], 2, seed=0)
    agent.sample(["def answer_0():\n"], 2, seed=0)  # training samples: the full distribution
    assert calls == [0.7, 1.0]
    assert agents.make("grpo", policy=copy.deepcopy(fresh_policy), preset="tiny", max_new_tokens=4).config.eval_top_p == 0.95
