"""Finding 6 through a real server: uvicorn in a thread over the app, and browsers that
connect from distinct loopback addresses (127.0.0.x), so the throttle sees real client
addresses. Password hashes are counted by the hashing slots' counters, never timed."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from websonic.accounts import passwords
from websonic.accounts.passwords import HashSlots
from websonic.accounts.throttle import Backoff, LoginAttempts, LoginThrottle
from websonic.core.db import utcnow
from websonic.web.server import make_server

from servers import free_port, wait_until
from web.web_helpers import ADMIN, World, form_token

LONG = Backoff(base=dt.timedelta(hours=1))  # longer than any test: no block ends by itself


@pytest.fixture
def url(app: FastAPI) -> Iterator[str]:
    port = free_port()
    server = make_server(app, "127.0.0.1", port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 30, "uvicorn did not start")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)


@dataclass
class Browser:
    client: httpx.Client
    csrf_token: str


def browser(url: str, addr: str) -> Browser:
    """A client connecting from ``addr``, holding the login form's CSRF cookie and token."""
    transport = httpx.HTTPTransport(local_address=addr)
    client = httpx.Client(base_url=url, transport=transport, timeout=600, follow_redirects=False)
    return Browser(client, form_token(client.get("/login").text))


def post_login(browser: Browser, username: str, password: str) -> httpx.Response:
    """Post the login form; a refused login's answer is a new form (with a new CSRF token)."""
    data = {"username": username, "password": password, "csrf_token": browser.csrf_token}
    response = browser.client.post("/login", data={**data, "next": "/"})
    if response.status_code != 303:
        browser.csrf_token = form_token(response.text)
    return response


def all_at_once(clients: list[Browser], username: str, password: str) -> list[httpx.Response]:
    barrier = threading.Barrier(len(clients))

    def one(client: Browser) -> httpx.Response:
        barrier.wait()
        return post_login(client, username, password)

    with ThreadPoolExecutor(len(clients)) as pool:
        return list(pool.map(one, clients))


@pytest.fixture
def slots(monkeypatch: pytest.MonkeyPatch) -> HashSlots:
    counted = HashSlots(2, wait_seconds=600)
    monkeypatch.setattr(passwords, "HASHING", counted)
    return counted


def test_finding6_thirty_parallel_wrong_logins_verify_one_password(
    app: FastAPI, url: str, slots: HashSlots
) -> None:
    app.state.login_throttle = LoginThrottle(per_user=LONG)
    clients = [browser(url, "127.0.0.2") for _ in range(30)]
    codes = [r.status_code for r in all_at_once(clients, "admin", "wrong-password-guess")]
    assert sorted(codes) == [401] + [429] * 29
    assert slots.runs == 1  # 29 were refused before their password was hashed


def test_finding6_password_hashes_run_at_most_slots_at_once(url: str, slots: HashSlots) -> None:
    clients = [browser(url, f"127.0.0.{10 + n}") for n in range(30)]  # 30 keys: none throttled
    responses = all_at_once(clients, "admin", "wrong-password-guess")
    assert [r.status_code for r in responses] == [401] * 30
    assert slots.runs == 30 and slots.peak <= 2


def test_finding6_no_free_slot_is_a_503_with_retry_after(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy = HashSlots(1, wait_seconds=0.01)
    monkeypatch.setattr(passwords, "HASHING", busy)
    client = browser(url, "127.0.0.2")
    with busy.hold():  # the only slot is taken
        response = post_login(client, *ADMIN)
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert "busy checking passwords" in response.text


def test_finding6_a_stranger_hammering_a_username_does_not_keep_its_user_out(
    app: FastAPI, url: str, slots: HashSlots
) -> None:
    app.state.login_throttle = LoginThrottle(per_user=LONG)
    stranger = [browser(url, "127.0.0.2") for _ in range(30)]
    codes = [r.status_code for r in all_at_once(stranger, "admin", "guess-guess-guess")]
    assert sorted(codes) == [401] + [429] * 29
    assert post_login(stranger[0], *ADMIN).status_code == 429  # not even checked
    owner = browser(url, "127.0.0.3")
    response = post_login(owner, *ADMIN)
    assert response.status_code == 303
    assert owner.client.get("/api/v1/me").json()["username"] == "admin"


def test_finding6_the_same_address_waits_longer_after_each_failure(
    app: FastAPI, url: str, world: World
) -> None:
    app.state.login_throttle = LoginThrottle(per_user=Backoff(base=dt.timedelta(minutes=1)))
    client = browser(url, "127.0.0.2")
    waits = []
    for _ in range(4):
        assert post_login(client, "admin", "wrong-password-guess").status_code == 401
        refused = post_login(client, *ADMIN)  # the right password, too early: not checked
        assert refused.status_code == 429
        waits.append(int(refused.headers["retry-after"]))
        with world.platform.transaction() as session:  # as if the wait had passed
            session.execute(update(LoginAttempts).values(blocked_until=utcnow()))
    assert waits == sorted(set(waits))  # 1, 2, 4, 8 minutes (less the time each check took)
    assert waits[0] <= 60 < 7 * 60 < waits[-1] <= 8 * 60
    assert post_login(client, *ADMIN).status_code == 303
