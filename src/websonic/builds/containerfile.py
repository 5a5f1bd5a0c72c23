"""What a site's own Containerfile may build from (pure; no I/O).

A ``containerfile`` site is attacker input: every image it names — ``FROM``, ``COPY --from``,
``RUN --mount=…,from=`` (also inside ``ONBUILD``) — must be one of

- a stage of the same file (its ``AS`` alias, or its number),
- a WebSonic base image by digest (``FROM sha256:<64 hex>``),
- this site's own build images (``localhost/websonic/build/<customer>/<site>[:tag]``),
- ``scratch``.

Anything else is refused before buildah runs: a short image ID, a name buildah would resolve
locally (``websonic/build/…``), another customer's image. ``FROM`` names may use global ``ARG``
defaults; ``--from``/``from=`` values must be written out. The file is read the way buildah reads
it: parser directives (``# escape=``), line continuations, comments inside continuations.
``ADD`` of a URL is refused (buildah fetches it from the build host, network or not), and so are
``RUN`` flags other than ``--mount`` and cache mounts (shared between every build on the host).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from websonic.core.errors import BuildFailed

BUILD_PREFIX = "localhost/websonic/build/"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
STAGE_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIRECTIVE = re.compile(r"^#\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(.*?)\s*$")
ESCAPE = re.compile(r"^#[ \t]*escape[ \t]*=[ \t]*(.*?)\s*$", re.IGNORECASE)
VARIABLE = re.compile(
    r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))"
)
_KEYWORDS = (
    "FROM RUN CMD LABEL MAINTAINER EXPOSE ENV ADD COPY ENTRYPOINT VOLUME USER WORKDIR ARG "
    "ONBUILD STOPSIGNAL HEALTHCHECK SHELL"
)
INSTRUCTIONS = frozenset(_KEYWORDS.split())
#: Set by buildah itself: a name built from them cannot be known before the build.
_PREDEFINED = (
    "TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDOS BUILDARCH "
    "BUILDVARIANT HTTP_PROXY HTTPS_PROXY FTP_PROXY NO_PROXY ALL_PROXY"
)
PREDEFINED_ARGS = frozenset(_PREDEFINED.split())
FLAGS = {
    "FROM": {"--platform"},
    "COPY": {"--from", "--chown", "--chmod"},
    "ADD": {"--chown", "--chmod"},
    "RUN": {"--mount"},
}
MOUNT_TYPES = ("bind", "tmpfs")


@dataclass(frozen=True)
class Instruction:
    line: int  # where it starts in the file (1-based)
    keyword: str  # upper case
    rest: str  # everything after the keyword, continuations joined


@dataclass(frozen=True)
class Policy:
    """What this site's build may start from."""

    repository: str  # CUSTOMER/SITE
    bases: frozenset[str]  # the agency's base image digests (sha256:…)

    @property
    def own_image(self) -> str:
        return f"{BUILD_PREFIX}{self.repository}"

    def allowed(self) -> str:
        return (
            "a stage of this Containerfile, a WebSonic base image by digest (FROM sha256:…, "
            f"see `websonic base list`), {self.own_image}[:TAG] or scratch"
        )


@dataclass
class _Stages:
    names: list[str] = field(default_factory=list)  # stage names ("" when none)

    def has(self, ref: str) -> bool:
        if ref.isdigit():
            return int(ref) < len(self.names)
        return bool(ref) and ref in self.names


def instructions(text: str) -> list[Instruction]:
    """The logical instructions of a Containerfile, as buildah splits them."""
    lines = text.removeprefix("\ufeff").splitlines()
    escape, start = _directives(lines)
    found: list[Instruction] = []
    parts: list[str] = []
    first = 0
    for number, raw in enumerate(lines[start:], start + 1):
        stripped = raw.strip()
        if not parts and (not stripped or stripped.startswith("#")):
            continue
        if parts and (not stripped or stripped.startswith("#")):
            continue  # comments and blank lines inside a continuation are dropped
        if not parts:
            first = number
        body = raw.rstrip()
        if body.endswith(escape):
            parts.append(body[: -len(escape)])
            continue
        parts.append(body)
        found.append(_instruction(first, " ".join(p.strip() for p in parts)))
        parts = []
    if parts:
        found.append(_instruction(first, " ".join(p.strip() for p in parts)))
    return found


