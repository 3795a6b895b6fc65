"""The TRL, verl and OpenRLHF adapters, each called the way its framework calls it."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from codegym import problems as problem_sources
from codegym import scoring
from codegym.execution import Executor
from codegym.integrations import openrlhf, records, verl
from codegym.integrations import trl as codegym_trl

WRONG = "    return None\n"


@pytest.fixture(scope="module")
def executor():
    with Executor(workers=2) as ex:
        yield ex


@pytest.fixture(scope="module")
def mbpp_train():
    """8 MBPP training problems whose prompts leave room for a completion in the shipped policy's context."""
    from codegym.models import load_policy

    tokenizer = load_policy().tokenizer
    chosen = [p for p in problem_sources.load("mbpp", split="train") if len(tokenizer(p.prompt)["input_ids"]) <= 160]
    return chosen[:8]


def test_trl_dataset_columns_and_reward_contract(mbpp_train, executor):
    data = codegym_trl.dataset(mbpp_train)
    assert set(data.column_names) == {"prompt", "task_id", "entry_point", "tests", "test_setup", "time_limit"}
    assert data[0]["time_limit"] == mbpp_train[0].time_limit is not None  # the calibrated limit travels with the row
    assert data[0]["task_id"] == mbpp_train[0].task_id and data[0]["tests"] == list(mbpp_train[0].tests)
    assert len(codegym_trl.dataset("mbpp", split="train")) == len(problem_sources.load("mbpp", split="train"))
    columns = {k: data[k][:2] + [None] for k in ("task_id", "entry_point", "tests", "test_setup")}
    prompts = data["prompt"][:2] + ["not a code task"]
    chat = [[{"role": "assistant", "content": f"```python\n{mbpp_train[0].reference}\n```"}], [{"role": "assistant", "content": WRONG}], "x"]
    logged = {}
    fn = codegym_trl.reward_function("binary", executor)
    assert fn.__name__ == "codegym_binary"
    assert fn(prompts, chat, completion_ids=None, log_metric=logged.__setitem__, **columns) == [1.0, 0.0, None]
    assert logged == {"codegym/pass_rate": 0.5}
    async_fn = codegym_trl.async_reward_function("binary", executor)
    assert inspect.iscoroutinefunction(async_fn)
    assert asyncio.run(async_fn(prompts, chat, **columns)) == [1.0, 0.0, None]
    with pytest.raises(ValueError, match="codegym.integrations.trl.dataset"):
        fn(["p"], ["c"])


def test_grpo_trainer_trains_with_sandbox_rewards(mbpp_train, executor, tmp_path):
    """GRPOTrainer with the shipped policy, 2 steps on CPU, rewards from the sandbox."""
    from trl import GRPOConfig, GRPOTrainer

    from codegym.models import load_policy

    policy = load_policy()
    reward = codegym_trl.reward_function("paper", executor)
    calls: list[tuple[list[str], list[float]]] = []

    references = {p.task_id: p.reference for p in mbpp_train}

    def spy(prompts, completions, **columns):
        # the first completion of each call is replaced by its problem's reference, so that the pass
        # rate codegym logs through TRL's log_metric is not 0 whatever it counts
        scored = [references[columns["task_id"][0]], *completions[1:]]
        out = reward(prompts, scored, **columns)
        calls.append((scored, out, {k: columns[k] for k in ("task_id", "entry_point", "tests", "test_setup")}))
        return out

    spy.__name__ = "codegym_paper"
    args = GRPOConfig(
        output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, num_generations=2, max_completion_length=16,
        learning_rate=1e-5, logging_steps=1, report_to=[], save_strategy="no", use_cpu=True, bf16=False, seed=0,
        disable_tqdm=True,
    )  # fmt: skip
    # the shipped tokenizer merges a newline with the indentation after it, so the policy writes the
    # prompt's trailing whitespace itself (as codegym's own sampler arranges)
    data = codegym_trl.dataset(mbpp_train).map(lambda row: {"prompt": row["prompt"].rstrip()})
    trainer = GRPOTrainer(model=policy.model, reward_funcs=spy, args=args, train_dataset=data, processing_class=policy.tokenizer)
    trainer.train()
    assert trainer.state.global_step == 2 and len(calls) == 2  # one generation (one reward call) per step
    logged = [h for h in trainer.state.log_history if "rewards/codegym_paper/mean" in h]
    assert len(logged) == 2
    # codegym/pass_rate (README) is in the trainer's log: the fraction of each step's completions that
    # passed every test, which under "paper" are those paid 1.0
    for entry, (_, rewards, _) in zip(logged, calls):
        passed = sum(r == 1.0 for r in rewards) / len(rewards)
        assert passed > 0 and entry["codegym/pass_rate"] == pytest.approx(passed)
    # what was logged is what the sandbox says about those exact completions
    completions, rewards, columns = calls[0]
    by_id = {p.task_id: p for p in mbpp_train}
    problems = [by_id[t] for t in columns["task_id"]]
    problems = [problem_sources.Problem(p.task_id, p.prompt.rstrip(), p.entry_point, p.tests, test_setup=p.test_setup) for p in problems]
    assert any(c.strip() for c in completions[1:])  # the policy wrote something
    again = scoring.score(problems, completions, reward="paper", executor=executor)
    assert rewards == [s.reward for s in again]
    assert logged[0]["rewards/codegym_paper/mean"] == pytest.approx(sum(rewards) / len(rewards), abs=1e-4)
    # a known-correct and a known-wrong completion through the same function
    first = codegym_trl.dataset(mbpp_train[:1])
    cols = {k: list(first[k]) * 2 for k in ("task_id", "entry_point", "tests", "test_setup")}
    right, wrong = reward(list(first["prompt"]) * 2, [mbpp_train[0].reference, WRONG], **cols)
    assert right == 1.0 and wrong < 1.0


