"""Benchmark `Policy.sample` against ``transformers.generate``: completed samples/s, in the same run.

Both sides complete the same MBPP prompts (without trailing whitespace, left-padded, left-truncated)
with the shipped policy, at the same temperature, top-p 1.0 and token budget, and both stop a row at
the end of its function (`codegym.models.sampler.EndOfFunction` for ``generate``, which also stops at
``<eof>``/eos). Two settings (issue 15):

- 8 prompts × n = 8 samples (``num_return_sequences=8`` for ``transformers``): RL and pass@k;
- 16 prompts × n = 1.

``Policy.sample`` also returns each sample's text, ids and behaviour log-probs; ``generate``'s side
decodes its texts. A completed sample is one returned completion. The last line is one JSON object
with ``ratio_n8``, ``ratio_n1`` (samples/s of sample / generate, wall clock) and the samples/s of both
sides; ``cpu_ratio_*`` compares the CPU time of the process instead, a check on a machine shared with
other jobs, where the wall clock of either side depends on what else runs.

    python experiments/benchmarks/bench_generate.py                # 1 torch thread, as the agents sample
    python experiments/benchmarks/bench_generate.py --threads 0    # torch's default (one per core)
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from codegym import problems
from codegym.models import load_policy
from codegym.models.policy import line_flags
from codegym.models.sampler import EndOfFunction, StopRule


def _hf_generate(policy, rule: StopRule, prompts: list[str], n: int, max_new_tokens: int, temperature: float) -> list[str]:
    """``transformers.generate`` with ``num_return_sequences=n`` and the same end-of-function stopping."""
    tokenizer = policy.tokenizer
    heads = [p.rstrip() for p in prompts]
    enc = tokenizer(heads, return_tensors="pt", padding=True, truncation=True,
                    max_length=policy.context - max_new_tokens).to(policy.device)
    at_line_start = torch.tensor([h.endswith("\n") for h in heads for _ in range(n)])
    out = policy.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature, top_p=1.0,
                                top_k=0, num_return_sequences=n, eos_token_id=policy.stop_ids,
                                pad_token_id=tokenizer.pad_token_id, use_cache=True,
                                stopping_criteria=[EndOfFunction(rule, at_line_start, max_new_tokens)])
    return tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help="load_policy name or path (default: the shipped model)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per setting and side, on different prompts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads; 1 as codegym's agents and `compare` use on 2 cores (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    policy = load_policy(args.model)
    prompts = [p.prompt for p in problems.load("mbpp")]
    print(f"model {args.model} on {policy.device}, {torch.get_num_threads()} threads, "
          f"{sum(p.numel() for p in policy.model.parameters()) / 1e6:.1f}M parameters")
    rule = StopRule.build(line_flags(policy.tokenizer), policy.stop_ids, policy.device)  # built once, as the policy does
    with torch.no_grad():  # warm-up of both sides
        policy.sample(prompts[:2], n=2, max_new_tokens=8, seed=args.seed)
        _hf_generate(policy, rule, prompts[:2], 2, 8, args.temperature)

    result: dict[str, float] = {}
    offset = 0
    for name, n_prompts, n in (("n8", 8, 8), ("n1", 16, 1)):
        timing = {"sample_s": 0.0, "hf_s": 0.0, "sample_cpu_s": 0.0, "hf_cpu_s": 0.0, "samples": 0, "ended_early": 0}
        for repeat in range(args.repeats):
            chunk = prompts[offset : offset + n_prompts]
            offset += n_prompts
            start, cpu = time.perf_counter(), time.process_time()
            samples = policy.sample(chunk, n=n, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                    seed=args.seed + repeat)
            timing["sample_s"] += time.perf_counter() - start
            timing["sample_cpu_s"] += time.process_time() - cpu
            timing["samples"] += sum(len(row) for row in samples)
            timing["ended_early"] += sum(len(s.token_ids) < args.max_new_tokens for row in samples for s in row)
            torch.manual_seed(args.seed + repeat)
            start, cpu = time.perf_counter(), time.process_time()
            with torch.no_grad():
                texts = _hf_generate(policy, rule, chunk, n, args.max_new_tokens, args.temperature)
            timing["hf_s"] += time.perf_counter() - start
            timing["hf_cpu_s"] += time.process_time() - cpu
            assert len(texts) == n_prompts * n
        sample_rate = timing["samples"] / timing["sample_s"]
        hf_rate = timing["samples"] / timing["hf_s"]
        result |= {f"sample_samples_per_s_{name}": round(sample_rate, 2), f"hf_generate_samples_per_s_{name}": round(hf_rate, 2),
                   f"ratio_{name}": round(sample_rate / hf_rate, 3),
                   f"cpu_ratio_{name}": round(timing["hf_cpu_s"] / timing["sample_cpu_s"], 3),
                   f"ended_early_share_{name}": round(timing["ended_early"] / timing["samples"], 3)}
        print(f"{n_prompts} prompts x n={n}: Policy.sample {sample_rate:7.2f} samples/s, transformers.generate "
              f"{hf_rate:7.2f} samples/s, ratio {sample_rate / hf_rate:.2f}")
    print(json.dumps({**result, "max_new_tokens": args.max_new_tokens, "temperature": args.temperature,
                      "repeats": args.repeats, "threads": torch.get_num_threads(), "device": str(policy.device)}))


if __name__ == "__main__":
    main()
