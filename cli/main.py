"""The ``chatai`` command: bring the stack up, migrate, and chat with an assistant from the terminal."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

app = typer.Typer(
    name="chatai",
    help="ChatAI: AI assistants as a service. `chatai up` runs everything; `chatai chat` talks to it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


if __name__ == "__main__":
    app()
