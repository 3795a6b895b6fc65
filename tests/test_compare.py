"""`codegym compare`: presets, data specs, the run plan, and a whole `--preset smoke` comparison."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from codegym.cli import app
from codegym.experiments.data import DataSpec, parse_spec
from codegym.experiments.plan import available_presets, load_preset, load_studies, plan, study_eval_sets, study_variants

runner = CliRunner()

STUDY_FILES = ("table_{}.md", "table_{}.csv", "table_{}.json", "curves_{}.png", "curves_{}.csv", "passk_{}.png", "wallclock_{}.png", "wallclock_{}.csv")


def test_presets_load_and_name_known_studies():
    studies = load_studies()
    assert {"smoke", "quick", "standard", "paper"} <= set(available_presets())
    for name in available_presets():
        preset = load_preset(name)
        assert set(preset.studies) <= set(studies), name
        runs, cells = plan(preset, studies)  # every agent accepts the preset's settings
        assert runs and cells
        for study in preset.studies:
            for ev in studies[study].eval if studies[study].eval != "all" else ():
                assert ev in preset.eval_sets, (name, study, ev)


def _task_ids(specs) -> set[str]:
    """The task ids a list of data specs can select (a +band spec: those of the set it is selected from)."""
    from codegym.experiments.data import _first
    from codegym.problems import load

    ids: set[str] = set()
    for text in specs:
        spec = parse_spec(text)
        ids |= {p.task_id for p in _first(load(spec.source, split=spec.split), spec.limit)}
    return ids


def test_no_preset_is_tuned_on_its_evaluation_problems():
    """Issue 27: hyperparameters are chosen on validation problems only. A preset's tuning specs
    (`tuned_on`) share no problem with its evaluation sets, no preset evaluates on the tuning
    sweep's sets, and a preset that sets learning rates says what they were tuned on."""
    sweeps = [name for name in available_presets() if name.startswith("tune")]  # tune, tune_quick
    tuning = [s for name in sweeps for specs in load_preset(name).eval_sets.values() for s in specs]
    assert "tune" in sweeps and all(parse_spec(s).split == "validation" for s in tuning), tuning
    tuning_ids = _task_ids(tuning)
    for name in available_presets():
        preset = load_preset(name)
        if name in sweeps:
            continue
        evaluated = _task_ids([s for specs in preset.eval_sets.values() for s in specs])
        assert not _task_ids(preset.tuned_on) & evaluated, f"{name}: tuned on problems it is evaluated on"
        assert not tuning_ids & evaluated, f"{name}: evaluates on the tuning sweep's validation problems"
        tuned = {agent for agent, own in preset.agent_settings.items() if "lr" in own} | ({"all"} if "lr" in preset.settings else set())
        assert not tuned or preset.tuned_on, f"{name}: learning rates of {sorted(tuned)} with no record of what they were tuned on"
        assert all(parse_spec(s).split in ("train", "validation") for s in preset.tuned_on), (name, preset.tuned_on)


def test_unknown_preset_and_keys_are_explained(tmp_path):
    with pytest.raises(ValueError, match="choose one of"):
        load_preset("nope")
    bad = tmp_path / "mine.yaml"
    bad.write_text("description: x\nstudies: [agents]\nseeds: [0]\nbudgt: 3\n")
    with pytest.raises(ValueError, match="unknown key.*budgt"):
        load_preset(bad)
    bad.write_text('description: x\nstudies: [repair]\nseeds: [0]\neval_sets: {simple: ["simple@2"]}\nscale: {repair: {repair: {sets: [mbpp]}}}\n')
    with pytest.raises(ValueError, match="sets \\(evaluation sets of the preset: simple\\)"):
        load_preset(bad)


@pytest.mark.parametrize(
    "text, spec",
    [
        ("mbpp", DataSpec("mbpp")),
        ("mbpp:train", DataSpec("mbpp", "train")),
        ("basic:train@64", DataSpec("basic", "train", 64)),
        ("mbpp:train+generated-tests", DataSpec("mbpp", "train", None, True)),
        ("/data/my.jsonl:test@5", DataSpec("/data/my.jsonl", "test", 5)),
        ("basic:train@64+examples+band", DataSpec("basic", "train", 64, examples=True, band=True)),
        ("basic:train+band+examples", DataSpec("basic", "train", None, examples=True, band=True)),
    ],
)
def test_data_specs(text, spec):
    assert parse_spec(text) == spec


