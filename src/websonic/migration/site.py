"""`websonic migrate CUSTOMER/SITE --to CUSTOMER/HOST`: a live site's database and files to the
customer's server, then the switch.

1. The site is deployed on the target server (the installer: its database container and the
   site, serving at the server's address; no public traffic reaches it before the switch).
2. Its files (each volume given with ``--files VOLUME=PATH``) get a bulk pass while the source
   site keeps running (size and time compared: fast).
3. The database moves with `db migrate` into the site's database container, reached through an
   SSH tunnel as a migration administrator made for the run (password made here, kept in memory,
   the account dropped at the end; the migrated objects are given to the site's own user).
   - offline: one snapshot (stop the source site's writes first); then the files' final pass;
   - online: snapshot + change capture; inside the cutover window (source writes frozen) the
     files' final pass (contents compared) and the user's ``--on-switch`` command run before the
     switch, so the write downtime the report gives includes them.
4. The report says what moved and how long the writes were frozen; the run is recorded.
"""

from __future__ import annotations

import secrets
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from websonic.builds.models import Release
from websonic.builds.service import get_release
from websonic.core.errors import DeployFailed, InvalidInput, ToolFailed
from websonic.hosting import hosts, preflight, spec
from websonic.installer import deploy as deploys
from websonic.installer import plan as plans
from websonic.migration import files, service
from websonic.migration.engine import ProgressSink
from websonic.migration.plan import MigrateOptions, Mode
from websonic.migration.report import MigrateReport, Progress
from websonic.platform import Platform
from websonic.sites.manifest import Manifest, validate_manifest
from websonic.sites.models import Site

ADMIN = "websonic_migrate"
DATA_DIR = "/var/lib/websonic/sites"


@dataclass(frozen=True)
class SiteMigration:
    site: str  # CUSTOMER/SITE
    host: str  # CUSTOMER/NAME: the customer's server
    source_db: str | None = None  # the live database's URL (reachable from the server, online)
    files: tuple[tuple[str, str], ...] = ()  # (volume, source folder here or CUSTOMER/HOST:/path)
    mode: Mode = "offline"
    jobs: int = 2
    force: bool = False
    dry_run: bool = False
    on_switch: str | None = None
    domains: tuple[str, ...] = ()


@dataclass
class SiteMigrationReport:
    site: str
    host: str
    mode: str
    status: str = "failed"
    deployment: dict[str, Any] = field(default_factory=dict)
    files_bulk: list[dict[str, Any]] = field(default_factory=list)
    files_final: list[dict[str, Any]] = field(default_factory=list)
    database: MigrateReport | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("succeeded", "planned")

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "database"}
        data["database"] = self.database.to_json() if self.database else None
        data["ok"] = self.ok
        return data


@dataclass(frozen=True)
class Target:
    """What the migration needs to know of the site on the server (plain values)."""

    site: str  # CUSTOMER/SITE
    host: str  # CUSTOMER/NAME
    name: str  # customer-site
    engine: str  # postgresql | mariadb | sqlite | none
    database: str
    user: str


# --- checks -----------------------------------------------------------------------------------


def release_manifest(site: Site, release: Release) -> Manifest:
    """The manifest the release was built with, checked again as the installer will."""
    origin = f"the manifest of {site.ref_name}"
    return validate_manifest(release.manifest or site.manifest, origin=origin)


def target_of(session: Session, site_ref: str, host_ref: str) -> Target:
    site, _host = deploys.site_and_host(session, site_ref, host_ref)
    release = get_release(session, site, None)
    manifest = release_manifest(site, release)
    engine = manifest.services.database
    has_server = engine in plans.DATABASE_PORTS
    name, user = plans.database_names(manifest, site) if has_server else ("", "")
    return Target(site.ref_name, host_ref, site.ref_name.replace("/", "-"), engine, name, user)


def check(session: Session, request: SiteMigration) -> Target:
    target = target_of(session, request.site, request.host)
    site = deploys.site_and_host(session, request.site, request.host)[0]
    release = get_release(session, site, None)
    manifest = release_manifest(site, release)
    volumes = {v.name for v in manifest.volumes}
    for volume, _source in request.files:
        if volume not in volumes:
            raise InvalidInput(f"{request.site} has no volume {volume!r} (its volumes: "
                               f"{', '.join(sorted(volumes)) or 'none'}).")  # fmt: skip
    if target.engine in plans.DATABASE_PORTS:
        _check_source_db(request, target.engine)
    elif request.source_db:
        raise InvalidInput(
            f"{request.site} has no database server ({target.engine}): drop --from-db."
        )
    return target


def _check_source_db(request: SiteMigration, engine: str) -> None:
    if not request.source_db:
        raise InvalidInput(
            f"{request.site} keeps its data in {engine}: give its live database with "
            f"--from-db {engine}://USER:PASSWORD@HOST:PORT/DATABASE"
        )
    source = service.parse_database_url(request.source_db, what="source URL (--from-db)")
    if source.engine != engine:
        raise InvalidInput(f"--from-db is {source.engine}, but {request.site} uses {engine}.")


