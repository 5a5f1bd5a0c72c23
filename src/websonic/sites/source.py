"""A site's source: a local folder, or a git repository at a ref.

``SOURCE#REF`` names a git repository (a URL, or a local path to a repository) at a branch, tag
or commit; a plain path is a folder. Folders have no commit time, so their build epoch is a fixed
recorded value (default 1980-01-01, as zip and Nix do): the same files give the same image on
any machine, and editing a page does not change the epoch (so dependency layers are reused).

A git URL may carry a password (``https://user:secret@host/repo.git``). It never leaves this
module in the clear: a :class:`SourceSpec` keeps it apart from its location and shows
``https://user:***@host/…``; the state database keeps it sealed with the secrets box; git gets
it from a credential helper reading the environment (never in argv), and the runner masks it.

A symbolic link in a source that points outside it is refused: the build host would read the
file it points to (as far as the state folder's ``keys/``).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from websonic.core.errors import SourceError, ToolFailed
from websonic.core.runner import Runner
from websonic.core.secretbox import SecretBox
from websonic.tools import git

DEFAULT_FOLDER_EPOCH = 315532800  # 1980-01-01T00:00:00Z
URL_LIKE = re.compile(r"^(https?|ssh|git|file)://|^[\w.-]+@[\w.-]+:")
HEX_SHA = re.compile(r"^[0-9a-f]{7,40}$")
IGNORED = (".git", "node_modules", "__pycache__", ".venv", "*.pyc", ".DS_Store")
SEALED = "sealed."  # a stored password: SecretBox ciphertext (URL-safe base64)
SHOWN = "***"


@dataclass(frozen=True)
class SourceSpec:
    location: str  # absolute folder path, or git URL / repository path (without its password)
    ref: str | None  # None for folders
    password: str | None = field(default=None, repr=False)  # a git URL's, as written in it

    @property
    def is_git(self) -> bool:
        return self.ref is not None

    @property
    def shown(self) -> str:
        """The location as users, logs and errors see it: ``https://user:***@host/…``."""
        return self.location if self.password is None else _with_password(self.location, SHOWN)

    @property
    def secrets(self) -> tuple[str, ...]:
        """What the runner masks in a tool's output: the password as written and decoded."""
        return tuple({self.password, unquote(self.password)} - {""}) if self.password else ()

    def __str__(self) -> str:
        return f"{self.shown}#{self.ref}" if self.ref else self.shown

    def stored(self, box: SecretBox) -> str:
        """The location for the state database: the password sealed with the secrets box."""
        if self.password is None:
            return self.location
        return _with_password(self.location, SEALED + box.seal(self.password).decode("ascii"))


def _split_url(location: str) -> tuple[str, str | None, str] | None:
    """``(scheme://user, password or None, @host/path)`` of a URL with a user, else None."""
    scheme, sep, rest = location.partition("://")
    if not sep:
        return None
    end = min([i for i in (rest.find(c) for c in "/?#") if i >= 0] or [len(rest)])
    userinfo, at, host = rest[:end].rpartition("@")
    if not at:
        return None
    user, colon, password = userinfo.partition(":")
    return f"{scheme}://{user}", password if colon else None, f"@{host}{rest[end:]}"


def _with_password(location: str, password: str) -> str:
    parts = _split_url(location)
    return location if parts is None else f"{parts[0]}:{password}{parts[2]}"


def _without_password(location: str) -> tuple[str, str | None]:
    parts = _split_url(location)
    if parts is None or parts[1] is None:
        return location, None
    return parts[0] + parts[2], parts[1]


def shown(location: str) -> str:
    """Any stored or given location with its password (plain or sealed) shown as ``***``."""
    parts = _split_url(location)
    return location if parts is None or parts[1] is None else _with_password(location, SHOWN)


def from_stored(location: str, ref: str | None, box: SecretBox) -> SourceSpec:
    """The spec of a site's stored source (its password unsealed, if it has one)."""
    bare, password = _without_password(location)
    if password is not None and password.startswith(SEALED):
        password = box.open(password.removeprefix(SEALED).encode("ascii"))
    return SourceSpec(bare, ref, password)


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
        bare, password = _without_password(location)
        return SourceSpec(bare, ref or "HEAD", password)
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
        result = runner.run(git.ls_remote(spec.location, _password(spec)), timeout=60)
    except ToolFailed as exc:
        raise SourceError(
            f"Cannot reach the git repository {spec.shown}.",
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
        f"The git repository {spec.shown} has no branch or tag {spec.ref!r}.",
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
    refuse_links_outside(dest)
    _readable_by_all(dest)
    return snap


def refuse_links_outside(root: Path) -> None:
    """Refuse a symbolic link under ``root`` whose target resolves outside it.

    Relative links to files and folders inside (even dangling ones) are fine."""
    top = root.resolve()
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            link = Path(folder) / name
            if link.is_symlink() and not Path(os.path.realpath(link)).is_relative_to(top):
                relative = link.relative_to(root).as_posix()
                raise SourceError(
                    f"The source has a symbolic link pointing outside it: {relative} -> "
                    f"{os.readlink(link)}.",
                    hint="Copy the file into the source, or make the link relative to a file "
                    "inside it.",
                )


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
        runner.run(git.fetch(dest, spec.location, spec.ref, _password(spec)), timeout=600)
    except ToolFailed as exc:
        raise SourceError(
            f"Cannot fetch {spec.ref!r} from {spec.shown}.",
            hint=f"git said: {exc.stderr.strip()[-300:]}",
        ) from exc
    runner.run(git.checkout_fetched(dest))
    revision, epoch = git.parse_head_info(runner.run(git.head_info(dest)).stdout)
    shutil.rmtree(dest / ".git")
    return Snapshot(dest, revision, epoch)


def _password(spec: SourceSpec) -> git.Password | None:
    if spec.password is None:
        return None
    return git.Password(unquote(spec.password), spec.secrets)
