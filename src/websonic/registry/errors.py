"""Registry errors: the distribution spec's error codes, each with its HTTP status."""

from __future__ import annotations

from typing import Any

NAME_INVALID = "NAME_INVALID"
NAME_UNKNOWN = "NAME_UNKNOWN"
MANIFEST_UNKNOWN = "MANIFEST_UNKNOWN"
BLOB_UNKNOWN = "BLOB_UNKNOWN"
DIGEST_INVALID = "DIGEST_INVALID"
UNAUTHORIZED = "UNAUTHORIZED"
DENIED = "DENIED"
UNSUPPORTED = "UNSUPPORTED"

MESSAGES = {
    NAME_INVALID: "invalid repository name",
    NAME_UNKNOWN: "repository name not known to registry",
    MANIFEST_UNKNOWN: "manifest unknown to registry",
    BLOB_UNKNOWN: "blob unknown to registry",
    DIGEST_INVALID: "provided digest did not match content",
    UNAUTHORIZED: "authentication required",
    DENIED: "requested access to the resource is denied",
    UNSUPPORTED: "the operation is unsupported",
}


class RegistryError(Exception):
    """An answer of the registry in the spec's ``{"errors": [...]}`` form."""

    def __init__(self, status: int, code: str, detail: Any = None, message: str = "") -> None:
        super().__init__(f"{code}: {message or MESSAGES[code]}")
        self.status = status
        self.code = code
        self.message = message or MESSAGES[code]
        self.detail = detail

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        return {"errors": [error]}


def name_unknown(name: str) -> RegistryError:
    """The one answer for a repository that does not exist *or* that the caller may not see."""
    return RegistryError(404, NAME_UNKNOWN, {"name": name})


def unauthorized(message: str = "") -> RegistryError:
    return RegistryError(401, UNAUTHORIZED, message=message)


class IntegrityError(RegistryError):
    """A stored blob whose bytes no longer match its digest: refused, never served."""

    def __init__(self, digest: str) -> None:
        super().__init__(
            500,
            DIGEST_INVALID,
            {"digest": digest},
            "stored content does not match its digest; refused (reported to the operators)",
        )
        self.digest = digest
