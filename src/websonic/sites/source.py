"""A site's source: a local folder, or a git repository at a ref.

``SOURCE#REF`` names a git repository (a URL, or a local path to a repository) at a branch, tag
or commit; a plain path is a folder. Folders have no commit time, so their build epoch is a fixed
recorded value (default 1980-01-01, as zip and Nix do): the same files give the same image on
any machine, and editing a page does not change the epoch (so dependency layers are reused).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from websonic.core.errors import SourceError, ToolFailed
from websonic.core.runner import Runner
from websonic.tools import git

DEFAULT_FOLDER_EPOCH = 315532800  # 1980-01-01T00:00:00Z
URL_LIKE = re.compile(r"^(https?|ssh|git|file)://|^[\w.-]+@[\w.-]+:")
HEX_SHA = re.compile(r"^[0-9a-f]{7,40}$")
IGNORED = (".git", "node_modules", "__pycache__", ".venv", "*.pyc", ".DS_Store")


@dataclass(frozen=True)
class SourceSpec:
    location: str  # absolute folder path, or git URL / repository path
    ref: str | None  # None for folders

    @property
    def is_git(self) -> bool:
        return self.ref is not None

    def __str__(self) -> str:
        return f"{self.location}#{self.ref}" if self.ref else self.location


@dataclass(frozen=True)
class Snapshot:
    """A copy of the source at one point, ready to build."""

    path: Path
    revision: str | None  # git commit
    epoch: int


def parse_source(text: str) -> SourceSpec:
    location, _, ref = text.partition("#")
    if not location:
        raise SourceError("The source is empty: give a folder or a git URL (URL#REF).")
    if URL_LIKE.match(location):
        return SourceSpec(location, ref or "HEAD")
    path = Path(location).expanduser().absolute()
    if not path.exists():
        raise SourceError(f"The source folder {path} does not exist.")
    if not path.is_dir():
        raise SourceError(f"The source {path} is not a folder.")
    if ref:
        if not (path / ".git").exists() and not (path / "HEAD").is_file():
            raise SourceError(f"{path} is not a git repository, so #{ref} cannot be used.")
        return SourceSpec(str(path), ref)
    return SourceSpec(str(path), None)


def resolve(spec: SourceSpec, runner: Runner) -> str | None:
    """The commit a git source's ref points to now (None for folders); fails if unreachable."""
    if not spec.is_git:
        return None
    assert spec.ref is not None
    try:
        result = runner.run(git.ls_remote(spec.location), timeout=60)
    except ToolFailed as exc:
        raise SourceError(
            f"Cannot reach the git repository {spec.location}.",
            hint=f"git said: {exc.stderr.strip()[-300:]}",
        ) from exc
    refs = git.parse_ls_remote(result.stdout)
    if spec.ref == "HEAD":
        return None  # the default branch: resolved when fetched
    for name in (spec.ref, f"refs/heads/{spec.ref}", f"refs/tags/{spec.ref}"):
        if name in refs:
            return refs[name]
    if HEX_SHA.match(spec.ref):
        return spec.ref  # a commit: checked when fetched
    raise SourceError(
        f"The git repository {spec.location} has no branch or tag {spec.ref!r}.",
        hint="Known refs: " + ", ".join(sorted(refs)[:10]) if refs else None,
    )


def snapshot(
    spec: SourceSpec,
    dest: Path,
    runner: Runner,
    *,
    folder_epoch: int,
    exclude: Sequence[str] = IGNORED,
) -> Snapshot:
    """Copy the source into ``dest`` (which must not exist) and say what was taken.

    Paths matching ``exclude`` (glob patterns on any path component) are left out, and every
    file is made readable by all (the site runs as an unprivileged user in its image).
    """
    if not spec.is_git:
        if not Path(spec.location).is_dir():
            raise SourceError(f"The source folder {spec.location} no longer exists.")
        shutil.copytree(spec.location, dest, ignore=shutil.ignore_patterns(*exclude), symlinks=True)
        snap = Snapshot(dest, None, folder_epoch)
    else:
        snap = _git_snapshot(spec, dest, runner)
        _remove_excluded(dest, exclude)
    _readable_by_all(dest)
    return snap


def _remove_excluded(root: Path, exclude: Sequence[str]) -> None:
    ignore = shutil.ignore_patterns(*exclude)
    for folder, dirs, files in os.walk(root):
        for name in ignore(folder, [*dirs, *files]):
            path = Path(folder) / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
                dirs.remove(name)
            else:
                path.unlink()


def _readable_by_all(root: Path) -> None:
    """chmod a+rX: files readable, folders (and executables) enterable by anyone."""
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            extra = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
            if path.is_dir() or mode & stat.S_IXUSR:
                extra |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
            path.chmod(stat.S_IMODE(mode) | extra)


def _git_snapshot(spec: SourceSpec, dest: Path, runner: Runner) -> Snapshot:
    assert spec.ref is not None
    resolve(spec, runner)
    runner.run(git.init(dest))
    try:
        runner.run(git.fetch(dest, spec.location, spec.ref), timeout=600)
    except ToolFailed as exc:
        raise SourceError(
            f"Cannot fetch {spec.ref!r} from {spec.location}.",
            hint=f"git said: {exc.stderr.strip()[-300:]}",
        ) from exc
    runner.run(git.checkout_fetched(dest))
    revision, epoch = git.parse_head_info(runner.run(git.head_info(dest)).stdout)
    shutil.rmtree(dest / ".git")
    return Snapshot(dest, revision, epoch)
