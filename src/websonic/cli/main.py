"""Entry point: the command tree, settings, and errors printed without a traceback."""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError

from websonic import __version__
from websonic.cli import (
    audit,
    builds,
    customers,
    db,
    deploy,
    files,
    hosts,
    images,
    jobs,
    migrate,
    platform_cmds,
    sites,
    spec,
    tokens,
    users,
)
from websonic.cli.context import CliContext
from websonic.cli.output import errors
from websonic.core.errors import WebsonicError
from websonic.settings import load_settings

app = typer.Typer(
    name="websonic",
    help="WebSonic: build customer sites, hand them over to the customers' servers, maintain them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
platform_cmds.register(app)
app.add_typer(customers.app, name="customer")
app.add_typer(users.app, name="user")
app.add_typer(sites.app, name="site")
builds.register(app)
app.add_typer(jobs.app, name="job")
app.add_typer(tokens.app, name="token")
app.add_typer(images.app, name="image")
app.add_typer(hosts.app, name="host")
app.command("spec")(spec.spec)
deploy.register(app)
app.add_typer(audit.app, name="audit")
app.add_typer(db.app, name="db")
app.command("migrate")(migrate.migrate)
app.command("migrate-handover", hidden=True)(migrate.handover)
app.add_typer(files.app, name="files")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"websonic {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Settings come from WEBSONIC_* environment variables (see docs/settings.md)."""
    ctx.obj = CliContext(settings=load_settings())
    ctx.call_on_close(ctx.obj.close)


def main() -> None:
    try:
        code = app(standalone_mode=False)  # click returns a typer.Exit's code in this mode
        if isinstance(code, int) and code:
            sys.exit(code)
    except WebsonicError as exc:
        errors.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        if exc.hint:
            errors.print(exc.hint, highlight=False, markup=False)
        sys.exit(exc.exit_code)
    except ValidationError as exc:
        errors.print(f"[bold red]error:[/] invalid setting: {exc}", highlight=False)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        errors.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        if _is_usage_error(exc):  # a missing option, an unknown command…
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        raise


def _is_usage_error(exc: Exception) -> bool:
    """Click's usage errors (Typer vendors its own click, so match by shape, not by class)."""
    return any(k.__name__ == "ClickException" for k in type(exc).__mro__) and hasattr(exc, "show")


if __name__ == "__main__":
    main()
