"""Gymnasium environments: API contracts, checkers, scripted agents, vector envs, SB3."""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np
import pytest
import torch

import codegym  # noqa: F401  (registers the ids)
from codegym.envs import CodeSynthesisEnv, CodeSynthesisSeqEnv
from codegym.envs.tokens import load_tokenizer, split_prompt
from codegym.problems import Problem, ProblemLoadError

from .conftest import sandbox_leftovers

PROMPT = 'def add(a, b):\n    """Return the sum of a and b."""\n'
ADD = Problem("toy/add", PROMPT, "add", ["assert add(1, 2) == 3", "assert add(3, 0) == 3", "assert add(10, 5) == 15"], PROMPT + "    return a + b\n")
SLOW = Problem("toy/slow", "def slow():\n", "slow", ["assert slow() == 1"], "def slow():\n    return 1\n")
TOY = [ADD, SLOW]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def token_env(executor, tokenizer, **kwargs):
    kwargs.setdefault("problems", TOY)
    return CodeSynthesisEnv(split=None, tokenizer=tokenizer, executor=executor, timeout=1.0, **kwargs)


def emit(env, text, tokenizer, end=True):
    """Play ``text`` token by token (then the end-of-function token); return the last step."""
    ids = tokenizer(split_prompt(env.problem.prompt)[1] + text, add_special_tokens=False)["input_ids"]
    if end:
        ids.append(tokenizer.convert_tokens_to_ids("<eof>"))
    for i, token in enumerate(ids):
        obs, reward, terminated, truncated, info = env.step(token)
        if terminated or truncated:
            assert i == len(ids) - 1, "episode ended early"
            return obs, reward, terminated, truncated, info
    raise AssertionError("episode did not end")


def test_ids_registered_and_make(tokenizer, executor, in_tmp):
    env = gym.make("codegym/CodeSynthesis-v0", problems=TOY, split=None, tokenizer=tokenizer, executor=executor)
    assert isinstance(env.unwrapped, CodeSynthesisEnv)
    env2 = gym.make("codegym:codegym/CodeSynthesisSeq-v0", problems=TOY, split=None, tokenizer=tokenizer, executor=executor)
    assert isinstance(env2.unwrapped, CodeSynthesisSeqEnv)
    default = gym.make("codegym/CodeSynthesis-v0", executor=executor)
    assert len(default.unwrapped.problems) == 374  # MBPP's train split by default


def test_gymnasium_and_sb3_checkers(tokenizer, executor, in_tmp):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    token = token_env(executor, tokenizer, max_new_tokens=8)
    check_env(token, skip_render_check=True)
    sb3_check_env(token)
    # SB3 has no Text action support (its checker cannot even step with a string action), so the
    # sequence-level env is checked against Gymnasium's contract only.
    check_env(CodeSynthesisSeqEnv(TOY, None, tokenizer, executor=executor), skip_render_check=True)


def test_scripted_correct_solution_gets_full_reward(tokenizer, executor, in_tmp):
    env = token_env(executor, tokenizer)
    obs, info = env.reset(seed=0, options={"task_id": "toy/add"})
    assert info["task_id"] == "toy/add" and obs["length"][0] == obs["mask"].sum()
    obs, reward, terminated, truncated, info = emit(env, "    return a + b\n", tokenizer)
    assert terminated and not truncated
    assert reward == 1.0
    assert info["outcome"] == "passed" and info["test_passed"] == [True, True, True] and info["pass_ratio"] == 1.0
    assert info["program"] == PROMPT + "    return a + b\n"


def test_scripted_wrong_solution_does_not(tokenizer, executor, in_tmp):
    env = token_env(executor, tokenizer)
    env.reset(options={"task_id": "toy/add"})
    _, reward, terminated, _, info = emit(env, "    return a - b\n", tokenizer)
    assert terminated and info["outcome"] == "failed" and info["test_passed"] == [False, True, False]
    assert reward == pytest.approx(1 / 3)


def test_timeout_program_gets_timeout_reward(tokenizer, executor, in_tmp):
    env = token_env(executor, tokenizer)
    env.reset(options={"task_id": "toy/slow"})
    _, reward, _, _, info = emit(env, "    while True:\n        pass\n", tokenizer)
    assert info["outcome"] == "timeout" and reward == -0.6