# --- the whole move ---------------------------------------------------------------------------


def migrate_site(
    platform: Platform,
    request: SiteMigration,
    *,
    progress: ProgressSink,
    log: Callable[[str], None],
    actor: str,
    stop: threading.Event | None = None,
) -> SiteMigrationReport:
    started = time.monotonic()
    report = SiteMigrationReport(request.site, request.host, request.mode)
    with platform.transaction() as session:
        target = check(session, request)
        site, host = deploys.site_and_host(session, request.site, request.host)
        earlier = deploys.current_deployment(session, site, host)
    progress(Progress("plan", f"deploying {request.site} on {request.host}"))
    report.deployment = _deploy(platform, request, actor)
    if request.dry_run:
        report.status = "planned"
        report.notes += _preflight_notes(platform, request)
        report.notes.append("Dry run: the server was checked; nothing was changed.")
        return report
    report.files_bulk = [_sync(platform, target, v, s, quick=True) for v, s in request.files]
    final = [(volume, source) for volume, source in request.files]
    if target.engine in plans.DATABASE_PORTS:
        force = request.force or earlier is None  # a database the deploy just made
        if force:
            report.notes.append(
                "The site's database on the server was "
                + ("replaced (--force)." if request.force else "new: it now holds the data.")
            )
        with target_database(platform, target) as (target_url, done):
            report.database = _database(
                platform, request, target, target_url, final, force, progress, log, actor, stop
            )
            done.ok = report.database.ok
    if request.mode == "offline" or target.engine not in plans.DATABASE_PORTS:
        report.files_final = [_sync(platform, target, v, s, quick=False) for v, s in final]
    report.status = _status(report)
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _status(report: SiteMigrationReport) -> str:
    database = report.database
    if database is not None and database.status != "succeeded":
        return database.status
    return "succeeded" if database is None or database.ok else "failed"


def _deploy(platform: Platform, request: SiteMigration, actor: str) -> dict[str, Any]:
    from websonic.jobs.models import JobStatus
    from websonic.worker import run_now

    deploy_request = deploys.DeployRequest(
        site=request.site, host=request.host, domains=request.domains, dry_run=request.dry_run
    )
    with platform.transaction() as session:
        job_id = deploys.submit_deploy(session, deploy_request, actor=actor).id
    job = run_now(platform, job_id)
    if job is None or job.status is not JobStatus.SUCCEEDED:
        raise DeployFailed(
            f"Deploying {request.site} on {request.host} failed: nothing was migrated.",
            hint=(job.error if job else None) or f"See: websonic job log {job_id}",
        )
    return {"job": job_id, **job.result}


def _preflight_notes(platform: Platform, request: SiteMigration) -> list[str]:
    """What the deploy's preflight found the installer will add (package lists, rsync…)."""
    with platform.sessions() as session:
        host = hosts.get_host(session, request.host)
        requirements = spec.site_requirements(session, request.site, domains=request.domains)
        return [
            f"On {request.host}, {note}" for note in preflight.last_report(host, requirements).notes
        ]


def _sync(
    platform: Platform, target: Target, volume: str, source: str, *, quick: bool
) -> dict[str, Any]:
    options = files.SyncOptions(checksum=not quick)
    made = files.sync(platform, _source_folder(source), volume_dest(target, volume), options)
    return {"volume": volume, **made.to_json()}


def _source_folder(source: str) -> str:
    """The folder's contents (rsync's trailing slash), not the folder itself."""
    return source if source.endswith("/") else source + "/"


def volume_dest(target: Target, volume: str) -> str:
    return f"{target.host}:{DATA_DIR}/{target.name}/volumes/{volume}"


def _database(
    platform: Platform, request: SiteMigration, target: Target, target_url: str,
    final: list[tuple[str, str]], force: bool, progress: ProgressSink,
    log: Callable[[str], None], actor: str, stop: threading.Event | None,
) -> MigrateReport:  # fmt: skip
    assert request.source_db is not None
    options = MigrateOptions(
        mode=request.mode, jobs=request.jobs, force=force, target_accounts=(target.user,),
        on_switch=switch_command(platform, request, final) if request.mode == "online" else None,
    )  # fmt: skip
    return service.migrate_database(platform, request.source_db, target_url, options,
                                    progress=progress, log=log, actor=actor, stop=stop)  # fmt: skip


def switch_command(
    platform: Platform, request: SiteMigration, final: list[tuple[str, str]]
) -> str | None:
    """What runs in the cutover window: the site's user gets the migrated objects, the files'
    final pass, then the user's command."""
    with platform.sessions() as session:
        target = check(session, request)
    websonic = [sys.executable, "-m", "websonic.cli.main"]
    steps = [shlex.join([*websonic, "migrate-handover", request.site, "--to", request.host])]
    steps += [
        shlex.join(
            [*websonic, "files", "sync", _source_folder(source), volume_dest(target, volume)]
        )
        for volume, source in final
    ]
    if request.on_switch:
        steps.append(request.on_switch)
    return " && ".join(f"( {step} )" for step in steps) or None


