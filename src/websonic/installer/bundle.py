"""What `websonic deploy` sends to a server: the installer, a signed plan, secrets, credentials.

The bundle travels on the standard input of one ``ssh … sh -s`` call as a small POSIX-sh
program that writes each file (base64, in a private temporary folder), runs the installer on
them and removes them, whatever happens. Secrets and tokens are therefore never on a command
line, in the agency's logs, or left on the server outside the installer's own mode-600 files.
"""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from websonic.core.errors import InvalidInput
from websonic.installer import plan as plans
from websonic.installer.script import installer_text

SECRET_FILES = frozenset({"secrets.env", "auth.json", "token"})


@dataclass(frozen=True)
class Bundle:
    files: Mapping[str, bytes]
    args: Sequence[str] = field(default_factory=tuple)  # installer options, besides --bundle


def make_bundle(
    plan: plans.InstallPlan,
    *,
    sign: object,
    public_pem: bytes,
    secrets: Mapping[str, str],
    pull_user: str,
    pull_token: str,
    ca_pem: bytes = b"",
    updater: tuple[str, str] | None = None,
    args: Sequence[str] = (),
) -> Bundle:
    """The files of a push: ``sign`` is the agency's ``Signer.sign`` (bytes -> base64)."""
    rendered = plans.render(plan)
    script = installer_text().encode("utf-8")
    files = {
        "plan": rendered,
        "plan.sig": _sign(sign, rendered),
        "install.sh": script,
        "install.sh.sig": _sign(sign, script),
        "signing.pub.pem": public_pem,
        "secrets.env": secrets_env(secrets),
        "auth.json": auth_json(plan.registry.address, pull_user, pull_token),
    }
    if ca_pem:
        files["ca.pem"] = ca_pem
    if updater is not None:
        portal, token = updater
        files["remote"] = f"portal={portal}\n".encode()
        files["token"] = f"{token}\n".encode()
    return Bundle(files, tuple(args))


def _sign(sign: object, data: bytes) -> bytes:
    assert callable(sign)
    return (str(sign(data)) + "\n").encode("ascii")


def secrets_env(secrets: Mapping[str, str]) -> bytes:
    """``NAME=value`` lines for podman's --env-file (no line breaks possible in a value)."""
    lines = []
    for name, value in sorted(secrets.items()):
        if any(c in value for c in "\r\n\0"):
            raise InvalidInput(
                f"The secret {name} holds a line break: environment files cannot carry it.",
                hint="Set it again without line breaks (e.g. base64-encode a key file).",
            )
        lines.append(f"{name}={value}\n")
    return "".join(lines).encode("utf-8")


def auth_json(registry: str, user: str, token: str) -> bytes:
    """containers-auth.json for podman pull (the installer also reads the credentials back)."""
    auth = base64.b64encode(f"{user}:{token}".encode()).decode("ascii")
    return (json.dumps({"auths": {registry: {"auth": auth}}}) + "\n").encode("ascii")


def runner_script(bundle: Bundle, site: str) -> bytes:
    """The program sent on ssh's stdin: unpack the bundle privately, run the installer, clean up.

    It is one ``{ … }`` group, which the shell reads whole before it runs any of it: a program
    cut short (a dropped connection) is a syntax error and runs nothing, never the installer
    with part of its options. A file that cannot be written (a full disk) stops it too.
    """
    parts = [
        "{",
        "umask 077",
        "d=$(mktemp -d /tmp/websonic-bundle.XXXXXX) || exit 1",
        "trap 'rm -rf \"$d\"' EXIT",
        "trap 'exit 130' INT TERM HUP",
    ]
    for name, content in sorted(bundle.files.items()):
        encoded = base64.b64encode(content).decode("ascii")
        lines = [encoded[i : i + 76] for i in range(0, len(encoded), 76)]
        parts.append(f"base64 -d >\"$d/{name}\" <<'WEBSONIC_EOF' || exit 1\n" + "\n".join(lines))
        parts.append("WEBSONIC_EOF")
    installer = ["sh", '"$d/install.sh"', "--site", shlex.quote(site), "--bundle", '"$d"']
    installer += [shlex.quote(arg) for arg in bundle.args]
    installer.append("</dev/null")
    parts += [" ".join(installer), "exit $?", "}"]
    return ("\n".join(parts) + "\n").encode("ascii")
