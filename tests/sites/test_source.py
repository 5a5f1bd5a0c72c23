from __future__ import annotations

import base64
import io
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from websonic.accounts.service import add_customer
from websonic.audit.models import AuditEvent
from websonic.cli.sites import site_data
from websonic.core.errors import SourceError
from websonic.core.runner import Runner
from websonic.core.secretbox import SecretBox
from websonic.platform import Platform
from websonic.sites import source as sources
from websonic.sites.service import add_site, get_site, read_manifest, source_spec
from websonic.tools import git as git_lib
from websonic.web.api.schemas import SiteOut


def git(repo: Path, *args: str, epoch: int = 1700000000) -> str:
    env = {
        "GIT_AUTHOR_DATE": f"@{epoch} +0000",
        "GIT_COMMITTER_DATE": f"@{epoch} +0000",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
        "PATH": "/usr/bin:/bin",
        "HOME": str(repo),
    }
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "index.html").write_text("v1")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "v1", epoch=1700000000)
    git(repo, "tag", "v1")
    (repo / "index.html").write_text("v2")
    git(repo, "commit", "-qam", "v2", epoch=1700000500)
    return repo


def test_folder_snapshot_has_fixed_epoch_and_skips_vcs(tmp_path: Path, repo: Path) -> None:
    spec = sources.parse_source(str(repo))
    assert not spec.is_git
    snap = sources.snapshot(spec, tmp_path / "out", Runner(), folder_epoch=42)
    assert snap.epoch == 42 and snap.revision is None
    assert (snap.path / "index.html").read_text() == "v2"
    assert not (snap.path / ".git").exists()


@pytest.mark.parametrize(
    ("ref", "content", "epoch"), [("main", "v2", 1700000500), ("v1", "v1", 1700000000)]
)
def test_git_snapshot_at_ref_uses_commit_time(
    tmp_path: Path, repo: Path, ref: str, content: str, epoch: int
) -> None:
    spec = sources.parse_source(f"file://{repo}#{ref}")
    snap = sources.snapshot(spec, tmp_path / "out", Runner(), folder_epoch=0)
    assert (snap.path / "index.html").read_text() == content
    assert snap.epoch == epoch and snap.revision and len(snap.revision) == 40
    assert not (snap.path / ".git").exists()


def test_local_repository_path_with_ref(tmp_path: Path, repo: Path) -> None:
    commit = git(repo, "rev-parse", "v1")
    spec = sources.parse_source(f"{repo}#{commit}")
    assert spec.is_git
    snap = sources.snapshot(spec, tmp_path / "out", Runner(), folder_epoch=0)
    assert snap.revision == commit


def test_unknown_ref_lists_known_ones(repo: Path) -> None:
    with pytest.raises(SourceError, match="no branch or tag 'nope'") as info:
        sources.resolve(sources.parse_source(f"file://{repo}#nope"), Runner())
    assert "refs/heads/main" in str(info.value)


def test_unreachable_git_url(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="Cannot reach"):
        sources.resolve(sources.parse_source(f"file://{tmp_path}/missing.git#main"), Runner())


def test_missing_folder_and_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        sources.parse_source(str(tmp_path / "nope"))
    (tmp_path / "plain").mkdir()
    with pytest.raises(SourceError, match="not a git repository"):
        sources.parse_source(f"{tmp_path / 'plain'}#main")
    (tmp_path / "file").write_text("x")
    with pytest.raises(SourceError, match="not a folder"):
        sources.parse_source(str(tmp_path / "file"))


# Finding 9: symbolic links pointing outside the source are refused.


def folder_with_links(root: Path, outside: Path) -> Path:
    root.mkdir()
    (root / "index.html").write_text("home")
    (root / "pages").mkdir()
    (root / "pages" / "same.html").symlink_to("../index.html")  # inside: fine
    (root / "gone.html").symlink_to("missing.html")  # dangling, inside: fine
    (root / "pages" / "key").symlink_to(outside)
    return root


@pytest.fixture
def signing_key(tmp_path: Path) -> Path:
    key = tmp_path / "home" / "keys" / "signing.key"
    key.parent.mkdir(parents=True)
    key.write_text("PRIVATE KEY")
    return key


@pytest.mark.parametrize("relative", [False, True])
def test_finding9_a_folder_source_with_a_link_outside_is_refused(
    tmp_path: Path, signing_key: Path, relative: bool
) -> None:
    target = Path("../../home/keys/signing.key") if relative else signing_key
    source = folder_with_links(tmp_path / "site", target)
    spec = sources.parse_source(str(source))
    with pytest.raises(SourceError) as info:
        sources.snapshot(spec, tmp_path / "out", Runner(), folder_epoch=0)
    assert f"pages/key -> {target}" in info.value.message
    with pytest.raises(SourceError, match="pointing outside it: pages/key"):
        read_manifest(spec, Runner())  # `site add` reads the folder itself: refused too


def test_finding9_a_git_source_with_a_link_outside_is_refused(
    tmp_path: Path, repo: Path, signing_key: Path
) -> None:
    (repo / "key").symlink_to(signing_key)
    git(repo, "add", "key")
    git(repo, "commit", "-qm", "a link to the signing key")
    spec = sources.parse_source(f"file://{repo}#main")
    with pytest.raises(SourceError, match=f"outside it: key -> {signing_key}"):
        sources.snapshot(spec, tmp_path / "out", Runner(), folder_epoch=0)