def _directives(lines: list[str]) -> tuple[str, int]:
    """The escape character, and the line where parser directives end.

    buildah 1.28 (imagebuilder's parser) honours ``# escape=`` only in the first lines, before
    any other; newer parsers also after other directives (``# syntax=``). A file where the two
    would differ is refused: a line continued for one and not for the other would hide an
    instruction from this check."""
    ours, end = _leading_escape(lines, others_allowed=False)
    newer, _end = _leading_escape(lines, others_allowed=True)
    if ours != newer:
        raise _refused(1, "put the escape directive on the first line, before any comment")
    return ours, end


def _leading_escape(lines: list[str], *, others_allowed: bool) -> tuple[str, int]:
    escape, seen = "\\", False
    for index, line in enumerate(lines):
        match = ESCAPE.match(line.strip())
        if match and seen:
            raise _refused(index + 1, "only one escape directive may be given")
        if match:
            if match.group(1) not in ("\\", "`"):
                raise _refused(index + 1, f"escape character {match.group(1)!r} is not \\ or `")
            escape, seen = match.group(1), True
        elif not (others_allowed and _known_directive(line.strip())):
            return escape, index
    return escape, len(lines)


def _known_directive(line: str) -> bool:
    match = DIRECTIVE.match(line)
    return match is not None and match.group(1).lower() in ("syntax", "check")


def _instruction(line: int, text: str) -> Instruction:
    keyword, *rest_of = re.split(r"\s+", text.strip(), maxsplit=1)
    keyword, rest = keyword.upper(), rest_of[0] if rest_of else ""
    if keyword not in INSTRUCTIONS:
        raise _refused(line, f"{keyword!r} is not a Containerfile instruction")
    return Instruction(line, keyword, rest.strip())


def check(text: str, policy: Policy) -> None:
    """Refuse (BuildFailed) a Containerfile that names an image outside ``policy``."""
    stages = _Stages()
    args: dict[str, str] = {}  # global ARG defaults (before the first FROM)
    for item in instructions(text):
        if item.keyword == "ARG" and not stages.names:
            args.update(_arg_defaults(item))
        elif item.keyword == "FROM":
            stages.names.append(_check_from(item, policy, stages, args))
        elif item.keyword == "ONBUILD":
            _check_onbuild(item, policy)
        else:
            _check_step(item, policy, stages)
    if not stages.names:
        raise _refused(1, "there is no FROM instruction")


def _check_onbuild(item: Instruction, policy: Policy) -> None:
    inner = _instruction(item.line, item.rest)
    if inner.keyword in ("FROM", "ONBUILD"):
        raise _refused(item.line, f"ONBUILD {inner.keyword} is not allowed")
    _check_step(inner, policy, _Stages())


def _check_step(item: Instruction, policy: Policy, stages: _Stages) -> None:
    if item.keyword not in FLAGS:
        return
    flags, words = _flags(item)
    for name, value in flags:
        if name == "--from":
            _check_image(item, value, policy, stages, "COPY --from")
        elif name == "--mount":
            _check_mount(item, value, policy, stages)
    if item.keyword == "ADD":
        _check_add_sources(item, words)


def _check_from(item: Instruction, policy: Policy, stages: _Stages, args: dict[str, str]) -> str:
    _flags_checked, words = _flags(item)
    if len(words) not in (1, 3) or (len(words) == 3 and words[1].upper() != "AS"):
        raise _refused(item.line, "FROM takes an image and optionally AS NAME")
    image = _substitute(item, words[0], args)
    _check_image(item, image, policy, stages, "FROM")
    if len(words) == 3 and not STAGE_NAME.match(words[2]):
        raise _refused(item.line, f"stage name {words[2]!r}: use a-z, 0-9, '-', '_', '.'")
    return words[2] if len(words) == 3 else ""


