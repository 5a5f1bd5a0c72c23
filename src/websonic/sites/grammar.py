"""The one grammar of every site value that reaches a customer's server.

A manifest is customer input, and its values end up in an install plan, then in the
installer's files and systemd units on a server where podman runs as root. Each value is held
to the grammar below three times: when the manifest is read (``sites.manifest``), when the
plan is made (``installer.plan``), and by ``install.sh`` itself before it uses the plan
(``check_plan_values``). The patterns are written so that Python's ``re.fullmatch`` and POSIX
``grep -Ex`` read them the same way; ``install.sh`` carries the same text (a test compares).

Each check returns the value when it is good and raises :class:`GrammarError` (a
``ValueError``, so pydantic reports it against the key) with a message saying what is allowed.
"""

from __future__ import annotations

import re

#: Volume names: the folder under the site's data dir on the server.
VOLUME_NAME = r"[a-z0-9][a-z0-9-]{0,62}"
#: Absolute paths: '/'-separated segments of letters, digits, '.', '_', '-', none starting
#: with '.' (so no '.', '..' or hidden folder); no '//', no trailing '/', no ':' or space.
PATH = r"(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127})+"
PATH_MAX = 255
#: Folders a volume may not be mounted on or under: the system, the kernel's views and what
#: podman manages (/etc/hosts, /run/secrets…), and the site's own code (``/srv/site``, which
#: builds/kinds.py also refuses for the kinds it builds).
SYSTEM_FOLDERS: tuple[str, ...] = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64")
SYSTEM_FOLDERS += ("/libx32", "/proc", "/run", "/sbin", "/sys", "/usr", "/var/lock", "/var/run")
SITE_CODE = "/srv/site"
#: Environment variable names (and the names of secrets).
ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,127}"
#: An environment value may hold anything but control characters (line breaks, NUL, ESC…).
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: The health path: an absolute URL path, optionally a query, without spaces, quotes, '$',
#: '#', or curl's globbing characters ('[', ']', '{', '}').
HEALTH = r"/[A-Za-z0-9._~/%-]{0,200}(\?[A-Za-z0-9._~=&%-]{0,200})?"
#: Ports a site may listen on inside its container: it runs as a non-root user without
#: capabilities, so not below 1024.
PORT_MIN, PORT_MAX = 1024, 65535
#: Domain names (lowercase, as normalised before they are checked).
DOMAIN = r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,63}|xn--[a-z0-9-]{1,59})"
DOMAIN_MAX = 253
#: Database and database user names.
IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]{0,62}"
#: An image's manifest digest.
DIGEST = r"sha256:[0-9a-f]{64}"
#: ``host[:port]`` of the registry: a DNS name, an IPv4 address or a bracketed IPv6 one.
HOST_PORT = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?"
#: An ACME contact address (it lands in a Caddyfile: no braces, quotes or spaces).
EMAIL = r"[A-Za-z0-9._%+-]{1,64}@([A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,63}"


class GrammarError(ValueError):
    """A value outside the grammar; the message says what is allowed."""


def _full(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None


def volume_name(value: str) -> str:
    if not _full(VOLUME_NAME, value):
        raise GrammarError(
            f"{value!r} is not a volume name: 1 to 63 lowercase letters, digits and '-', "
            "starting with a letter or digit (e.g. 'uploads')"
        )
    return value


def absolute_path(value: str) -> str:
    """An absolute path that is one argument everywhere (systemd, podman -v, sh)."""
    if len(value) > PATH_MAX or not _full(PATH, value):
        raise GrammarError(
            f"{value!r} is not an absolute path WebSonic accepts: '/'-separated folder names "
            "of letters, digits, '.', '_' and '-' (none starting with '.'), without '//', "
            f"spaces, ':' or a trailing '/', at most {PATH_MAX} characters"
        )
    return value


def volume_path(value: str) -> str:
    """Where a volume is mounted in the site's container: not on the system or the code."""
    absolute_path(value)
    system = [folder for folder in SYSTEM_FOLDERS if nested(value, folder)]
    if system or value == SITE_CODE:
        what = f"the system (a volume on or under {system[0]})" if system else "the site's code"
        raise GrammarError(
            f"{value!r} would hide {what}: use a folder of its own (e.g. {SITE_CODE}/uploads)"
        )
    return value


def nested(first: str, second: str) -> bool:
    """Whether one of two paths is the other or inside it (a mount over a mount)."""
    return first == second or first.startswith(second + "/") or second.startswith(first + "/")


def env_name(value: str) -> str:
    if not _full(ENV_NAME, value):
        raise GrammarError(
            f"{value!r} is not a valid environment variable name (letters, digits and '_', "
            "not starting with a digit, at most 128 characters)"
        )
    return value


def env_value(name: str, value: str) -> str:
    if CONTROL.search(value):
        raise GrammarError(
            f"env {name} holds a line break or another control character: environment files "
            "on the server cannot carry it"
        )
    return value


def health_path(value: str) -> str:
    if not _full(HEALTH, value):
        raise GrammarError(
            f"{value!r} is not a health path: a URL path starting with '/' (e.g. '/healthz'), "
            "of letters, digits and . _ ~ / % -, optionally ?query with = and &; no spaces, "
            "quotes, '$', '#', brackets or braces"
        )
    return value


def port(value: int) -> int:
    if not PORT_MIN <= value <= PORT_MAX:
        raise GrammarError(
            f"{value} is not a port the site can listen on: {PORT_MIN} to {PORT_MAX} (the site "
            "runs as a non-root user; the server's reverse proxy serves ports 80 and 443)"
        )
    return value


def domain(value: str) -> str:
    if len(value) > DOMAIN_MAX or not _full(DOMAIN, value):
        raise GrammarError(
            f"{value!r} is not a domain name: lowercase labels of letters, digits and '-', "
            "separated by dots, ending in a top-level domain (e.g. shop.example.com)"
        )
    return value


def identifier(value: str) -> str:
    if not _full(IDENTIFIER, value):
        raise GrammarError(
            f"{value!r} is not a valid database identifier "
            "(1 to 63 letters, digits or _, not starting with a digit)"
        )
    return value


def digest(value: str) -> str:
    if not _full(DIGEST, value):
        raise GrammarError(f"{value!r} is not an image digest (sha256:<64 hex digits>)")
    return value


def host_port(value: str) -> str:
    match = re.fullmatch(HOST_PORT, value)
    if match is None or int((match.group(3) or ":0")[1:]) > PORT_MAX:
        raise GrammarError(f"{value!r} is not host[:port]")
    return value


def email(value: str) -> str:
    if not _full(EMAIL, value):
        raise GrammarError(f"{value!r} is not an e-mail address")
    return value
