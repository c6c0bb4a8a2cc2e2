"""The `aftermath` command: serve, worker, migrate, check-mappings, init, token create/list/revoke."""

from __future__ import annotations

import gc
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from datetime import timedelta
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from fastapi import FastAPI

from app import __version__, embedded, migrations, shipped, tokens
from app.context import Context, build_context
from app.db import utcnow
from app.logs import configure
from app.mapping_summary import describe
from app.mappings import FILES, load_mappings, sources
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


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"aftermath {__version__}")
        raise typer.Exit()


@cli.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """Aftermath: alert webhooks to postmortem actions in your tracker, with a ledger."""


def _context(announce: bool = False, quiet: bool = False) -> Context:
    """Settings, mappings and engine, or one clear line and exit 2 when a setting is wrong; `announce` logs which
    integrations are on; `quiet` logs warnings only, for a command whose output is its answer (a token, a list)."""
    try:
        settings = load_settings()
        configure(settings.secrets(), settings.log_format, logging.WARNING if quiet else logging.INFO)
        context = build_context(settings)
    except (SettingsError, FileNotFoundError) as exc:
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


def _reload_on_sighup(context: Context, worker: BaseProcess | None = None) -> None:
    """`kill -HUP <pid>` reads the mapping files again (and has the embedded worker's process do the same); invalid
    ones are logged and the previous ones stay."""

    def reload(_signum: int, _frame: object) -> None:
        # On a thread of its own: a signal handler interrupts the main thread anywhere, even inside logging.
        threading.Thread(target=context.reload_mappings, name="aftermath-reload", daemon=True).start()
        if worker is not None and worker.pid is not None and worker.is_alive():
            os.kill(worker.pid, signal.SIGHUP)

    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, reload)


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
    """uvicorn factory for `serve --workers N`: each process builds its own context (the worker runs apart) and
    reads the mappings."""
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
        # Behind a TLS-terminating proxy on this host, /docs must link its assets as https (uvicorn trusts the
        # X-Forwarded-* headers of FORWARDED_ALLOW_IPS, 127.0.0.1 unless set).
        "proxy_headers": True,
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
            # uvicorn handles SIGINT and SIGTERM only; with --workers N its supervisor answers SIGHUP by restarting
            # the server processes, which read the mappings anew.
            _reload_on_sighup(context, worker)
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
    _reload_on_sighup(context)
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


@cli.command("demo-data")
def demo_data(
    postmortems: Annotated[
        int, typer.Option(min=1, max=100_000, help="postmortems to add (about 5 actions each)")
    ] = 60,
    seed: Annotated[int, typer.Option(help="the same seed gives the same data")] = 7,
) -> None:
    """Fill the database with a year of made-up incidents, postmortems and actions, to look at the pages."""
    from app import demo

    context = _context()
    _migrate(context)
    with context.write() as session:
        filled = demo.fill(session, now=utcnow(), postmortems=postmortems, seed=seed)
    typer.echo(
        f"added {filled.incidents} incidents, {filled.postmortems} postmortems, {filled.findings} findings, "
        f"{filled.actions} actions; open {context.settings.public_url}/ (the token as the Basic password)"
    )


@cli.command("check-mappings")
def check_mappings() -> None:
    """Validate the mapping files and print what they say.

    The files are read when `serve` and `worker` start, and again when they get SIGHUP.
    """
    try:
        settings = load_settings()
        folder = settings.mappings_folder()
        mappings = load_mappings(folder)
    except (SettingsError, FileNotFoundError) as exc:
        typer.echo(f"aftermath: {exc}", err=True)
        raise typer.Exit(2) from None
    default = folder.resolve() == shipped.mappings().resolve()
    typer.echo(
        f"{folder.resolve()}: ok"
        + (" (the shipped mappings; `aftermath init` writes a copy to edit)" if default else "")
    )
    for line in describe(mappings, sources(folder), shipped.mappings()):
        typer.echo(line)
    typer.echo(
        "Read when `aftermath serve` and `aftermath worker` start; SIGHUP (`kill -HUP <pid>`) makes them read it again."
    )


