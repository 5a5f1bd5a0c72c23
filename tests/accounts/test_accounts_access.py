"""Authorization: who sees which customer, site and job, and who may build or add customers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from websonic.accounts import access
from websonic.accounts.models import Role, User
from websonic.accounts.service import add_customer, add_user
from websonic.audit.models import AuditEvent
from websonic.core.errors import NotFound, PermissionDenied
from websonic.jobs.service import submit
from websonic.platform import Platform
from websonic.sites.service import add_site

PASSWORD = "a-long-enough-password"


@dataclass
class People:
    admin: User
    developer: User
    acme_owner: User
    acme_viewer: User
    globex_editor: User


def static_site(folder: Path) -> str:
    folder.mkdir(parents=True)
    (folder / "websonic.toml").write_text('[site]\nkind = "static"\n')
    return str(folder)


@pytest.fixture
def people(platform: Platform, tmp_path: Path) -> People:
    with platform.transaction() as session:
        acme = add_customer(session, "acme", None, actor="test")
        globex = add_customer(session, "globex", None, actor="test")
        for ref in ("acme/brochure", "globex/shop"):
            add_site(session, platform.runner, ref, static_site(tmp_path / ref), actor="test")

        def user(name: str, role: Role, customer: object = None) -> User:
            return add_user(
                session,
                name,
                PASSWORD,
                role,
                customer=customer,  # type: ignore[arg-type]
                actor="test",
            )

        return People(
            admin=session.query(User).filter_by(role=Role.ADMIN).one(),
            developer=user("dev", Role.DEVELOPER),
            acme_owner=user("alice", Role.OWNER, acme),
            acme_viewer=user("victor", Role.VIEWER, acme),
            globex_editor=user("gina", Role.EDITOR, globex),
        )


def test_role_matrix(people: People) -> None:
    rows = {
        "admin": (people.admin, True, True),
        "developer": (people.developer, True, False),
        "owner": (people.acme_owner, False, False),
        "viewer": (people.acme_viewer, False, False),
        "editor": (people.globex_editor, False, False),
    }
    for name, (user, builds, manages) in rows.items():
        assert access.can_build(user) is builds, name
        assert access.can_manage_customers(user) is manages, name


def test_visible_customers(platform: Platform, people: People) -> None:
    with platform.sessions() as session:
        for user in (people.admin, people.developer):
            assert [c.slug for c in access.visible_customers(session, user)] == ["acme", "globex"]
        assert [c.slug for c in access.visible_customers(session, people.acme_viewer)] == ["acme"]
        loaded = access.visible_customers(session, people.globex_editor, with_releases=True)
        assert [s.slug for s in loaded[0].sites] == ["shop"]


def test_other_customers_things_are_not_found(platform: Platform, people: People) -> None:
    with platform.transaction() as session:
        job = submit(
            session, "build", {}, requested_by="test", customer_id=people.globex_editor.customer_id
        )
        base_job = submit(session, "base-build", {}, requested_by="test")
    with platform.sessions() as session:
        alice = people.acme_owner
        assert access.site_for(session, alice, "acme", "brochure").slug == "brochure"
        with pytest.raises(NotFound, match="Unknown customer 'globex'"):
            access.site_for(session, alice, "globex", "shop")
        with pytest.raises(NotFound):
            access.sites_for(session, alice, "globex")
        for job_id in (job.id, base_job.id):
            with pytest.raises(NotFound, match=f"Unknown job {job_id}"):
                access.job_for(session, alice, job_id)
        assert access.job_for(session, people.globex_editor, job.id).id == job.id
        assert access.job_for(session, people.developer, base_job.id).id == base_job.id


def test_only_agency_builders_request_builds(platform: Platform, people: People) -> None:
    with platform.transaction() as session, pytest.raises(PermissionDenied):
        access.request_build_as(session, people.acme_owner, "acme", "brochure")
    with platform.transaction() as session:
        job = access.request_build_as(
            session, people.developer, "acme", "brochure", remote_addr="192.0.2.1"
        )
        assert (job.kind, job.requested_by) == ("build", "user:dev")
        event = session.query(AuditEvent).filter_by(action="build.request").one()
        assert (event.target, event.remote_addr) == ("acme/brochure", "192.0.2.1")


def test_only_admins_add_customers(platform: Platform, people: People) -> None:
    with platform.transaction() as session, pytest.raises(PermissionDenied):
        access.add_customer_as(session, people.developer, "initech", None)
    with platform.transaction() as session:
        assert access.add_customer_as(session, people.admin, "initech", "Initech").name == "Initech"


def test_job_log_is_finished_only_at_the_end(
    platform: Platform, people: People, tmp_path: Path
) -> None:
    log_path = tmp_path / "job.log"
    log_path.write_text("one\ntwo\n")
    with platform.transaction() as session:
        job = submit(
            session, "build", {}, requested_by="test", customer_id=people.acme_owner.customer_id
        )
        job.log_path = str(log_path)
    with platform.sessions() as session:
        piece = access.job_log_for(session, people.acme_viewer, job.id)
        assert (piece.text, piece.next_offset, piece.finished) == ("one\ntwo\n", 8, False)
    with platform.transaction() as session:
        from websonic.jobs.models import Job, JobStatus

        session.get(Job, job.id).status = JobStatus.SUCCEEDED  # type: ignore[union-attr]
    with platform.sessions() as session:
        assert access.job_log_for(session, people.acme_viewer, job.id, 4).text == "two\n"
        assert access.job_log_for(session, people.acme_viewer, job.id, 4).finished is True
