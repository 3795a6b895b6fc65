"""Tables, plots and ``report.md`` of a comparison, from the results of its runs.

Per study ``S`` (one of the paper's questions) the output directory gets:

- ``table_S.md`` / ``.csv`` / ``.json``: pass@k per variant and evaluation set, mean ± standard
  deviation over seeds, with training samples and wall clock;
- ``curves_S.png`` (+ ``curves_S.csv``): reward and pass rate of the training batches against
  training samples, per variant (mean over seeds);
- ``passk_S.png``: pass@k bars per evaluation set with the spread over seeds as error bars (data: the table);
- ``wallclock_S.png`` (+ ``wallclock_S.csv``): training and evaluation seconds per variant;
- ``data_size.png`` (+ ``data_size.csv``) when the RQ2 size curve ran: pass@k against the number of
  generated training problems;
- ``diff_S.md`` / ``.json`` when the study has a ``clm`` or an ``rft`` variant (`BASELINES`): each
  other variant's pass@1 minus the baseline's per evaluation set, with a paired bootstrap 95%
  interval over problems × seeds (`codegym.experiments.bootstrap`); each row's ``baseline`` says
  which (rft, the rejection-sampling control, is compared with the RL agents, not with clm twice);
- for a study with ``evaluate: repair`` (repair episodes of up to T attempts instead of pass@k),
  the table's columns per evaluation set are ``pass@1 turn t`` (solved by attempt t), ``resample@T``
  and ``repair rate`` (`codegym.agents.evaluate_repair`), and ``diff_S`` answers its two questions
  (`repair_differences`): every variant's repair@T − resample@T, and each ``env: repair`` (multi-turn
  trained) variant against the single-turn variant of the same agent;
- ``learning_S.png`` (+ ``learning_S.csv``) when the preset asks for learning curves: held-out
  pass@1 against training samples per variant, mean over seeds with a ± std band;
- ``passk_curves_S.json`` / ``.png`` / ``.csv`` when the preset gives the study a ``passk`` scale:
  pass@k for k = 1…n of clm and of the study's best RL agent (highest mean pass@1 on the first
  ``passk`` set) on each ``passk`` set, mean over seeds, classified after Yue et al. (2025):
  ``capability`` when the RL agent's pass@n is at least clm's, ``sharpening`` when clm overtakes it
  at large k (RL narrows what the policy samples rather than adding what it can solve).

Evaluation sets named in `IN_DISTRIBUTION` are marked as such in every Markdown table: their tasks
are template families of the pretraining corpus (``python -m codegym.experiments.contamination``),
so they measure recall of trained families, not generalisation.
"""

from __future__ import annotations

import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from codegym.experiments.plan import Cell, Preset, Study, study_eval_sets, study_variants

__all__ = ["IN_DISTRIBUTION", "StudyTable", "build_tables", "differences", "repair_differences", "write_outputs"]

IN_DISTRIBUTION = {"simple": "every task of `simple` is a template family of the pretraining corpus (contamination check in experiments/RESULTS.md)"}
"""Evaluation set name → why it is in-distribution for the shipped policy (marked in every Markdown table)."""

BASELINE = "clm"
BASELINES = ("clm", "rft")
"""Agents every other variant of a study is compared with in ``diff_S`` (those the study has)."""
RL_AGENTS = ("actor_critic", "ppo_lm", "ppo_sb3", "coderl", "grpo", "rloo")
"""The reinforcement-learning agents: the candidates for the "best RL agent" of the pass@k curves."""


def display(column: str) -> str:
    """A column name for Markdown tables: in-distribution sets marked."""
    name, sep, rest = column.partition(" ")
    return f"{name} (in-distribution){sep}{rest}" if name in IN_DISTRIBUTION else column


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


def _fmt(mean: float, std: float, n: int) -> str:
    if mean != mean:  # NaN: nothing measured
        return "–"
    return f"{mean:.3f}" if n < 2 else f"{mean:.3f} ± {std:.3f}"


