"""Finding 5 of issue 8, in the installer alone: registry credentials go only to the plan's
registry, over HTTPS unless the plan allows plain HTTP (``registry_insecure=1``). A token
realm that is elsewhere (another host, port or scheme) is refused with E_REGISTRY (5) before
any credential is sent. The functions run on their own (``call``), against registries on
loopback that record what they receive."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

from installer.test_script import call

TOKEN = "wst_0123456789abcdef_" + "Ab3-_" * 8 + "xyz"
DIGEST = "sha256:" + "ab" * 32
E_REGISTRY = 5


@dataclass
class Registry:
    """A loopback HTTP server answering like a registry, with the realm it is told to give."""

    server: ThreadingHTTPServer
    realm: str = ""
    seen: list[tuple[str, str]] = field(default_factory=list)  # (path, Authorization)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"


def serve_registry() -> Registry:
    registry: Registry

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            registry.seen.append((self.path, self.headers.get("Authorization", "")))
            if self.path == "/v2/":
                self.send_response(401)
                realm = f'Bearer realm="{registry.realm}",service="websonic"'
                self.send_header("WWW-Authenticate", realm)
                self.end_headers()
                return
            body = b'{"token": "jwt"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_HEAD = do_GET

        def log_message(self, *args: object) -> None:
            pass

    registry = Registry(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
    threading.Thread(target=registry.server.serve_forever, daemon=True).start()
    return registry


@pytest.fixture
def registries() -> Iterator[tuple[Registry, Registry]]:
    """The plan's registry, and another server (where a forged realm would send the token)."""
    pair = serve_registry(), serve_registry()
    yield pair
    for registry in pair:
        registry.server.shutdown()
        registry.server.server_close()


def registry_check(tmp_path: Path, registry: Registry, insecure: str) -> tuple[int, str]:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    values = {
        "WORK": work, "P_REGISTRY": registry.address, "P_REGISTRY_INSECURE": insecure,
        "CUSTOMER": "acme", "SITE": "acme/shop", "TOKEN": TOKEN, "P_DIGEST": DIGEST,
        "P_DB_DIGEST": "", "P_RELEASE": "1", "STATUS": "",
    }  # fmt: skip
    assignments = " ".join(f"{name}='{value}'" for name, value in values.items())
    proc = call("dash", tmp_path, assignments, "registry_check")
    return proc.returncode, proc.stdout + proc.stderr


def credentials_seen(registry: Registry) -> list[str]:
    return [auth for _, auth in registry.seen if auth.startswith("Basic")]


@pytest.fixture(autouse=True)
def needs_dash_and_curl() -> None:
    for tool in ("dash", "curl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")


def test_a_realm_on_the_plans_registry_gets_the_credentials(
    tmp_path: Path, registries: tuple[Registry, Registry]
) -> None:
    plans, _ = registries
    plans.realm = f"http://{plans.address}/v2/token"
    code, out = registry_check(tmp_path, plans, insecure="1")
    assert code == 0, out
    assert "reachable, token accepted, images present" in out
    sent = [unquote(path) for path, auth in plans.seen if auth.startswith("Basic")]
    assert sent == ["/v2/token?service=websonic&scope=repository:acme/shop:pull"]


@pytest.mark.parametrize(
    "realm",
    [
        "http://{other}/v2/token",  # another server
        "http://{plans}.evil.example/v2/token",  # a host that starts like the registry's
        "http://{plans}@{other}/v2/token",  # user-info trick
        "https://{plans}/v2/token",  # another scheme than the plan's
        "http://{plans}",  # no path: not under the registry's address
        "http://{plans}/v2/token -o /tmp/x",  # not a plain URL
    ],
)
def test_finding5_a_realm_elsewhere_gets_no_credentials(
    tmp_path: Path, registries: tuple[Registry, Registry], realm: str
) -> None:
    plans, other = registries
    plans.realm = realm.format(plans=plans.address, other=other.address)
    code, out = registry_check(tmp_path, plans, insecure="1")
    assert code == E_REGISTRY, out
    assert "is not on http://" in out and "the token is not sent there" in out
    assert credentials_seen(plans) == credentials_seen(other) == [] and other.seen == []


@pytest.mark.parametrize("insecure", ["0", "", "yes", "true"])
def test_plain_http_only_when_the_plan_says_registry_insecure_1(
    tmp_path: Path, registries: tuple[Registry, Registry], insecure: str
) -> None:
    """A registry that answers plain HTTP is not spoken to unless the plan allows it."""
    plans, _ = registries
    plans.realm = f"http://{plans.address}/v2/token"
    code, out = registry_check(tmp_path, plans, insecure=insecure)
    assert code == E_REGISTRY, out
    assert "cannot reach the registry" in out
    assert credentials_seen(plans) == []


@pytest.mark.parametrize("registry", ["", "evil.example/path", "a@b", "x y", "x'y"])
def test_a_registry_that_is_not_a_host_and_port_is_refused(tmp_path: Path, registry: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    proc = call("dash", tmp_path, f"WORK='{work}'", f"P_REGISTRY={registry!r}", "registry_check")
    assert proc.returncode == 4 and "is not a host[:port]" in proc.stdout, proc
