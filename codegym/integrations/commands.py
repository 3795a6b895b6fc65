"""CLI commands for the integrations: ``export`` (data sets in other frameworks' formats)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Optional

import typer

from codegym import problems as problem_sources

EXPORT_FORMATS = ("verl",)


def export(
    source: Annotated[str, typer.Argument(help="Data set name (mbpp, humaneval, basic, ...) or a problems file (generated ones too).")],
    out: Annotated[Path, typer.Option(help="File to write, e.g. mbpp_train.parquet.")],
    split: Annotated[Optional[str], typer.Option(help="Only this split (e.g. train).")] = None,
    format: Annotated[str, typer.Option(help="Output format: verl (verl's RL parquet: data_source, prompt, ability, reward_model, extra_info).")] = "verl",
    data_source: Annotated[str, typer.Option(help="The data_source column's value.")] = "codegym",
    interaction: Annotated[Optional[str], typer.Option(help="Name of a codegym RepairInteraction in verl's interaction config: rows get extra_info.interaction_kwargs for multi-turn repair.")] = None,
    visible_tests: Annotated[Optional[int], typer.Option(min=0, help="With --interaction: the first K tests are visible (the prompt shows only those); default: the prompt's examples.")] = None,
) -> None:
    """Write problems as another framework's training data; the tests travel inside each row."""
    if format not in EXPORT_FORMATS:
        raise typer.BadParameter(f"unknown format {format!r}; choose one of {', '.join(EXPORT_FORMATS)}", param_hint="--format")
    try:
        loaded = problem_sources.load(source, split=split)
    except problem_sources.ProblemLoadError as exc:
        raise typer.BadParameter(str(exc), param_hint="SOURCE") from None
    if not loaded:
        raise typer.BadParameter(f"no problems in {source!r} with split {split!r}", param_hint="--split")
    from codegym.integrations.verl import write_parquet

    path = write_parquet(loaded, out, data_source=data_source, interaction=interaction, visible_tests=visible_tests)
    typer.echo(f"wrote {len(loaded)} problems to {path} ({format})")


def serve(
    problems: Annotated[Optional[list[str]], typer.Option("--problems", help="Problem sources whose task ids /reward labels and /score task_id may name (repeat the option for several).")] = None,
    host: Annotated[str, typer.Option(help="Address to bind. 127.0.0.1 (default) is reachable only from this machine; any other address needs --token (see the README).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    backend: Annotated[str, typer.Option(help="Where programs run: local (a sandbox pool here) or ray (a Ray cluster).")] = "local",
    workers: Annotated[Optional[int], typer.Option(help="Sandbox processes (default: one per CPU).")] = None,
    token: Annotated[Optional[str], typer.Option(envvar="CODEGYM_SERVE_TOKEN", help="Bearer token every request must carry (or set CODEGYM_SERVE_TOKEN, which keeps it out of the process list).")] = None,
    insecure_no_token: Annotated[bool, typer.Option("--insecure-no-token", help="Serve a non-loopback --host without a token: anyone who reaches it can run programs in the sandbox.")] = False,
    reward: Annotated[str, typer.Option(help="Registered reward name (paper, binary, pass_ratio, coderl, rltf, ...).")] = "paper",
    timeout: Annotated[Optional[float], typer.Option(help="Seconds per program (default: each problem's calibrated limit, else the sandbox default).")] = None,
    read_timeout: Annotated[float, typer.Option(help="Seconds a client may take to send its request body (408 after).")] = 10.0,
    max_batch: Annotated[int, typer.Option(help="Most completions in one request (413 above).")] = 256,
    max_queue: Annotated[int, typer.Option(help="Most requests admitted at once (429 above).")] = 64,
    deadline: Annotated[float, typer.Option(help="Seconds a request may take before it is answered 504.")] = 120.0,
) -> None:
    """Serve rewards over HTTP: POST /reward (OpenRLHF's remote reward contract), POST /score, POST /feedback (repair loops), GET /health."""
    if not token and not insecure_no_token and not _loopback(host):
        raise typer.BadParameter(
            f"{host} is reachable from other machines, and clients choose the programs and tests the server runs; "
            "use --token (or CODEGYM_SERVE_TOKEN) so every request must carry it, or pass an explicit --insecure-no-token "
            "to serve without one",
            param_hint="--host",
        )
    try:
        import uvicorn

        from codegym.serve import ServeConfig, create_app
    except ImportError as exc:
        raise typer.BadParameter(f"{exc.name} is missing; install the server's dependencies: pip install 'codegym[serve]'") from None
    from codegym.execution import Executor

    try:
        loaded = {p.task_id: p for source in problems or [] for p in problem_sources.load(source)}
    except problem_sources.ProblemLoadError as exc:
        raise typer.BadParameter(str(exc), param_hint="--problems") from None
    config = ServeConfig(reward=reward, timeout=timeout, max_batch=max_batch, max_queue=max_queue, deadline_s=deadline,
                         read_timeout_s=read_timeout, token=token)  # fmt: skip
    executor = Executor(workers, backend=backend)
    try:
        app = create_app(loaded, executor, config)
    except ValueError as exc:
        executor.close()
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"codegym serve: {len(loaded)} problems, reward {reward}, on http://{host}:{port} (token {'on' if token else 'off'})", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=10)


def _loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything
