"""Exact rollouts and the critic-free baselines: updates score the very ids that were sampled, at the
temperature they were sampled at; PPO's ratio starts at 1; GRPO/RLOO advantages and dynamic sampling."""

from __future__ import annotations

import copy

import pytest
import torch

from codegym import agents, problems
from codegym.agents.rollout import Rollout, group_advantages, token_view
from codegym.agents.toy import toy_problems
from tests.test_agents import toy, toy_pass_rate  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shipped():
    from codegym.models import load_policy

    return load_policy("default", device="cpu")


@pytest.mark.parametrize("temperature", [0.7, 1.0])
def test_update_logprobs_equal_the_behaviour_logprobs_recorded_at_sampling(shipped, temperature):
    agent = agents.make("actor_critic", policy=shipped, max_new_tokens=24, temperature=temperature, kl_coef=0.0)
    prompts = [p.prompt for p in problems.load("simple")[:4]]
    samples = [s for row in agent.sample(prompts, 3, seed=5) for s in row]
    batch = agent.batch(samples)
    with torch.no_grad():
        view = token_view(agent.model, batch, autocast=False, temperature=temperature)
    mask = batch.action_mask.bool()
    assert int(mask.sum()) == sum(len(s.token_ids) for s in samples)  # every sampled id is an action, nothing else
    assert (batch.input_ids[:, 1:][mask] == torch.tensor([t for s in samples for t in s.token_ids])).all()
    assert (view.logprobs - batch.behaviour_logprobs)[mask].abs().max() <= 1e-4


def test_ppo_ratio_is_one_on_the_first_epoch_without_lag(toy, executor, in_tmp):
    agent = agents.make("ppo_lm", policy=copy.deepcopy(toy), preset="tiny", batch_problems=1, samples_per_problem=8, max_new_tokens=8, pipeline=False)
    history = agent.fit(toy_problems(1), 2, executor=executor)
    assert all(m["initial_ratio_error"] <= 1e-4 for m in history)


def test_pipelined_sampling_lags_one_update_and_the_ratio_shows_it(toy, executor, in_tmp):
    agent = agents.make("grpo", policy=copy.deepcopy(toy), preset="tiny", batch_problems=1, samples_per_problem=8, max_new_tokens=8, lr=3e-3)
    history = agent.fit(toy_problems(1), 3, executor=executor)
    assert history[0]["initial_ratio_error"] <= 1e-4  # the first batch was sampled by the weights it updates
    assert history[1]["initial_ratio_error"] > 1e-3  # the second was sampled before the first update


def test_grpo_advantage_is_centred_and_scaled_per_group():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.5, 0.5])
    groups = torch.tensor([0, 0, 0, 0, 1, 1])
    mean, std = 0.25, torch.tensor([1.0, 0.0, 0.0, 0.0]).std().item()  # unbiased std, as TRL
    expected = torch.tensor([(1 - mean) / (std + 1e-4), -mean / (std + 1e-4), -mean / (std + 1e-4), -mean / (std + 1e-4), 0.0, 0.0])
    assert torch.allclose(group_advantages(rewards, groups), expected, atol=1e-6)
    assert torch.allclose(group_advantages(rewards, groups, scale=False), torch.tensor([0.75, -0.25, -0.25, -0.25, 0.0, 0.0]))


def test_rloo_baseline_excludes_the_sample_itself():
    rewards = torch.tensor([1.0, 0.0, -1.0, 0.5, 2.0, 4.0])
    groups = torch.tensor([7, 7, 7, 7, 3, 3])
    # by hand: r_i − mean of the other three (group 7), r_i − the other one (group 3)
    expected = torch.tensor([1 - (-0.5 / 3), 0 - (0.5 / 3), -1 - (1.5 / 3), 0.5 - 0.0, 2 - 4, 4 - 2])
    assert torch.allclose(group_advantages(rewards, groups, leave_one_out=True), expected, atol=1e-6)
    assert group_advantages(torch.tensor([3.0]), torch.tensor([0]), leave_one_out=True).item() == 0.0


def test_filter_groups_drops_groups_of_equal_rewards(toy, executor, in_tmp):
    def rollout(rewards, groups):
        return Rollout([None] * len(rewards), [None] * len(rewards), [None] * len(rewards), rewards, groups)

    assert rollout([1.0, 1.0, 0.0, 1.0, 0.3, 0.3], [0, 0, 1, 1, 2, 2]).informative_groups() == [2, 3]
    # End to end: exactly the samples of the groups whose rewards are all equal are dropped, and the drop is logged.
    agent = agents.make("grpo", policy=copy.deepcopy(toy), preset="tiny", batch_problems=2, samples_per_problem=4, max_new_tokens=8, filter_groups=True)
    rollouts, updated = [], []
    collect, update = agent._collect, agent.update
    agent._collect = lambda pending: (rollouts.append(collect(pending)), rollouts[-1])[1]
    agent.update = lambda kept: (updated.append(len(kept)), update(kept))[1]
    history = agent.fit(toy_problems(2), 3, executor=executor)
    for m, rollout in zip(history, rollouts, strict=True):
        by_group: dict[int, list[float]] = {}
        for g, r in zip(rollout.groups, rollout.rewards):
            by_group.setdefault(g, []).append(r)
        uniform = sum(len(rs) for rs in by_group.values() if len(set(rs)) == 1)
        assert m["episodes"] == 8 and m["filtered"] == uniform, (m, by_group)
    assert updated == [8 - m["filtered"] for m in history if m["filtered"] < 8]  # the update saw only the kept samples
    del agent._collect, agent.update
    agent.config.reward = lambda result: 1.0  # every group all equal: nothing to learn from, no update
    weights = {k: v.clone() for k, v in agent.model.state_dict().items()}
    history = agent.fit(toy_problems(2), 1, executor=executor)
    assert history[0]["filtered"] == 8 and "pg_loss" not in history[0]
    assert all((agent.model.state_dict()[k] == v).all() for k, v in weights.items())


