"""The domain error tree. Messages say what went wrong and what the user can do about it."""

from __future__ import annotations


class WebsonicError(Exception):
    """Base of every error a user may see. ``exit_code`` is what the CLI exits with."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message


class InvalidInput(WebsonicError):
    """A wrong argument, slug, URL or file content."""

    exit_code = 2


class NotFound(WebsonicError):
    """An unknown customer, site, release, host or job."""

    exit_code = 3


class AlreadyExists(WebsonicError):
    """A duplicate slug or name."""

    exit_code = 4


class NotInitialised(WebsonicError):
    """The state folder has not been made by ``websonic init``."""

    exit_code = 5


class ToolMissing(WebsonicError):
    """An external tool (podman, buildah, git…) is not installed."""

    exit_code = 6


class ToolFailed(WebsonicError):
    """An external tool exited non-zero; carries its (masked) stderr."""

    exit_code = 7

    def __init__(self, message: str, *, returncode: int, stderr: str, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.returncode = returncode
        self.stderr = stderr

    def __str__(self) -> str:
        tail = "\n".join(self.stderr.strip().splitlines()[-15:])
        text = f"{self.message} (exit {self.returncode})"
        if tail:
            text += f":\n{tail}"
        return f"{text}\n{self.hint}" if self.hint else text


class SourceError(WebsonicError):
    """A site's source cannot be read: missing folder, unreachable git URL, unknown ref."""

    exit_code = 8


class BuildFailed(WebsonicError):
    """A build did not produce a release."""

    exit_code = 9


class VerificationFailed(WebsonicError):
    """A digest, signature or SBOM does not match what was recorded."""

    exit_code = 10


class PermissionDenied(WebsonicError):
    """The caller may not do this (or see this)."""

    exit_code = 11


class ConnectionFailed(WebsonicError):
    """A server could not be reached or refused the login."""

    exit_code = 12


class HostKeyChanged(ConnectionFailed):
    """The server shows another host key than the one pinned: refused until re-trusted."""

    exit_code = 13


class DeployFailed(WebsonicError):
    """A deployment did not leave the new release serving (the old one may still serve)."""

    exit_code = 14


class MigrationFailed(WebsonicError):
    """A migration was refused (a blocker) or did not finish; the source is left as it was."""

    exit_code = 15
