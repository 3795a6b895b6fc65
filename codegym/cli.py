"""The ``codegym`` command line. Each subcommand lives beside the code it drives and is registered here."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="codegym",
    help="Code synthesis as reinforcement learning: problems, a hardened sandbox, environments and agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

from codegym.commands import calibrate, doctor, eval_references  # noqa: E402  (commands register on `app`)

app.command("eval-references")(eval_references)
app.command("calibrate")(calibrate)
app.command("doctor")(doctor)
from codegym.models.commands import build_corpus, pretrain  # noqa: E402

app.command("build-corpus")(build_corpus)
app.command("pretrain")(pretrain)
from codegym.data_gen.commands import generate_data  # noqa: E402
app.command("generate-data")(generate_data)
from codegym.agents.commands import evaluate, train  # noqa: E402

app.command("train")(train)
app.command("evaluate")(evaluate)
from codegym.experiments.compare import compare  # noqa: E402

app.command("compare")(compare)
from codegym.integrations.commands import export, serve  # noqa: E402

app.command("export")(export)
app.command("serve")(serve)
from codegym.experiments.band import band  # noqa: E402

app.command("band")(band)


def main() -> None:
    """Console-script entry point."""
    app()
