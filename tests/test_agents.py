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


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def toy():
    return toy_policy(1, sft_steps=80)


def toy_pass_rate(agent, executor) -> float:
    return agents.evaluate_agent(agent, toy_problems(1), n=32, ks=[1], executor=executor, seed=123)["pass@1"]


def module_weights(agent) -> dict[str, torch.Tensor]:
    """Every tensor of every network an agent holds (policy, critics, value heads, reference, SB3's policy)."""
    out: dict[str, torch.Tensor] = {}
    for name, value in vars(agent).items():
        module = getattr(value, "policy", value)  # a Stable-Baselines3 model keeps its networks in .policy
        if isinstance(module, torch.nn.Module):
            out |= {f"{name}.{k}": v.detach().cpu().clone() for k, v in module.state_dict().items()}
    return out


def summary_from_records(path, ks) -> dict[str, float]:
    """pass@k recomputed by hand from the per-problem counts of an evaluation file."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for r in records:
        assert r["correct"] == sum(o == "passed" for o in r["outcomes"]) and len(r["outcomes"]) == r["n"]
    return {f"pass@{k}": sum(1 - math.comb(r["n"] - r["correct"], k) / math.comb(r["n"], k) for r in records) / len(records) for k in ks}


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
    with pytest.raises(ValueError, match="k must be between 1 and n=3, got 5; sample at least k completions per problem"):
        agents.pass_at_k(3, 1, 5)
    with pytest.raises(ValueError, match="need 0 <= c <= n, got n=3, c=4"):
        agents.pass_at_k(3, 4, 1)


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
    from codegym.agents.rollout import token_view

    agent = agents.make("actor_critic", policy=copy.deepcopy(toy), value_level="sequence", replay_buffer=0, **{**TOY, "kl_coef": 0.1})
    history = agent.fit(toy_problems(1), 2, executor=executor)
    assert [m["buffer_size"] for m in history] == [0, 0] and [m["buffer_added"] for m in history] == [0, 0]
    assert history[0]["kl"] == pytest.approx(0.0, abs=1e-6) and history[1]["kl"] > 1e-6  # the first update moved it off the reference
    samples = [s for row in agent.sample([toy_problems(1)[0].prompt], 4, seed=3) for s in row]
    batch = agent.batch(samples)
    with torch.no_grad():
        view = token_view(agent.model, batch, autocast=False, temperature=agent.config.temperature)
        sequence = agent._values(view.hidden, batch.action_mask)
        per_token = agent.critic(view.hidden)
    mask = batch.action_mask.bool()
    first = mask.int().argmax(dim=1)
    for i in range(len(samples)):  # one value per sample: the critic's value of the state before its first action
        assert torch.allclose(sequence[i][mask[i]], per_token[i, first[i]].expand(int(mask[i].sum())))
    assert not torch.allclose(per_token[mask], per_token[mask][0].expand(int(mask.sum())))  # a token-level critic would differ


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
    assert [json.loads(line)["step"] for line in (in_tmp / "run" / "log.jsonl").read_text().splitlines()] == [1, 2, 3]  # one more step, appended
    result = runner.invoke(app, ["evaluate", "--checkpoint", "run/checkpoint", "--problems", "toy.jsonl", "--n", "10", "--out", "eval.jsonl"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["n_problems"] == 1 and json.loads((in_tmp / "eval.jsonl").read_text().splitlines()[0])["n"] == 10
    expected = summary_from_records(in_tmp / "eval.jsonl", [1, 10])
    assert summary["pass@1"] == pytest.approx(expected["pass@1"]) and summary["pass@10"] == pytest.approx(expected["pass@10"])
    # the command evaluates the checkpoint's weights: the same evaluation in Python gives the same counts
    direct = agents.evaluate_agent(agents.load(in_tmp / "run" / "checkpoint"), toy_problems(1), n=10, ks=[1, 10], out=in_tmp / "direct.jsonl")
    assert direct["pass@1"] == summary["pass@1"]
    assert [json.loads(x)["completions"] for x in (in_tmp / "direct.jsonl").read_text().splitlines()] == [
        json.loads(x)["completions"] for x in (in_tmp / "eval.jsonl").read_text().splitlines()
    ]
    result = runner.invoke(app, ["train", *common, "--set", "nonsense=1"])
    assert result.exit_code != 0 and "valid:" in result.output


# -- every agent: train, checkpoint, load, evaluate --------------------------------------------


@pytest.mark.parametrize("name", ["actor_critic", "ppo_lm", "coderl", "grpo", "rloo", "rft", "ppo_sb3", "ppo_sb3 mlp", "clm"])
def test_every_agent_trains_saves_loads_and_evaluates(toy, executor, in_tmp, name):
    overrides = {"batch_problems": 1, "samples_per_problem": 4, "max_new_tokens": 8}
    if name.startswith("ppo_sb3"):  # the toy LM's context is 32 tokens
        overrides = {"max_new_tokens": 8, "max_prompt_tokens": 24, "sb3_policy": name.partition(" ")[2] or "lm"}
        name = "ppo_sb3"
    agent = agents.make(name, policy=copy.deepcopy(toy), preset="tiny", **overrides)
    before = module_weights(agent)
    history = agent.fit(toy_problems(2), 2, executor=executor, checkpoint_dir=in_tmp / "ck")
    assert [m["step"] for m in history] == [1, 2]
    trained = module_weights(agent)
    if name != "clm":  # training changed some weights, so a load that returned untrained ones would show
        assert any(k not in before or not torch.equal(before[k], v) for k, v in trained.items()), name
    loaded = agents.load(in_tmp / "ck")
    assert loaded.name == name and loaded.steps_done == 2
    restored = module_weights(loaded)
    assert restored.keys() == trained.keys() and all(torch.equal(restored[k], v) for k, v in trained.items()), name
    prompts = [p.prompt for p in toy_problems(2)]
    assert loaded.generate(prompts, 3, seed=7) == agent.generate(prompts, 3, seed=7)
    summary = agents.evaluate_agent(loaded, toy_problems(2), n=2, ks=[1, 2], executor=executor, out=in_tmp / "eval.jsonl")
    assert summary["n_problems"] == 2 and len((in_tmp / "eval.jsonl").read_text().splitlines()) == 2
    expected = summary_from_records(in_tmp / "eval.jsonl", [1, 2])
    assert summary["pass@1"] == pytest.approx(expected["pass@1"]) and summary["pass@2"] == pytest.approx(expected["pass@2"])


SB3_TOY = dict(max_prompt_tokens=24, n_envs=4, n_steps=16, batch_size=64)  # ~12 episodes per step, the toy LM's 32-token context


@pytest.mark.parametrize("name", ["ppo_lm", "coderl", "rft", "ppo_sb3"])
def test_lm_baselines_raise_toy_pass_rate(toy, executor, in_tmp, name):
    settings = {"ppo_lm": {"lr": 1e-3}, "coderl": {"lr": 3e-3}, "rft": {"lr": 3e-3}, "ppo_sb3": {"lr": 3e-3, **SB3_TOY}}[name]
    agent = agents.make(name, policy=copy.deepcopy(toy), preset="tiny", batch_problems=1, samples_per_problem=16, max_new_tokens=8, **settings)
    before = toy_pass_rate(agent, executor)
    agent.fit(toy_problems(1), 8, executor=executor)
    assert toy_pass_rate(agent, executor) > before + 0.15


def test_ppo_sb3_kl_reference_checkpoint_and_continued_episodes(toy, executor, in_tmp, monkeypatch):
    import tempfile

    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(in_tmp))  # where SB3's default logger would make its folders
    agent = agents.make("ppo_sb3", policy=copy.deepcopy(toy), preset="tiny", max_new_tokens=8, kl_coef=0.1, **{**SB3_TOY, "lr": 3e-3})
    initial = {k: v.clone() for k, v in agent.lm.state_dict().items()}
    history = agent.fit(toy_problems(2), 2, executor=executor, checkpoint_dir=in_tmp / "ck")
    assert history[0]["ref_kl"] == pytest.approx(0.0, abs=1e-4) and history[1]["ref_kl"] != pytest.approx(0.0, abs=1e-4)
    env = agent.model.env
    steps = agent.model.num_timesteps
    agent.fit(toy_problems(2), 1, executor=executor)  # the same problems: the episodes in progress go on
    assert agent.model.env is env and agent.model.num_timesteps == steps + SB3_TOY["n_envs"] * SB3_TOY["n_steps"]
    loaded = agents.load(in_tmp / "ck")
    reference = loaded._kl.reference.state_dict()
    assert all(torch.equal(reference[k], v) for k, v in initial.items())  # the initial LM, not the trained one
    assert any(not torch.equal(loaded.lm.state_dict()[k], v) for k, v in initial.items())
    loaded.fit(toy_problems(1), 1, executor=executor)  # other problems: a new env
    assert loaded.steps_done == 3
    assert not list(in_tmp.glob("SB3-*"))  # no logger folder per learn(), neither trained nor loaded


# -- rft: rejection-sampling fine-tuning ------------------------------------------------------


def test_rft_fine_tunes_only_on_distinct_passing_samples(toy, executor, in_tmp, monkeypatch):
    from codegym.agents.replay import normalized_ast

    problems = toy_problems(2)
    # A reward that says the opposite of the tests: RFT must keep what passes, whatever the reward says.
    inverted = lambda result: 0.0 if result.passed else 1.0  # noqa: E731
    agent = agents.make("rft", policy=copy.deepcopy(toy), preset="tiny", batch_problems=2, samples_per_problem=16, max_new_tokens=8,
                        reward=inverted, pipeline=False, max_per_problem=0, sft_batch_size=64)  # fmt: skip
    rollouts, trained = [], []
    keep, lm_loss = agent.keep, agent.lm_loss
    monkeypatch.setattr(agent, "keep", lambda rollout: (rollouts.append(rollout), keep(rollout))[1])
    monkeypatch.setattr(agent, "lm_loss", lambda samples: (trained.append(list(samples)), lm_loss(samples))[1])
    history = agent.fit(problems, 2, executor=executor)
    by_id = {p.task_id: p for p in problems}
    for rollout, rows, metrics in zip(rollouts, trained, history):
        passing = {(p.task_id, normalized_ast(p.program(s.text))) for p, s, r in zip(rollout.problems, rollout.samples, rollout.results) if r.passed}
        assert passing and sum(r.passed for r in rollout.results) > len(passing)  # this seed draws duplicates, so the check bites
        keys = [(e.task_id, normalized_ast(by_id[e.task_id].program(e.completion))) for e in rows]
        assert len(keys) == len(set(keys)) and set(keys) == passing  # every distinct passing sample, once; nothing else
        assert all(e.outcome == "passed" and e.reward == 0.0 for e in rows)
        assert metrics["sft_samples"] == len(passing) and metrics["duplicates"] == sum(r.passed for r in rollout.results) - len(passing)
        assert all(e.completion.strip() == f"return {int(e.task_id.split('/')[1]) % 4}" for e in rows)  # what the toy's tests accept
        sampled = {tuple(s.token_ids) for s in rollout.samples}
        assert all(tuple(e.token_ids) in sampled for e in rows)  # the sampled ids themselves, not re-tokenized text


def test_rft_pools_samples_over_collect_steps_and_caps_them_per_problem(toy, executor, in_tmp):
    agent = agents.make("rft", policy=copy.deepcopy(toy), preset="tiny", batch_problems=1, samples_per_problem=16, max_new_tokens=8,
                        collect_steps=2, max_per_problem=1)  # fmt: skip
    first, second = agent.fit(toy_problems(1), 2, executor=executor)
    assert "sft_samples" not in first and first["pool"] == 1  # one distinct passing program; pooled, not trained on yet
    assert second["sft_samples"] == 1 and second["pool"] == 0 and math.isfinite(second["lm_loss"])


def test_rft_save_load_round_trips_weights_optimizer_and_pool(toy, executor, in_tmp):
    agent = agents.make("rft", policy=copy.deepcopy(toy), preset="tiny", batch_problems=1, samples_per_problem=16, max_new_tokens=8, collect_steps=2, lr=3e-3)
    initial = {k: v.clone() for k, v in agent.model.state_dict().items()}
    agent.fit(toy_problems(1), 3, executor=executor, checkpoint_dir=in_tmp / "ck")  # ends with a pool waiting for its fine-tuning
    loaded = agents.load(in_tmp / "ck")
    assert isinstance(loaded, type(agent)) and loaded.steps_done == 3 and loaded.config.collect_steps == 2
    weights = agent.model.state_dict()
    assert any(not torch.equal(initial[k], v) for k, v in weights.items())  # it trained
    assert all(torch.equal(loaded.model.state_dict()[k], v) for k, v in weights.items())
    assert loaded.pool == agent.pool and len(loaded.pool) == 1
    assert loaded.optimizer.state_dict()["state"].keys() == agent.optimizer.state_dict()["state"].keys()
    prompts = [toy_problems(1)[0].prompt]
    assert loaded.generate(prompts, 4, seed=1) == agent.generate(prompts, 4, seed=1)
    assert loaded.fit(toy_problems(1), 1, executor=executor)[0]["sft_samples"] >= 1  # the saved pool is trained on after resuming


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_actor_critic_uses_cuda_with_mixed_precision(toy, executor, in_tmp):
    from codegym.models.policy import Policy

    policy = copy.deepcopy(toy)
    agent = agents.make("actor_critic", policy=Policy(policy.model.to("cuda"), policy.tokenizer, torch.device("cuda")), **{**TOY, "kl_coef": 0.05})
    assert agent.autocast and next(agent.critic.parameters()).is_cuda and next(agent.model.parameters()).dtype == torch.float32
    history = agent.fit(toy_problems(1), 2, executor=executor)
    assert all(math.isfinite(m["actor_loss"]) for m in history)
