from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from websonic.core.errors import SourceError
from websonic.core.runner import Runner
from websonic.sites import source as sources


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
