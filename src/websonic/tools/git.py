"""git argv builders and parsers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from websonic.core.runner import Command

#: Never prompt for credentials; fail fast on unreachable hosts.
GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o ConnectTimeout=15",
    "GIT_CONFIG_NOSYSTEM": "1",
}


#: Answers git's ``get`` with the password in the environment (the only helper: the list of
#: helpers from the user's config is reset by the empty value first).
CREDENTIAL_HELPER = '!f() { test "$1" = get && echo "password=$WEBSONIC_GIT_PASSWORD"; }; f'


@dataclass(frozen=True)
class Password:
    """A git URL's password: given to git through the environment, masked in all output."""

    value: str = field(repr=False)  # decoded
    masked: tuple[str, ...] = field(default=(), repr=False)  # every form to mask

    def env(self) -> dict[str, str]:
        return {
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "credential.helper",
            "GIT_CONFIG_VALUE_0": "",
            "GIT_CONFIG_KEY_1": "credential.helper",
            "GIT_CONFIG_VALUE_1": CREDENTIAL_HELPER,
            "WEBSONIC_GIT_PASSWORD": self.value,
        }


def _git(*argv: object, password: Password | None = None) -> Command:
    if password is None:
        return Command.of("git", *argv, env=GIT_ENV)
    secrets = tuple({password.value, *password.masked} - {""})
    return Command.of("git", *argv, env={**GIT_ENV, **password.env()}, secrets=secrets)


def ls_remote(url: str, password: Password | None = None) -> Command:
    """Every branch and tag of the repository (to resolve a ref, or to list the known ones).

    ``url`` never carries the password: git asks :data:`CREDENTIAL_HELPER` for it."""
    return _git("ls-remote", "--heads", "--tags", "--", url, password=password)


def init(dest: Path) -> Command:
    return Command.of("git", "init", "--quiet", dest, env=GIT_ENV)


def fetch(dest: Path, url: str, ref: str, password: Password | None = None) -> Command:
    return _git("-C", dest, "fetch", "--quiet", "--depth", "1", "--", url, ref, password=password)


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