@cli.command()
def init(
    folder: Annotated[Path, typer.Argument(help="where to write the mapping files")] = Path("mappings"),
) -> None:
    """Write a copy of the shipped mapping files to edit (files that exist already are kept)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        target = folder / f"{name}.yaml"
        if target.exists():
            typer.echo(f"kept {target} (exists)")
        else:
            shutil.copyfile(shipped.mappings() / f"{name}.yaml", target)
            typer.echo(f"wrote {target}")
    hint = (
        "aftermath reads ./mappings when AFTERMATH_MAPPINGS is unset: run it from this directory"
        if folder.resolve() == Path("mappings").resolve()
        else f"set AFTERMATH_MAPPINGS={folder.resolve()}"
    )
    typer.echo(f"{hint}; `aftermath check-mappings` shows what the rules say.")


@cli.command("replay-dead-letters")
def replay_dead_letters(
    ids: Annotated[list[int] | None, typer.Option("--id", help="only this dead letter (repeat for several)")] = None,
) -> None:
    """Parse the dead letters again with this version's parser (after a fix); those that parse become events the
    worker applies. Failed events are queued to be applied again. Running it twice changes nothing more."""
    from app import dead_letters

    context = _context(quiet=True)
    _migrate(context)
    with context.write() as session:
        results = dead_letters.replay(session, ids)
    for result in results:
        typer.echo(f"{result.id}\t{result.source}\t{result.outcome}\t{result.detail}")
    if not results:
        typer.echo("no dead letters" + (" with those ids" if ids else ""))


@token_cli.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="who uses it; recorded as the author of changes")],
    read: Annotated[bool, typer.Option("--read", help="read scope only")] = False,
) -> None:
    """Create an API token and print it once (only its hash is kept)."""
    context = _context(quiet=True)
    _migrate(context)
    from sqlalchemy.exc import IntegrityError

    try:
        with context.write() as session:
            token = tokens.create(session, name, "read" if read else "write")
    except IntegrityError:
        typer.echo(f"aftermath: a token named {name!r} exists already", err=True)
        raise typer.Exit(2) from None
    typer.echo(token)


@token_cli.command("list")
def token_list() -> None:
    """List the tokens: those in the database (made by `token create`) and those from AFTERMATH_API_TOKENS."""
    context = _context(quiet=True)
    _migrate(context)
    with context.read() as session:
        rows = tokens.stored(session)
    for row in rows:
        typer.echo(f"{row.name}\t{row.scope}\tdatabase, created {row.created_at:%Y-%m-%d %H:%M}Z")
    for principal in context.tokens.values():
        typer.echo(f"{principal.name}\t{principal.scope}\tAFTERMATH_API_TOKENS (remove it there to revoke it)")
    if not rows and not context.tokens:
        typer.echo("no tokens yet: `aftermath serve` makes the first one, `aftermath token create NAME` more")


@token_cli.command("revoke")
def token_revoke(name: Annotated[str, typer.Argument(help="the token's name, as `token list` shows it")]) -> None:
    """Revoke a database token: it stops working at once."""
    context = _context(quiet=True)
    _migrate(context)
    with context.write() as session:
        revoked = tokens.revoke(session, name)
    if revoked:
        typer.echo(f"revoked token {name!r}")
        return
    if any(principal.name == name for principal in context.tokens.values()):
        typer.echo(f"aftermath: token {name!r} comes from AFTERMATH_API_TOKENS: remove it there and restart", err=True)
    else:
        typer.echo(f"aftermath: no token named {name!r} (see `aftermath token list`)", err=True)
    raise typer.Exit(2)


def main() -> None:
    cli(prog_name="aftermath")


if __name__ == "__main__":
    main()
