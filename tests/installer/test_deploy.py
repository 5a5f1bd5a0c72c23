"""`websonic deploy` / `rollback` on fresh disposable servers over real SSH, real HTTPS."""

from __future__ import annotations

import json

import pytest

from installer.conftest import Agency, Server, Site
from installer.load import Load

pytestmark = pytest.mark.hosts

#: What the installer adds (and the uninstall script must remove), listed on the server.
SNAPSHOT = r"""
dpkg-query -W -f '${Package} ${Status}\n' | grep ' installed$' | cut -d' ' -f1 | sort
find /etc /usr/local /var/lib/websonic /var/log/websonic /var/lib/caddy -xdev 2>/dev/null \
  | grep -v -e '^/etc/ssh/ssh_host' -e '^/etc/\(passwd\|group\|shadow\|gshadow\)-\?$' \
    -e '^/etc/ld.so.cache$' -e '^/etc/machine-id$' | sort
systemctl list-unit-files --no-legend 'websonic*' 'caddy*' | sort
if command -v podman >/dev/null; then  # (a minimal server has none before the install)
  podman ps -a --format '{{.Names}}'; podman images -q; podman network ls --format '{{.Name}}'
fi
"""


ACTIONS = ("deploy", "rollback")


def deploy(agency: Agency, site: Site, server: Server, *args: str) -> dict:
    return agency.cli.json("deploy", site.ref, "--host", server.ref, *args)


def runtime_facts(server: Server, site: Site) -> str:
    """What a re-run must not touch: the running container and every file the installer wrote."""
    name = site.ref.replace("/", "-")
    return server.sh(
        f"podman inspect --format '{{{{.Id}}}} {{{{.State.StartedAt}}}}' "
        f"websonic-{name}-blue websonic-{name}-green 2>/dev/null; "
        f"stat -c '%n %Y %a' /etc/websonic/sites/{name}/* /etc/systemd/system/websonic-{name}-* "
        f"/etc/caddy/Caddyfile /etc/caddy/websonic/{name}.caddy",
        check=False,
    )


def test_install_from_nothing_rerun_and_uninstall(
    agency: Agency, fresh_server: Server, brochure: Site
) -> None:
    """On a minimal server: the uninstall removes the packages the install added, too."""
    server = fresh_server
    before = server.sh(SNAPSHOT)

    result = deploy(agency, brochure, server)
    assert (result["status"], result["release"], result["slot"]) == ("succeeded", 1, "blue")
    page = server.get("/")
    assert page.status_code == 200 and "Furniture made to last" in page.text
    assert server.get("/healthz").status_code == 200
    redirect = server.sh(
        f"curl -s -o /dev/null -w '%{{http_code}} %{{redirect_url}}' http://{server.address}/"
    )
    assert redirect.startswith("308 https://")
    name = brochure.ref.replace("/", "-")
    modes = server.sh(f"stat -c '%a %U %n' /etc/websonic /etc/websonic/sites/{name}/*")
    assert all(line.split()[0] in ("700", "600") for line in modes.splitlines()), modes

    facts = runtime_facts(server, brochure)
    again = deploy(agency, brochure, server)
    assert again["status"] == "unchanged"
    assert runtime_facts(server, brochure).splitlines() == facts.splitlines()

    listing = agency.cli.json("deployment", "list", brochure.ref)["deployments"]
    assert [(d["status"], d["release"]) for d in listing] == [("succeeded", 1), ("succeeded", 1)]
    assert listing[0]["seconds"] > 0

    out = server.sh(f"/usr/local/sbin/websonic-uninstall-{name} --purge-data")
    assert f"removed {brochure.ref}" in out
    assert server.sh(SNAPSHOT) == before


