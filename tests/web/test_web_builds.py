"""Starting a build from the API or the portal, and following it to its end.

The build handler itself (builds/jobs.py) is not what these tests are about: each test maps the
"build" job kind to a small fake handler by monkeypatching ``websonic.worker.handlers``, and only
there. Everything else is real: the app, its in-process huey workers on the SQLite queue in the
state folder, the job records, the log file, and — in the last test — uvicorn over TCP.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import websonic.worker
from websonic.audit.models import AuditEvent
from websonic.core.errors import BuildFailed
from websonic.jobs.models import Job
from websonic.jobs.service import JobReporter
from websonic.platform import Platform
from websonic.web.app import create_app
from websonic.web.server import make_server

from web.web_helpers import ADMIN, DEVELOPER, TestClient, World, csrf_of, form_token, login

STEPS = 5


def fake_build(platform: Platform, job: Job, reporter: JobReporter) -> dict[str, Any]:
    for step in range(1, STEPS + 1):
        reporter.line(f"building {job.params['site_id']}: step {step} of {STEPS}")
        reporter.progress(step / STEPS, f"step {step}", force=True)
        time.sleep(0.05)
    return {"release": 7}


def failing_build(platform: Platform, job: Job, reporter: JobReporter) -> dict[str, Any]:
    reporter.line("about to fail")
    raise BuildFailed("The site's Containerfile does not build.")


@pytest.fixture
def running_app(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app with its job workers running; 'build' jobs run ``fake_build``."""
    monkeypatch.setattr(websonic.worker, "handlers", lambda: {"build": fake_build})
    app = create_app(world.settings, platform=world.platform)
    with TestClient(app, follow_redirects=False) as client:
        yield client


def follow_log(client: httpx.Client | TestClient, job_id: int, timeout: float = 60) -> str:
    """Read the job's log piece by piece, as the job page does, until it is finished."""
    text, offset, deadline = "", 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        piece = client.get(f"/api/v1/jobs/{job_id}/log", params={"offset": offset}).json()
        assert piece["offset"] == offset
        text, offset = text + piece["text"], piece["next_offset"]
        if piece["finished"]:
            return text
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s; log so far:\n{text}")


def test_build_from_the_api_runs_in_the_background(running_app: TestClient, world: World) -> None:
    client = running_app
    login(client, *DEVELOPER)
    response = client.post(
        "/api/v1/sites/acme/brochure/builds",
        json={"ref": None},
        headers={"X-CSRF-Token": csrf_of(client)},
    )
    assert response.status_code == 202
    job = response.json()
    assert (job["kind"], job["status"], job["requested_by"]) == ("build", "queued", "user:dev")
    log = follow_log(client, job["id"])
    assert [line for line in log.splitlines() if line.startswith("building")] == [
        f"building {job_site_id(world)}: step {n} of {STEPS}" for n in range(1, STEPS + 1)
    ]
    done = client.get(response.headers["location"]).json()
    assert (done["status"], done["progress"], done["result"]) == ("succeeded", 1.0, {"release": 7})
    assert done["finished"] is True and done["error"] is None
    with world.platform.sessions() as session:
        event = session.query(AuditEvent).filter_by(action="build.request").one()
        assert (event.actor, event.target) == ("user:dev", "acme/brochure")


def job_site_id(world: World) -> int:
    with world.platform.sessions() as session:
        return session.query(Job).one().site_id or 0


def test_failed_build_shows_its_error(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(websonic.worker, "handlers", lambda: {"build": failing_build})
    app = create_app(world.settings, platform=world.platform)
    with TestClient(app, follow_redirects=False) as client:
        login(client, *ADMIN)
        response = client.post(
            "/api/v1/sites/globex/shop/builds", headers={"X-CSRF-Token": csrf_of(client)}
        )
        log = follow_log(client, response.json()["id"])
        assert "about to fail" in log
        assert "FAILED: The site's Containerfile does not build." in log
        job = client.get(response.headers["location"]).json()
        assert job["status"] == "failed"
        assert job["error"] == "The site's Containerfile does not build."


def test_build_button_leads_to_the_live_job_page(running_app: TestClient) -> None:
    client = running_app
    login(client, *ADMIN)
    dashboard = client.get("/")
    response = client.post(
        "/sites/acme/brochure/build", data={"csrf_token": form_token(dashboard.text)}
    )
    assert response.status_code == 303
    page_url = response.headers["location"]
    job_id = int(page_url.rsplit("/", 1)[1])
    assert page_url == f"/jobs/{job_id}"
    page = client.get(page_url)
    assert page.status_code == 200
    assert f'data-job-id="{job_id}"' in page.text
    assert '<script src="/static/job.js" defer></script>' in page.text
    script = client.get("/static/job.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    follow_log(client, job_id)
    finished = client.get(page_url).text
    assert 'data-finished="true"' in finished and "step 5 of 5" in finished


def test_build_button_needs_the_csrf_token(running_app: TestClient) -> None:
    login(running_app, *ADMIN)
    assert running_app.post("/sites/acme/brochure/build", data={}).status_code == 403
    assert (
        running_app.post("/sites/acme/brochure/build", data={"csrf_token": "forged"}).status_code
        == 403
    )


@pytest.fixture
def served(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port, in a thread; yields its base URL."""
    monkeypatch.setattr(websonic.worker, "handlers", lambda: {"build": fake_build})
    server = make_server(create_app(world.settings, platform=world.platform), "127.0.0.1", 0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=60)
    sock.close()


def test_over_tcp_login_build_and_follow(served: str) -> None:
    with httpx.Client(base_url=served, follow_redirects=False, timeout=30) as client:
        assert client.get("/").status_code == 303
        assert client.get("/api/v1/customers").status_code == 401
        assert login(client, *ADMIN).status_code == 303
        assert "acme/brochure" in client.get("/").text
        response = client.post(
            "/api/v1/sites/acme/brochure/builds", headers={"X-CSRF-Token": csrf_of(client)}
        )
        assert response.status_code == 202
        assert "step 5 of 5" in follow_log(client, response.json()["id"])
        token = form_token(client.get("/").text)
        assert client.post("/logout", data={"csrf_token": token}).status_code == 303
        assert client.get("/api/v1/me").status_code == 401
