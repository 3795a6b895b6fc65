"""How good a policy is: held-out loss, parse rate of sampled bodies, pass@k on problems with tests.

Generated programs run only in the sandbox (`codegym.execution.Executor`), never in this process.
Run as a script for the figures reported in ``experiments/RESULTS.md``:

    python -m codegym.models.evaluate --corpus /tmp/policy_work/corpus.jsonl --samples 10
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import warnings
from collections.abc import Sequence
from typing import Any

from codegym.problems import Problem

__all__ = ["function_prompt", "parse_rate", "pass_at_k", "problem_pass_at_k"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from ``n`` samples of which ``c`` passed (Chen et al., 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def function_prompt(text: str) -> str:
    """The prompt part of a corpus function: its signature and docstring (the signature alone if it has none)."""
    node = ast.parse(text).body[0]
    assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    lines = text.splitlines(keepends=True)
    first = node.body[0]
    if ast.get_docstring(node) is not None:
        return "".join(lines[: first.end_lineno])
    return "".join(lines[: first.lineno - 1])


def parse_rate(prompts: Sequence[str], completions: Sequence[Sequence[str]]) -> float:
    """Share of prompt + completion programs that ``ast.parse`` accepts."""
    total = ok = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # generated code is full of invalid escapes and the like
        for prompt, row in zip(prompts, completions):
            for completion in row:
                total += 1
                try:
                    ast.parse(prompt + completion)
                    ok += 1
                except (SyntaxError, ValueError):
                    pass
    return ok / max(total, 1)


def problem_pass_at_k(
    policy: Any,
    problems: Sequence[Problem],
    n: int = 10,
    ks: Sequence[int] = (1, 10),
    temperature: float = 0.8,
    max_new_tokens: int = 128,
    seed: int = 0,
    timeout: float | None = None,
) -> dict[str, float]:
    """Mean pass@k over ``problems`` (unbiased, ``n`` samples each), plus the parse rate of the samples."""
    from codegym import scoring
    from codegym.execution import Executor

    completions = policy.generate([p.prompt for p in problems], n=n, max_new_tokens=max_new_tokens,
                                  temperature=temperature, seed=seed)
    flat = [(p, c) for p, row in zip(problems, completions) for c in row]
    with Executor() as executor:
        scores = scoring.score([p for p, _ in flat], [c for _, c in flat], reward="binary", executor=executor, timeout=timeout, mode="body", fail_fast=True)
    results = [s.result for s in scores]
    passed = [sum(r.passed for r in results[i * n : (i + 1) * n]) for i in range(len(problems))]
    report = {f"pass@{k}": sum(pass_at_k(n, c, k) for c in passed) / len(problems) for k in ks if k <= n}
    report["parse_rate"] = parse_rate([p.prompt for p in problems], completions)
    report["solved"] = sum(c > 0 for c in passed)
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Held-out loss, parse rate and pass@k of a policy.")
    parser.add_argument("--model", default="default", help="load_policy name or path")
    parser.add_argument("--corpus", help="corpus JSONL: held-out loss and parse rate on its held-out functions")
    parser.add_argument("--problems", nargs="*", default=["simple", "humaneval"], help="problem sets for pass@k")
    parser.add_argument("--samples", type=int, default=10, help="samples per problem (n)")
    parser.add_argument("--heldout-prompts", type=int, default=200, help="held-out functions sampled for the parse rate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from codegym import problems as problem_sets
    from codegym.models.policy import load_policy
    from codegym.models.pretrain import encode_functions, heldout_loss

    policy = load_policy(args.model)
    report: dict[str, Any] = {"model": args.model}
    if args.corpus:
        from codegym.models.corpus import read_corpus

        heldout = read_corpus(args.corpus, split="heldout")
        loss = heldout_loss(policy.model, encode_functions(policy.tokenizer, [r["text"] for r in heldout]),
                            policy.tokenizer.pad_token_id)
        prompts = [function_prompt(r["text"]) for r in heldout[: args.heldout_prompts]]
        samples = policy.generate(prompts, n=1, temperature=0.8, seed=args.seed)
        report["heldout"] = {"functions": len(heldout), "loss": loss, "perplexity": math.exp(loss),
                             "parse_rate": parse_rate(prompts, samples), "parse_prompts": len(prompts)}
        print(json.dumps(report["heldout"]), flush=True)
    for name in args.problems:
        report[name] = problem_pass_at_k(policy, problem_sets.load(name), n=args.samples, seed=args.seed)
        print(name, json.dumps(report[name]), flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