def test_bad_data_spec_says_how_to_write_one():
    with pytest.raises(ValueError, match="positive whole number"):
        parse_spec("basic:train@x")
    with pytest.raises(ValueError, match=r"unknown option \+exmaples; options are \+generated-tests, \+examples, \+band"):
        parse_spec("basic:train+exmaples")


def test_identical_variants_of_different_studies_share_a_run():
    preset = load_preset("smoke")  # every study at one scale (standard runs its ablations at a smaller one)
    studies = load_studies()
    runs, cells = plan(preset, studies)
    by_label = {(c.study, c.label, c.seed): c.run_id for c in cells}
    for seed in preset.seeds:
        same = {by_label[("agents", "actor_critic", seed)], by_label[("critic", "sync", seed)], by_label[("rewards", "paper", seed)],
                by_label[("replay", "replay + AST filter", seed)], by_label[("data", "mbpp+generated", seed)]}  # fmt: skip
        assert len(same) == 1
        assert by_label[("data", "mbpp", seed)] == by_label[("tests", "MBPP's own tests", seed)]
    assert len({r.id for r in runs}) == len(runs)
    shared = next(r for r in runs if r.id == by_label[("agents", "actor_critic", preset.seeds[0])])
    assert set(shared.eval_sets) == set(studies["agents"].eval)  # RQ1 scores it on every one of its sets
    expected_cells = sum(len(study_variants(studies[s], preset)) for s in preset.studies) * len(preset.seeds)
    assert len(cells) == expected_cells


def test_procgen_study_budgets_per_agent_and_its_own_data():
    studies = load_studies()
    procgen = {"procgen:none", "procgen:length", "procgen:compose", "procgen:new_op"}
    for name in ("smoke", "quick", "standard"):
        preset = load_preset(name)
        if name == "smoke":
            assert "procgen" in preset.studies  # CI runs the study end to end
        else:
            assert preset.studies == ("procgen",)  # the main job of both since the shipped policy is in procgen's band
        runs, cells = plan(preset, studies, agents=None)
        ours = {c.run_id for c in cells if c.study == "procgen"}
        agents = {r.agent: r for r in runs if r.id in ours}
        assert set(agents) == {"clm", "actor_critic", "ppo_lm", "ppo_sb3", "coderl", "grpo", "rloo", "rft"}
        assert all(set(r.eval_sets) >= procgen and all(t.startswith("procgen:train") for t in r.train) for r in agents.values())
    standard = load_preset("standard")
    runs, cells = plan(standard, studies)
    assert len(standard.seeds) == 3 and {c.seed for c in cells if c.study == "procgen"} == {0, 1, 2}
    for r in runs:
        assert r.budget >= (4096 if r.agent in ("actor_critic", "grpo", "rloo", "rft") else 2048), r
        assert all("+band" in t for t in r.train) and r.curve["set"] == "procgen:none"
    assert set(standard.study_passk("procgen")["sets"]) == {"procgen:none", "procgen:length"} and standard.study_passk("procgen")["n"] == 64
    tune = load_preset("tune")
    assert studies["procgen_lr"].eval == ("procgen:validation",) and "procgen_lr" in tune.studies  # lrs chosen on validation only
    assert {v.agent for v in studies["procgen_lr"].variants} == {"actor_critic", "ppo_lm", "ppo_sb3", "coderl", "grpo", "rloo", "rft"}