def test_new_top_level_line_ends_the_function(tokenizer, executor, in_tmp):
    env = token_env(executor, tokenizer)
    env.reset(options={"task_id": "toy/add"})
    for token in tokenizer("\n    return a + b\n", add_special_tokens=False)["input_ids"]:
        assert not env.step(token)[2]
    first_of_print = tokenizer("print", add_special_tokens=False)["input_ids"][0]
    _, reward, terminated, _, info = env.step(first_of_print)
    assert terminated and info["program"] == PROMPT + "    return a + b\n" and reward == 1.0


def test_truncation_runs_the_program(tokenizer, executor, in_tmp):
    env = token_env(executor, tokenizer, max_new_tokens=3)
    env.reset(options={"task_id": "toy/add"})
    space = tokenizer("\n    x = 1", add_special_tokens=False)["input_ids"][:1]
    results = [env.step(space[0]) for _ in range(3)]
    assert [r[3] for r in results] == [False, False, True]
    assert "outcome" in results[-1][4] and results[-1][1] <= 0


def test_bad_input_is_refused(tokenizer, executor, in_tmp):
    env = token_env(executor, tokenizer)
    env.reset()
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(env.action_space.n)
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(-1)
    with pytest.raises(ProblemLoadError):
        CodeSynthesisEnv(problems="no-such-problems", tokenizer=tokenizer)
    with pytest.raises(ProblemLoadError, match="no problems in split"):
        CodeSynthesisEnv(problems="humaneval", split="train", tokenizer=tokenizer)
    with pytest.raises(ValueError, match="no problems to draw from"):
        CodeSynthesisEnv(problems=[], split=None, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="render_mode"):
        token_env(executor, tokenizer, render_mode="rgb_array")
    with pytest.raises(RuntimeError, match="reset"):
        fresh = token_env(executor, tokenizer)
        fresh.step(0)


