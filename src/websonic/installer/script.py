"""The installer script (``install.sh``, shipped with WebSonic) and its portal-served form.

The portal serves the script with a few values filled in (portal URL, site, the one-time install
code the customer fetched it with, the agency's public signing key, a private CA if any) so that
``curl -fsSL -H 'Authorization: Bearer CODE' https://PORTAL/install/acme/shop | sudo sh`` needs
nothing else. Every value is checked against a strict pattern before it is put between single
quotes.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from importlib import resources

from websonic.core.errors import InvalidInput

SCRIPT_NAME = "install.sh"
SAFE_VALUE = re.compile(r"[A-Za-z0-9:/._@+=%~-]*")  # fullmatch: `$` would let a final \n in


def installer_text() -> str:
    """The installer as shipped (no values filled in): what pushes and the updater run."""
    return resources.files("websonic.installer").joinpath(SCRIPT_NAME).read_text("utf-8")


def installer_definitions() -> str:
    """The installer's definitions without its run: the last line (``main "$@"; }``) becomes
    the ``}`` that closes the script's brace group, for a shell that sources it (tests)."""
    return installer_text().rstrip("\n").rsplit("\n", 1)[0] + "\n}\n"


@dataclass(frozen=True)
class PortalValues:
    portal: str  # https://websonic.example
    site: str  # CUSTOMER/SITE
    code: str  # the one-time install code the script was fetched with
    signing_key_pem: bytes
    ca_pem: bytes = b""


def portal_script(values: PortalValues) -> str:
    """The installer with the portal's values filled in."""
    text = installer_text()
    for name, value in _assignments(values).items():
        line = f"{name}=''"
        if line not in text:
            raise AssertionError(f"{SCRIPT_NAME} lost its {name} line")
        text = text.replace(line, f"{name}='{_checked(name, value)}'", 1)
    return text


def _assignments(values: PortalValues) -> dict[str, str]:
    return {
        "WS_PORTAL": values.portal.rstrip("/"),
        "WS_SITE": values.site,
        "WS_CODE": values.code,
        "WS_SIGNING_KEY_B64": base64.b64encode(values.signing_key_pem).decode("ascii"),
        "WS_PORTAL_CA_B64": base64.b64encode(values.ca_pem).decode("ascii"),
    }


def _checked(name: str, value: str) -> str:
    if not SAFE_VALUE.fullmatch(value):
        raise InvalidInput(f"{name} holds characters the installer cannot carry: {value!r}")
    return value
