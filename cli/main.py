"""The ``chatai`` command: bring the stack up, migrate, chat, re-index documents, create an admin, roll up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer

app = typer.Typer(
    name="chatai",
    help="ChatAI: AI assistants as a service. `chatai up` runs everything; `chatai chat` talks to it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
T = TypeVar("T")


def _fail(message: str) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


@app.command()
def up() -> None:
    """Start the database, Redis, migrations, then the API, every worker, beat and Flower (Ctrl-C stops)."""
    from pydantic import ValidationError

    from cli.devstack import StackError
    from cli.devstack import up as bring_up

    try:
        bring_up()
    except (StackError, ValidationError) as exc:
        raise _fail(str(exc)) from None


@app.command()
def migrate() -> None:
    """Apply every database migration (alembic upgrade head)."""
    from pydantic import ValidationError

    from cli.devstack import StackError, enter_project_root, resolve_database
    from cli.devstack import migrate as upgrade

    try:
        enter_project_root()
        upgrade(resolve_database())
    except (StackError, ValidationError) as exc:
        raise _fail(str(exc)) from None
    typer.echo("database is at the latest migration")


@app.command()
def chat(
    api: Annotated[
        str | None,
        typer.Option(
            help="API base URL (default: http://$CHATAI_HOST:$CHATAI_PORT, i.e. http://127.0.0.1:8000)."
        ),
    ] = None,
    email: Annotated[str | None, typer.Option(help="Log in as this user (registered if new).")] = None,
    password: Annotated[str | None, typer.Option(help="Password for --email.")] = None,
    assistant: Annotated[
        str | None, typer.Option(help="Talk to the assistant with this name (created if missing).")
    ] = None,
) -> None:
    """Talk to an assistant: logs in as the local demo user, opens a dialog, streams the replies."""
    from cli.chat import DEMO_EMAIL, DEMO_PASSWORD, ChatClient, ChatError, interactive

    if (email is None) != (password is None):
        raise _fail("--email and --password go together")

    async def session() -> None:
        async with ChatClient(
            api, email or DEMO_EMAIL, password or DEMO_PASSWORD, assistant_name=assistant
        ) as client:
            await interactive(client)

    try:
        asyncio.run(session())
    except KeyboardInterrupt:
        typer.echo()
    except ChatError as exc:
        raise _fail(str(exc)) from None


@app.command()
def reindex(
    assistant: Annotated[str | None, typer.Option(help="Only this assistant's documents (its id).")] = None,
    all_documents: Annotated[
        bool,
        typer.Option("--all", help="Every ready document, not only those of another embedding model."),
    ] = False,
    parallel: Annotated[int, typer.Option(min=1, max=32, help="Documents indexed side by side.")] = 1,
    wait: Annotated[bool, typer.Option(help="Follow the run until every document is done.")] = False,
    timeout: Annotated[float, typer.Option(help="Stop following after this many seconds.")] = 3600.0,
) -> None:
    """Re-index documents with the configured embedding model, one by one; old chunks answer until then."""
    import uuid

    from cli import reindex as run_reindex
    from services.errors import NotFound
    from services.knowledge.reindex import RunProgress

    try:
        assistant_id = uuid.UUID(assistant) if assistant else None
    except ValueError:
        raise _fail(f"--assistant must be an assistant id, not {assistant!r}") from None

    async def go() -> None:
        run = await run_reindex.start(assistant_id, all_documents, parallel)
        typer.echo(f"re-indexing {run.documents} document(s) with {run.model} (run {run.id})")
        if wait and run.documents:

            def show(p: RunProgress) -> None:
                typer.echo(f"waiting {p.waiting}, indexing {p.indexing}, ready {p.ready}, failed {p.failed}")

            final = await run_reindex.follow(run.id, timeout, show)
            if final.waiting or final.indexing:
                raise _fail(f"run {run.id} is still going after {timeout:.0f} s")

    try:
        asyncio.run(go())
    except NotFound as exc:
        raise _fail(str(exc)) from None


def _run_on_database(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``work`` against the database ``chatai up`` uses (``DATABASE_URL`` or the embedded one)."""
    from pydantic import ValidationError

    from cli.devstack import StackError, enter_project_root, resolve_database

    try:
        enter_project_root()
        resolve_database()
        return asyncio.run(work())
    except (StackError, ValidationError) as exc:
        raise _fail(str(exc)) from None


@app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(help="The admin's email (an existing account becomes an admin).")],
    password: Annotated[str, typer.Option(help="The admin's password.")],
) -> None:
    """Create an admin account, or make an existing account an admin with this password."""
    from core.unit_of_work import unit_of_work
    from services.accounts.bootstrap import create_admin as make_admin
    from services.errors import ServiceError

    async def go() -> str:
        async with unit_of_work() as session:
            result = await make_admin(session, email, password)
        return f"{'created' if result.created else 'promoted'} admin {result.user.email} ({result.user.id})"

    try:
        typer.echo(_run_on_database(go))
    except ServiceError as exc:
        raise _fail(exc.message) from None


@app.command()
def rollup(
    period: Annotated[str, typer.Option(help="hour or day.")] = "day",
    days: Annotated[
        int,
        typer.Option(min=0, max=3660, help="Recompute the last N days (0: the latest two periods)."),
    ] = 0,
) -> None:
    """Run a usage rollup now (the same upsert the analytics worker runs; repeating it changes nothing)."""
    from datetime import UTC, datetime, timedelta

    from core.unit_of_work import unit_of_work
    from services.analytics import rollups

    if period not in ("hour", "day"):
        raise _fail("--period must be hour or day")
    granularity: rollups.Granularity = "hour" if period == "hour" else "day"

    async def go() -> rollups.RollupResult:
        async with unit_of_work() as session:
            if days:
                now = datetime.now(UTC)
                return await rollups.rollup(session, granularity, now - timedelta(days=days), now)
            return await rollups.rollup_recent(session, granularity)

    result = _run_on_database(go)
    typer.echo(f"{period} rollup: {result.written} period row(s) written, {result.deleted} removed")


@app.command("rotate-bot-tokens")
def rotate_bot_tokens() -> None:
    """Re-encrypt every Telegram bot token under the first key of CHATAI_TELEGRAM_TOKEN_KEYS."""
    from core.unit_of_work import unit_of_work
    from services.telegram.bots import reencrypt_tokens

    async def go() -> int:
        async with unit_of_work() as session:
            return await reencrypt_tokens(session)

    typer.echo(f"re-encrypted {_run_on_database(go)} bot token(s)")


@app.command()
def reconcile() -> None:
    """Recompute every balance from its ledger entries now; mismatches are recorded and listed, not fixed."""
    from core.unit_of_work import unit_of_work
    from services.billing import reconcile as reconciliation

    async def go() -> reconciliation.ReconcileResult:
        async with unit_of_work() as session:
            return await reconciliation.reconcile(session)

    result = _run_on_database(go)
    for mismatch in result.mismatches:
        typer.echo(
            f"mismatch: user {mismatch.owner_id} balance {mismatch.balance_micros} "
            f"(ledger {mismatch.ledger_balance_micros}), held {mismatch.held_micros} "
            f"(ledger {mismatch.ledger_held_micros})"
        )
    typer.echo(f"reconciliation {result.run_id}: {len(result.mismatches)} mismatch(es)")
    if result.mismatches:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
