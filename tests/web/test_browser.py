"""The portal in a real browser: Debian's Chromium driven by Playwright against a real
`websonic serve` (its workers included) over a state folder made by the real command, with a
real signed release of the static example site.

What only a browser shows: the forms work with their CSRF tokens and cookies as a browser
keeps them, redirects land where they should, the job page follows a build live through its
script under the strict Content-Security-Policy (no reload), and downloads arrive whole.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ADMIN_PASSWORD, EXAMPLES, Cli
from servers import serving

playwright = pytest.importorskip("playwright.sync_api")
Browser = playwright.Browser
Page = playwright.Page
expect = playwright.expect

pytestmark = pytest.mark.containers

CHROMIUM = "/usr/bin/chromium"
#: As the machine's notes say: without these, Chromium tries the network at every start.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
OWNER = ("alice", "acme-owner-password")
VIEWER = ("gary", "globex-viewer-password")
BUILD_TIMEOUT_MS = 600_000


@pytest.fixture(scope="module")
def agency(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """A state folder with a signed release of acme/brochure, two customers and their people."""
    cli = Cli(tmp_path_factory.mktemp("browser") / "home")
    cli.run("init")
    cli.run("base", "build", "static", timeout=1800)
    cli.run("customer", "add", "acme", "--name", "Acme SA")
    cli.run("customer", "add", "globex", "--name", "Globex")
    source = tmp_path_factory.mktemp("sources") / "brochure"
    shutil.copytree(EXAMPLES / "static-brochure", source)
    cli.run("site", "add", "acme/brochure", "--source", str(source))
    cli.run("site", "add", "globex/shop", "--source", str(EXAMPLES / "static-brochure"))
    cli.run("build", "acme/brochure")
    for (name, password), role, customer in ((OWNER, "owner", "acme"),
                                              (VIEWER, "viewer", "globex")):  # fmt: skip
        cli.run("user", "add", name, "--role", role, "--customer", customer, "--password-stdin",
                input=password + "\n")  # fmt: skip
    return cli


@pytest.fixture(scope="module")
def portal(agency: Cli) -> Iterator[str]:
    with serving(agency.env()) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing (scripts/test installs Debian's chromium)")
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, portal: str) -> Iterator[Page]:
    """A fresh browser profile (no cookies). A script error or a console error (a CSP refusal,
    say) fails the test; answers such as a 401 for a wrong password are checked by the tests."""
    context = browser.new_context(base_url=portal, accept_downloads=True)
    opened = context.new_page()
    problems: list[str] = []
    opened.on("console", lambda m: problems.append(m.text) if is_problem(m) else None)
    opened.on("pageerror", lambda e: problems.append(str(e)))
    yield opened
    context.close()
    assert problems == [], problems


def is_problem(message: playwright.ConsoleMessage) -> bool:
    return message.type == "error" and not message.text.startswith("Failed to load resource")


def log_in(page: Page, username: str, password: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_login_refusal_then_dashboard_then_logout(page: Page) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    log_in(page, "admin", "not-the-password")
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    log_in(page, "admin", ADMIN_PASSWORD)
    expect(page).to_have_url(re.compile(r"/$"))
    acme = page.locator("#site-acme-brochure")
    expect(acme.locator("h3")).to_contain_text("acme/brochure")
    expect(acme.locator("table.releases tbody tr")).to_have_count(1)
    expect(acme.locator("table.releases tbody tr td").nth(4)).to_have_text("yes")  # signed
    expect(page.locator("#site-globex-shop .empty")).to_have_text("No release yet.")
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))  # the session is gone


def test_a_build_started_in_the_portal_is_followed_live(page: Page) -> None:
    page.goto("/login")
    log_in(page, "admin", ADMIN_PASSWORD)
    page.locator("#site-acme-brochure").get_by_role("button", name="Build").click()
    expect(page).to_have_url(re.compile(r"/jobs/\d+$"))
    page.evaluate("window.sameDocument = true")  # gone if the page reloads
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=BUILD_TIMEOUT_MS)
    expect(page.locator("#job-log")).to_contain_text("release 2")
    assert page.evaluate("window.sameDocument") is True  # followed by the script, no reload
    assert page.locator("#job-progress").evaluate("p => p.value") == 1
    expect(page.locator("#job-error")).to_be_hidden()
    page.get_by_role("link", name="Back to the dashboard").click()
    expect(page.locator("#site-acme-brochure table.releases tbody tr")).to_have_count(2)


def test_a_customer_sees_only_their_sites_and_downloads_the_archive(page: Page) -> None:
    page.goto("/login")
    log_in(page, *OWNER)
    expect(page.locator("#site-acme-brochure")).to_be_visible()
    expect(page.locator("#customer-globex")).to_have_count(0)
    expect(page.get_by_role("button", name="Build")).to_have_count(0)  # agency roles only
    page.locator("#site-acme-brochure").get_by_role("link", name="Downloads").click()
    release = page.locator("#release-1")
    expect(release).to_contain_text("signed, signature verified")
    expect(release).to_contain_text("(made on first download)")
    digest = release.locator("tr", has_text="Image digest").locator("code").inner_text()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    expect(release.locator("pre.command").first).to_contain_text(
        "podman pull --creds acme:<TOKEN> "
    )
    with page.expect_download() as started:
        release.get_by_role("link", name="image.tar").click()
    download = started.value
    assert download.failure() is None
    archive = hashlib.sha256(Path(download.path()).read_bytes()).hexdigest()
    sums = page.request.get(release.get_by_role("link", name="SHA-256").get_attribute("href"))
    assert sums.ok and sums.text().split()[0] == archive
    page.reload()  # the page now shows the archive it made on the first download
    expect(release.locator("code.sha")).to_have_text(archive)

    answer = page.goto("/sites/globex/shop/downloads")
    assert answer is not None and answer.status == 404  # another customer's: as if missing
    missing = page.goto("/sites/nobody/shop/downloads")
    assert missing is not None and missing.status == 404


def test_a_password_change_logs_out_the_other_browsers(browser: Browser, portal: str) -> None:
    contexts = [browser.new_context(base_url=portal) for _ in range(2)]
    here, elsewhere = (context.new_page() for context in contexts)
    try:
        for tab in (here, elsewhere):
            tab.goto("/login")
            log_in(tab, *VIEWER)
            expect(tab.locator("#customer-globex")).to_be_visible()
        here.get_by_role("link", name=re.compile(f"^{VIEWER[0]}")).click()
        expect(here.locator("#account-role")).to_have_text("viewer")
        here.get_by_label("Current password").fill("a-wrong-password")
        here.get_by_label("New password", exact=True).fill("the-new-viewer-password")
        here.get_by_label("New password again").fill("the-new-viewer-password")
        here.get_by_role("button", name="Change the password").click()
        expect(here.get_by_role("alert")).to_have_text("The current password is wrong.")
        here.get_by_label("Current password").fill(VIEWER[1])
        here.get_by_label("New password", exact=True).fill("the-new-viewer-password")
        here.get_by_label("New password again").fill("the-new-viewer-password")
        here.get_by_role("button", name="Change the password").click()
        expect(here.locator("#password-changed")).to_have_text(
            "Password changed. 1 other session ended."
        )
        elsewhere.reload()
        expect(elsewhere).to_have_url(re.compile(r"/login\?next=/$"))
        log_in(elsewhere, *VIEWER)
        expect(elsewhere.get_by_role("alert")).to_have_text("Wrong username or password.")
        log_in(elsewhere, VIEWER[0], "the-new-viewer-password")
        expect(elsewhere.locator("#customer-globex")).to_be_visible()
    finally:
        for context in contexts:
            context.close()