class StudyTable:
    """One study's numbers: ``rows[label][column] = list of per-seed values``."""

    def __init__(self, study: Study, preset: Preset, cells: list[Cell], results: dict[str, dict[str, Any]]) -> None:
        self.study = study
        self.eval_sets = study_eval_sets(study, preset)
        self.repair = study.evaluate == "repair"
        self.repair_size = preset.study_repair(study.name)
        turns = study.max_turns
        if self.repair:  # summary key of `evaluate_repair` per column metric
            keys = {**{f"pass@1 turn {t}": f"pass@1_turn_{t}" for t in range(1, turns + 1)}, f"resample@{turns}": f"resample@{turns}", "repair rate": "repair_rate"}
        else:
            keys = {f"pass@{k}": f"pass@{k}" for k in preset.eval["ks"]}
        self.metrics = list(keys)
        self.envs: dict[str, str] = {}  # label -> the env its agent trained on (synthesis or repair)
        self.repair_tasks: dict[str, dict[str, dict[int, dict[str, list[int | None]]]]] = defaultdict(lambda: defaultdict(dict))  # label -> set -> seed -> task -> solved at
        self.labels = [v.label for v in study_variants(study, preset) if any(c.label == v.label and c.study == study.name for c in cells)]
        self.agents = {v.label: v.agent for v in study_variants(study, preset)}
        self.trains = {v.label: v.train for v in study_variants(study, preset)}
        self.rows: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.histories: dict[str, list[list[dict[str, Any]]]] = defaultdict(list)
        self.per_task: dict[str, dict[str, dict[int, dict[str, float]]]] = defaultdict(lambda: defaultdict(dict))  # label -> set -> seed -> task -> rate
        self.curves: dict[str, dict[int, list[dict[str, Any]]]] = defaultdict(dict)  # label -> seed -> points
        self.scale = preset.study_scale(study.name)
        self.budget = self.scale[0]
        self.budgets = {label: preset.agent_budget(study.name, self.agents[label]) for label in self.labels}
        self.passk_spec = preset.study_passk(study.name)
        self.passk_runs: dict[str, dict[str, dict[int, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))  # label -> set -> seed -> summary
        for cell in cells:
            if cell.study != study.name:
                continue
            result = results[cell.run_id]
            row = self.rows[cell.label]
            self.envs[cell.label] = result["settings"].get("env", "synthesis")
            scores = result.get("repair", {}).get(study.name, {}) if self.repair else result["scores"]
            for name in self.eval_sets:
                score = scores.get(name) or {}
                for metric, key in keys.items():
                    if score.get(key) is not None:
                        row[f"{name} {metric}"].append(float(score[key]))
                if self.repair and score:
                    self.repair_tasks[cell.label][name][cell.seed] = score["per_task"]
            row["train problems"].append(float(result["train"]["problems"]))
            row["train samples"].append(float(result["train"]["samples"]))
            row["train s"].append(float(result["train"]["train_s"]))
            row["eval s"].append(float(sum((scores.get(n) or {}).get("eval_s", 0.0) for n in self.eval_sets)))
            self.histories[cell.label].append(result["history"])
            for name in self.eval_sets:
                if result.get("per_task", {}).get(name):
                    self.per_task[cell.label][name][cell.seed] = result["per_task"][name]
            for name, summary in (result.get("passk") or {}).items():
                self.passk_runs[cell.label][name][cell.seed] = summary
            if result.get("curve"):
                points = sorted(result["curve"], key=lambda e: e["target"])
                spec = points[0]["spec"]
                final = list(result.get("per_task", {}).get(spec["set"], {}).values())[: spec.get("limit") or None]
                if final:  # the point at the budget: the final evaluation, on the same problems
                    points.append({"target": result["budget"], "pass@1": statistics.fmean(final), "spec": spec})
                self.curves[cell.label][cell.seed] = points

    def passk_labels(self) -> tuple[str | None, str | None]:
        """(clm's label, the best RL agent's label): the `RL_AGENTS` variant with the highest mean pass@1
        on the first ``passk`` set (ties: the first in table order); None where the study has none."""
        base = next((label for label in self.labels if self.agents[label] == BASELINE), None)
        sets = self.passk_spec.get("sets") or []
        column = f"{sets[0]} pass@1" if sets else ""
        scored = [label for label in self.labels if self.agents[label] in RL_AGENTS and self.rows[label][column]]
        best = max(scored, key=lambda label: _mean_std(self.rows[label][column])[0], default=None)
        return base, best

    @property
    def passk(self) -> dict[str, Any]:
        """The pass@k curves of clm and the best RL agent on each ``passk`` set, classified (empty: none measured)."""
        base, best = self.passk_labels()
        if not self.passk_spec or base is None or best is None:
            return {}
        n = int(self.passk_spec["n"])
        ks = list(range(1, n + 1))
        sets = []
        for name in self.passk_spec["sets"]:
            curves: dict[str, Any] = {}
            for role, label in (("clm", base), ("rl", best)):
                runs = self.passk_runs[label][name]
                if not runs:
                    break
                stats = [_mean_std([float(runs[seed][f"pass@{k}"]) for seed in sorted(runs)]) for k in ks]
                curves[role] = [m for m, _ in stats]
                curves[f"{role}_std"] = [d for _, d in stats]
                curves[f"{role}_seeds"] = len(runs)
                curves["problems"] = next(iter(runs.values()))["n_problems"]
            if "rl" not in curves:
                continue
            rl, clm = curves["rl"], curves["clm"]
            behind = next((k for k, a, b in zip(ks, rl, clm) if b >= a), None) if rl[0] > clm[0] else None
            sets.append({"eval_set": name, "ks": ks, **curves, "rl_minus_clm_at_1": rl[0] - clm[0], f"rl_minus_clm_at_{n}": rl[-1] - clm[-1],
                         "rl_wins_at_1": rl[0] > clm[0], "crossover_k": behind,
                         "classification": "capability" if rl[-1] >= clm[-1] else "sharpening"})  # fmt: skip
        if not sets:
            return {}
        candidates = [label for label in self.labels if self.agents[label] in RL_AGENTS]
        return {"study": self.study.name, "agent": self.agents[best], "variant": best, "baseline": BASELINE, "n": n,
                "limit": self.passk_spec.get("limit"), "selected_by": f"highest mean {self.passk_spec['sets'][0]} pass@1 among {', '.join(candidates)}",
                "rule": f"capability: the RL agent's pass@{n} >= clm's; sharpening: clm's pass@{n} is higher (Yue et al. 2025)", "sets": sets}  # fmt: skip

    @property
    def columns(self) -> list[str]:
        return [f"{name} {m}" for name in self.eval_sets for m in self.metrics] + ["train samples", "train s", "eval s"]

    def records(self) -> list[dict[str, Any]]:
        """One record per variant and column: mean, std, and the per-seed values."""
        out = []
        for label in self.labels:
            for column in self.columns:
                values = self.rows[label][column]
                mean, std = _mean_std(values)
                out.append({"study": self.study.name, "variant": label, "agent": self.agents[label], "column": column,
                            "mean": mean, "std": std, "seeds": len(values), "values": values})  # fmt: skip
        return out

    def cell_text(self, label: str, column: str) -> str:
        values = self.rows[label][column]
        mean, std = _mean_std(values)
        if column in ("train samples", "train s", "eval s"):
            return "–" if mean != mean else f"{mean:.0f}"
        return _fmt(mean, std, len(values))

    def mean_text(self, label: str, column: str, digits: int = 2) -> str:
        mean, _ = _mean_std(self.rows[label][column])
        return "–" if mean != mean else f"{mean:.{digits}f}"

    def markdown(self) -> str:
        header = "| variant | " + " | ".join(map(display, self.columns)) + " |"
        rule = "|---|" + "---|" * len(self.columns)
        body = ["| " + label + " | " + " | ".join(self.cell_text(label, c) for c in self.columns) + " |" for label in self.labels]
        return "\n".join([header, rule, *body])


def differences(table: StudyTable, resamples: int = 2000) -> list[dict[str, Any]]:
    """Each variant's pass@1 minus each baseline variant's (`BASELINES`: clm, then rft), per evaluation
    set, paired over the problems and seeds both were evaluated on, with a bootstrap 95% interval.

    A baseline is not compared again with the baselines before it (rft − clm appears once, against
    clm). Empty when the study has no baseline variant. A repair study: `repair_differences`."""
    if table.repair:
        return repair_differences(table, resamples)
    out = []
    done: list[str] = []
    for agent in BASELINES:
        base = next((label for label in table.labels if table.agents[label] == agent), None)
        if base is None:
            continue
        out += _differences_to(table, base, [label for label in table.labels if label != base and label not in done], resamples)
        done.append(base)
    return out


def _paired_difference(mine: dict[int, dict[str, float]], theirs: dict[int, dict[str, float]], resamples: int) -> dict[str, Any] | None:
    """``mine`` − ``theirs`` (seed → task → value), paired over the seeds and problems both have, with a
    bootstrap 95% interval: a diff row's numbers; None when they share no problem."""
    from codegym.experiments.bootstrap import paired_bootstrap

    seeds = sorted(set(mine) & set(theirs))
    tasks = sorted(set.intersection(*(set(mine[s]) & set(theirs[s]) for s in seeds))) if seeds else []
    if not tasks:
        return None
    diff = paired_bootstrap([[mine[s][t] for s in seeds] for t in tasks], [[theirs[s][t] for s in seeds] for t in tasks], resamples=resamples)
    return {"difference": diff.mean, "ci_low": diff.low, "ci_high": diff.high, "level": diff.level, "problems": diff.problems,
            "seeds": diff.seeds, "excludes_zero": diff.excludes_zero}  # fmt: skip


def _differences_to(table: StudyTable, base: str, labels: list[str], resamples: int) -> list[dict[str, Any]]:
    out = []
    for label in labels:
        for name in table.eval_sets:
            stats = _paired_difference(table.per_task[label][name], table.per_task[base][name], resamples)
            if stats is not None:
                out.append({"study": table.study.name, "variant": label, "agent": table.agents[label], "baseline": table.agents[base], "eval_set": name,
                            "column": f"{name} pass@1", **stats})  # fmt: skip
    return out


def _repair_values(table: StudyTable, label: str, name: str, column: str) -> dict[int, dict[str, float]]:
    """Per seed, per task: ``column``'s value from the repair episodes (``pass@1 turn t``: the share of
    the episodes solved by attempt t; ``resample@T``: unbiased from the first attempts; ``turn 2+ gain``:
    pass@1 turn T − pass@1 turn 1, the episodes a later attempt solved)."""
    from codegym.agents.passk import pass_at_k

    turns = table.study.max_turns
    out: dict[int, dict[str, float]] = {}
    for seed, tasks in table.repair_tasks[label][name].items():
        values = {}
        for task, solved in tasks.items():
            by_turn = [sum(s is not None and s <= t for s in solved) / len(solved) for t in range(1, turns + 1)]
            values[task] = {f"resample@{turns}": pass_at_k(len(solved), sum(s == 1 for s in solved), turns),
                            "turn 2+ gain": by_turn[-1] - by_turn[0], **{f"pass@1 turn {t}": by_turn[t - 1] for t in range(1, turns + 1)}}[column]  # fmt: skip
        out[seed] = values
    return out


def repair_differences(table: StudyTable, resamples: int = 2000) -> list[dict[str, Any]]:
    """The repair study's answers, per evaluation set, each a difference of per-problem values paired
    over problems × seeds with a bootstrap 95% interval (``question`` says which):

    - ``repair vs resample``: every variant's pass@1 after T turns minus its resample@T (T independent
      first attempts, the most programs a repair episode generates, so resampling is never short-changed);
    - ``multi-turn vs single-turn RL``: each variant trained on repair episodes (``env: repair``) against
      the single-turn variant of the same agent, trained on the same number of generated programs:
      pass@1 after turn T, the turn-2+ gain (pass@1 turn T − turn 1), pass@1 of the first attempt, and its
      repair@T against the single-turn agent's resample@T (each side's best use of T programs).
    """
    turns = table.study.max_turns
    last, resample, gain, first = f"pass@1 turn {turns}", f"resample@{turns}", "turn 2+ gain", "pass@1 turn 1"
    pairs = [("repair vs resample", label, last, label, resample) for label in table.labels]
    for label in table.labels:
        single = next((b for b in table.labels if table.agents[b] == table.agents[label] and table.envs.get(b) != "repair"), None)
        if table.envs.get(label) == "repair" and single is not None:
            pairs += [("multi-turn vs single-turn RL", label, column, single, base) for column, base in ((last, last), (gain, gain), (first, first), (last, resample))]
    out = []
    for question, label, column, base, base_column in pairs:
        for name in table.eval_sets:
            stats = _paired_difference(_repair_values(table, label, name, column), _repair_values(table, base, name, base_column), resamples)
            if stats is not None:
                out.append({"study": table.study.name, "question": question, "variant": label, "agent": table.agents[label], "baseline": table.agents[base],
                            "baseline_variant": base, "eval_set": name, "column": f"{name} {column}", "baseline_column": f"{name} {base_column}", **stats})  # fmt: skip
    return out


def _repair_markdown(table: StudyTable, rows: list[dict[str, Any]]) -> str:
    """One table per question: a row per compared pair of columns, a column per evaluation set."""
    sets = [s for s in table.eval_sets if any(r["eval_set"] == s for r in rows)]
    sizes = ", ".join(f"{s} {next(r['problems'] for r in rows if r['eval_set'] == s)}" for s in sets)
    turns = table.study.max_turns
    intro = {
        "repair vs resample": f"Self-repair against resampling: pass@1 after {turns} turns minus resample@{turns} ({turns} independent first "
                              "attempts: the most programs a repair episode generates).",
        "multi-turn vs single-turn RL": "Multi-turn RL (trained on repair episodes) against single-turn RL of the same agent, at the same "
                                        "training budget in generated programs.",
    }  # fmt: skip
    sections = []
    for question in dict.fromkeys(r["question"] for r in rows):
        mine = [r for r in rows if r["question"] == question]
        body = []
        for key in dict.fromkeys((r["variant"], r["column"].split(" ", 1)[1], r["baseline_variant"], r["baseline_column"].split(" ", 1)[1]) for r in mine):
            label, column, base, base_column = key
            cells = []
            for s in sets:
                r = next((r for r in mine if (r["variant"], r["column"], r["baseline_variant"], r["baseline_column"]) == (label, f"{s} {column}", base, f"{s} {base_column}")), None)
                cells.append("–" if r is None else f"{r['difference']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]" + (" *" if r["excludes_zero"] else ""))
            name = f"{label}: {column} − {base_column}" if label == base else f"{label} {column} − {base} {base_column}"
            body.append(f"| {name} | " + " | ".join(cells) + " |")
        sections.append("\n".join([
            f"{intro[question]} Mean over problems and seeds, paired bootstrap 95% interval resampling problems ({sizes}) and seeds "
            f"({mine[0]['seeds']}); * marks an interval that excludes 0.",
            "", "| difference | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets), *body,
        ]))  # fmt: skip
    return "\n\n".join(sections)


def _differences_markdown(table: StudyTable, rows: list[dict[str, Any]]) -> str:
    """One table per baseline (a repair study: one per question)."""
    if table.repair:
        return _repair_markdown(table, rows)
    return "\n\n".join(_baseline_markdown(table, [r for r in rows if r["baseline"] == b], b) for b in dict.fromkeys(r["baseline"] for r in rows))


def _baseline_markdown(table: StudyTable, rows: list[dict[str, Any]], baseline: str) -> str:
    sets = [s for s in table.eval_sets if any(r["eval_set"] == s for r in rows)]
    header = "| variant | " + " | ".join(display(f"{s} pass@1") + f" − {baseline}" for s in sets) + " |"
    body = []
    for label in dict.fromkeys(r["variant"] for r in rows):
        cells = []
        for s in sets:
            r = next((r for r in rows if r["variant"] == label and r["eval_set"] == s), None)
            cells.append("–" if r is None else f"{r['difference']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]" + (" *" if r["excludes_zero"] else ""))
        body.append(f"| {label} | " + " | ".join(cells) + " |")
    sizes = ", ".join(f"{s} {next(r['problems'] for r in rows if r['eval_set'] == s)}" for s in sets)
    return "\n".join([
        f"Difference to {baseline} in pass@1 (mean over problems and seeds), with a paired bootstrap 95% interval that resamples problems "
        f"({sizes}) and seeds ({rows[0]['seeds']}); * marks an interval that excludes 0.",
        "", header, "|---|" + "---|" * len(sets), *body,
    ])  # fmt: skip


def _learning_curves(table: StudyTable, out: Path) -> list[str]:
    """Held-out pass@1 against training samples per variant: mean over seeds and a ± std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(table.curves.values()):
        return []
    name = table.study.name
    targets = sorted({e["target"] for curves in table.curves.values() for c in curves.values() for e in c})
    rows = []
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label in table.labels:
        curves = list((table.curves.get(label) or {}).values())
        if not curves:
            continue
        xs, means, stds = [], [], []
        for target in targets:
            # a variant that does not learn (clm) has its points at 0 samples and the budget: its curve is flat
            flat = table.agents[label] == BASELINE
            values = [next((e["pass@1"] for e in c if e["target"] == target), c[0]["pass@1"] if flat else None) for c in curves]
            values = [v for v in values if v is not None]
            if not values:
                continue
            mean, std = _mean_std(values)
            xs.append(target)
            means.append(mean)
            stds.append(std)
            rows.append({"variant": label, "samples": target, "pass@1_mean": mean, "pass@1_std": std, "seeds": len(values)})
        ax.plot(xs, means, marker=".", label=label)
        ax.fill_between(xs, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)], alpha=0.15)
    spec = next(e["spec"] for curves in table.curves.values() for c in curves.values() for e in c)
    ax.set_xlabel("training samples")
    ax.set_ylabel(f"{spec['set']} pass@1 (n={spec['n']})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{table.study.title}: learning curves (mean ± std over seeds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / f"learning_{name}.png", dpi=110)
    plt.close(fig)
    _write_csv(out / f"learning_{name}.csv", rows)
    return [f"learning_{name}.png"]


def _passk_curves(table: StudyTable, out: Path) -> list[str]:
    """``passk_curves_S.json`` / ``.csv`` / ``.png``: pass@k against k for clm and the best RL agent, per set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = table.passk
    name = table.study.name
    (out / f"passk_curves_{name}.json").write_text(json.dumps(data, indent=2))
    rows = [{"eval_set": s["eval_set"], "agent": agent, "k": k, "pass@k_mean": s[role][i], "pass@k_std": s[f"{role}_std"][i], "seeds": s[f"{role}_seeds"]}
            for s in data["sets"] for role, agent in (("clm", BASELINE), ("rl", data["agent"])) for i, k in enumerate(s["ks"])]  # fmt: skip
    _write_csv(out / f"passk_curves_{name}.csv", rows)
    fig, axes = plt.subplots(1, len(data["sets"]), figsize=(5 * len(data["sets"]), 4), squeeze=False)
    for ax, s in zip(axes[0], data["sets"]):
        for role, agent in (("clm", BASELINE), ("rl", data["agent"])):
            mean, std = s[role], s[f"{role}_std"]
            ax.plot(s["ks"], mean, label=agent)
            ax.fill_between(s["ks"], [m - d for m, d in zip(mean, std)], [m + d for m, d in zip(mean, std)], alpha=0.15)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("k")
        ax.set_ylabel(f"pass@k ({s['problems']} problems, n = {data['n']})")
        ax.set_title(f"{s['eval_set']}: {s['classification']}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"passk_curves_{name}.png", dpi=110)
    plt.close(fig)
    return [f"passk_curves_{name}.png"]


def _passk_markdown(table: StudyTable) -> str:
    data = table.passk
    n = data["n"]
    lines = [f"pass@k curves, k = 1…{n}, from {n} samples per problem: clm against {data['variant']} (the best RL agent, by {data['selected_by']}); "
             f"mean over seeds. {data['rule']}.", "",
             f"| eval set | problems | clm pass@1 | {data['variant']} pass@1 | clm pass@{n} | {data['variant']} pass@{n} | clm catches up at k | reading |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for s in data["sets"]:
        lines.append(f"| {s['eval_set']} | {s['problems']} | {s['clm'][0]:.3f} | {s['rl'][0]:.3f} | {s['clm'][-1]:.3f} | {s['rl'][-1]:.3f} | "
                     f"{s['crossover_k'] or '–'} | {s['classification']}{'' if s['rl_wins_at_1'] else ' (but no gain at pass@1)'} |")  # fmt: skip
    return "\n".join(lines)


def build_tables(preset: Preset, studies: dict[str, Study], cells: list[Cell], results: dict[str, dict[str, Any]]) -> list[StudyTable]:
    return [StudyTable(studies[name], preset, cells, results) for name in preset.studies]


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["empty"])
        writer.writeheader()
        writer.writerows(rows)


def _mean_curve(histories: list[list[dict[str, Any]]], key: str) -> tuple[list[float], list[float]]:
    """Per step index: the mean over seeds of training samples (x) and of ``key`` (y)."""
    length = min((len(h) for h in histories), default=0)
    xs = [statistics.fmean(h[i]["samples"] for h in histories) for i in range(length)]
    ys = [statistics.fmean(float(h[i].get(key, 0.0)) for h in histories) for i in range(length)]
    return xs, ys


def _plots(table: StudyTable, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name = table.study.name
    files = []

    curve_rows = [{"variant": label, "seed_index": i, "step": e["step"], "samples": e["samples"], "reward": e.get("reward"), "pass_rate": e.get("pass_rate")}
                  for label in table.labels for i, h in enumerate(table.histories[label]) for e in h]  # fmt: skip
    _write_csv(out / f"curves_{name}.csv", curve_rows)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label in table.labels:
        for ax, key in zip(axes, ("reward", "pass_rate")):
            xs, ys = _mean_curve(table.histories[label], key)
            if xs:
                ax.plot(xs, ys, marker=".", label=label)
    for ax, key in zip(axes, ("reward of training batches", "pass rate of training batches")):
        ax.set_xlabel("training samples")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(table.study.title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out / f"curves_{name}.png", dpi=110)
    plt.close(fig)
    files.append(f"curves_{name}.png")

    fig, axes = plt.subplots(1, len(table.metrics), figsize=(5.5 * len(table.metrics), 4), squeeze=False)
    width = 0.8 / max(1, len(table.labels))
    for ax, metric in zip(axes[0], table.metrics):
        for j, label in enumerate(table.labels):
            stats = [_mean_std(table.rows[label][f"{s} {metric}"]) for s in table.eval_sets]
            xs = [i + j * width for i in range(len(table.eval_sets))]
            ax.bar(xs, [m if m == m else 0.0 for m, _ in stats], width, yerr=[s if s == s else 0.0 for _, s in stats], capsize=3, label=label)
        ax.set_xticks([i + width * (len(table.labels) - 1) / 2 for i in range(len(table.eval_sets))], table.eval_sets)
        ax.set_ylabel(metric)
        ax.grid(axis="y", alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    fig.suptitle(table.study.title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out / f"passk_{name}.png", dpi=110)
    plt.close(fig)
    files.append(f"passk_{name}.png")

    clock = [{"variant": label, "train_s_mean": _mean_std(table.rows[label]["train s"])[0], "train_s_std": _mean_std(table.rows[label]["train s"])[1],
              "eval_s_mean": _mean_std(table.rows[label]["eval s"])[0], "eval_s_std": _mean_std(table.rows[label]["eval s"])[1]}
             for label in table.labels]  # fmt: skip
    _write_csv(out / f"wallclock_{name}.csv", clock)
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(table.labels)), 4))
    xs = range(len(table.labels))
    ax.bar(xs, [c["train_s_mean"] for c in clock], yerr=[c["train_s_std"] for c in clock], capsize=3, label="training")
    ax.bar(xs, [c["eval_s_mean"] for c in clock], bottom=[c["train_s_mean"] for c in clock], yerr=[c["eval_s_std"] for c in clock], capsize=3, label="evaluation")
    ax.set_xticks(list(xs), table.labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("wall-clock seconds per run")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"wallclock_{name}.png", dpi=110)
    plt.close(fig)
    files.append(f"wallclock_{name}.png")

    sizes_of = table.study.sizes_of
    curve = [label for label in table.labels if (table.trains[label] or ())[:1] and table.trains[label][0].partition("@")[0] == sizes_of]
    if sizes_of and len(curve) > 1:  # the size curve: sizes_of@N variants and sizes_of itself, by training problems
        sized = sorted((int(_mean_std(table.rows[label]["train problems"])[0]), label) for label in curve)
        rows = [{"problems": n, "variant": label, "eval_set": s, "metric": m, "mean": _mean_std(table.rows[label][f"{s} {m}"])[0], "std": _mean_std(table.rows[label][f"{s} {m}"])[1]}
                for n, label in sized for s in table.eval_sets for m in table.metrics]  # fmt: skip
        _write_csv(out / "data_size.csv", rows)
        fig, ax = plt.subplots(figsize=(6, 4))
        for s in table.eval_sets:
            for m in table.metrics:
                pts = [r for r in rows if r["eval_set"] == s and r["metric"] == m]
                ax.errorbar([r["problems"] for r in pts], [r["mean"] for r in pts], yerr=[r["std"] for r in pts], marker="o", capsize=3, label=f"{s} {m}")
        ax.set_xscale("log")
        ax.set_xlabel(f"generated training problems ({table.study.sizes_of})")
        ax.set_ylabel("pass@k")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "data_size.png", dpi=110)
        plt.close(fig)
        files.append("data_size.png")
    return files