def _check_image(
    item: Instruction, image: str, policy: Policy, stages: _Stages, where: str
) -> None:
    if "$" in image:
        raise _refused(item.line, f"{where} {image}: write the image out, without $VARIABLES")
    if stages.has(image) or image == "scratch":
        return
    if DIGEST.match(image) and image in policy.bases:
        return
    own = policy.own_image
    if image == own or (image.startswith(own + ":") and TAG.match(image[len(own) + 1 :])):
        return
    raise BuildFailed(
        f"Containerfile line {item.line}: {where} {image} is not allowed.",
        hint=f"A build may start from or copy out of: {policy.allowed()}.",
    )


def _check_mount(item: Instruction, value: str, policy: Policy, stages: _Stages) -> None:
    options = dict(_option(part) for part in value.split(",") if part)
    kind = options.get("type", "bind")
    if kind not in MOUNT_TYPES:
        raise _refused(
            item.line, f"RUN --mount type={kind} is not allowed (only {', '.join(MOUNT_TYPES)})"
        )
    if "from" in options:
        _check_image(item, options["from"], policy, stages, "RUN --mount from=")


def _option(part: str) -> tuple[str, str]:
    key, _, value = part.partition("=")
    return key.strip().lower(), value.strip()


def _check_add_sources(item: Instruction, words: list[str]) -> None:
    for source in words[:-1]:
        if "://" in source or source.startswith("git@") or "$" in source:
            raise _refused(
                item.line,
                f"ADD {source}: only files of the source may be added "
                "(fetch downloads in a RUN step, with [build] network = true)",
            )


def _flags(item: Instruction) -> tuple[list[tuple[str, str]], list[str]]:
    """The ``--name=value`` flags before the arguments, and the arguments (JSON form too)."""
    words = item.rest.split()
    flags = []
    while words and words[0].startswith("--"):
        name, equals, value = words.pop(0).partition("=")
        allowed = FLAGS.get(item.keyword, set())
        if name.lower() not in allowed or not equals:
            known = ", ".join(sorted(f"{f}=…" for f in allowed)) or "none"
            raise _refused(item.line, f"{item.keyword} {name} is not allowed (allowed: {known})")
        flags.append((name.lower(), _unquoted(item, value)))
    rest = " ".join(words)
    if rest.startswith("["):
        try:
            array = json.loads(rest)
        except ValueError:
            array = None
        if isinstance(array, list) and all(isinstance(w, str) for w in array):
            return flags, array
    return flags, words


def _unquoted(item: Instruction, value: str) -> str:
    if any(c in value for c in "\"'\\`"):
        raise _refused(item.line, f"{value}: write flag values without quotes or escapes")
    return value


def _arg_defaults(item: Instruction) -> Iterator[tuple[str, str]]:
    for word in item.rest.split():
        name, _equals, value = word.partition("=")
        if name not in PREDEFINED_ARGS:  # no default: empty (WebSonic passes no --build-arg)
            yield name, value  # a quote or a $ in it is refused where it is used


def _substitute(item: Instruction, word: str, args: dict[str, str]) -> str:
    """``$NAME``, ``${NAME}``, ``${NAME:-default}``, ``${NAME:+alternative}`` from ``args``."""
    _unquoted(item, word)

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(4)
        if name not in args:
            raise _refused(
                item.line, f"FROM {word}: ${name} has no default in a global ARG of this file"
            )
        current, modifier, other = args[name], match.group(2), match.group(3) or ""
        if modifier == ":-":
            return current or other
        if modifier == ":+":
            return other if current else ""
        return current

    result = VARIABLE.sub(value, word)
    if any(c in result for c in "$\"'\\`"):
        raise _refused(item.line, f"FROM {word}: write the image out, or use a global ARG")
    return result


def _refused(line: int, why: str) -> BuildFailed:
    return BuildFailed(
        f"Containerfile line {line}: {why}.",
        hint="See docs/builds.md (what a Containerfile may use).",
    )