def test_links_inside_the_source_are_kept(tmp_path: Path) -> None:
    source = tmp_path / "site"
    source.mkdir()
    (source / "index.html").write_text("home")
    (source / "alias.html").symlink_to("index.html")
    (source / "docs").symlink_to(".")
    snap = sources.snapshot(
        sources.parse_source(str(source)), tmp_path / "out", Runner(), folder_epoch=0
    )
    assert (snap.path / "alias.html").is_symlink()
    assert (snap.path / "alias.html").read_text() == "home"


# Finding 9: a git URL's password never shows.

PASSWORD = "pw-Secret/123"  # as written in the URL: pw-Secret%2F123
WRITTEN = "pw-Secret%2F123"


def test_finding9_a_git_urls_password_is_shown_masked_and_stored_sealed() -> None:
    spec = sources.parse_source(f"https://deploy:{WRITTEN}@git.example/shop.git#main")
    assert str(spec) == "https://deploy:***@git.example/shop.git#main"
    assert spec.location == "https://deploy@git.example/shop.git"
    assert "Secret" not in repr(spec)
    box = SecretBox(Fernet.generate_key())
    stored = spec.stored(box)
    assert "Secret" not in stored and stored.startswith("https://deploy:sealed.")
    assert sources.shown(stored) == "https://deploy:***@git.example/shop.git"
    assert sources.from_stored(stored, "main", box) == spec
    assert sources.shown(f"https://deploy:{WRITTEN}@git.example/x") == (
        "https://deploy:***@git.example/x"
    )
    for plain in ("/srv/site", "git@example.org:a/b.git", "https://user@host/r.git"):
        assert sources.shown(plain) == plain


def test_finding9_a_failing_clone_never_shows_the_password(tmp_path: Path) -> None:
    log = io.StringIO()
    runner = Runner(log=log)
    spec = sources.parse_source(f"http://deploy:{WRITTEN}@127.0.0.1:9/shop.git#main")
    with pytest.raises(SourceError) as info:
        sources.snapshot(spec, tmp_path / "out", runner, folder_epoch=0)
    said = f"{info.value.message}\n{info.value.hint}\n{log.getvalue()}"
    assert "http://deploy:***@127.0.0.1:9/shop.git" in info.value.message
    assert "127.0.0.1" in said and "Secret" not in said


def test_finding9_git_output_echoing_the_password_is_masked(tmp_path: Path) -> None:
    """Whatever git prints (here: the password as written in a URL) the runner masks."""
    password = git_lib.Password(PASSWORD, (WRITTEN,))
    command = git_lib.ls_remote(f"http://deploy:{WRITTEN}@127.0.0.1:9/x.git", password)
    result = Runner().run(command, check=False)
    assert result.returncode != 0
    assert "Secret" not in result.stderr + command.display()


class GitOverHttp(ThreadingHTTPServer):
    """`git http-backend` behind HTTP Basic authentication, on loopback."""

    def __init__(self, root: Path, user: str, password: str) -> None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.root, self.expected, self.refused = root, f"Basic {token}", 0
        super().__init__(("127.0.0.1", 0), _GitHandler)


class _GitHandler(BaseHTTPRequestHandler):
    server: GitOverHttp

    def do_GET(self) -> None:
        self._serve(b"")

    def do_POST(self) -> None:
        self._serve(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

    def _serve(self, body: bytes) -> None:
        if self.headers.get("Authorization") != self.server.expected:
            self.server.refused += 1
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(self.server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "REMOTE_USER": "deploy",
        }
        out = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, check=True
        ).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        headers = [line.split(b":", 1) for line in head.split(b"\r\n") if b":" in line]
        status = next((int(v.split()[0]) for k, v in headers if k.lower() == b"status"), 200)
        self.send_response(status)
        for name, value in headers:
            if name.lower() != b"status":
                self.send_header(name.decode(), value.decode().strip())
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def served(repo: Path) -> Iterator[GitOverHttp]:
    server = GitOverHttp(repo.parent, "deploy", PASSWORD)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_finding9_a_repository_behind_a_password_is_cloned_and_never_shown(
    platform: Platform, repo: Path, served: GitOverHttp
) -> None:
    (repo / "websonic.toml").write_text('[site]\nkind = "static"\n')
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "manifest")
    url = f"http://deploy:{WRITTEN}@127.0.0.1:{served.server_port}/repo/.git"
    log = io.StringIO()
    runner = platform.runner.logging_to(log)
    with platform.transaction() as session:
        add_customer(session, "acme", None, actor="test")
    with pytest.raises(SourceError) as wrong, platform.transaction() as session:
        bad = url.replace("123", "999") + "#main"
        add_site(session, runner, "acme/bad", bad, actor="t", box=platform.secrets)
    said = f"{wrong.value.message}\n{wrong.value.hint}"
    assert "Cannot reach" in said and "deploy:***@" in said and "Secret" not in said
    assert served.refused > 0

    with platform.transaction() as session:  # cloned: the password works
        add_site(session, runner, "acme/shop", f"{url}#main", actor="t", box=platform.secrets)
    masked = f"http://deploy:***@127.0.0.1:{served.server_port}/repo/.git"
    with platform.sessions() as session:
        site = get_site(session, "acme/shop")
        assert site_data(site)["source"] == masked  # `site list` and `site show`
        assert SiteOut.of(site).source == masked  # the API
        audit = " ".join(str(e.detail) for e in session.scalars(select(AuditEvent)))
        assert "deploy:***@" in audit and "Secret" not in audit
        spec = source_spec(site, platform.secrets)
        assert spec.password == WRITTEN and "Secret" not in site.source
    assert "Secret" not in log.getvalue() and "ls-remote" in log.getvalue()
    state = (platform.settings.home / "state.db").read_bytes()
    assert WRITTEN.encode() not in state and PASSWORD.encode() not in state