def write_outputs(tables: list[StudyTable], out: Path, header: str, notes: list[str]) -> Path:
    """Every table and plot file, ``report.md`` of this invocation's studies (``header``: the command,
    versions and machine) and ``report_STUDY.md`` of each study alone, which a later invocation with
    other studies in the same ``out`` leaves in place."""
    sections = [header]
    if notes:
        sections.append("## Notes\n\n" + "\n".join(f"- {n}" for n in notes))
    preamble = list(sections)
    for table in tables:
        name = table.study.name
        (out / f"table_{name}.md").write_text(f"### {table.study.title}\n\n{table.markdown()}\n")
        records = table.records()
        _write_csv(out / f"table_{name}.csv", records)
        (out / f"table_{name}.json").write_text(json.dumps({"study": name, "title": table.study.title, "rows": records}, indent=2))
        images = _plots(table, out) + _learning_curves(table, out)
        diffs = differences(table)
        text = table.markdown()
        if diffs:
            baselines = list(dict.fromkeys(r["baseline"] for r in diffs))
            (out / f"diff_{name}.json").write_text(json.dumps({"study": name, "baselines": baselines, "rows": diffs}, indent=2))
            (out / f"diff_{name}.md").write_text(_differences_markdown(table, diffs) + "\n")
            text += "\n\n" + _differences_markdown(table, diffs)
        budget, seeds = table.scale
        own = {label: b for label, b in table.budgets.items() if b != budget}
        text += f"\n\nThis study: {budget} training samples per run" + (f" ({', '.join(f'{k}: {v}' for k, v in own.items())})" if own else "")
        text += f", seeds {', '.join(map(str, seeds))}."
        if table.repair:
            size = table.repair_size
            text += (f" Evaluation: {size['n']} repair episodes per problem" + (f" on the first {size['limit']} problems of each set" if size["limit"] else "")
                     + f", up to {table.study.max_turns} attempts each, feedback of the tests the prompt shows (first failure), the reward on all tests; "
                     f"`train samples` counts generated programs (attempts), so single- and multi-turn agents train on the same number.")  # fmt: skip
        if table.passk:
            images += _passk_curves(table, out)
            text += "\n\n" + _passk_markdown(table)
        marked = [s for s in table.eval_sets if s in IN_DISTRIBUTION]
        text += "".join(f"\n\n`{s}` is in-distribution: {IN_DISTRIBUTION[s]}." for s in marked)
        sections.append(f"## {table.study.title}\n\n{text}\n\n" + "\n".join(f"![{i}]({i})" for i in images))
        (out / f"report_{name}.md").write_text("\n\n".join([*preamble, sections[-1]]) + "\n")
    report = out / "report.md"
    report.write_text("\n\n".join(sections) + "\n")
    return report
