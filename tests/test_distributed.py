"""Data-parallel training (`codegym.agents.distributed`): two CPU processes (Gloo) on the toy task
through ``codegym train --distributed``; outside a process group the helpers change nothing."""

from __future__ import annotations

import json

import pytest

import torch

from codegym import agents
from codegym.agents import distributed
from codegym.agents.toy import toy_policy, toy_problems


def test_helpers_are_identities_without_a_process_group():
    assert (distributed.rank(), distributed.world_size()) == (0, 1)
    assert distributed.any_rank(True) and not distributed.any_rank(False)
    metrics = {"reward": 0.5, "note": "x"}
    assert distributed.mean_metrics(metrics) == metrics
    param = torch.nn.Parameter(torch.ones(3))
    param.grad = torch.full((3,), 2.0)
    distributed.average_gradients([param])
    assert param.grad.tolist() == [2.0, 2.0, 2.0]


@pytest.mark.parametrize(("agent", "extra"), [("actor_critic", []), ("grpo", ["--set", "filter_groups=true"])])
def test_train_distributed_on_two_cpu_processes(in_tmp, agent, extra):
    from typer.testing import CliRunner

    from codegym.cli import app
    from codegym.problems import write_jsonl

    torch.set_num_threads(1)
    policy = toy_policy(4, sft_steps=60)
    policy.model.save_pretrained(in_tmp / "model")
    policy.tokenizer.save_pretrained(in_tmp / "model")
    write_jsonl(toy_problems(4), in_tmp / "toy.jsonl")
    args = [
        "train", "--agent", agent, "--problems", "toy.jsonl", "--preset", "tiny", "--policy", "model",
        "--out", "run", "--steps", "2", "--distributed", "--nproc", "2",
        "--set", "batch_problems=1", "--set", "samples_per_problem=4", "--set", "max_new_tokens=8", "--set", "lr=3e-3", *extra,
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["world_size"] == 2 and summary["ranks_in_sync"] is True and summary["steps_done"] == 2
    assert len((in_tmp / "run" / "log.jsonl").read_text().splitlines()) == 2  # rank 0 logs, once per step
    trained = agents.load(in_tmp / "run" / "checkpoint")
    assert trained.steps_done == 2
    before = dict(policy.model.named_parameters())
    assert any(not torch.equal(p, before[name]) for name, p in trained.model.named_parameters())  # it learned


def test_distributed_refuses_agents_it_cannot_keep_in_sync(in_tmp):
    from typer.testing import CliRunner

    from codegym.cli import app

    result = CliRunner().invoke(app, ["train", "--agent", "ppo_sb3", "--problems", "simple", "--distributed"])
    assert result.exit_code != 0 and "--distributed trains actor_critic" in result.output
