"""The account page: who you are, and changing your own password (CSRF, the current password
checked and throttled like a login, other sessions ended) — through the real app and a real
SQLite state folder."""

from __future__ import annotations

import datetime as dt

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from websonic.accounts.throttle import Backoff, LoginThrottle
from websonic.audit.models import AuditEvent

from web.web_helpers import ACME_OWNER, TestClient, World, end_login_delays, form_token, login

NEW = "a-brand-new-password"


def change(
    client: TestClient, current: str, new: str, confirm: str | None = None
) -> httpx.Response:
    """Post the account page's password form, as the browser does."""
    page = client.get("/account")
    return client.post(
        "/account/password",
        data={"csrf_token": form_token(page.text), "current": current, "new": new,
              "confirm": new if confirm is None else confirm},
    )  # fmt: skip


def owner(client: TestClient) -> TestClient:
    assert login(client, *ACME_OWNER).status_code == 303
    return client


def test_the_account_page_needs_a_login_and_shows_who(client: TestClient) -> None:
    assert client.get("/account").headers["location"] == "/login?next=/account"
    page = owner(client).get("/account")
    assert page.status_code == 200
    assert ">alice<" in page.text and ">owner<" in page.text and "ACME Corp" in page.text


def test_a_change_keeps_this_session_and_ends_the_others(
    client: TestClient, app: FastAPI, world: World
) -> None:
    with TestClient(app, follow_redirects=False) as elsewhere:
        owner(elsewhere)
        owner(client)
        answer = change(client, ACME_OWNER[1], NEW)
        assert answer.status_code == 303 and answer.headers["location"] == "/account?ended=1"
        shown = client.get(answer.headers["location"]).text
        assert "Password changed. 1 other session ended." in shown
        assert elsewhere.get("/").status_code == 303  # logged out
    client.post("/logout", data={"csrf_token": form_token(client.get("/").text)})
    assert login(client, *ACME_OWNER).status_code == 401
    end_login_delays(world.platform)  # a failure delays the next try from this address
    assert login(client, ACME_OWNER[0], NEW).status_code == 303


def test_refusals_change_nothing(client: TestClient, world: World) -> None:
    owner(client)
    for current, new, confirm, message in [
        (ACME_OWNER[1], NEW, NEW + "x", "The two new passwords differ."),
        (ACME_OWNER[1], "short", "short", "at least 12 characters"),
        (ACME_OWNER[1], ACME_OWNER[1], ACME_OWNER[1], "the same as the current one"),
        ("wrong-current-password", NEW, NEW, "The current password is wrong."),
    ]:
        answer = change(client, current, new, confirm)
        assert answer.status_code == 422 and message in answer.text, (message, answer.text)
    assert client.get("/").status_code == 200  # still logged in
    with world.platform.sessions() as session:
        failures = session.scalars(
            select(AuditEvent.detail).where(AuditEvent.action == "login.failure")
        ).all()
        assert failures == [{"reason": "wrong current password"}]


def test_without_the_csrf_token_nothing_changes(client: TestClient) -> None:
    owner(client)
    answer = client.post("/account/password", data={"current": ACME_OWNER[1], "new": NEW,
                                                     "confirm": NEW})  # fmt: skip
    assert answer.status_code == 403
    client.cookies.clear()
    assert login(client, *ACME_OWNER).status_code == 303


def test_guessing_the_current_password_is_throttled_like_a_login(
    client: TestClient, app: FastAPI
) -> None:
    app.state.login_throttle = LoginThrottle(per_user=Backoff(base=dt.timedelta(minutes=1)))
    owner(client)
    codes = [change(client, f"guess-number-{i:04d}", NEW).status_code for i in range(6)]
    assert codes == [422] + [429] * 5  # each guess delays the next one
    assert change(client, ACME_OWNER[1], NEW).status_code == 429  # even the right one, for a while
