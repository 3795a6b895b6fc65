"""Difficulty-band selection (`codegym band`, ``+band`` data specs): rates, bounds, files, cache."""

from __future__ import annotations

import json

import pytest

from codegym.agents.toy import toy_problems
from codegym.experiments.band import BandConfig, in_band, pass_rates, select
from codegym.experiments.data import resolve
from codegym.models import Sample
from codegym.problems import write_jsonl


class FixedPolicy:
    """Answers problem ``answer_i`` correctly in the first ``right[i]`` of its samples, wrongly after."""

    def __init__(self, right: dict[str, int]) -> None:
        self.right = right
        self.calls = 0

    def sample(self, prompts, n=1, max_new_tokens=64, temperature=0.8, top_p=1.0, seed=None):
        self.calls += 1
        rows = []
        for prompt in prompts:
            name = prompt.split("(")[0].removeprefix("def ")
            value = int(name.rsplit("_", 1)[1]) % 4
            texts = [f"    return {value if j < self.right[name] else value + 1}\n" for j in range(n)]
            rows.append([Sample(text, [], [], []) for text in texts])
        return rows


def test_rates_and_band_bounds(executor):
    problems = toy_problems(3)
    policy = FixedPolicy({"answer_0": 0, "answer_1": 2, "answer_2": 4})
    rates = pass_rates(problems, BandConfig(samples=4), policy=policy, executor=executor, progress=False)
    assert rates == [0.0, 0.5, 1.0]
    assert [p.task_id for p in select(problems, rates, BandConfig())] == [problems[1].task_id]
    assert select(problems, rates, BandConfig())[0].metadata["pass_rate"] == 0.5
    assert [in_band(r, BandConfig(low=0.0, high=0.5, inclusive=True)) for r in rates] == [True, True, False]
    with pytest.raises(ValueError, match="low <= high"):
        BandConfig(low=0.6, high=0.4)


def test_band_spec_is_cached(in_tmp, executor, monkeypatch):
    write_jsonl(toy_problems(3), in_tmp / "toy.jsonl")
    policy = FixedPolicy({"answer_0": 1, "answer_1": 0, "answer_2": 8})
    monkeypatch.setattr("codegym.experiments.band._load_policy", lambda name: policy)
    kept, notes = resolve(["toy.jsonl+band"], cache_dir=in_tmp / "data", executor=executor)
    assert [p.entry_point for p in kept] == ["answer_0"] and "1 of 3 problems inside the band" in notes[0]
    again, _ = resolve(["toy.jsonl+band"], cache_dir=in_tmp / "data", executor=executor)
    assert again == kept and policy.calls == 1  # read back, not sampled again
    rates = [json.loads(line) for line in next((in_tmp / "data").glob("*.rates.jsonl")).read_text().splitlines()]
    assert [r["pass_rate"] for r in rates] == [0.125, 0.0, 1.0]


def test_band_command(in_tmp):
    from typer.testing import CliRunner

    from codegym.agents.toy import toy_policy
    from codegym.cli import app

    toy = toy_policy(2, sft_steps=80)  # answers each toy problem with one of 4 constants: rates near 1/4
    toy.model.save_pretrained(in_tmp / "model")
    toy.tokenizer.save_pretrained(in_tmp / "model")
    write_jsonl(toy_problems(2), in_tmp / "toy.jsonl")
    args = ["band", "toy.jsonl", "--policy", "model", "--samples", "8", "--max-new-tokens", "8", "--out", "out/band.jsonl", "--workers", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    rates = [json.loads(line) for line in (in_tmp / "out" / "band.rates.jsonl").read_text().splitlines()]
    assert summary["problems"] == 2 and len(rates) == 2
    assert all((8 * r["pass_rate"]).is_integer() for r in rates)  # a share of the 8 samples
    assert 0 < sum(r["pass_rate"] for r in rates) < 2, rates  # the toy solves some of its samples, not all
    kept = [json.loads(line) for line in (in_tmp / "out" / "band.jsonl").read_text().splitlines()]
    assert summary["kept"] == len(kept) == sum(0 < r["pass_rate"] < 1 for r in rates)
    assert all(0 < k["metadata"]["pass_rate"] < 1 for k in kept)


def test_an_empty_band_says_what_to_do(in_tmp, executor, monkeypatch):
    write_jsonl(toy_problems(2), in_tmp / "toy.jsonl")
    monkeypatch.setattr("codegym.experiments.band._load_policy", lambda name: FixedPolicy({"answer_0": 0, "answer_1": 0}))
    with pytest.raises(ValueError, match="leave no problem .* widen the band"):
        resolve(["toy.jsonl+band"], cache_dir=in_tmp / "data", executor=executor)


def test_caches_miss_when_the_policy_is_retrained_under_the_same_path(in_tmp, executor, monkeypatch):
    """Issue 27: run ids, the +band cache and the shared initial curve point are keyed on the policy's
    weights and tokenizer, not on its name: a policy re-trained into the same directory misses them all."""
    from dataclasses import replace

    from codegym.agents.toy import toy_policy
    from codegym.experiments import runner
    from codegym.experiments.plan import load_preset, load_studies, plan
    from codegym.experiments.runner import RunContext

    def pretrain(seed: int) -> None:  # a tiny policy, trained (again) into in_tmp/model
        toy = toy_policy(1, seed=seed, sft_steps=2)
        toy.model.save_pretrained(in_tmp / "model")
        toy.tokenizer.save_pretrained(in_tmp / "model")

    write_jsonl(toy_problems(3), in_tmp / "toy.jsonl")
    policy = FixedPolicy({"answer_0": 1, "answer_1": 0, "answer_2": 8})
    monkeypatch.setattr("codegym.experiments.band._load_policy", lambda name: policy)
    evaluations = []
    monkeypatch.setattr("codegym.agents.evaluate_agent", lambda *a, **k: evaluations.append(1) or {"pass@1": 0.5})

    class Fresh:  # an agent before training, as `_curve_point` sees it
        learns, steps_done, timing = True, 0, {"episodes": 0}

    def caches() -> tuple[list[str], int, int]:
        runs, _ = plan(replace(load_preset("smoke"), model=str(in_tmp / "model")), load_studies())
        resolve(["toy.jsonl+band"], cache_dir=in_tmp / "data", executor=executor, band=BandConfig(policy=str(in_tmp / "model")))
        ctx = RunContext(out=in_tmp / "cmp", executor=executor, agent_preset="tiny", model=str(in_tmp / "model"), eval_n=1, eval_ks=(1,),
                         eval_temperature=0.8, train_data=lambda specs: [], eval_data=lambda name: toy_problems(1),
                         eval_specs={"toy": ("toy.jsonl",)})  # fmt: skip
        run = replace(runs[0], curve={"set": "toy", "n": 1, "points": 2})
        (in_tmp / "cmp" / "runs" / runs[0].id).mkdir(parents=True, exist_ok=True)
        runner._curve_point(Fresh(), in_tmp / "cmp" / "runs" / run.id, ctx, run, 0)
        return sorted(r.id for r in runs), policy.calls, len(evaluations)

    pretrain(0)
    ids, sampled, evaluated = caches()
    assert (sampled, evaluated) == (1, 1)
    assert caches() == (ids, 1, 1)  # the same policy: every cache hits
    pretrain(1)  # re-trained under the same path
    new_ids, sampled, evaluated = caches()
    # other runs, the band estimated again, the initial curve point evaluated again
    assert (bool(set(new_ids) & set(ids)), sampled, evaluated) == (False, 2, 2)
