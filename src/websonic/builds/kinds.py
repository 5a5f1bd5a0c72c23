"""The Containerfile of a site, per kind (pure; no I/O except :func:`scan_source`).

Layer order is chosen for fast, reproducible rebuilds: the dependency files alone
(requirements.txt, package.json + lock, composer.json + lock) are copied and installed first,
the site's own files last, so editing a page rebuilds only the last layers. Every RUN step cleans
its caches and writes no byte-code, so two builds of the same source give the same layers.

Secrets never appear here: only ``manifest.plain_env`` becomes ENV; secret values are given to
the container when it starts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from websonic.core.errors import InvalidInput
from websonic.sites.manifest import Manifest
from websonic.tools.buildah import quote_value
from websonic.tools.mmdebstrap import SITE_UID

SITE_DIR = "/srv/site"
VENV = "/opt/venv"
USER = f"{SITE_UID}:{SITE_UID}"
SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"
#: Empties the temporary folders (dot files too) at the end of a RUN step.
CLEAN_TMP = "find /tmp /var/tmp -mindepth 1 -delete"

#: Dependency files per kind, in the order they are copied (only those present are copied).
DEPENDENCY_FILES: dict[str, tuple[str, ...]] = {
    "static": (),
    "php": ("composer.json", "composer.lock"),
    "python": ("requirements.txt",),
    "node": ("package.json", "package-lock.json", "npm-shrinkwrap.json"),
    "containerfile": (),
}

#: Never staged into the build context (the pipeline applies these when copying the source).
#: ``websonic.toml`` is kept on purpose: the image carries the manifest it was built from.
EXCLUDES: tuple[str, ...] = (
    ".git",
    ".hg",
    ".svn",
    ".gitignore",
    ".gitattributes",
    ".containerignore",
    ".dockerignore",
    "node_modules",
    "__pycache__",
    "*.pyc",
    "*.pyo",
    ".venv",
    "venv",
    ".env",
    ".env.*",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".tox",
    ".DS_Store",
    "Thumbs.db",
    "*.swp",
    "*~",
)


def dependency_files(kind: str) -> list[str]:
    """The files of a ``kind`` site that are copied (and installed) before the rest."""
    if kind not in DEPENDENCY_FILES:
        raise InvalidInput(f"Unknown site kind {kind!r}.")
    return list(DEPENDENCY_FILES[kind])


def excludes() -> list[str]:
    """Glob patterns (matched against each path component) never copied into the context."""
    return list(EXCLUDES)


def is_excluded(relative_path: str, patterns: Collection[str] = EXCLUDES) -> bool:
    """Whether a source path (relative, POSIX) falls under an exclusion pattern."""
    parts = PurePosixPath(relative_path).parts
    return any(PurePosixPath(part).match(pattern) for part in parts for pattern in patterns)


@dataclass(frozen=True)
class SourceFacts:
    """What the renderer needs to know about a site's source, beyond its manifest.

    ``files``: names of the files at the top of the source (at least the dependency files).
    ``requirements``: the text of requirements.txt (to pick a default start command).
    ``package_json``: the text of package.json (for its ``start`` script).
    """

    files: frozenset[str] = field(default_factory=frozenset)
    requirements: str = ""
    package_json: str = ""

    def has(self, name: str) -> bool:
        return name in self.files


def scan_source(source_dir: Path) -> SourceFacts:
    """Read the facts the renderer needs from a staged source folder."""
    names = frozenset(p.name for p in source_dir.iterdir())

    def text(name: str) -> str:
        path = source_dir / name
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""

    return SourceFacts(
        files=names, requirements=text("requirements.txt"), package_json=text("package.json")
    )


def render_containerfile(
    manifest: Manifest,
    base_image: str,
    *,
    facts: SourceFacts | Collection[str] = SourceFacts(),
    labels: Mapping[str, str] | None = None,
) -> str | None:
    """The Containerfile text of a site, built with the site's (staged) source as context.

    Returns None for the ``containerfile`` kind: the site's own ``manifest.site.containerfile``
    is used as it is. ``facts`` may be a plain set of top-level file names.
    ``labels`` are added to the image (e.g. title, source, revision; nothing that varies
    between two builds of the same source).
    """
    if not isinstance(facts, SourceFacts):
        facts = SourceFacts(files=frozenset(facts))
    kind = manifest.kind
    if kind == "containerfile":
        return None
    if kind not in ("static", "php", "python", "node"):
        raise InvalidInput(f"Unknown site kind {kind!r}.")
    port = manifest.site.port
    if kind in ("static", "php") and port < 1024:
        raise InvalidInput(
            f"site.port = {port}: the site runs as a non-root user and cannot listen below 1024.",
            hint="Use 8080 (the default); the reverse proxy on the host serves ports 80/443.",
        )
    _check_volumes(manifest)

    lines: list[str] = [
        f"# Generated by WebSonic for a {kind} site. Do not edit: change websonic.toml.",
        f"FROM {base_image}",
    ]
    all_labels = {
        "org.opencontainers.image.base.name": base_image,
        "io.websonic.kind": kind,
        **(labels or {}),
    }
    lines.append(
        "LABEL "
        + " \\\n      ".join(f"{k}={quote_value(v)}" for k, v in sorted(all_labels.items()))
    )
    env = {**_kind_env(manifest), **manifest.plain_env}
    lines.append(_env_line(env))
    lines.append(f"WORKDIR {SITE_DIR}")

    deps = _dependency_steps(manifest, facts)
    lines += deps
    lines.append(f"COPY . {SITE_DIR}/")
    lines += _after_copy_steps(manifest, facts)
    if manifest.volumes:
        paths = " ".join(_sh_quote(v.path) for v in manifest.volumes)
        lines.append(f"RUN mkdir -p {paths} && chown {USER} {paths} && chmod 0750 {paths}")
    lines.append(f"USER {USER}")
    lines.append(f"EXPOSE {port}")
    lines.append(f"CMD {json.dumps(start_command(manifest, facts))}")
    return "\n".join(lines) + "\n"


def _check_volumes(manifest: Manifest) -> None:
    for volume in manifest.volumes:
        path = PurePosixPath(volume.path)
        if path in (PurePosixPath("/"), PurePosixPath(SITE_DIR)) or path.parts[1:2] in (
            ("usr",),
            ("etc",),
            ("bin",),
            ("lib",),
            ("opt",),
        ):
            raise InvalidInput(
                f"volumes.{volume.name}: {volume.path} would hide the site or the system.",
                hint=f"Use a folder of its own, e.g. {SITE_DIR}/{volume.name}.",
            )


def _kind_env(manifest: Manifest) -> dict[str, str]:
    port = str(manifest.site.port)
    root = _served_root(manifest)
    # Paths inside the container: the site user may write only /tmp and its volumes.
    common = {"PORT": port, "HOME": "/tmp"}  # noqa: S108
    if manifest.kind == "static":
        caddy = "/tmp/caddy"  # noqa: S108
        return {**common, "XDG_CONFIG_HOME": caddy, "XDG_DATA_HOME": caddy}
    if manifest.kind == "php":
        return {**common, "WEBSONIC_PORT": port, "WEBSONIC_DOCROOT": root}
    if manifest.kind == "python":
        return {
            **common,
            "PATH": f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "VIRTUAL_ENV": VENV,
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    if manifest.kind == "node":
        return {**common, "NODE_ENV": "production"}
    return common


def _served_root(manifest: Manifest) -> str:
    return str(PurePosixPath(SITE_DIR) / manifest.site.root)


def _dependency_steps(manifest: Manifest, facts: SourceFacts) -> list[str]:
    kind = manifest.kind
    present = [f for f in DEPENDENCY_FILES[kind] if facts.has(f)]
    if kind == "python":
        steps = [
            # A venv without byte-code and without pip's cache: the layer is the same every time.
            f"RUN python3 -m venv {VENV} && {_clean_pyc(VENV)}",
        ]
        if "requirements.txt" in present:
            steps += [
                f"COPY requirements.txt {SITE_DIR}/requirements.txt",
                f"RUN PIP_CERT={SYSTEM_CA} PIP_DISABLE_PIP_VERSION_CHECK=1 "
                f"{VENV}/bin/pip install --no-cache-dir --no-compile --no-input "
                f"-r {SITE_DIR}/requirements.txt && {_clean_pyc(VENV)} && {CLEAN_TMP} "
                "&& rm -rf /root/.cache",
            ]
        return steps
    if kind == "node" and "package.json" in present:
        lock = [f for f in present if f != "package.json"]
        install = (
            "npm ci --omit=dev --no-audit --no-fund"
            if lock
            else "npm install --omit=dev --no-audit --no-fund --no-package-lock"
        )
        return [
            f"COPY {' '.join(present)} {SITE_DIR}/",
            f"RUN NODE_EXTRA_CA_CERTS={SYSTEM_CA} {install} && npm cache clean --force "
            f"&& {CLEAN_TMP} && rm -rf /root/.npm /root/.cache",
        ]
    if kind == "php" and "composer.json" in present:
        return [
            f"COPY {' '.join(present)} {SITE_DIR}/",
            "RUN composer install --no-dev --no-interaction --no-progress --no-scripts "
            f"--no-autoloader --prefer-dist && {CLEAN_TMP} && rm -rf /root/.composer /root/.cache",
        ]
    return []


def _after_copy_steps(manifest: Manifest, facts: SourceFacts) -> list[str]:
    if manifest.kind == "php" and facts.has("composer.json"):
        return [f"RUN composer dump-autoload --no-dev --optimize --no-interaction && {CLEAN_TMP}"]
    if (
        manifest.kind == "python"
        and not facts.has("requirements.txt")
        and facts.has("pyproject.toml")
    ):
        # No requirements.txt: the project installs itself (its dependencies with it).
        return [
            f"RUN PIP_CERT={SYSTEM_CA} {VENV}/bin/pip install --no-cache-dir --no-compile "
            f"--no-input {SITE_DIR} && {_clean_pyc(VENV)} && {CLEAN_TMP} && rm -rf /root/.cache "
            f"{SITE_DIR}/build"
        ]
    return []


def _clean_pyc(root: str) -> str:
    return f"find {root} -name __pycache__ -prune -exec rm -rf {{}} +"


_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _requirement_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        match = _REQ_NAME.match(line.split("#", 1)[0])
        if match:
            names.add(re.sub(r"[-_.]+", "-", match.group(1)).lower())
    return names


def start_command(
    manifest: Manifest, facts: SourceFacts | Collection[str] = SourceFacts()
) -> list[str]:
    """The command the site's container starts with (the CMD)."""
    if not isinstance(facts, SourceFacts):
        facts = SourceFacts(files=frozenset(facts))
    kind = manifest.kind
    port = manifest.site.port
    if kind == "static":
        return [
            "caddy", "file-server", "--root", _served_root(manifest),
            "--listen", f":{port}", "--access-log",
        ]  # fmt: skip
    if kind == "php":
        return ["websonic-apache"]
    if manifest.site.command:
        return list(manifest.site.command)
    if kind == "python":
        if "gunicorn" in _requirement_names(facts.requirements) and facts.has("wsgi.py"):
            return [
                "gunicorn", "--bind", f"0.0.0.0:{port}", "--workers", "2",
                "--access-logfile", "-", "wsgi:application",
            ]  # fmt: skip
        for script in ("app.py", "main.py", "server.py"):
            if facts.has(script):
                return ["python3", script]
        raise InvalidInput(
            "Cannot tell how to start this Python site.",
            hint='Set [site] command in websonic.toml, e.g. command = ["gunicorn", "--bind", '
            f'"0.0.0.0:{port}", "wsgi:application"] (with gunicorn in requirements.txt).',
        )
    if kind == "node":
        if not facts.has("server.js") and _npm_start(facts.package_json) is not None:
            return ["npm", "start", "--silent"]
        return ["node", "server.js"]
    raise InvalidInput(f"No start command for kind {kind!r}.")


def _npm_start(package_json: str) -> str | None:
    if not package_json:
        return None
    try:
        data = json.loads(package_json)
    except ValueError:
        return None
    scripts = data.get("scripts") if isinstance(data, dict) else None
    start = scripts.get("start") if isinstance(scripts, dict) else None
    return start if isinstance(start, str) else None


def _env_line(env: Mapping[str, str]) -> str:
    for name in env:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise InvalidInput(f"{name!r} is not a valid environment variable name")
    return "ENV " + " \\\n    ".join(f"{k}={quote_value(v)}" for k, v in sorted(env.items()))


def _sh_quote(path: str) -> str:
    if re.match(r"^[A-Za-z0-9_./-]+$", path):
        return path
    raise InvalidInput(f"volume path {path!r} may only use letters, digits, '_', '-', '.', '/'")
