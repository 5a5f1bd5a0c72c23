"""git argv builders and parsers."""

from __future__ import annotations

from pathlib import Path

from websonic.core.runner import Command

#: Never prompt for credentials; fail fast on unreachable hosts.
GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o ConnectTimeout=15",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def ls_remote(url: str) -> Command:
    """Every branch and tag of the repository (to resolve a ref, or to list the known ones)."""
    return Command.of("git", "ls-remote", "--heads", "--tags", "--", url, env=GIT_ENV)


def init(dest: Path) -> Command:
    return Command.of("git", "init", "--quiet", dest, env=GIT_ENV)


def fetch(dest: Path, url: str, ref: str) -> Command:
    return Command.of(
        "git", "-C", dest, "fetch", "--quiet", "--depth", "1", "--", url, ref, env=GIT_ENV
    )


def checkout_fetched(dest: Path) -> Command:
    return Command.of(
        "git", "-C", dest, "checkout", "--quiet", "--detach", "FETCH_HEAD", env=GIT_ENV
    )


def head_info(dest: Path) -> Command:
    return Command.of("git", "-C", dest, "log", "-1", "--format=%H %ct", env=GIT_ENV)


def parse_ls_remote(output: str) -> dict[str, str]:
    """{ref name: commit} from `git ls-remote` output (peeled tags win over tag objects)."""
    refs: dict[str, str] = {}
    for line in output.splitlines():
        sha, _, name = line.partition("\t")
        if name.endswith("^{}"):
            refs[name[:-3]] = sha
        else:
            refs.setdefault(name, sha)
    return refs


def parse_head_info(output: str) -> tuple[str, int]:
    sha, epoch = output.split()
    return sha, int(epoch)
