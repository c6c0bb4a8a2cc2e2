"""The `aftermath` command: serve, worker, migrate, check-mappings, token create."""

from __future__ import annotations

import gc
import logging
import os
import shutil
import signal
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from fastapi import FastAPI

from app import embedded, migrations, tokens
from app.context import Context, build_context
from app.logs import configure
from app.mappings import load_mappings
from app.settings import SettingsError, load_settings

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own variable (see app/telemetry.py)
PULSE_VARIABLE = "AFTERMATH_INGEST_PULSE"  # app.ingest.PULSE_VARIABLE (not imported here: see _shared_folder)

cli = typer.Typer(
    help="Aftermath: alert webhooks to postmortem actions in your tracker, with a ledger.",
    no_args_is_help=True,
    add_completion=False,
)
token_cli = typer.Typer(help="API tokens.", no_args_is_help=True)
cli.add_typer(token_cli, name="token")
log = logging.getLogger("aftermath")


def _context(announce: bool = False) -> Context:
    """Settings, mappings and engine, or one clear line and exit 2 when a setting is wrong; `announce` logs which
    integrations are on."""
    try:
        settings = load_settings()
        configure(settings.secrets(), settings.log_format)
        context = build_context(settings)
    except SettingsError as exc:
        typer.echo(f"aftermath: {exc}", err=True)
        raise typer.Exit(2) from None
    if announce:
        log.info(settings.integrations())
    return context


def _shared_folder() -> Path:
    """Files every process of this server shares (uvicorn's, the embedded worker's): the folder its metrics are
    counted in, summed by /metrics (prometheus-client reads the variable when it is first imported, which must
    therefore not have happened yet), and the ingest pulse."""
    if "prometheus_client.values" in sys.modules:
        raise RuntimeError("prometheus_client was imported before `serve` chose where its metrics live")
    folder = Path(tempfile.gettempdir()) / f"aftermath-serve-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "metrics").mkdir(parents=True)
    os.environ[MULTIPROCESS_DIR] = str(folder / "metrics")
    # The group commits' pulse (app/ingest.py), by which the embedded worker's process yields to ingest.
    os.environ[PULSE_VARIABLE] = str(folder / "ingest-pulse")
    return folder


def _migrate(context: Context) -> None:
    try:
        migrations.upgrade(context.settings.database_url)
    except Exception as exc:  # the database URL is valid but the database is not reachable or not usable
        typer.echo(
            f"aftermath: AFTERMATH_DATABASE_URL: cannot migrate the database ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})",
            err=True,
        )
        raise typer.Exit(2) from None


def _first_token(context: Context) -> None:
    """With no configured token and an empty token table, make one write token and show it this once."""
    if context.settings.api_tokens:
        return
    with context.write() as session:
        if tokens.any_stored(session):
            return
        token = tokens.create(session, "admin", "write")
    typer.echo(
        "\nNo AFTERMATH_API_TOKENS set: created a write token named 'admin'. It is shown only this once:\n\n"
        f"    {token}\n\nUse it as 'Authorization: Bearer <token>'. More: aftermath token create [--read] NAME\n"
    )


def create_app_from_env() -> FastAPI:
    """uvicorn factory for `serve --workers N`: each process builds its own context (the worker runs apart)."""
    from app.api.main import create_app

    context = _context()
    return _frozen(create_app(context, embedded_worker=_in_process_worker(context)))


def _in_process_worker(context: Context) -> bool:
    """Whether the embedded worker runs as threads of the server process (SQLite) rather than in a process of its own
    (PostgreSQL). SQLite has one writer: a second process's writes wait for the server's through SQLite's busy
    handler, which sleeps, while writers of one process hand the write lock over at once (app/db.py)."""
    return context.settings.worker == "embedded" and context.engine.dialect.name == "sqlite"


def _frozen(app: FastAPI) -> FastAPI:
    """Exempt everything built so far (modules, routes, settings) from the cyclic garbage collector: a full
    collection had to scan it all, stopping every thread for 50-130 ms a few times a minute under load."""
    gc.freeze()
    return app


