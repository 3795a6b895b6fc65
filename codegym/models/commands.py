"""The ``codegym build-corpus`` and ``codegym pretrain`` commands (registered in `codegym.cli`).

torch and transformers are imported inside the functions so that ``codegym --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

__all__ = ["build_corpus", "pretrain"]


def build_corpus(
    output: Path = typer.Option(Path("corpus.jsonl"), "--output", "-o", help="JSONL file to write, one function per line with provenance."),
    root: Optional[list[Path]] = typer.Option(
        None, "--root", help="Read .py files under this directory instead of the installed libraries (repeatable)."
    ),
    max_per_package: int = typer.Option(5000, help="At most this many functions from one installed distribution."),
    synthetic: int = typer.Option(30000, help="Synthetic exercise functions to draw (before deduplication)."),
    heldout_permille: int = typer.Option(20, help="Functions per thousand kept out of training for the held-out loss."),
    decontaminate: list[str] = typer.Option(
        ["humaneval", "mbpp", "simple"], help="Problem sets whose functions must not appear in the corpus (repeatable)."
    ),
    templates: str = typer.Option(
        "train", help="Split of the bundled basic problems whose functions join the exercises (its other splits' task families stay out); 'none' for no templates."
    ),
    procgen: int = typer.Option(0, help="Programs of the procgen training distribution to add (with their descriptions)."),
    seed: int = typer.Option(0, help="Seed for file order and synthetic functions."),
) -> None:
    """Build the pre-training corpus from the Python sources installed here: permissive licenses only, deduplicated, decontaminated."""
    from rich.console import Console

    from codegym.models.corpus import build_corpus as build

    console = Console(stderr=True)
    with console.status("reading Python sources"):
        stats = build(output, root or None, max_per_package=max_per_package, synthetic_count=synthetic,
                      heldout_permille=heldout_permille, decontaminate=decontaminate,
                      templates=None if templates.lower() == "none" else templates, procgen=procgen, seed=seed)
    console.print(
        f"[bold]{stats.functions}[/] functions from {stats.files} files ({stats.synthetic} synthetic, {stats.templates} templates, {stats.procgen} procgen, "
        f"{stats.heldout} held out); dropped {stats.duplicates} duplicates, {stats.contaminated} benchmark matches "
        f"and every variant of {stats.held_out_families} held-out template families"
    )
    for name, license in sorted(stats.skipped_packages.items()):
        console.print(f"skipped {name}: license {license}")
    console.print(f"wrote {output}")


def pretrain(
    corpus: Path = typer.Option(..., "--corpus", "-c", exists=True, dir_okay=False, help="Corpus JSONL from `codegym build-corpus`."),
    output: Path = typer.Option(..., "--output", "-o", help="Run directory: tokenizer/, checkpoint/, final/, training_log.jsonl."),
    preset: str = typer.Option("default", help="Hyper-parameter preset: tiny, default (the base run of the shipped model), procgen (its warm start on procgen programs: use with --init), small, base."),
    steps: Optional[int] = typer.Option(None, help="Override the preset's number of optimizer steps."),
    batch_size: Optional[int] = typer.Option(None, help="Override the preset's batch size (sequences per step)."),
    learning_rate: Optional[float] = typer.Option(None, help="Override the preset's peak learning rate."),
    procgen_fraction: Optional[float] = typer.Option(None, help="Override the preset's share of procgen programs among the functions drawn."),
    tokenizer: Optional[str] = typer.Option(None, help="Use this tokenizer (directory or hub name) instead of training one."),
    init: Optional[str] = typer.Option(None, "--init", help="Start from this model's weights and tokenizer (a model directory; 'default': the shipped policy) instead of random ones: a warm start."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUTPUT/checkpoint with the same options."),
    device: Optional[str] = typer.Option(None, help="torch device; default: cuda when available, else cpu."),
    seed: Optional[int] = typer.Option(None, help="Override the preset's seed."),
) -> None:
    """Pre-train a small Python code LM (tokenizer included) on a corpus; the result loads with load_policy(OUTPUT/final)."""
    from codegym.models.config import preset as get_preset
    from codegym.models.pretrain import pretrain as run

    try:
        config = get_preset(preset).replace(steps=steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                                                 procgen_fraction=procgen_fraction)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--preset") from None
    try:
        final = run(corpus, output, config, tokenizer_path=tokenizer, resume=resume, device=device, init=init)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"model written to {final}; load it with codegym.models.load_policy({str(final)!r})")