def test_repair_study_plan_shares_runs_and_trains_on_its_turns():
    """The repair study: single-turn grpo is the procgen study's run (same data, budget and settings:
    trained once, scored by pass@k there and by repair episodes here); the multi-turn variant trains on episodes of the study's max_turns at the same budget
    in generated programs; no pass@k evaluation is planned for runs only the repair study has."""
    studies = load_studies()
    study = studies["repair"]
    assert study.evaluate == "repair" and study.max_turns == 3
    for name in ("smoke", "quick", "standard"):
        preset = replace(load_preset(name), studies=("procgen", "repair"))
        runs, cells = plan(preset, studies)
        by_id = {r.id: r for r in runs}
        ours = {c.label: by_id[c.run_id] for c in cells if c.study == "repair" and c.seed == preset.seeds[0]}
        theirs = {c.label: c.run_id for c in cells if c.study == "procgen" and c.seed == preset.seeds[0]}
        assert ours["grpo (single-turn)"].id == theirs["grpo"], name
        multi = ours["grpo (multi-turn)"]
        assert multi.settings["env"] == "repair" and multi.settings["max_turns"] == study.max_turns and multi.eval_sets == ()
        assert multi.budget == ours["grpo (single-turn)"].budget and multi.train == ours["grpo (single-turn)"].train
        assert preset.study_repair("repair")["n"] >= study.max_turns  # resample@T needs T first attempts per problem
        first = plan(replace(preset, studies=("repair", "procgen")), studies)[0]  # the shared run keeps the procgen study's curve
        assert next(r for r in first if r.id == ours["grpo (single-turn)"].id).curve == by_id[ours["grpo (single-turn)"].id].curve
    bad = replace(studies["repair"], variants=(*study.variants[:2], replace(study.variants[2], settings={"env": "repair", "max_turns": 2})))
    with pytest.raises(ValueError, match="max_turns 2 differs from the study's max_turns 3"):
        plan(replace(load_preset("smoke"), studies=("repair",)), {**studies, "repair": bad})


def _repair_result(env: str, solved: dict[str, list[int | None]]) -> dict:
    """A finished run's results as `compare` gathers them for a repair study (one set, one seed)."""
    from codegym.agents import pass_at_k

    turns = [[sum(s is not None and s <= t for s in row) / len(row) for t in (1, 2, 3)] for row in solved.values()]
    summary = {f"pass@1_turn_{t}": sum(r[t - 1] for r in turns) / len(turns) for t in (1, 2, 3)}
    summary["resample@3"] = sum(pass_at_k(len(row), sum(s == 1 for s in row), 3) for row in solved.values()) / len(solved)
    summary.update(repair_rate=0.5, eval_s=1.0, per_task=solved)
    return {"settings": {"env": env}, "train": {"train_s": 1.0, "samples": 12, "steps": 1, "problems": 4}, "scores": {}, "history": [],
            "per_task": {}, "curve": [], "repair": {"repair": {"procgen:none": summary}}}  # fmt: skip


