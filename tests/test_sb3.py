"""`codegym.agents.sb3.LMPolicy`: the rollout's cached log-probs equal the update's recomputation, observation
alignment, the frozen trunk, and SB3's save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codegym.agents.sb3 import LMPolicy, ValueInit, aligned, prefix_groups
from codegym.envs import CodeSynthesisEnv
from codegym.envs.tokens import load_tokenizer

from .test_envs import TOY


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def vec_env(executor, tokenizer, n=2, **kwargs):
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    kwargs = {"max_new_tokens": 8, "max_prompt_tokens": 24, **kwargs}
    return DummyVecEnv([lambda: Monitor(CodeSynthesisEnv(TOY, None, tokenizer, executor=executor, timeout=1.0, **kwargs)) for _ in range(n)])


def collect(model, steps, callback=None):
    """One rollout of ``steps`` steps per env into the model's buffer (no update), with SB3 ``callback``s."""
    _, callback = model._setup_learn(steps * model.n_envs, callback=callback)
    callback.on_training_start(locals(), globals())
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=steps)
    return model.rollout_buffer


def buffer_tensors(model, buffer):
    data = next(buffer.get(None))  # the whole buffer, one batch
    return data.observations, data.actions.long().flatten(), data.old_log_prob, data.old_values, data.advantages


def test_rollout_logprobs_equal_evaluate_actions(tokenizer, executor, in_tmp):
    from stable_baselines3 import PPO

    # Short episodes, so the 48 steps hold restarts of every env's row, truncations and a repacked cache.
    model = PPO(LMPolicy, vec_env(executor, tokenizer, n=3), n_steps=48, batch_size=144, seed=0, device="cpu")
    buffer = collect(model, 48)
    policy = model.policy
    assert policy.cache_steps["extended"] > 48 and policy.cache_steps["prefilled"] > 3 * 3  # the cache served most steps, and episodes restarted
    assert buffer.episode_starts[1:].sum() >= 6
    obs, actions, old_logprob, old_values, _ = buffer_tensors(model, buffer)
    with torch.no_grad():
        values, logprob, entropy = policy.evaluate_actions(obs, actions)
    assert torch.allclose(logprob, old_logprob, atol=1e-4, rtol=0), float((logprob - old_logprob).abs().max())
    assert torch.allclose(values.flatten(), old_values, atol=1e-4, rtol=0)
    assert bool((entropy > 0).all())
    # The same log-probs without the cache (every step prefilled), and without sharing prefixes (one row per pass).
    fresh = LMPolicy(model.observation_space, model.action_space, lambda _: 1e-5, use_cache=False)
    fresh.load_state_dict(policy.state_dict())
    tokens, lengths = aligned(obs)
    one_by_one = torch.cat([fresh.hidden_exact(tokens[i : i + 1], lengths[i : i + 1]) for i in range(len(lengths))])
    with torch.no_grad():
        alone = fresh._distribution(one_by_one).log_prob(actions)
    assert torch.allclose(alone, old_logprob, atol=1e-4, rtol=0)


def test_observation_alignment_and_prefix_groups():
    tokens = torch.tensor([[5, 6, 7, 0], [5, 6, 0, 0], [5, 9, 0, 0], [5, 6, 7, 8]])
    lengths = torch.tensor([3, 2, 2, 4])
    reps, owner = prefix_groups(tokens, lengths)
    # rows 0 and 1 are prefixes of row 3; row 2 is not
    assert sorted(reps.tolist()) == [2, 3] and reps[owner[0]] == 3 and reps[owner[1]] == 3 and reps[owner[2]] == 2
    mask = (torch.arange(4) < lengths[:, None]).to(torch.int8)
    right = {"tokens": tokens.float(), "mask": mask.float(), "length": lengths[:, None].float()}
    left = {"tokens": torch.stack([t.roll(int(4 - n)) for t, n in zip(tokens, lengths)]).float(),
            "mask": torch.stack([m.roll(int(4 - n)) for m, n in zip(mask, lengths)]).float(), "length": lengths[:, None].float()}
    for obs in (right, left):
        got, n = aligned(obs)
        assert torch.equal(n, lengths)
        assert all(torch.equal(got[i, : lengths[i]], tokens[i, : lengths[i]]) for i in range(4))
    with pytest.raises(ValueError, match="disagrees"):
        aligned({**right, "length": (lengths[:, None] + 1).float()})


def test_frozen_trunk_trains_only_the_top_layers_and_sb3_save_load(tokenizer, executor, in_tmp):
    from stable_baselines3 import PPO

    env = vec_env(executor, tokenizer, n=2)
    model = PPO(LMPolicy, env, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu", learning_rate=1e-4,
                policy_kwargs={"lm": "default", "train_layers": 1, "value_features": "shared"})
    lm = model.policy.lm
    before = {name: p.detach().clone() for name, p in lm.named_parameters()}
    model.learn(32)
    changed = {name for name, p in lm.named_parameters() if not torch.equal(p, before[name])}
    assert changed and all(name.startswith(("transformer.h.3.", "transformer.ln_f.")) for name in changed), changed
    assert {"transformer.wte.weight", "transformer.h.0.attn.c_attn.weight"}.isdisjoint(changed)
    model.save(in_tmp / "ppo.zip")
    loaded = PPO.load(in_tmp / "ppo.zip", device="cpu")
    assert isinstance(loaded.policy, LMPolicy) and loaded.policy.train_layers == 1 and loaded.policy.value_features == "shared"
    for key, value in model.policy.state_dict().items():
        assert torch.equal(value, loaded.policy.state_dict()[key]), key
    obs = env.reset()
    with torch.no_grad():
        a = model.policy.evaluate_actions(model.policy.obs_to_tensor(obs)[0], torch.zeros(2, dtype=torch.long))[1]
        b = loaded.policy.evaluate_actions(loaded.policy.obs_to_tensor(obs)[0], torch.zeros(2, dtype=torch.long))[1]
    assert torch.allclose(a, b)


