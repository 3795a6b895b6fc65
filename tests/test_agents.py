"""Agents: pass@k, the AST-filtered replay buffer, configs, the actor-critic on a toy task, checkpoints,
divergence, and the ``train`` / ``evaluate`` commands. Everything runs on a tiny fresh model."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from codegym import agents
from codegym.agents.actor_critic import ActorCriticConfig
from codegym.agents.config import ConfigError, build_config, parse_assignments
from codegym.agents.replay import Experience, ReplayBuffer, normalized_ast
from codegym.agents.toy import toy_policy, toy_problems

# Settings that make RL on the toy fast and reliable (one problem, 16 samples per step).
TOY = dict(preset="tiny", batch_problems=1, samples_per_problem=16, max_new_tokens=8, lr=3e-3, critic_lr=1e-2, kl_coef=0.0, replay_samples=8)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread: the models are tiny, and on 2 busy cores more threads only spin (and run 10× slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def toy():
    return toy_policy(1, sft_steps=80)


def toy_pass_rate(agent, executor) -> float:
    return agents.evaluate_agent(agent, toy_problems(1), n=32, ks=[1], executor=executor, seed=123)["pass@1"]


# -- pass@k -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 2, 1, 2 / 5),
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (10, 0, 10, 0.0),
        (4, 1, 4, 1.0),
        (3, 3, 1, 1.0),
    ],
)
def test_pass_at_k_matches_hand_computed(n, c, k, expected):
    assert math.isclose(agents.pass_at_k(n, c, k), expected, abs_tol=1e-12)


@given(st.integers(1, 60).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_is_one_minus_a_ratio_of_binomials(args):
    n, c, k = args
    assert math.isclose(agents.pass_at_k(n, c, k), 1 - math.comb(n - c, k) / math.comb(n, k), rel_tol=1e-9, abs_tol=1e-12)


def test_pass_at_k_mean_and_errors():
    assert math.isclose(agents.estimate_pass_at_k([5, 5], [2, 0], 1), 0.2)
    with pytest.raises(ValueError, match="k must be"):
        agents.pass_at_k(3, 1, 5)


# -- replay buffer ----------------------------------------------------------------------------


def test_ast_filter_drops_programs_that_differ_only_in_names_or_whitespace():
    a = "def f(a, b):\n    '''Add.'''\n    total = a + b\n    return total\n"
    b = "def g(x,y):\n    # sum them\n    s   =   x+y\n\n    return s\n"
    c = "def f(a, b):\n    return a - b\n"
    assert normalized_ast(a) == normalized_ast(b)
    assert normalized_ast(a) != normalized_ast(c)
    assert normalized_ast("def f(x):\n    return len(x)\n") != normalized_ast("def f(x):\n    return abs(x)\n")
    buffer = ReplayBuffer(10, ast_filter=True)
    assert buffer.add(Experience("t", "1", 1.0, "passed"), a)
    assert not buffer.add(Experience("t", "2", 1.0, "passed"), b)
    assert buffer.add(Experience("t", "3", 0.0, "failed"), c)
    assert buffer.add(Experience("other", "4", 1.0, "passed"), b)  # duplicates count per problem
    assert len(buffer) == 3
    unfiltered = ReplayBuffer(10, ast_filter=False)
    assert unfiltered.add(Experience("t", "1", 1.0, "passed"), a) and unfiltered.add(Experience("t", "2", 1.0, "passed"), b)
    assert not ReplayBuffer(0).add(Experience("t", "1", 1.0, "passed"), a)  # size 0: off


def test_replay_buffer_evicts_oldest():
    buffer = ReplayBuffer(2)
    for i in range(3):
        buffer.add(Experience("t", str(i), 0.0, "failed"), f"x = {i}\n")
    assert sorted(s.completion for s in buffer.draw(5)) == ["1", "2"]


# -- configuration ----------------------------------------------------------------------------


def test_config_presets_overrides_and_yaml(tmp_path):
    cfg = build_config(ActorCriticConfig, "tiny", parse_assignments(["lr=2e-4", "ast_filter=false", "critic=frozen", "replay_buffer=0"]))
    assert (cfg.lr, cfg.ast_filter, cfg.critic, cfg.replay_buffer, cfg.batch_problems) == (2e-4, False, "frozen", 0, 2)
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("lr: 0.001\nsamples_per_problem: 3\n")
    cfg = build_config(ActorCriticConfig, "default", {"lr": "5e-5"}, yaml_file)
    assert (cfg.lr, cfg.samples_per_problem) == (5e-5, 3)
    with pytest.raises(ConfigError, match="valid:"):
        build_config(ActorCriticConfig, "default", {"learning_rate": 1})
    with pytest.raises(ConfigError, match="critic must be"):
        build_config(ActorCriticConfig, "default", {"critic": "async"})
    with pytest.raises(ValueError, match="unknown agent"):
        agents.make("dqn")


# -- actor-critic -----------------------------------------------------------------------------


@pytest.mark.parametrize("critic", ["sync", "frozen", "none"])
def test_actor_critic_raises_toy_pass_rate(toy, executor, in_tmp, critic):
    agent = agents.make("actor_critic", policy=copy.deepcopy(toy), critic=critic, critic_pretrain_steps=4, **TOY)
    before = toy_pass_rate(agent, executor)
    history = agent.fit(toy_problems(1), 8, executor=executor)
    after = toy_pass_rate(agent, executor)
    assert len(history) == 8 and all(math.isfinite(m["actor_loss"]) for m in history)
    assert after > before + 0.15, (before, after)


def test_actor_critic_sequence_values_and_no_replay(toy, executor, in_tmp):
    agent = agents.make("actor_critic", policy=copy.deepcopy(toy), value_level="sequence", replay_buffer=0, **{**TOY, "kl_coef": 0.1})
    history = agent.fit(toy_problems(1), 2, executor=executor)
    assert history[-1]["buffer_size"] == 0 and history[-1]["kl"] >= 0.0


def test_next_batch_is_sampled_while_the_previous_one_executes(toy, executor, in_tmp, monkeypatch):
    agent = agents.make("actor_critic", policy=copy.deepcopy(toy), **TOY)
    events: list[str] = []
    sample, collect = agent.sample, agent._collect
    monkeypatch.setattr(agent, "sample", lambda *a, **k: (events.append("sample"), sample(*a, **k))[1])
    monkeypatch.setattr(agent, "_collect", lambda pending: (events.append("wait"), collect(pending))[1])
    agent.fit(toy_problems(1), 3, executor=executor)
    assert events == ["sample", "sample", "wait", "sample", "wait", "wait"]
    assert agent.timing["episodes"] == 3 * 16 and 0 <= agent.timing["exec_wait_s"] <= agent.timing["wall_s"]


def test_checkpoint_roundtrip_and_resume(toy, executor, in_tmp):
    agent = agents.make("actor_critic", policy=copy.deepcopy(toy), **{**TOY, "kl_coef": 0.05})
    agent.fit(toy_problems(1), 2, executor=executor, checkpoint_dir=in_tmp / "ck")
    loaded = agents.load(in_tmp / "ck")
    assert loaded.steps_done == 2 and loaded.reference is not None and len(loaded.buffer) == len(agent.buffer)
    prompts = [toy_problems(1)[0].prompt]
    assert loaded.generate(prompts, 4, seed=1) == agent.generate(prompts, 4, seed=1)
    loaded.fit(toy_problems(1), 1, executor=executor)
    assert loaded.steps_done == 3


def test_nan_loss_stops_and_keeps_last_good_checkpoint(toy, executor, in_tmp):
    agent = agents.make("actor_critic", policy=copy.deepcopy(toy), save_every=1, **TOY)
    agent.fit(toy_problems(1), 2, executor=executor, checkpoint_dir=in_tmp / "ck")
    good = agents.load(in_tmp / "ck").model.state_dict()
    agent.config.reward = lambda result: float("nan")
    with pytest.raises(agents.TrainingDiverged, match="last good checkpoint"):
        agent.fit(toy_problems(1), 3, executor=executor, checkpoint_dir=in_tmp / "ck")
    kept = agents.load(in_tmp / "ck")
    assert kept.steps_done == 2
    assert all((kept.model.state_dict()[k] == v).all() for k, v in good.items())
    assert all(p.isfinite().all() for p in agent.model.parameters())  # the bad step was never applied


def test_clm_fit_records_only(toy, executor, in_tmp):
    agent = agents.make("clm", policy=copy.deepcopy(toy), preset="tiny", max_new_tokens=8)
    weights = {k: v.clone() for k, v in agent.model.state_dict().items()}
    assert agent.fit(toy_problems(1), 2, executor=executor) == [{"step": 1, "trained": 0}, {"step": 2, "trained": 0}]
    assert all((agent.model.state_dict()[k] == v).all() for k, v in weights.items())


# -- commands ---------------------------------------------------------------------------------


def test_train_and_evaluate_commands(toy, in_tmp):
    from typer.testing import CliRunner

    from codegym.cli import app
    from codegym.problems import write_jsonl

    toy.model.save_pretrained(in_tmp / "model")
    toy.tokenizer.save_pretrained(in_tmp / "model")
    write_jsonl(toy_problems(1), in_tmp / "toy.jsonl")
    (in_tmp / "cfg.yaml").write_text("samples_per_problem: 4\nkl_coef: 0.0\n")
    runner = CliRunner()
    common = ["--agent", "actor_critic", "--problems", "toy.jsonl", "--preset", "tiny", "--policy", "model", "--out", "run"]
    result = runner.invoke(app, ["train", *common, "--steps", "2", "--config", "cfg.yaml", "--set", "max_new_tokens=8", "--set", "batch_problems=1"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["steps_done"] == 2
    assert len((in_tmp / "run" / "log.jsonl").read_text().splitlines()) == 2
    result = runner.invoke(app, ["train", *common, "--steps", "3", "--resume"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["steps_done"] == 3
    result = runner.invoke(app, ["evaluate", "--checkpoint", "run/checkpoint", "--problems", "toy.jsonl", "--n", "10", "--out", "eval.jsonl"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["n_problems"] == 1 and 0.0 <= summary["pass@1"] <= summary["pass@10"] <= 1.0
    assert json.loads((in_tmp / "eval.jsonl").read_text().splitlines()[0])["n"] == 10
    result = runner.invoke(app, ["train", *common, "--set", "nonsense=1"])
    assert result.exit_code != 0 and "valid:" in result.output


# -- every agent: train, checkpoint, load, evaluate --------------------------------------------


@pytest.mark.parametrize("name", ["actor_critic", "ppo_lm", "coderl", "grpo", "rloo", "ppo_sb3", "ppo_sb3 mlp", "clm"])
def test_every_agent_trains_saves_loads_and_evaluates(toy, executor, in_tmp, name):
    overrides = {"batch_problems": 1, "samples_per_problem": 4, "max_new_tokens": 8}
    if name.startswith("ppo_sb3"):  # the toy LM's context is 32 tokens
        overrides = {"max_new_tokens": 8, "max_prompt_tokens": 24, "sb3_policy": name.partition(" ")[2] or "lm"}
        name = "ppo_sb3"
    agent = agents.make(name, policy=copy.deepcopy(toy), preset="tiny", **overrides)
    history = agent.fit(toy_problems(2), 2, executor=executor, checkpoint_dir=in_tmp / "ck")
    assert [m["step"] for m in history] == [1, 2]
    loaded = agents.load(in_tmp / "ck")
    assert loaded.name == name and loaded.steps_done == 2
    summary = agents.evaluate_agent(loaded, toy_problems(2), n=2, ks=[1, 2], executor=executor, out=in_tmp / "eval.jsonl")
    assert summary["n_problems"] == 2 and 0.0 <= summary["pass@1"] <= summary["pass@2"] <= 1.0
    assert len((in_tmp / "eval.jsonl").read_text().splitlines()) == 2


SB3_TOY = dict(max_prompt_tokens=24, n_envs=4, n_steps=16, batch_size=64)  # ~12 episodes per step, the toy LM's 32-token context


@pytest.mark.parametrize("name", ["ppo_lm", "coderl", "ppo_sb3"])
def test_lm_baselines_raise_toy_pass_rate(toy, executor, in_tmp, name):
    settings = {"ppo_lm": {"lr": 1e-3}, "coderl": {"lr": 3e-3}, "ppo_sb3": {"lr": 3e-3, **SB3_TOY}}[name]
    agent = agents.make(name, policy=copy.deepcopy(toy), preset="tiny", batch_problems=1, samples_per_problem=16, max_new_tokens=8, **settings)
    before = toy_pass_rate(agent, executor)
    agent.fit(toy_problems(1), 8, executor=executor)
    assert toy_pass_rate(agent, executor) > before + 0.15


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_actor_critic_uses_cuda_with_mixed_precision(toy, executor, in_tmp):
    from codegym.models.policy import Policy

    policy = copy.deepcopy(toy)
    agent = agents.make("actor_critic", policy=Policy(policy.model.to("cuda"), policy.tokenizer, torch.device("cuda")), **{**TOY, "kl_coef": 0.05})
    assert agent.autocast and next(agent.critic.parameters()).is_cuda and next(agent.model.parameters()).dtype == torch.float32
    history = agent.fit(toy_problems(1), 2, executor=executor)
    assert all(math.isfinite(m["actor_loss"]) for m in history)