def test_verl_compute_score_as_naive_reward_manager_calls_it(mbpp_train, executor):
    problem = mbpp_train[0]
    truth = records.to_ground_truth(problem)
    extra_info = {"task_id": problem.task_id, "split": "train", "index": 0}
    answer = f"Here it is.\n```python\n{problem.reference}\n```<|im_end|>"  # decoded with its special tokens
    # the keyword call of verl.workers.reward_manager.naive.NaiveRewardManager.__call__
    right = verl.compute_score(data_source="codegym", solution_str=answer, ground_truth=truth, extra_info=extra_info, executor=executor)
    wrong = verl.compute_score(data_source="codegym", solution_str=WRONG, ground_truth=truth, extra_info=extra_info, executor=executor)
    assert right == {"score": 1.0, "passed": 1.0, "pass_ratio": 1.0}
    assert wrong["score"] < 1.0 and wrong["passed"] == 0.0 and set(wrong) == set(right)
    assert verl.compute_score("codegym", WRONG, truth, None, reward="binary", executor=executor)["score"] == 0.0
    with pytest.raises(ValueError, match="codegym export"):
        verl.compute_score("codegym", WRONG, "not json")


def test_export_verl_parquet_round_trip(tmp_path, executor):
    import pandas as pd
    from typer.testing import CliRunner

    from codegym.cli import app

    out = tmp_path / "mbpp_prompt.parquet"
    result = CliRunner().invoke(app, ["export", "mbpp", "--split", "prompt", "--format", "verl", "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    source = problem_sources.load("mbpp", split="prompt")
    assert list(frame.columns) == ["data_source", "prompt", "ability", "reward_model", "extra_info"] and len(frame) == len(source)
    row = frame.iloc[0]
    assert row["ability"] == "code" and row["reward_model"]["style"] == "rule"
    assert row["extra_info"]["task_id"] == source[0].task_id
    assert source[0].prompt in row["prompt"][0]["content"] and row["prompt"][0]["role"] == "user"
    problem = records.from_ground_truth(row["reward_model"]["ground_truth"])  # self-contained
    assert problem.tests == source[0].tests and problem.test_setup == source[0].test_setup
    assert verl.compute_score(row["data_source"], source[0].reference, row["reward_model"]["ground_truth"], row["extra_info"], executor=executor)["score"] == 1.0
    bad = CliRunner().invoke(app, ["export", "mbpp", "--format", "csv", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "verl" in bad.output


def test_openrlhf_reward_func(mbpp_train, executor, monkeypatch):
    """OpenRLHF's call, with labels of both kinds: exported ground truth, and task ids looked up in the
    data sets that CODEGYM_PROBLEMS names (loaded for real, once per process)."""
    import torch

    problem = mbpp_train[1]  # its tests need nothing the reference defines beside the entry point
    prompt = "<|im_start|>user\nWrite it.<|im_end|>\n<|im_start|>assistant\n"
    raises = "    raise ValueError('no')\n"
    queries = [prompt + f"```python\n{problem.reference}\n```<|im_end|>", prompt + raises + "<|im_end|>", prompt + WRONG + "<|im_end|>"]
    labels = [records.to_ground_truth(problem), problem.task_id, problem.task_id]
    monkeypatch.setenv("CODEGYM_PROBLEMS", "humaneval, mbpp")
    monkeypatch.setattr(openrlhf, "_lookup", None)  # as in a fresh process
    out = openrlhf.reward_func(queries, [prompt] * 3, labels, executor=executor)
    assert openrlhf._lookup is not None and len(openrlhf._lookup) == 164 + 974 and openrlhf._lookup[problem.task_id] == problem
    assert out["rewards"].tolist() == pytest.approx([1.0, -0.6, 0.0])  # paper: all passed; raised before any test; failed
    assert out["scores"].tolist() == [1.0, 0.0, 0.0] and out["extra_logs"]["passed"].tolist() == [1.0, 0.0, 0.0]
    assert out["rewards"].dtype == torch.float32
    with pytest.raises(ValueError, match="neither codegym ground-truth JSON nor a known task id"):
        openrlhf.reward_func(queries[:1], [prompt], ["no/such/task"], executor=executor)


def _recorder(seen: list, all_or_nothing: bool = True):
    """A reward that keeps every verdict it is given (to see the limit and fail-fast each program ran under)."""

    def record(problem, completion, result):
        seen.append((problem, result))
        return float(result.passed)

    record.all_or_nothing = all_or_nothing
    return record


def test_openrlhf_prompt_removal_and_calibrated_limits(executor):
    """A BOS/pad-prefixed query of exported data with an unfenced correct body scores 1; a fenced
    syntax error scores -1; programs run under each problem's calibrated limit, fail-fast for binary."""
    problem = next(p for p in problem_sources.load("basic", split="train") if p.reference.startswith(p.prompt))
    body = problem.reference[len(problem.prompt) :]
    prompt = verl.INSTRUCTION.format(prompt=problem.prompt)  # the exported data's instruction
    truth = records.to_ground_truth(problem)
    header = problem.prompt.splitlines()[0]
    queries = ["<s>" + prompt + body, "<pad><pad><s> " + prompt + "\n" + body + "\n\ndef helper(",
               "<s>" + prompt + f"\n```python\n{header}\n    return (\n```</s>"]  # fmt: skip
    out = openrlhf.score_queries(queries, [prompt] * 3, [truth] * 3, {}, executor=executor)
    assert out["rewards"] == [1.0, 1.0, -1.0]
    again = openrlhf.score_queries(queries, [""] * 3, [truth] * 3, {}, executor=executor)  # no prompts (codegym serve allows it)
    assert again["rewards"] == [1.0, 1.0, -1.0]
    assert records.from_ground_truth(truth).time_limit == problem.time_limit is not None
    seen: list = []
    wrong = "    return None\n"
    openrlhf.score_queries(["<s>" + prompt + wrong], [prompt], [truth], {}, reward=_recorder(seen), executor=executor)
    (_, result), = seen
    assert (result.limit, result.time_limit) == ("calibrated", problem.time_limit)
    assert result.test_status[0] == "failed" and set(result.test_status[1:]) == {"not_run"}  # stopped at the first failure
    seen.clear()
    openrlhf.score_queries(["<s>" + prompt + wrong], [prompt], [truth], {}, reward=_recorder(seen, False), executor=executor)
    assert "not_run" not in seen[0][1].test_status  # partial credit: every test runs


def test_trl_reward_scores_a_body_that_runs_on_past_the_function(executor):
    train = [p for p in problem_sources.load("basic", split="train") if p.reference.startswith(p.prompt)][:2]
    data = codegym_trl.dataset(train)
    bodies = [p.reference[len(p.prompt) :] for p in train]
    completions = [bodies[0] + "\n\ndef helper(", bodies[1] + "\nassert " + train[1].entry_point + "("]
    columns = {k: data[k] for k in ("task_id", "entry_point", "tests", "test_setup")}
    assert codegym_trl.reward_function("paper", executor)(data["prompt"], completions, **columns) == [1.0, 1.0]
    columns["time_limit"] = data["time_limit"]
    seen: list = []
    fn = codegym_trl.reward_function(_recorder(seen), executor)
    assert fn(data["prompt"], ["    return None\n"] * 2, **columns) == [0.0, 0.0]
    for problem, result in seen:
        assert (result.limit, result.time_limit) == ("calibrated", problem.time_limit) and "not_run" in result.test_status
    assert {p.time_limit for p, _ in seen} == {p.time_limit for p in train}


def test_verl_uses_the_calibrated_limit_of_the_ground_truth(mbpp_train, executor):
    problem = mbpp_train[0]
    seen: list = []
    verl.compute_score("codegym", WRONG, records.to_ground_truth(problem), None, reward=_recorder(seen), executor=executor)
    assert (seen[0][1].limit, seen[0][1].time_limit) == ("calibrated", problem.time_limit)
    seen.clear()
    verl.compute_score("codegym", WRONG, records.to_ground_truth(problem), None, reward=_recorder(seen), executor=executor, timeout=3)
    assert (seen[0][1].limit, seen[0][1].time_limit) == ("given", 3.0)
