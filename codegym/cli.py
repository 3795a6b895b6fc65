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

from codegym.commands import doctor, eval_references  # noqa: E402  (commands register on `app`)

app.command("eval-references")(eval_references)
app.command("doctor")(doctor)


def main() -> None:
    """Console-script entry point."""
    app()
