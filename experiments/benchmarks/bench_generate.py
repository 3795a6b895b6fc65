"""Benchmark `Policy.generate` against plain ``model.generate`` with the same settings, in the same run.

Both sample the same left-padded batches (same temperature, top-p, token budget, stop tokens); the
policy adds its end-of-function stopping rule and post-processing. Tokens/s counts generated tokens:
for the policy, the tokens of the returned completions; for plain ``generate``, the tokens before the
first stop token. The last line is one JSON object with ``policy_tokens_per_s``,
``hf_generate_tokens_per_s``, ``ratio`` (policy / plain, at the largest batch) and ``parse_rate`` (share
of policy samples whose prompt + completion parses).

    python experiments/benchmarks/bench_generate.py --quick
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from codegym import problems
from codegym.models import load_policy
from codegym.models.evaluate import parse_rate


def _hf_generate(policy, prompts: list[str], max_new_tokens: int, temperature: float, top_p: float) -> int:
    """Plain ``model.generate`` on the same batch; returns the number of tokens generated before a stop token."""
    tokenizer = policy.tokenizer
    prompts = [p.rstrip() for p in prompts]  # as Policy.generate does: the model writes the trailing newline
    enc = tokenizer(prompts, return_tensors="pt", padding=True, truncation=True,
                    max_length=policy.context - max_new_tokens).to(policy.device)
    out = policy.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature,
                                top_p=top_p, top_k=0, eos_token_id=policy.stop_ids, pad_token_id=tokenizer.pad_token_id,
                                use_cache=True)
    tokens = 0
    for row in out[:, enc["input_ids"].shape[1]:].tolist():
        tokens += next((i for i, t in enumerate(row) if t in policy.stop_ids), len(row))
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help="load_policy name or path (default: the shipped model)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16], help="prompts per call")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per batch size and method")
    parser.add_argument("--quick", action="store_true", help="short run: 1 repeat, 48 new tokens")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.max_new_tokens = 1, 48

    policy = load_policy(args.model)
    prompts = [p.prompt for p in problems.load("humaneval")]
    print(f"model {args.model} on {policy.device}, {torch.get_num_threads()} threads, "
          f"{sum(p.numel() for p in policy.model.parameters()) / 1e6:.1f}M parameters")
    policy.generate(prompts[:2], max_new_tokens=8, seed=args.seed)  # warm-up

    rows: dict[int, dict[str, float]] = {}
    all_prompts: list[str] = []
    all_samples: list[list[str]] = []
    for batch in args.batch_sizes:
        timing = {"policy_s": 0.0, "policy_tokens": 0, "hf_s": 0.0, "hf_tokens": 0}
        for repeat in range(args.repeats):
            chunk = [prompts[(repeat * batch + i) % len(prompts)] for i in range(batch)]
            torch.manual_seed(args.seed + repeat)
            start = time.perf_counter()
            samples = policy.generate(chunk, n=1, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                      top_p=args.top_p, seed=args.seed + repeat)
            timing["policy_s"] += time.perf_counter() - start
            timing["policy_tokens"] += sum(len(policy.tokenizer(s[0], add_special_tokens=False)["input_ids"]) for s in samples)
            all_prompts += chunk
            all_samples += samples
            torch.manual_seed(args.seed + repeat)
            start = time.perf_counter()
            with torch.no_grad():
                timing["hf_tokens"] += _hf_generate(policy, chunk, args.max_new_tokens, args.temperature, args.top_p)
            timing["hf_s"] += time.perf_counter() - start
        policy_rate = timing["policy_tokens"] / timing["policy_s"]
        hf_rate = timing["hf_tokens"] / timing["hf_s"]
        rows[batch] = {"policy_tokens_per_s": policy_rate, "hf_generate_tokens_per_s": hf_rate, "ratio": policy_rate / hf_rate}
        print(f"batch {batch:3d}: Policy.generate {policy_rate:8.1f} tok/s, model.generate {hf_rate:8.1f} tok/s, "
              f"ratio {policy_rate / hf_rate:.2f}")

    largest = rows[max(rows)]
    print(json.dumps({**largest, "parse_rate": parse_rate(all_prompts, all_samples), "batch_size": max(rows),
                      "max_new_tokens": args.max_new_tokens, "device": str(policy.device),
                      "by_batch": {str(b): r for b, r in rows.items()}}))


if __name__ == "__main__":
    main()