def uvicorn_options(host: str, port: int, access_log: bool = False) -> dict[str, Any]:
    """How `serve` runs uvicorn; the benchmarks serve their bare baseline app with exactly these options."""
    # httptools + uvloop: plain h11 holds every route to a fraction of the throughput. log_config=None lets
    # uvicorn's loggers propagate to ours, whose filter scrubs secrets (a Jira webhook secret may sit in a URL).
    # No access log by default: one formatted, filtered record per request cost about a tenth of the throughput.
    return {
        "log_config": None,
        "host": host,
        "port": port,
        "http": "httptools",
        "loop": "uvloop",
        "log_level": "info",
        "access_log": access_log,
        "proxy_headers": False,
        "server_header": False,
    }


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(help="server processes")] = 1,
    access_log: Annotated[bool, typer.Option(help="log one line per request")] = False,
) -> None:
    """Migrate the database, then serve the API (and the embedded worker unless AFTERMATH_WORKER=off)."""
    import uvicorn

    shared = _shared_folder()
    # uvicorn stops on SIGTERM, then raises it again for the handler it found: make that handler an exit, so the
    # embedded worker is stopped and the shared folder removed below (the default handler ends the process at once).
    signal.signal(signal.SIGTERM, _exit_on_signal)
    worker = None
    try:
        context = _context(announce=True)
        _migrate(context)
        _first_token(context)
        options = uvicorn_options(host, port, access_log)
        own_process = context.settings.worker == "embedded" and not _in_process_worker(context)
        worker = embedded.start() if own_process else None
        if workers > 1:
            context.engine.dispose()
            uvicorn.run("app.cli:create_app_from_env", factory=True, workers=workers, **options)
        else:
            from app.api.main import create_app

            app = create_app(context, embedded_worker=_in_process_worker(context))
            uvicorn.run(_frozen(app), **options)
    finally:
        if worker is not None:
            embedded.stop(worker)
        shutil.rmtree(shared, ignore_errors=True)


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@cli.command()
def worker(
    once: Annotated[bool, typer.Option(help="drain ready jobs, run due periodic tasks, exit")] = False,
    lease_seconds: Annotated[
        float | None,
        typer.Option(min=1, help="how long a claimed job stays this worker's before another may take it over"),
    ] = None,
) -> None:
    """Run the worker alone (any number of them on PostgreSQL)."""
    from app import jobs
    from app.worker import Worker

    if lease_seconds is not None:
        # Must exceed the longest job (a tracker call with its timeout): a shorter lease lets a second worker take
        # over a job that is still running. Tests shorten it to see a dead worker's job taken over quickly.
        jobs.LEASE = timedelta(seconds=lease_seconds)
    context = _context(announce=not once)
    runner = Worker(context)
    if once:
        typer.echo(f"ran {runner.run_once()} job(s)")
        return
    try:
        runner.run_forever()
    except KeyboardInterrupt:
        runner.stop()


@cli.command()
def migrate() -> None:
    """Upgrade the database to the latest schema."""
    context = _context()
    _migrate(context)
    typer.echo(f"database at {migrations.head_revision()}")


@cli.command("check-mappings")
def check_mappings() -> None:
    """Validate the mapping files and print what they say."""
    try:
        settings = load_settings()
        mappings = load_mappings(settings.mappings)
    except SettingsError as exc:
        typer.echo(f"aftermath: {exc}", err=True)
        raise typer.Exit(2) from None
    rules = ", ".join(rule.name for rule in mappings.triggers.rules) or "none"
    typer.echo(
        f"{settings.mappings}: ok — trigger rules: {rules}; tracker rules: {len(mappings.trackers.rules)}; "
        f"people: {len(mappings.people)}"
    )


@token_cli.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="who uses it; recorded as the author of changes")],
    read: Annotated[bool, typer.Option("--read", help="read scope only")] = False,
) -> None:
    """Create an API token and print it once (only its hash is kept)."""
    context = _context()
    _migrate(context)
    from sqlalchemy.exc import IntegrityError

    try:
        with context.write() as session:
            token = tokens.create(session, name, "read" if read else "write")
    except IntegrityError:
        typer.echo(f"aftermath: a token named {name!r} exists already", err=True)
        raise typer.Exit(2) from None
    typer.echo(token)


def main() -> None:
    cli(prog_name="aftermath")


if __name__ == "__main__":
    main()