def test_value_init_starts_the_critic_at_the_mean_return(tokenizer, executor, in_tmp):
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    class Returns(BaseCallback):
        def __init__(self):
            super().__init__()
            self.returns = []

        def _on_step(self):
            self.returns += [float(info["episode"]["r"]) for done, info in zip(self.locals["dones"], self.locals["infos"]) if done]
            return True

    model = PPO(LMPolicy, vec_env(executor, tokenizer, n=2), n_steps=24, batch_size=48, n_epochs=1, seed=0, device="cpu")
    seen = Returns()
    model.learn(48, callback=[seen, ValueInit()])
    assert seen.returns and bool(model.policy.value_initialised)
    assert float(model.policy.value_net.bias.detach()) == pytest.approx(np.mean(seen.returns), abs=1e-3)  # one small update since
    buffer = model.rollout_buffer
    assert np.allclose(buffer.returns, buffer.advantages + buffer.values, atol=1e-5)  # recomputed with the shifted values
    assert abs(buffer.values.mean() - np.mean(seen.returns)) < 1e-4


def test_kl_penalty_folds_the_kl_to_the_reference_into_the_rewards(tokenizer, executor, in_tmp):
    import copy

    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    from codegym.agents.sb3 import KLPenalty

    class Rewards(BaseCallback):
        def __init__(self):
            super().__init__()
            self.rewards = []

        def _on_step(self):
            self.rewards.append(np.array(self.locals["rewards"], copy=True))
            return True

    model = PPO(LMPolicy, vec_env(executor, tokenizer, n=2), n_steps=24, batch_size=48, seed=0, device="cpu")
    same = KLPenalty(0.5)  # the reference is a copy of the policy's LM: the KL is 0
    collect(model, 24, [same])
    assert abs(same.mean_kl) < 1e-5

    reference = copy.deepcopy(model.policy.lm)
    with torch.no_grad():
        reference.transformer.ln_f.weight.mul_(0.5)  # a flatter reference
    env_rewards, penalty = Rewards(), KLPenalty(0.5, reference)
    buffer = collect(model, 24, [env_rewards, penalty])
    tokens, lengths = aligned({key: torch.as_tensor(value.reshape(48, -1)) for key, value in buffer.observations.items()})  # step-major
    actions = torch.as_tensor(buffer.actions.reshape(48)).long()
    with torch.no_grad():  # one observation per pass, independently of the callback's shared passes
        ref = torch.cat([model.policy._distribution(model.policy.hidden_exact(tokens[i : i + 1], lengths[i : i + 1], lm=reference), lm=reference)
                         .log_prob(actions[i : i + 1]) for i in range(48)])
    kl = buffer.log_probs - ref.numpy().reshape(24, 2)
    assert penalty.mean_kl > 0.01 and penalty.mean_kl == pytest.approx(kl.mean(), abs=1e-5)
    assert np.allclose(buffer.rewards, np.stack(env_rewards.rewards) - 0.5 * kl, atol=1e-5)
    assert np.allclose(buffer.returns, buffer.advantages + buffer.values, atol=1e-5)  # recomputed from the penalised rewards


def test_value_lr_scale_speeds_up_only_the_value_head(tokenizer, executor, in_tmp):
    from stable_baselines3 import PPO

    moved = {}
    for scale in (1.0, 100.0):
        model = PPO(LMPolicy, vec_env(executor, tokenizer, n=2), n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu",
                    learning_rate=1e-5, policy_kwargs={"value_lr_scale": scale, "value_init": 0.0})
        head = model.policy.value_net.weight.detach().clone()
        trunk = model.policy.lm.transformer.h[0].mlp.c_fc.weight.detach().clone()
        model.learn(32)
        with torch.no_grad():
            moved[scale] = (float((model.policy.value_net.weight - head).abs().max()), float((model.policy.lm.transformer.h[0].mlp.c_fc.weight - trunk).abs().max()))
        assert model.policy.optimizer.param_groups[-1]["lr"] == pytest.approx(1e-5)  # SB3's schedule is left as it was
    # Adam moves each weight by at most about its learning rate per step: 1e-5 for the trunk in both runs, 1e-3 for the scaled head.
    assert moved[1.0][0] <= 1.2e-5 and 1.2e-5 < moved[100.0][0] <= 1.2e-3
    assert moved[1.0][1] <= 1.2e-5 and moved[100.0][1] <= 1.2e-5


def test_bench_quarters_skip_the_first_rollout_and_split_steps_by_episodes():
    from codegym.experiments.benchmarks.bench_agents import quarter_pass_rates

    # The first step (short episodes only) is left out; the 40 episodes after it: 10 per quarter.
    history = [{"pass_rate": 1.0, "episodes": 7}, {"pass_rate": 0.2, "episodes": 5}, {"pass_rate": 0.6, "episodes": 10},
               {"pass_rate": 0.5, "episodes": 15}, {"pass_rate": 0.9, "episodes": 10}, {"pass_rate": 0.0, "episodes": 0}]
    q = quarter_pass_rates(history)
    assert q["quarter_episodes"] == 10
    assert q["first_quarter_pass_rate"] == pytest.approx((0.2 * 5 + 0.6 * 5) / 10)  # the third step counts for half its episodes
    assert q["last_quarter_pass_rate"] == pytest.approx(0.9)
    assert q["first_quarter_se"] == pytest.approx(np.sqrt(0.4 * 0.6 / 10), abs=1e-4)