def test_update_under_load_then_rollback_fail_no_request(agency: Agency, server: Server) -> None:
    site = agency.site("static-brochure")
    site.build()
    domain = "www.acme-update.test"
    deploy(agency, site, server, "--domain", domain)
    site.edit("index.html", lambda text: text.replace("<h1>", "<h1>Release two: "))
    site.build()

    with Load(f"https://{server.address}/", server.caddy_root(), domain) as load:
        updated = deploy(agency, site, server)  # the domain is remembered on the server
    assert (updated["status"], updated["release"], updated["previous_release"]) == (
        "succeeded", 2, 1,
    )  # fmt: skip
    assert load.failed == [], load.failed[:3]
    assert load.bodies_with("Release two") > 0
    assert "Release two" in server.get("/", domain=domain).text

    with Load(f"https://{server.address}/", server.caddy_root(), domain) as load:
        back = agency.cli.json("rollback", site.ref, "--host", server.ref)
    assert (back["status"], back["release"]) == ("succeeded", 1)
    assert load.failed == [], load.failed[:3]
    assert "Release two" not in server.get("/", domain=domain).text
    actions = [
        (d["action"], d["release"], d["status"])
        for d in agency.cli.json("deployment", "list", site.ref)["deployments"]
    ]
    assert actions == [
        ("deploy", 1, "succeeded"), ("deploy", 2, "succeeded"), ("rollback", 1, "succeeded"),
    ]  # fmt: skip
    events = agency.cli.json("audit", "list", "--customer", "acme", "--limit", "1000")["events"]
    mine = [
        e for e in events
        if e["target"].startswith(f"{site.ref}:") and e["action"].split(".")[0] in ACTIONS
    ]  # fmt: skip
    assert [e["action"] for e in reversed(mine)] == [
        "deploy.start", "deploy.succeeded", "deploy.start", "deploy.succeeded",
        "rollback.start", "rollback.succeeded",
    ]  # fmt: skip
    assert all(e["detail"]["seconds"] > 0 for e in mine if e["action"].endswith("succeeded"))
    revoked = [e for e in events if e["action"] == "token.revoke"]
    assert len(revoked) >= 3  # every deploy's short-lived pull token is revoked after it


def test_unhealthy_release_is_rolled_back_and_the_site_keeps_answering(
    agency: Agency, server: Server
) -> None:
    site = agency.site("static-brochure")
    site.build()
    deploy(agency, site, server)
    (site.source / "healthz").unlink()  # release 2 answers 404 on its health path
    site.build()

    with Load(f"https://{server.address}/", server.caddy_root()) as load:
        proc = agency.cli.run(
            "deploy", site.ref, "--host", server.ref, "--health-timeout", "8", check=False
        )
    assert proc.returncode == 14, proc.stderr
    assert "rolled back" in proc.stderr and "release 1 keeps serving" in proc.stderr
    assert load.failed == [], load.failed[:3]
    assert server.get("/healthz").status_code == 200
    name = site.ref.replace("/", "-")
    assert server.sh(f"systemctl is-active websonic-{name}-green", check=False).strip() != "active"
    listing = agency.cli.json("deployment", "list", site.ref)["deployments"]
    assert listing[-1]["status"] == "rolled_back"
    assert "failed its health check" in listing[-1]["detail"]
    job = json.loads(agency.cli.run("job", "show", str(listing[-1]["job"]), "--json").stdout)
    assert job["status"] == "failed"


def test_deploy_with_auto_update_then_the_server_updates_itself(
    agency: Agency, server: Server
) -> None:
    site = agency.site("static-brochure")
    site.build()
    assert deploy(agency, site, server, "--auto-update")["status"] == "succeeded"
    tokens = agency.cli.json("token", "list", "acme")["tokens"]
    updater = [t for t in tokens if t["description"] == f"updater of {site.ref} on {server.ref}"]
    assert [t["scope"] for t in updater] == ["install"]
    deploy(agency, site, server, "--auto-update")  # again: a new token, the old one kept...
    tokens = agency.cli.json("token", "list", "acme")["tokens"]
    updater = [t for t in tokens if t["description"] == f"updater of {site.ref} on {server.ref}"]
    assert sorted(t["status"] for t in updater) == ["active", "active"]

    site.edit("index.html", lambda text: text.replace("<h1>", "<h1>Pulled by the server: "))
    site.build()
    name = site.ref.replace("/", "-")
    server.sh(f"systemctl start websonic-update-{name}.service")  # what the timer runs
    assert "Pulled by the server" in server.get("/").text
    tokens = agency.cli.json("token", "list", "acme")["tokens"]  # ...until the server used the new
    updater = [t for t in tokens if t["description"] == f"updater of {site.ref} on {server.ref}"]
    assert [t["status"] for t in updater] == ["revoked", "active"]
    assert deploy(agency, site, server, "--no-auto-update")["status"] == "unchanged"
    units = f"systemctl list-unit-files 'websonic-update-{name}*' --no-legend"
    assert server.sh(units, check=False) == ""
