"""websonic user add|list|password|disable|enable"""

from __future__ import annotations

import sys
from typing import Any

import typer

from websonic.accounts import service
from websonic.accounts.models import Role, User
from websonic.accounts.passwords import generate_password
from websonic.cli.context import JsonOption, get
from websonic.cli.output import console, emit_json, errors, table
from websonic.core.errors import InvalidInput

app = typer.Typer(help="People who log in to the portal: agency staff and customers.",
                  no_args_is_help=True)  # fmt: skip

SHOWN_ONCE = "This is the only time the password is shown: give it to its user by a safe channel."
ROLES = ", ".join(role.value for role in Role)
PasswordStdin = typer.Option(
    False,
    "--password-stdin",
    help="Read the password from the first line of standard input instead of generating one.",
)


def user_data(user: User) -> dict[str, Any]:
    """What may be shown of a user: never the password or its hash."""
    return {
        "username": user.username,
        "role": user.role.value,
        "customer": user.customer.slug if user.customer else None,
        "disabled": user.disabled,
        "created_at": user.created_at,
    }


def read_password(from_stdin: bool) -> tuple[str, bool]:
    """(password, whether it was generated here)."""
    if not from_stdin:
        return generate_password(), True
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise InvalidInput("No password on standard input.", hint="echo 'PASSWORD' | websonic …")
    return service.check_password(line), False


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidInput(f"Unknown role {value!r}.", hint=f"Roles: {ROLES}.") from None


def show_password(data: dict[str, Any], password: str, generated: bool, as_json: bool) -> None:
    if as_json:
        emit_json({**data, **({"password": password, "note": SHOWN_ONCE} if generated else {})})
        return
    if generated:
        typer.echo(password)
        errors.print(SHOWN_ONCE, highlight=False)


@app.command("add")
def add(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="Login name: letters, digits and . _ @ + -"),
    role: str = typer.Option(..., "--role", help=f"One of: {ROLES}."),
    customer: str = typer.Option(
        None, "--customer", help="The customer of an owner, editor or viewer."
    ),
    password_stdin: bool = PasswordStdin,
    as_json: bool = JsonOption,
) -> None:
    """Add a user; a generated password is printed once."""
    chosen = parse_role(role)
    password, generated = read_password(password_stdin)
    cli = get(ctx)
    with cli.platform.transaction() as session:
        owner = service.get_customer(session, customer) if customer else None
        user = service.add_user(
            session, username, password, chosen, customer=owner, actor=cli.actor
        )
        data = user_data(user)
    if not as_json:
        whose = f" of {data['customer']}" if data["customer"] else ""
        console.print(f"User [bold]{username}[/] ({chosen.value}{whose}) added.", highlight=False)
        if generated:
            console.print("Password:")
    show_password(data, password, generated, as_json)


@app.command("list")
def list_(
    ctx: typer.Context,
    customer: str = typer.Option(None, "--customer", help="Only this customer's people."),
    as_json: bool = JsonOption,
) -> None:
    """List users (never their passwords)."""
    with get(ctx).platform.sessions() as session:
        owner = service.get_customer(session, customer) if customer else None
        data = [user_data(u) for u in service.list_users(session, owner)]
    if as_json:
        emit_json({"users": data})
        return
    columns = ["username", "role", "customer", "disabled", "created_at"]
    rows = [[d[c] if c != "disabled" else ("yes" if d[c] else "") for c in columns] for d in data]
    table("Users", ["username", "role", "customer", "disabled", "created"], rows)


@app.command("password")
def password(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="Whose password."),
    password_stdin: bool = PasswordStdin,
    as_json: bool = JsonOption,
) -> None:
    """Set a new password (a generated one is printed once); the user's sessions end."""
    new, generated = read_password(password_stdin)
    cli = get(ctx)
    with cli.platform.transaction() as session:
        user = service.get_user(session, username)
        ended = service.set_password(session, user, new, actor=cli.actor)
        data = {**user_data(user), "sessions_ended": ended}
    if not as_json:
        console.print(f"New password for [bold]{username}[/]; {ended} session(s) ended.")
    show_password(data, new, generated, as_json)


def _set_disabled(ctx: typer.Context, username: str, disabled: bool, as_json: bool) -> None:
    cli = get(ctx)
    with cli.platform.transaction() as session:
        user = service.get_user(session, username)
        ended = service.set_disabled(session, user, disabled, actor=cli.actor)
        data = {**user_data(user), "sessions_ended": ended}
    if as_json:
        emit_json(data)
    elif disabled:
        console.print(f"User [bold]{username}[/] disabled; {ended} session(s) ended.")
    else:
        console.print(f"User [bold]{username}[/] enabled.")


@app.command("disable")
def disable(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="Who may no longer log in."),
    as_json: bool = JsonOption,
) -> None:
    """Stop a user from logging in; their open sessions end at once."""
    _set_disabled(ctx, username, True, as_json)


@app.command("enable")
def enable(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="Who may log in again."),
    as_json: bool = JsonOption,
) -> None:
    """Let a disabled user log in again."""
    _set_disabled(ctx, username, False, as_json)
