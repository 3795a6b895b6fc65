"""Agents on multi-turn repair episodes (``env=repair``): trajectories, masking, exact log-probs, GRPO groups, the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from codegym import agents
from codegym.agents.config import ConfigError
from codegym.agents.rollout import group_advantages, token_view
from codegym.agents.toy import toy_policy, toy_problems
from codegym.problems import Problem

NEVER = Problem(  # no body passes: every episode runs to max_turns
    "never",
    'def add(a, b):\n    """Return a + b.\n    >>> add(1, 2)\n    3\n    """\n',
    "add",
    ("assert add(1, 2) == 3", "assert add(2, 2) == 4 and add(2, 2) == 5"),
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", ["grpo", "actor_critic"])
def test_repair_rollout_is_exact_and_masks_feedback(name, executor, in_tmp):
    agent = agents.make(
        name, preset="tiny", env="repair", max_turns=2, pipeline=False, samples_per_problem=2, batch_problems=1, max_new_tokens=16, kl_coef=0.0
    )
    agent.executor = executor
    rollout = agent._repair_rollout([NEVER])
    assert rollout.trajectories == [0, 0, 1, 1] and rollout.groups == [0, 0, 0, 0]  # 2 episodes × 2 turns, one group
    assert len(rollout) == 4 and not any(r.passed for r in rollout.results)
    for t in (1, 3):  # turn 2 of each episode: its prompt holds turn 1's attempt and feedback
        fed = agent.tokenizer.decode(rollout.samples[t].prompt_ids)
        assert "Feedback on attempt 1" in fed and "tests shown in the prompt pass" in fed
    batch = agent.batch(rollout.samples)
    for row, s in enumerate(rollout.samples):  # only the policy's own tokens are actions
        mask = batch.action_mask[row].bool()
        assert int(mask.sum()) == len(s.token_ids)
        assert batch.input_ids[row, 1:][mask].tolist() == list(s.token_ids)
    with torch.no_grad():
        view = token_view(agent.model, batch, False, agent.config.temperature)
    error = ((view.logprobs - batch.behaviour_logprobs) * batch.action_mask).abs().max()
    assert float(error) < 1e-4  # the behaviour log-probs of every turn are those the update computes
    assert rollout.rewards[0] == rollout.rewards[1] and rollout.metrics["turns"] == 2.0
    if name == "grpo":
        adv = agent.advantages(rollout)
        episode = group_advantages(torch.tensor([rollout.rewards[0], rollout.rewards[2]]), torch.tensor([0, 0]))
        assert torch.allclose(adv, episode[[0, 0, 1, 1]])  # one advantage per episode, over the group's episodes
    metrics = agent.update(rollout)
    assert all(v == v for v in metrics.values())


def test_turn_penalty_return_to_go(executor, in_tmp):
    agent = agents.make("grpo", preset="tiny", env="repair", max_turns=3, turn_penalty=0.1, pipeline=False, samples_per_problem=2, batch_problems=1, max_new_tokens=8)
    agent.executor = executor
    rollout = agent._repair_rollout([NEVER])
    last = [s for s in range(len(rollout)) if rollout.trajectories[s] == 0]
    assert len(last) == 3
    r = [rollout.rewards[i] for i in last]
    assert r[0] == pytest.approx(r[1]) and r[2] == pytest.approx(r[0] + 0.1)  # the penalties of turns 2 and 3, then of turn 3


def test_agents_that_cannot_repair_say_which_can():
    with pytest.raises(ConfigError, match="grpo"):
        agents.make("coderl", preset="tiny", env="repair")
    with pytest.raises(ConfigError, match="env must be one of"):
        agents.make("grpo", preset="tiny", env="dialogue")


def test_train_command_with_repair_episodes(in_tmp):
    """The CI smoke test: ``codegym train --agent grpo --env repair --max-turns 2 --steps 2``."""
    from typer.testing import CliRunner

    from codegym.cli import app
    from codegym.problems import write_jsonl

    toy = toy_policy(1, sft_steps=20)
    toy.model.save_pretrained(in_tmp / "model")
    toy.tokenizer.save_pretrained(in_tmp / "model")
    write_jsonl(toy_problems(2), in_tmp / "toy.jsonl")
    result = CliRunner().invoke(
        app,
        ["train", "--agent", "grpo", "--env", "repair", "--max-turns", "2", "--steps", "2", "--problems", "toy.jsonl", "--policy", "model",
         "--preset", "tiny", "--set", "max_new_tokens=8", "--out", "run"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["steps_done"] == 2
    logged = [json.loads(line) for line in (in_tmp / "run" / "log.jsonl").read_text().splitlines()]
    assert {"turns", "pass_after_turn_1", "pass_after_turn_2"} <= set(logged[0])
    assert logged[0]["pass_after_turn_1"] <= logged[0]["pass_after_turn_2"]
    saved = json.loads((in_tmp / "run" / "checkpoint" / "agent.json").read_text())["config"]
    assert saved["env"] == "repair" and saved["max_turns"] == 2
    result = CliRunner().invoke(app, ["evaluate", "--checkpoint", "run", "--problems", "toy.jsonl", "--repair", "--max-turns", "2", "--n", "4", "--out", "rep.jsonl"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert 0.0 <= summary["pass@1_turn_1"] <= summary["pass@1_turn_2"] <= 1.0
    assert 0.0 <= summary["resample@2"] <= 1.0 and 1.0 <= summary["programs_per_episode"] <= 2.0
    d = summary["repair_minus_resample"]
    assert d["low"] <= d["mean"] <= d["high"] and d["mean"] == pytest.approx(summary["pass@1_turn_2"] - summary["resample@2"])
    rows = [json.loads(line) for line in (in_tmp / "rep.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(len(r["solved_at_turn"]) == 4 for r in rows)


def test_evaluate_repair_counts_turns(executor):
    """A policy that always writes the same wrong body never repairs; the reference-writing one solves at turn 1."""

    class Fixed:
        def __init__(self, body):
            self.body = body

        def generate(self, prompts, n=1, temperature=None, seed=None):
            return [[self.body] * n for _ in prompts]

    wrong = agents.evaluate_repair(Fixed("    return -1\n"), toy_problems(2), n=3, max_turns=3, executor=executor)
    assert wrong["pass@1_turn_3"] == 0.0 and wrong["repair_rate"] == 0.0 and wrong["programs_per_episode"] == 3.0
    right = agents.evaluate_repair(Fixed("    return 0\n"), toy_problems(1), n=3, max_turns=2, executor=executor)
    assert right["pass@1_turn_1"] == 1.0 and right["repair_rate"] is None and right["resample@2"] == 1.0
    with pytest.raises(ValueError, match="n >= max_turns"):
        agents.evaluate_repair(Fixed("x"), toy_problems(1), n=2, max_turns=3, executor=executor)
