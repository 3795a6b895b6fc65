"""Token-level environment speed: does stepping the environment slow generation down?

One run: (a) env steps/s with random actions; (b) tokens/s when the default policy drives a vector
env of 16 token by token (KV cache, one batched forward per step; finished programs run as one batch); (c) the same policy's own
``generate`` at batch 16 on the same prompts; (d) the same driver on a naive env that decodes and
re-tokenizes the whole text at every step; (e) ``repair_turn_overhead``: the wall time of one
``codegym/CodeRepair-v0`` turn (the program against all tests plus the feedback run on the visible
ones, in one sandbox batch) over that of one ``CodeSynthesisSeq-v0`` episode, on the same programs
(wrong bodies and references of MBPP train problems, each made unique so no cached verdict is
reused; target <= 1.2). Prints the figures and ratios, then one JSON line.

    python experiments/benchmarks/bench_env.py [--quick] [--repair-only]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import gymnasium as gym
import numpy as np
import torch

import codegym  # noqa: F401  (registers the ids)
from codegym.envs import CodeRepairEnv, CodeSynthesisEnv, CodeSynthesisSeqEnv, CodeSynthesisVectorEnv
from codegym.execution import Executor
from codegym.models import load_policy


class NaiveEnv(CodeSynthesisEnv):
    """The reference a careless implementation would be: decode and re-encode everything per step."""

    def step(self, action: int):
        result = super().step(action)
        assert self.problem is not None
        text = self.codec.tokenizer.decode(self._tokens[self._prompt_length : self._length].tolist())
        self.codec.encode_prompt(self.problem.prompt + text)
        return result


def drive(envs: list[CodeSynthesisEnv], policy, seed: int, batch_step) -> tuple[int, float]:
    """Let the policy write one episode in every env, sampling token by token with the KV cache.

    Returns (tokens generated, seconds). ``batch_step`` steps all envs with the sampled tokens and
    returns which rows are finished.
    """
    model, device = policy.model, policy.device
    prompts = []
    for i, env in enumerate(envs):
        obs, _ = env.reset(seed=seed + i)
        prompts.append(obs["tokens"][: obs["length"][0]].tolist())
    start = time.perf_counter()
    width = max(len(p) for p in prompts)
    pad = envs[0].codec.pad_id
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    generator = torch.Generator(device=device).manual_seed(seed)
    done = np.zeros(len(envs), dtype=bool)
    tokens = 0
    past = None
    with torch.inference_mode():
        while not done.all():
            out = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=past, use_cache=True)
            past = out.past_key_values
            probs = torch.softmax(out.logits[:, -1, :].float() / 0.8, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator)
            tokens += int((~done).sum())
            done |= batch_step(nxt[:, 0].tolist(), done)
            ids = nxt
            mask = torch.cat([mask, torch.ones_like(nxt)], dim=1)
            positions = positions[:, -1:] + 1
    return tokens, time.perf_counter() - start


def step_each(envs: list[CodeSynthesisEnv]):
    def batch_step(actions: list[int], done: np.ndarray) -> np.ndarray:
        finished = np.zeros(len(envs), dtype=bool)
        for i, (env, action) in enumerate(zip(envs, actions)):
            if not done[i]:
                _, _, terminated, truncated, _ = env.step(action)
                finished[i] = terminated or truncated
        return finished

    return batch_step


def repair_turn_overhead(executor: Executor, problems: str, n: int, rounds: int, visible_tests: int | None = None) -> tuple[float, float]:
    """(seconds per repair turn, seconds per single-turn episode) over the same ``n`` programs, alternating."""
    from codegym import problems as sources

    chosen = sources.load(problems, split="train")[:n]
    single = CodeSynthesisSeqEnv(problems=chosen, split=None, executor=executor)
    repair = CodeRepairEnv(problems=chosen, split=None, executor=executor, max_turns=3, visible_tests=visible_tests)
    times = {"single": 0.0, "repair": 0.0}
    for p in chosen:  # warm up: the pool's workers, each problem's visible-test view (computed once per problem)
        repair.reset(options={"task_id": p.task_id})
        repair.step(f"    return 0\n# warm-up {visible_tests}\n")
    for r in range(rounds):
        for i, p in enumerate(chosen):
            body = "    return 0\n" if i % 2 else (p.reference or "    return 0\n")
            for name, env in (("single", single), ("repair", repair)) if (i + r) % 2 else (("repair", repair), ("single", single)):
                env.reset(options={"task_id": p.task_id})
                unique = f"{body.rstrip()}\n# {name} {visible_tests} {r} {i} {time.time_ns()}\n"  # a fresh program: never a cached verdict
                start = time.perf_counter()
                env.step(unique)
                times[name] += time.perf_counter() - start
    return times["repair"] / (rounds * len(chosen)), times["single"] / (rounds * len(chosen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter run")
    parser.add_argument("--repair-only", action="store_true", help="measure (e) repair_turn_overhead only")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--problems", default="mbpp")
    args = parser.parse_args()
    rounds = 1 if args.quick else 3
    with Executor() as executor:
        turn_s, episode_s = repair_turn_overhead(executor, args.problems, 20 if args.quick else 60, rounds)
        hidden_turn_s, hidden_episode_s = repair_turn_overhead(executor, args.problems, 20 if args.quick else 60, rounds, visible_tests=1)
    overhead, hidden_overhead = turn_s / episode_s, hidden_turn_s / hidden_episode_s
    print(f"(e) repair turn {turn_s * 1e3:.1f} ms vs single-turn episode {episode_s * 1e3:.1f} ms: repair_turn_overhead = {overhead:.2f} (target <= 1.2)")
    print(f"    with hidden tests (visible_tests=1: a second, visible-only run): {hidden_turn_s * 1e3:.1f} vs {hidden_episode_s * 1e3:.1f} ms = {hidden_overhead:.2f}")
    figures = {
        "repair_turn_s": round(turn_s, 4), "single_episode_s": round(episode_s, 4), "repair_turn_overhead": round(overhead, 3),
        "repair_turn_overhead_hidden_tests": round(hidden_overhead, 3),
    }  # fmt: skip
    if args.repair_only:
        print(json.dumps({"benchmark": "env", **figures, "cpus": os.cpu_count()}))
        return
    policy = load_policy("default")
    torch.manual_seed(0)

    with Executor() as executor:
        common = dict(problems=args.problems, split="train", tokenizer=policy.tokenizer, executor=executor, max_new_tokens=args.max_new_tokens)
        env = gym.make("codegym/CodeSynthesis-v0", **common)
        env.reset(seed=0)
        env.action_space.seed(0)
        n_steps = 2000 if args.quick else 10000
        start = time.perf_counter()
        for _ in range(n_steps):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()
        env_steps_per_s = n_steps / (time.perf_counter() - start)

        def rate(make_envs) -> float:
            total_tokens = total_seconds = 0.0
            for r in range(rounds):
                envs, batch_step = make_envs()
                tokens, seconds = drive(envs, policy, seed=100 * r, batch_step=batch_step)
                total_tokens, total_seconds = total_tokens + tokens, total_seconds + seconds
            return total_tokens / total_seconds

        def vector():
            vec = CodeSynthesisVectorEnv(num_envs=args.batch, **common)
            return list(vec.envs), lambda actions, done: np.logical_or(*vec.step(np.array(actions))[2:4])

        def naive_envs():
            envs = [NaiveEnv(**common) for _ in range(args.batch)]
            return envs, step_each(envs)

        driven = rate(vector)
        naive = rate(naive_envs)

        prompt_envs = [CodeSynthesisEnv(**common) for _ in range(args.batch)]
        gen_tokens = gen_seconds = 0.0
        for r in range(rounds):
            prompts = [e.reset(seed=100 * r + i)[1]["prompt"] for i, e in enumerate(prompt_envs)]
            start = time.perf_counter()
            completions = policy.generate(prompts, n=1, max_new_tokens=args.max_new_tokens, temperature=0.8, seed=r)
            gen_seconds += time.perf_counter() - start
            gen_tokens += sum(len(policy.tokenizer(c[0], add_special_tokens=False)["input_ids"]) + 1 for c in completions)
        generate = gen_tokens / gen_seconds

    print(f"(a) env steps/s, random actions      : {env_steps_per_s:10.1f}")
    print(f"(b) policy driving {args.batch} envs, tokens/s  : {driven:10.1f}")
    print(f"(c) policy.generate batch {args.batch}, tokens/s: {generate:10.1f}")
    print(f"(d) naive re-tokenizing env, tokens/s : {naive:10.1f}")
    print(f"ratio (b)/(c) = {driven / generate:.2f}, (b)/(d) = {driven / naive:.2f}")
    print(
        json.dumps(
            {
                "benchmark": "env",
                "env_steps_per_s": round(env_steps_per_s, 1),
                "driven_tokens_per_s": round(driven, 1),
                "generate_tokens_per_s": round(generate, 1),
                "ratio_vs_generate": round(driven / generate, 3),
                "naive_tokens_per_s": round(naive, 1),
                "batch": args.batch,
                "max_new_tokens": args.max_new_tokens,
                **figures,
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