def test_repair_differences_answer_both_questions_from_the_episodes():
    """diff_repair's numbers, worked out by hand from the turns at which episodes were solved."""
    from codegym.experiments.report import StudyTable, repair_differences

    studies = load_studies()
    preset = replace(load_preset("smoke"), studies=("repair",))
    _, cells = plan(preset, studies)
    ids = {c.label: c.run_id for c in cells}
    results = {
        ids["clm"]: _repair_result("synthesis", {"A": [1, None, 2], "B": [None, None, None]}),
        ids["grpo (single-turn)"]: _repair_result("synthesis", {"A": [1, 1, None], "B": [None, None, None]}),
        ids["grpo (multi-turn)"]: _repair_result("repair", {"A": [1, 2, 3], "B": [None, 2, None]}),
    }
    table = StudyTable(studies["repair"], preset, cells, results)
    assert table.metrics == ["pass@1 turn 1", "pass@1 turn 2", "pass@1 turn 3", "resample@3", "repair rate"]
    assert table.rows["grpo (multi-turn)"]["procgen:none pass@1 turn 3"] == [pytest.approx(2 / 3)]
    rows = {(r["question"], r["variant"], r["column"], r["baseline_column"]): r for r in repair_differences(table)}
    assert {r["eval_set"] for r in rows.values()} == {"procgen:none"} and all(r["problems"] == 2 and r["seeds"] == 1 for r in rows.values())
    expected = {
        # (a) repair@3 - resample@3: clm's task A 2/3 - 1 (one of 3 first attempts passed: 3 fresh ones hold it), B 0 - 0
        ("repair vs resample", "clm", "procgen:none pass@1 turn 3", "procgen:none resample@3"): -1 / 6,
        ("repair vs resample", "grpo (single-turn)", "procgen:none pass@1 turn 3", "procgen:none resample@3"): -1 / 6,
        ("repair vs resample", "grpo (multi-turn)", "procgen:none pass@1 turn 3", "procgen:none resample@3"): 1 / 6,
        # (b) multi-turn against single-turn grpo
        ("multi-turn vs single-turn RL", "grpo (multi-turn)", "procgen:none pass@1 turn 3", "procgen:none pass@1 turn 3"): 1 / 3,
        ("multi-turn vs single-turn RL", "grpo (multi-turn)", "procgen:none turn 2+ gain", "procgen:none turn 2+ gain"): 1 / 2,
        ("multi-turn vs single-turn RL", "grpo (multi-turn)", "procgen:none pass@1 turn 1", "procgen:none pass@1 turn 1"): -1 / 6,
        ("multi-turn vs single-turn RL", "grpo (multi-turn)", "procgen:none pass@1 turn 3", "procgen:none resample@3"): 1 / 6,
    }
    assert set(rows) == set(expected)
    for key, value in expected.items():
        row = rows[key]
        assert row["difference"] == pytest.approx(value) and row["ci_low"] <= row["difference"] <= row["ci_high"], key
    same = rows[("multi-turn vs single-turn RL", "grpo (multi-turn)", "procgen:none pass@1 turn 3", "procgen:none pass@1 turn 3")]
    assert same["ci_low"] == pytest.approx(1 / 3) and same["excludes_zero"]  # +1/3 on both problems: no spread to resample
    assert all(r["baseline_variant"] == "grpo (single-turn)" for (q, *_), r in rows.items() if q == "multi-turn vs single-turn RL")


def test_repair_run_lands_within_half_a_step_of_its_budget(in_tmp, executor):
    """A multi-turn run counts generated programs (1 to max_turns per episode) and stops within half
    a step of its budget, so it is not given a whole step's programs more than a single-turn run."""
    from codegym.experiments.plan import Run
    from codegym.experiments.runner import RunContext, execute
    from codegym.problems import load

    problems = load("procgen", split="none")[:4]
    ctx = RunContext(out=in_tmp, executor=executor, agent_preset="tiny", model="default", eval_n=2, eval_ks=(1,), eval_temperature=0.8,
                     train_data=lambda specs: problems, eval_data=lambda name: problems, eval_specs={})  # fmt: skip
    settings = {"batch_problems": 2, "samples_per_problem": 2, "max_new_tokens": 8, "save_every": 1, "env": "repair", "max_turns": 3}
    budget = 20  # a step is 4 episodes, 4 to 12 attempts: at least two steps
    result = execute(Run("grpo", settings, ("procgen:none@4",), 0, budget, ()), ctx)
    samples, steps = result["train"]["samples"], result["train"]["steps"]
    per_step = samples / steps
    assert steps >= 2 and abs(samples - budget) <= per_step / 2, (samples, steps)
    assert [e["samples"] for e in result["history"]] == sorted(e["samples"] for e in result["history"])
    assert result["history"][-2]["samples"] < budget - per_step / 2 or steps == 1  # it did not stop early either


def test_agents_option_keeps_those_agents_only():
    runs, cells = plan(load_preset("quick"), load_studies(), agents=["clm", "actor_critic"])
    assert {r.agent for r in runs} == {"clm", "actor_critic"}