def test_tokenizer_without_end_token_is_refused(tokenizer, executor):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel({"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    bare = PreTrainedTokenizerFast(tokenizer_object=raw)
    with pytest.raises(ValueError, match="end-of-sequence"):
        token_env(executor, bare)


def test_seeding_repeats_problem_order_and_episodes(tokenizer, executor, in_tmp):
    def run(seed):
        env = token_env(executor, tokenizer, problems="mbpp", max_new_tokens=4)
        env.action_space.seed(seed)
        ids, rewards = [], []
        obs, info = env.reset(seed=seed)
        for _ in range(3):
            ids.append(info["task_id"])
            done = False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
                done = terminated or truncated
            rewards.append(reward)
            obs, info = env.reset()
        return ids, rewards

    assert run(7) == run(7)
    assert run(7)[0] != run(8)[0]


def test_render(tokenizer, executor, in_tmp, capsys):
    env = token_env(executor, tokenizer, render_mode="ansi")
    env.reset(options={"task_id": "toy/add"})
    assert "in progress" in env.render()
    emit(env, "    return a + b\n", tokenizer)
    assert "passed, 3/3 tests, reward +1.00" in env.render()
    human = token_env(executor, tokenizer, render_mode="human")
    human.reset(options={"task_id": "toy/add"})
    emit(human, "    return a + b\n", tokenizer)
    assert "passed, 3/3 tests" in capsys.readouterr().out


def test_sequence_env(tokenizer, executor, in_tmp):
    env = CodeSynthesisSeqEnv(TOY, None, tokenizer, executor=executor)
    obs, info = env.reset(seed=1, options={"task_id": "toy/add"})
    assert obs["prompt"] == PROMPT and obs["length"][0] > 0
    _, reward, terminated, truncated, info = env.step("    return a + b\n")
    assert (reward, terminated, truncated, info["outcome"]) == (1.0, True, False, "passed")
    env.reset(options={"task_id": "toy/add"})
    assert env.step("    return a +\n")[1] == -1.0
    env.reset()
    with pytest.raises(ValueError, match="printable ASCII"):
        env.step("    return 'é'\n")


@pytest.mark.parametrize("mode", ["sync", "async", "vector_entry_point"])
def test_vector_envs(mode, executor, in_tmp):
    import psutil

    from codegym.models.policy import DEFAULT_DIR

    executor.backend.start()
    def ours() -> set[int]:  # multiprocessing's resource tracker outlives envs by design
        pids = set()
        for child in psutil.Process().children(recursive=True):
            try:
                if "resource_tracker" not in " ".join(child.cmdline()):
                    pids.add(child.pid)
            except psutil.Error:
                pass
        return pids

    before = ours()
    kwargs = {"problems": TOY, "split": None, "tokenizer": str(DEFAULT_DIR), "max_new_tokens": 6, "timeout": 1.0}
    if mode != "async":  # async envs live in their own processes, each with its own sandbox pool
        kwargs["executor"] = executor
    # Async envs start by "spawn": forking a process that runs torch and sandbox threads is unsafe.
    vector_kwargs = {"context": "spawn"} if mode == "async" else {}
    envs = gym.make_vec("codegym/CodeSynthesis-v0", num_envs=4, vectorization_mode=mode, vector_kwargs=vector_kwargs, **kwargs)
    envs.reset(seed=3)
    envs.action_space.seed(3)
    finished = 0
    for _ in range(200):
        _, rewards, terminated, truncated, infos = envs.step(envs.action_space.sample())
        finished += int(np.sum(terminated | truncated))
        assert rewards.shape == (4,)
    assert finished >= 4 * (200 // 7)  # every env ends an episode at least every 6 + 1 (reset) steps
    envs.close()
    deadline = time.monotonic() + 10
    while (left := ours() - before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes left after close: {left}"
    assert not sandbox_leftovers(executor)


def test_vector_entry_point_batches_and_rewards(tokenizer, executor, in_tmp):
    envs = gym.make_vec("codegym/CodeSynthesis-v0", num_envs=3, vectorization_mode="vector_entry_point",
                        problems=[ADD], split=None, tokenizer=tokenizer, executor=executor)
    envs.reset(seed=0)
    body = tokenizer("\n    return a + b\n", add_special_tokens=False)["input_ids"] + [tokenizer.convert_tokens_to_ids("<eof>")]
    for token in body:
        _, rewards, terminated, _, infos = envs.step(np.array([token] * 3))
    assert terminated.all() and (rewards == 1.0).all()
    assert list(infos["outcome"]) == ["passed"] * 3
    envs.close()


def test_sb3_ppo_learns_end_to_end(tokenizer, executor, in_tmp):
    """README's example at CI size: PPO(LMPolicy, env).learn(64) trains on the env's rewards and moves the policy
    towards the actions with positive advantage."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    from codegym.agents.sb3 import LMPolicy, ValueInit

    def paper(info):  # the README's table for the default preset, from the env's verdict
        if info["outcome"] == "syntax_error":
            return -1.0
        if info["outcome"] in ("runtime_error", "timeout") and not any(info["test_passed"]):
            return -0.6
        return info["pass_ratio"]

    class Finished(BaseCallback):
        """(step, env, reward SB3 saw, the reward preset applied to the env's verdict) of every finished episode."""

        def __init__(self):
            super().__init__()
            self.rows = []

        def _on_step(self):
            step = self.model.rollout_buffer.pos
            for i, (done, info, reward) in enumerate(zip(self.locals["dones"], self.locals["infos"], self.locals["rewards"])):
                if done:
                    self.rows.append((step, i, float(reward), paper(info)))
            return True

    env = DummyVecEnv([lambda: Monitor(token_env(executor, tokenizer, max_new_tokens=8, max_prompt_tokens=24)) for _ in range(2)])
    model = PPO(LMPolicy, env, policy_kwargs={"lm": "default"}, n_steps=32, batch_size=64, n_epochs=1, learning_rate=1e-5, seed=0, device="cpu")
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    finished = Finished()
    model.learn(64, callback=[finished, ValueInit()])
    assert model.num_timesteps == 64 and len(finished.rows) >= 4
    buffer = model.rollout_buffer  # flattened by the update: index = step * n_envs + env
    rewards = buffer.rewards.reshape(-1)
    done_at = {step * 2 + i: (seen, expected) for step, i, seen, expected in finished.rows}
    for index, (seen, expected) in done_at.items():
        assert rewards[index] == pytest.approx(seen) == pytest.approx(expected)  # the buffer's reward is the env's verdict, scored by the preset
    assert all(rewards[i] == 0 for i in range(len(rewards)) if i not in done_at)  # no reward before an episode ends
    # the update changed the LM, and raised the log-prob of the actions with positive advantage (first-order PPO improvement)
    assert not torch.equal(before["lm.transformer.h.0.mlp.c_fc.weight"], model.policy.state_dict()["lm.transformer.h.0.mlp.c_fc.weight"])
    data = next(buffer.get(None))
    with torch.no_grad():
        _, after, _ = model.policy.evaluate_actions(data.observations, data.actions.long().flatten())
    advantages = (data.advantages - data.advantages.mean()) / (data.advantages.std() + 1e-8)
    assert float((advantages * (after - data.old_log_prob)).sum()) > 0


FORKED_VECTOR_ENVS = """
import os, sys
os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core: one sandbox worker per pool, cheap to start
import gymnasium as gym
import numpy as np
import codegym
from codegym.problems import Problem
from codegym.models.policy import DEFAULT_DIR
from stable_baselines3 import PPO

PROMPT = 'def add(a, b):\\n    \\"\\"\\"Return the sum of a and b.\\"\\"\\"\\n'
ADD = Problem("toy/add", PROMPT, "add", ["assert add(1, 2) == 3"], PROMPT + "    return a + b\\n")
kwargs = dict(problems=[ADD], split=None, tokenizer=str(DEFAULT_DIR), max_new_tokens=8, timeout=1.0)
env = gym.make("codegym/CodeSynthesis-v0", **kwargs)
env.reset(seed=0)
ended = 0
while ended < 3:  # episodes in the parent: programs run on the shared executor
    *_, terminated, truncated, _ = env.step(env.action_space.sample())
    if terminated or truncated:
        ended += 1
        env.reset()
PPO("MultiInputPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu").learn(128)
for r in range(int(sys.argv[1])):
    envs = gym.make_vec("codegym/CodeSynthesis-v0", num_envs=4, vectorization_mode="async", **kwargs)  # fork
    envs.reset(seed=r)
    envs.action_space.seed(r)
    ended = 0
    for _ in range(40):
        _, _, terminated, truncated, _ = envs.step(envs.action_space.sample())
        ended += int(np.sum(terminated | truncated))
    envs.close()
    assert ended >= 4 * 4, ended  # 8-token episodes: the children ran programs
    print("round", r, ended, flush=True)
print("done")
"""


def test_async_vector_env_forked_after_the_parent_ran_programs_never_hangs(in_tmp):
    """Issue 27: a child forked (the default context) after the parent used the shared executor used to
    wait forever for its first verdict. 20 rounds of an async vector env with 8-token episodes, each
    stepped 40 times, after episodes and an SB3 PPO.learn in the parent, under a watchdog."""
    import os
    import signal
    import subprocess
    import sys

    import psutil

    from codegym.execution.pool import _WORKER_SCRIPT

    def workers() -> set[int]:  # sandbox workers of this checkout's pool script
        found = set()
        for proc in psutil.process_iter(["cmdline"]):
            if str(_WORKER_SCRIPT) in " ".join(proc.info["cmdline"] or []):
                found.add(proc.pid)
        return found

    before = workers()
    script = subprocess.Popen([sys.executable, "-c", FORKED_VECTOR_ENVS, "20"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True)  # fmt: skip
    try:
        output, _ = script.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(script.pid, signal.SIGKILL)  # the script and its forked children
        output, _ = script.communicate()
        pytest.fail(f"async vector envs hung after fork (watchdog: 240 s); output so far:\n{output}")
    assert script.returncode == 0, output
    assert output.splitlines()[-1] == "done"
    deadline = time.monotonic() + 10
    while (left := workers() - before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"sandbox workers left behind by the forked children: {left}"
