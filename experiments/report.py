"""Tables, plots and ``report.md`` of a comparison, from the results of its runs.

Per study ``S`` (one of the paper's questions) the output directory gets:

- ``table_S.md`` / ``.csv`` / ``.json``: pass@k per variant and evaluation set, mean ± standard
  deviation over seeds, with training samples and wall clock;
- ``curves_S.png`` (+ ``curves_S.csv``): reward and pass rate of the training batches against
  training samples, per variant (mean over seeds);
- ``passk_S.png``: pass@k bars per evaluation set with the spread over seeds as error bars (data: the table);
- ``wallclock_S.png`` (+ ``wallclock_S.csv``): training and evaluation seconds per variant;
- ``data_size.png`` (+ ``data_size.csv``) when the RQ2 size curve ran: pass@k against the number of
  generated training problems.
"""

from __future__ import annotations

import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from codegym.experiments.plan import Cell, Preset, Study, study_eval_sets, study_variants

__all__ = ["StudyTable", "build_tables", "write_outputs"]


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
        self.metrics = [f"pass@{k}" for k in preset.eval["ks"]]
        self.labels = [v.label for v in study_variants(study, preset) if any(c.label == v.label and c.study == study.name for c in cells)]
        self.agents = {v.label: v.agent for v in study_variants(study, preset)}
        self.trains = {v.label: v.train for v in study_variants(study, preset)}
        self.rows: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.histories: dict[str, list[list[dict[str, Any]]]] = defaultdict(list)
        for cell in cells:
            if cell.study != study.name:
                continue
            result = results[cell.run_id]
            row = self.rows[cell.label]
            for name in self.eval_sets:
                score = result["scores"].get(name) or {}
                for metric in self.metrics:
                    if score.get(metric) is not None:
                        row[f"{name} {metric}"].append(float(score[metric]))
            row["train problems"].append(float(result["train"]["problems"]))
            row["train samples"].append(float(result["train"]["samples"]))
            row["train s"].append(float(result["train"]["train_s"]))
            row["eval s"].append(float(sum((result["scores"].get(n) or {}).get("eval_s", 0.0) for n in self.eval_sets)))
            self.histories[cell.label].append(result["history"])

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
        header = "| variant | " + " | ".join(self.columns) + " |"
        rule = "|---|" + "---|" * len(self.columns)
        body = ["| " + label + " | " + " | ".join(self.cell_text(label, c) for c in self.columns) + " |" for label in self.labels]
        return "\n".join([header, rule, *body])


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
    """Every table and plot file, and ``report.md`` (``header``: the command, versions and machine)."""
    sections = [header]
    if notes:
        sections.append("## Notes\n\n" + "\n".join(f"- {n}" for n in notes))
    for table in tables:
        name = table.study.name
        (out / f"table_{name}.md").write_text(f"### {table.study.title}\n\n{table.markdown()}\n")
        records = table.records()
        _write_csv(out / f"table_{name}.csv", records)
        (out / f"table_{name}.json").write_text(json.dumps({"study": name, "title": table.study.title, "rows": records}, indent=2))
        images = _plots(table, out)
        sections.append(f"## {table.study.title}\n\n{table.markdown()}\n\n" + "\n".join(f"![{i}]({i})" for i in images))
    report = out / "report.md"
    report.write_text("\n\n".join(sections) + "\n")
    return report
