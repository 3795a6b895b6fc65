"""``codegym generate-data``: the command-line face of `codegym.data_gen.pipeline` (and of the
Pynguin backend, for comparison)."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["generate_data"]


def generate_data(
    sources: list[str] = typer.Argument(
        ...,
        help="Python files, directories, importable package names (json, email.utils), or problems "
        "files / data-set names (humaneval) whose tests are regenerated, keeping their task ids.",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output JSONL file (codegym format)."),
    workers: int = typer.Option(None, "--workers", "-w", help="Sandbox workers (default: one per CPU)."),
    max_functions: int = typer.Option(None, "--max-functions", help="Stop after this many functions."),
    seed: int = typer.Option(0, "--seed", help="Seed of input generation, mutant sampling and splits."),
    backend: str = typer.Option(
        "codegym", "--backend",
        help="codegym (this machine), ray (the same pipeline with its stages on a Ray cluster; "
        "pip install 'codegym[ray]'), or pynguin (comparison; see docs).",
    ),
    address: str = typer.Option(
        None, "--address",
        help="With --backend ray: the cluster (auto, or ray://HOST:10001); default RAY_ADDRESS or a local Ray instance.",
    ),
    min_mutation_score: float = typer.Option(0.5, help="Drop functions whose tests kill fewer mutants."),
    min_branch_coverage: float = typer.Option(0.5, help="Drop functions whose tests cover fewer branches."),
    max_tests: int = typer.Option(10, help="Most tests kept per function."),
    licenses: str = typer.Option(
        None, help="Comma-separated accepted licenses (e.g. PSF,MIT,BSD,Apache); default: any."
    ),
    task_prefix: str = typer.Option("codegym", help="First part of generated task ids."),
    fresh: bool = typer.Option(False, "--fresh", help="Ignore OUT.progress.jsonl and start over."),
    report: Path = typer.Option(
        None, "--report",
        help="Write one JSON line per skipped function to this file: stage, reason, uncovered branches, inputs tried.",
    ),
    pynguin_seconds: float = typer.Option(10.0, help="Pynguin's search time per function."),
    symbolic: bool = typer.Option(
        False, "--symbolic",
        help="Also run CrossHair (symbolic execution; pip install 'codegym\\[crosshair]') on branches the other "
        "stages miss: reaches more, costs seconds per such function.",
    ),
) -> None:
    """Turn plain Python functions into problems with strong unit tests (resumable)."""
    from dataclasses import replace

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from codegym.data_gen.emit import EmitOptions
    from codegym.data_gen.mine import MineOptions, Skipped
    from codegym.data_gen.oracle import ExploreOptions
    from codegym.data_gen.pipeline import Options, run
    from codegym.data_gen.select import SelectOptions

    console = Console(stderr=True)
    if backend not in ("codegym", "ray", "pynguin"):
        raise typer.BadParameter("choose codegym, ray or pynguin", param_hint="--backend")
    if report is not None and backend == "pynguin":
        raise typer.BadParameter("--report is for the codegym and ray backends", param_hint="--report")
    if address is not None and backend != "ray":
        raise typer.BadParameter("--address is for --backend ray", param_hint="--address")
    default = ExploreOptions()
    options = Options(
        mine=MineOptions(licenses=tuple(x.strip() for x in licenses.split(",")) if licenses else None),
        explore=replace(default, seed=seed, symbolic=symbolic, mutate=replace(default.mutate, seed=seed)),
        select=SelectOptions(max_tests=max_tests, min_mutation_score=min_mutation_score,
                             min_branch_coverage=min_branch_coverage),  # fmt: skip
        emit=EmitOptions(task_prefix=task_prefix, seed=seed),
        max_functions=max_functions,
    )
    if backend == "pynguin":
        from codegym.data_gen.pynguin_backend import PynguinError, run_pynguin

        try:
            summary = run_pynguin(sources, out, options, workers=workers, seconds=pynguin_seconds, console=console)
        except PynguinError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
    else:
        from codegym.execution import Executor
        from codegym.execution.ray_backend import RayNotInstalled

        try:
            executor = Executor(workers, backend="ray", address=address) if backend == "ray" else Executor(workers)
        except RayNotInstalled as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        with executor, Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=console) as bar:  # fmt: skip
            task = bar.add_task("generating", total=None)

            def on_item(item: object) -> None:
                if not (isinstance(item, Skipped) and item.stage == "mine"):
                    bar.advance(task)

            summary = run(sources, out, options, executor=executor, fresh=fresh, report=report,
                          on_start=lambda n: bar.update(task, total=n), on_item=on_item)  # fmt: skip
    table = Table(title=f"codegym generate-data → {out}")
    table.add_column("what")
    table.add_column("count", justify="right")
    data = summary.as_dict()
    table.add_row("[bold]problems written[/bold]", str(data["kept"]))
    table.add_row("functions considered", str(data["functions"]))
    table.add_row("resumed from an earlier run", str(data["resumed"]))
    for reason, count in data["skipped"].items():
        table.add_row(f"skipped, {reason}", str(count))
    table.add_row("mean mutation score", f"{data['mean_mutation_score']:.3f}")
    table.add_row("mean branch coverage", f"{data['mean_branch_coverage']:.3f}")
    table.add_row("seconds", f"{data['seconds']:.1f}")
    Console().print(table)