def test_smoke_comparison_writes_every_table_and_plot(in_tmp):
    out = in_tmp / "cmp"
    result = runner.invoke(app, ["compare", "--preset", "smoke", "--out", str(out)])
    assert result.exit_code == 0, result.output
    preset = load_preset("smoke")
    studies = load_studies()
    for study in preset.studies:
        for pattern in STUDY_FILES:
            path = out / pattern.format(study)
            assert path.is_file() and path.stat().st_size > 0, path
        table = json.loads((out / f"table_{study}.json").read_text())
        labels = {v.label for v in study_variants(studies[study], preset)}
        assert {r["variant"] for r in table["rows"]} == labels
        for row in table["rows"]:  # a number for every variant (every agent in RQ1), every column
            if row["column"].endswith("repair rate") and math.isnan(row["mean"]):  # undefined only where no first attempt failed
                first = row["column"].replace("repair rate", "pass@1 turn 1")
                assert [r["mean"] for r in table["rows"] if r["variant"] == row["variant"] and r["column"] == first] == [1.0], row
                continue
            assert row["seeds"] == len(preset.seeds) and not math.isnan(row["mean"]), row
        with (out / f"table_{study}.csv").open() as fh:
            assert len(list(csv.DictReader(fh))) == len(table["rows"])
    agents_table = json.loads((out / "table_agents.json").read_text())
    assert {r["agent"] for r in agents_table["rows"]} == {"clm", "actor_critic", "ppo_lm", "ppo_sb3", "coderl", "grpo", "rloo"}
    trained = [r for r in agents_table["rows"] if r["column"] == "train samples" and r["agent"] != "clm"]
    assert all(r["mean"] >= preset.budget for r in trained)  # the same sample budget for every learning agent
    for column in ("generated pass@1", "generated pass@10"):  # pinned: one row per agent for each column
        assert sorted(r["agent"] for r in agents_table["rows"] if r["column"] == column) == sorted({r["agent"] for r in agents_table["rows"]})
    learners = ("actor_critic", "ppo_lm", "ppo_sb3", "coderl", "grpo", "rloo")
    for agent in learners:  # pinned run directory layout (clm trains nothing, saves nothing)
        assert list((out / "runs").glob(f"{agent}-s0-*/checkpoint")), agent
    diffs = json.loads((out / "diff_agents.json").read_text())["rows"]
    assert {(r["agent"], r["eval_set"]) for r in diffs} == {(a, s) for a in learners for s in studies["agents"].eval}
    assert all(r["ci_low"] <= r["difference"] <= r["ci_high"] for r in diffs)
    assert (out / "learning_agents.png").is_file()
    with (out / "learning_agents.csv").open() as fh:
        curve = list(csv.DictReader(fh))
    assert {r["variant"] for r in curve} == {"clm", *learners}
    assert {int(r["samples"]) for r in curve} == {0, 2, 4}  # initial policy, one point in training, the budget
    assert (out / "data_size.png").is_file() and (out / "data_size.csv").is_file()
    report = (out / "report.md").read_text()
    assert "codegym compare --preset smoke" in report and "Machine:" in report and "torch" in report
    for study in preset.studies:
        assert studies[study].title in report
        alone = (out / f"report_{study}.md").read_text()  # each study's own report, with the same header
        assert studies[study].title in alone and "Machine:" in alone
        assert all(studies[other].title not in alone for other in preset.studies if other != study)
    assert "tests generated by data_gen" in report
    assert "simple (in-distribution) pass@1" in report and "Difference to clm" in report
    assert any((out / "data").glob("*generated-tests.jsonl"))

    # the procgen study: pinned files, keys, columns and baselines
    sets = ["procgen:none", "procgen:length", "procgen:compose", "procgen:new_op"]
    everyone = {"clm", "actor_critic", "ppo_lm", "ppo_sb3", "coderl", "grpo", "rloo", "rft"}
    table = json.loads((out / "table_procgen.json").read_text())["rows"]
    assert all({"agent", "column", "mean", "std", "seeds", "values"} <= set(r) for r in table)
    for column in [f"{s} pass@{k}" for s in sets for k in (1, 10)]:
        assert sorted(r["agent"] for r in table if r["column"] == column) == sorted(everyone), column
    samples = {r["agent"]: r["mean"] for r in table if r["column"] == "train samples"}
    assert samples["rft"] >= 8 and all(samples[a] >= preset.budget for a in everyone - {"clm", "rft"})  # rft's own budget
    diffs = json.loads((out / "diff_procgen.json").read_text())
    assert diffs["baselines"] == ["clm", "rft"]
    keys = {"eval_set", "difference", "ci_low", "ci_high", "excludes_zero", "baseline"}
    assert all(keys <= set(r) for r in diffs["rows"])
    pairs = {(r["baseline"], r["agent"], r["eval_set"]) for r in diffs["rows"]}
    assert pairs == {("clm", a, s) for a in everyone - {"clm"} for s in sets} | {("rft", a, s) for a in everyone - {"clm", "rft"} for s in sets}
    assert "Difference to clm" in (out / "diff_procgen.md").read_text() and "Difference to rft" in (out / "diff_procgen.md").read_text()
    with (out / "learning_procgen.csv").open() as fh:
        curve = list(csv.DictReader(fh))
    assert {r["variant"] for r in curve} == everyone and {"0", "4", "8"} <= {r["samples"] for r in curve}  # rft's curve reaches its own budget
    passk = json.loads((out / "passk_curves_procgen.json").read_text())
    assert passk["baseline"] == "clm" and passk["agent"] in ("actor_critic", "ppo_lm", "ppo_sb3", "coderl", "grpo", "rloo")
    assert [s["eval_set"] for s in passk["sets"]] == ["procgen:none", "procgen:length"]
    for s in passk["sets"]:
        assert s["ks"] == [1, 2, 3, 4] and len(s["clm"]) == len(s["rl"]) == 4 and s["classification"] in ("sharpening", "capability")
        assert s["classification"] == ("capability" if s["rl"][-1] >= s["clm"][-1] else "sharpening")
    assert (out / "passk_curves_procgen.png").is_file() and "pass@k curves" in report

    # the repair study: pass@1 by turn, resample@T, repair rate per set; both questions in diff_repair
    turns = studies["repair"].max_turns
    repair_sets = ["procgen:none", "simple"]  # smoke plays repair episodes on these two only (scale.repair.repair.sets)
    assert list(study_eval_sets(studies["repair"], preset)) == repair_sets
    table = json.loads((out / "table_repair.json").read_text())["rows"]
    variants = {"clm", "grpo (single-turn)", "grpo (multi-turn)"}
    metrics = [f"pass@1 turn {t}" for t in range(1, turns + 1)] + [f"resample@{turns}", "repair rate"]
    for column in [f"{s} {m}" for s in repair_sets for m in metrics]:
        assert sorted(r["variant"] for r in table if r["column"] == column) == sorted(variants), column
    value = {(r["variant"], r["column"]): r["mean"] for r in table}
    for v in variants:
        for s in repair_sets:  # solved by turn t <= solved by turn t + 1: an episode stops once solved
            by_turn = [value[v, f"{s} pass@1 turn {t}"] for t in range(1, turns + 1)]
            assert by_turn == sorted(by_turn) and 0 <= value[v, f"{s} resample@{turns}"] <= 1
    size = preset.study_repair("repair")
    for run in (out / "runs").glob("*/eval/repair-procgen:none.json"):
        summary = json.loads(run.read_text())
        assert summary["n_samples"] == size["n"] and summary["max_turns"] == turns and 1 <= summary["programs_per_episode"] <= turns
    multi = value["grpo (multi-turn)", "train samples"]
    assert preset.agent_budget("repair", "grpo") <= multi <= preset.agent_budget("repair", "grpo") + 2 * 2 * turns  # attempts, one step at most
    diffs = json.loads((out / "diff_repair.json").read_text())["rows"]
    assert {(r["question"], r["variant"], r["eval_set"]) for r in diffs if r["question"] == "repair vs resample"} == {
        ("repair vs resample", v, s) for v in variants for s in repair_sets}
    multi_rows = [r for r in diffs if r["question"] == "multi-turn vs single-turn RL"]
    assert {r["column"].split(" ", 1)[1] for r in multi_rows} == {f"pass@1 turn {turns}", "turn 2+ gain", "pass@1 turn 1"}
    assert all(r["variant"] == "grpo (multi-turn)" and r["baseline_variant"] == "grpo (single-turn)" and r["ci_low"] <= r["difference"] <= r["ci_high"]
               for r in multi_rows)  # fmt: skip
    assert "Self-repair against resampling" in report and "Multi-turn RL" in report

    assert load_preset(out / "preset.yaml").to_dict() | {"name": "smoke"} == preset.to_dict()  # reproducible from its saved config

    # a second invocation resumes: nothing is trained or evaluated again
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/eval/*.json")}
    again = runner.invoke(app, ["compare", "--preset", "smoke", "--out", str(out), "--studies", "agents"])
    assert again.exit_code == 0, again.output
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/eval/*.json")} == stamps


def test_parallel_jobs_give_the_same_results_as_one_process(in_tmp):
    """--jobs 2 trains, evaluates, scores repair episodes and draws pass@k curves in two worker
    processes; every table is the one a single process writes."""
    args = ["compare", "--preset", "smoke", "--studies", "procgen,repair", "--agents", "clm,grpo", "--threads", "1"]
    tables = {}
    for jobs in ("1", "2"):
        out = in_tmp / f"jobs{jobs}"
        result = runner.invoke(app, [*args, "--out", str(out), "--jobs", jobs])
        assert result.exit_code == 0, result.output
        tables[jobs] = {study: [{k: r[k] for k in ("variant", "column", "values")} for r in json.loads((out / f"table_{study}.json").read_text())["rows"]
                                if not r["column"].endswith(" s")]  # wall-clock seconds differ
                        for study in ("procgen", "repair")}  # fmt: skip
    assert tables["2"] == tables["1"] and tables["1"]["procgen"] and tables["1"]["repair"]
    assert "--jobs 2" in (in_tmp / "jobs2" / "report.md").read_text()
    passk = json.loads((in_tmp / "jobs2" / "passk_curves_procgen.json").read_text())
    assert [s["eval_set"] for s in passk["sets"]] == ["procgen:none", "procgen:length"]


def test_interrupted_training_resumes_from_its_checkpoint(in_tmp, executor):
    from codegym.experiments.plan import Run
    from codegym.experiments.runner import RunContext, execute
    from codegym.problems import load

    problems = load("simple")[:4]
    ctx = RunContext(out=in_tmp, executor=executor, agent_preset="tiny", model="default", eval_n=2, eval_ks=(1,),
                     eval_temperature=0.8, train_data=lambda specs: problems, eval_data=lambda name: problems[:1],
                     eval_specs={"simple": ("simple@1",)})  # fmt: skip
    settings = {"batch_problems": 2, "samples_per_problem": 2, "max_new_tokens": 8, "save_every": 1}
    run = Run("actor_critic", settings, ("simple",), 0, 12, ("simple",))

    steps = []

    def interrupt() -> None:
        steps.append(1)
        if len(steps) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute(run, ctx, on_step=interrupt)
    directory = in_tmp / "runs" / run.id
    assert not (directory / "train.json").exists()
    saved = json.loads((directory / "checkpoint" / "agent.json").read_text())["steps_done"]
    assert saved >= 1
    logged = [json.loads(line) for line in (directory / "log.jsonl").read_text().splitlines()][:saved]
    resumed: list[int] = []
    result = execute(run, ctx, on_step=lambda: resumed.append(1))
    assert len(resumed) == 3 - saved  # only the steps after the checkpoint ran again, not all three
    assert result["train"]["samples"] >= 12 and result["train"]["steps"] == 3
    assert [e["step"] for e in result["history"]] == [1, 2, 3]
    assert result["history"][:saved] == logged  # the checkpoint's steps are the ones trained before the interrupt
    assert result["history"][saved]["samples"] == (saved + 1) * 4  # the sample count went on from the checkpoint's
    assert result["scores"]["simple"]["pass@1"] is not None


@pytest.mark.parametrize(
    "args, message",
    [
        (["--agents", "nope"], "unknown agent"),
        (["--studies", "nope"], "unknown study"),
        (["--problems", "basic:train@x"], "positive whole number"),
        (["--agents", "clm", "--studies", "agents", "--model", "no/such-model"], "cannot load"),
    ],
)
def test_compare_errors_say_what_to_do(in_tmp, args, message):
    result = runner.invoke(app, ["compare", "--preset", "smoke", "--out", str(in_tmp / "cmp"), *args])
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