# --- the site's database on the server --------------------------------------------------------


@dataclass
class Done:
    ok: bool = False


@contextmanager
def target_database(platform: Platform, target: Target) -> Iterator[tuple[str, Done]]:
    """The URL of the site's database container, through an SSH tunnel, as a migration
    administrator that exists only for the block; then the objects go to the site's user."""
    address = _container_address(platform, target)
    password = secrets.token_urlsafe(24)
    _admin(platform, target, _create_admin_sql(target, password))
    port = plans.DATABASE_PORTS[target.engine]
    ref = target.host
    scheme = "postgresql" if target.engine == "postgresql" else "mariadb"
    done = Done()
    yield f"{scheme}://{ADMIN}:{password}@{address}:{port}/{target.database}?ssh={ref}", done
    # Only a finished run ends the account: an unfinished one may still own the replication
    # (its next run gives the account a new password).
    if done.ok:
        _admin(platform, target, _drop_admin_sql(target))


def _remote(platform: Platform, target: Target, argv: list[str], stdin: bytes | None = None
            ) -> str:  # fmt: skip
    with platform.sessions() as session:
        host = hosts.get_host(session, target.host)
        result = hosts.run_remote(
            platform.runner, host, platform.settings.home / "ssh", argv, stdin=stdin
        )
    if not result.ok:
        raise ToolFailed(
            f"On {target.host}: `{' '.join(argv[:4])}` failed",
            returncode=result.returncode,
            stderr=result.stderr,
        )
    return result.stdout


def _container_address(platform: Platform, target: Target) -> str:
    fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"
    out = _remote(platform, target, ["podman", "inspect", "--format", fmt,
                                     f"websonic-{target.name}-db"])  # fmt: skip
    addresses = out.split()
    if not addresses:
        raise InvalidInput(f"The database container of {target.site} has no address.")
    return addresses[0]


def _admin(platform: Platform, target: Target, sql: str) -> None:
    """SQL as the database's own administrator, inside its container (stdin: no secret in argv)."""
    container = f"websonic-{target.name}-db"
    if target.engine == "postgresql":
        argv = ["podman", "exec", "-i", "-u", "postgres", container, "psql", "-q", "-X",
                "-v", "ON_ERROR_STOP=1", "-d", target.database]  # fmt: skip
    else:
        argv = ["podman", "exec", "-i", container, "mariadb", "-uroot", target.database]
    _remote(platform, target, argv, stdin=sql.encode())


def _create_admin_sql(target: Target, password: str) -> str:
    quoted = password.replace("'", "''")
    if target.engine == "postgresql":
        return (
            f"SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ADMIN}') AS missing"
            f" \\gset\n\\if :missing\nCREATE ROLE {ADMIN};\n\\endif\n"
            f"ALTER ROLE {ADMIN} LOGIN SUPERUSER REPLICATION PASSWORD '{quoted}';\n"
        )
    return (
        f"CREATE USER IF NOT EXISTS '{ADMIN}'@'%';\n"
        f"ALTER USER '{ADMIN}'@'%' IDENTIFIED BY '{quoted}';\n"
        f"GRANT ALL PRIVILEGES ON *.* TO '{ADMIN}'@'%' WITH GRANT OPTION;\n"
    )


#: Everything the migration made in the site's database belongs to the site's user afterwards.
GIVE_TO_SITE = """
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT n.nspname FROM pg_namespace n
           WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' LOOP
    EXECUTE format('ALTER SCHEMA %I OWNER TO %I', r.nspname, '{user}');
  END LOOP;
  FOR r IN SELECT c.oid::regclass AS name, c.relkind FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
             AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid
                             AND d.deptype = 'i' AND d.classid = 'pg_class'::regclass) LOOP
    EXECUTE format('ALTER %s %s OWNER TO %I',
      CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                     WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
      r.name, '{user}');
  END LOOP;
  FOR r IN SELECT p.oid::regprocedure AS name, p.prokind FROM pg_proc p
           JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid
                             AND d.deptype = 'e') LOOP
    EXECUTE format('ALTER %s %s OWNER TO %I',
      CASE r.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END,
      r.name, '{user}');
  END LOOP;
END $$;
"""


def hand_over(platform: Platform, site: str, host: str) -> None:
    """The site's database user gets every object of its database (before the switch)."""
    with platform.sessions() as session:
        target = target_of(session, site, host)
    if target.engine == "postgresql":
        _admin(platform, target, GIVE_TO_SITE.replace("{user}", target.user))


def _drop_admin_sql(target: Target) -> str:
    if target.engine == "postgresql":
        return (GIVE_TO_SITE.replace("{user}", target.user)
                + f"REASSIGN OWNED BY {ADMIN} TO \"{target.user}\";\n"
                f"DROP OWNED BY {ADMIN};\nDROP ROLE IF EXISTS {ADMIN};\n")  # fmt: skip
    return f"DROP USER IF EXISTS '{ADMIN}'@'%';\n"