@pytest.mark.parametrize("name", ["grpo", "rloo"])
def test_grpo_and_rloo_raise_toy_pass_rate(toy, executor, in_tmp, name):
    agent = agents.make(name, policy=copy.deepcopy(toy), preset="tiny", batch_problems=1, samples_per_problem=16, max_new_tokens=8, lr=3e-3, kl_coef=0.0)
    before = toy_pass_rate(agent, executor)
    agent.fit(toy_problems(1), 8, executor=executor)
    assert toy_pass_rate(agent, executor) > before + 0.15


def tiny_model(family: str, vocab: int):
    """A tiny random causal LM of ``family`` whose forward transforms the output layer's logits."""
    import transformers

    common = dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1, head_dim=16, max_position_embeddings=256, bos_token_id=1, eos_token_id=2, pad_token_id=0)  # fmt: skip
    config = {
        "gemma2": lambda: transformers.Gemma2Config(**common, final_logit_softcapping=0.05, sliding_window=8),  # cap · tanh(x / cap)
        "cohere": lambda: transformers.CohereConfig(**common, logit_scale=3.0),  # x · scale
        "granite": lambda: transformers.GraniteConfig(**common, logits_scaling=0.25),  # x / scaling
    }[family]()
    torch.manual_seed(0)
    return transformers.AutoModelForCausalLM.from_config(config).eval()


@pytest.mark.parametrize("family", ["gemma2", "cohere", "granite"])
def test_update_reproduces_soft_capping_and_logit_scaling(shipped, family):
    """Issue 27: Gemma 2's final soft-capping and Cohere's and Granite's logit scaling are part of the
    distribution sampled from, so the update applies them too: its log-probs equal the recorded ones."""
    from codegym.models import Policy

    policy = Policy(tiny_model(family, len(shipped.tokenizer)), shipped.tokenizer, torch.device("cpu"))
    agent = agents.make("grpo", policy=policy, max_new_tokens=12, temperature=0.7, kl_coef=0.0)
    prompts = [p.prompt for p in problems.load("simple")[:2]]
    samples = [s for row in agent.sample(prompts, 2, seed=1) for s in row]
    batch = agent.batch(samples)
    with torch.no_grad():
        view = token_view(agent.model, batch, autocast=False, temperature=0.7)
    mask = batch.action_mask.bool()
    assert (view.logprobs - batch.behaviour_logprobs)[mask].abs().max() <= 1e-4


def test_a_model_whose_logits_the_update_cannot_reproduce_is_refused(shipped):
    from transformers import GPT2Config, GPT2LMHeadModel

    from codegym.agents.rollout import UnsupportedModel
    from codegym.models import Policy

    class Doubled(GPT2LMHeadModel):  # a forward that transforms its logits, with nothing in its config to say so
        def forward(self, *args, **kwargs):
            out = super().forward(*args, **kwargs)
            out.logits = out.logits * 2.0
            return out

    torch.manual_seed(0)
    model = Doubled(GPT2Config(vocab_size=len(shipped.tokenizer), n_positions=64, n_embd=32, n_layer=1, n_head=2)).eval()
    with pytest.raises(UnsupportedModel, match="cannot be trained exactly"):
        agents.make("grpo", policy=Policy(model, shipped.tokenizer, torch.device("cpu")), max_new_tokens=8)


@pytest.mark.parametrize("agent_name", ["grpo", "ppo_lm"])
def test_first_update_fails_loudly_when_its_ratio_is_not_one(toy, executor, in_tmp, agent_name):
    """Issue 27: on the first update of a run the samples were drawn by the weights being updated, so
    π/μ = 1 up to rounding; a sampler whose recorded log-probs are off stops the run with InexactRollout."""
    from dataclasses import replace

    from codegym.agents import InexactRollout

    agent = agents.make(agent_name, policy=copy.deepcopy(toy), preset="tiny", batch_problems=1, samples_per_problem=8, max_new_tokens=8, pipeline=False)
    drawn = agent.policy.sample

    def off_by_a_little(*args, **kwargs):  # recorded log-probs 0.01 below the distribution drawn from
        return [[replace(s, logprobs=[lp - 0.01 for lp in s.logprobs]) for s in row] for row in drawn(*args, **kwargs)]

    agent.policy.sample = off_by_a_little
    with pytest.raises(InexactRollout, match="initial_ratio_error = 0.01"):
        agent.fit(toy_problems(1), 2, executor=executor)
