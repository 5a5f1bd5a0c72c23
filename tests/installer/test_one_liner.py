"""The portal's one-liner, run by the customer on their own server (no SSH for the agency).

The one-liner carries a one-time install code in a header; the installer exchanges it for the
server's own install token (of that site only), which the updater keeps and renews."""

from __future__ import annotations

import pytest

from installer.conftest import Agency, Server, Site, apt_updates
from installer.test_deploy import SNAPSHOT

pytestmark = pytest.mark.hosts


def one_liner(agency: Agency, server: Server, site: Site, code: str, args: str = "") -> str:
    """The command of the portal's download page, run on the server (it trusts the agency's
    private CA, as a customer of an agency with its own PKI would be told to)."""
    server.host.put(agency.ca, "/root/agency-ca.pem")
    url = f"{agency.url}/install/{site.ref}"
    header = f"Authorization: Bearer {code}"
    command = f"curl -fsSL --cacert /root/agency-ca.pem -H '{header}' '{url}' | sh -s -- {args}"
    return server.host.ssh(command, check=False, timeout=600).stdout


def server_token(server: Server, site: Site) -> str:
    name = site.ref.replace("/", "-")
    return server.sh(f"cat /etc/websonic/sites/{name}/token").strip()


def token_status(agency: Agency, public_id: str) -> str:
    tokens = agency.cli.json("token", "list", "acme")["tokens"]
    return next(t["status"] for t in tokens if t["id"] == public_id)


def test_dry_run_changes_nothing_then_install_and_the_updater_applies_new_releases(
    agency: Agency, fresh_server: Server, brochure: Site
) -> None:
    """On a minimal server (no podman, empty package lists), as a customer's new one is."""
    server = fresh_server
    before = server.sh(SNAPSHOT)
    dry_code = agency.code(brochure.ref)
    out = one_liner(agency, server, brochure, dry_code, "--dry-run")
    assert "status=dry-run" in out, out
    would = next(line for line in out.splitlines() if "would: install packages:" in line)
    assert {"podman", "caddy", "netavark"} <= set(would.split(":")[-1].split()), would
    assert server.sh(SNAPSHOT) == before
    assert server.sh("ls /var/lib/apt/lists | grep -c _Packages", check=False) == "0\n"
    assert apt_updates(server) == 0

    code = agency.code(brochure.ref)
    out = one_liner(agency, server, brochure, code, "--auto-update")
    assert "status=succeeded" in out, out
    assert "Furniture made to last" in server.get("/").text
    assert apt_updates(server) == 1
    name = brochure.ref.replace("/", "-")
    assert server.sh(f"systemctl is-enabled websonic-update-{name}.timer").strip() == "enabled"
    token_file = server.sh(f"stat -c '%a %U' /etc/websonic/sites/{name}/token").split()
    assert token_file == ["600", "root"]
    token = server_token(server, brochure)
    assert token.startswith("wst_") and token not in (code, dry_code)
    kept = server.sh(f"cat /usr/local/lib/websonic/install.sh /var/log/websonic/{name}.log")
    assert token not in kept and code not in kept

    brochure.edit("index.html", lambda text: text.replace("<h1>", "<h1>Updated by the timer: "))
    brochure.build()
    server.sh(f"systemctl start websonic-update-{name}.service")  # what the timer runs
    assert "Updated by the timer" in server.get("/").text
    journal = server.sh(f"journalctl -u websonic-update-{name}.service --no-pager")
    assert "status=succeeded" in journal


def test_finding4_the_updater_renews_its_token_and_the_old_one_dies_only_once_the_new_works(
    agency: Agency, server: Server, brochure: Site
) -> None:
    assert "status=succeeded" in one_liner(
        agency, server, brochure, agency.code(brochure.ref), "--auto-update"
    )
    name = brochure.ref.replace("/", "-")
    old = server_token(server, brochure)
    server.sh(f"touch -d '15 days ago' /etc/websonic/sites/{name}/token")
    server.sh(f"systemctl start websonic-update-{name}.service")
    journal = server.sh(f"journalctl -u websonic-update-{name}.service --no-pager")
    assert "renewing this server's install token" in journal
    new = server_token(server, brochure)
    assert new.startswith("wst_") and new != old
    assert token_status(agency, old.split("_")[1]) == "revoked"
    assert token_status(agency, new.split("_")[1]) == "active"


def test_codes_that_are_wrong_used_or_of_another_site_install_nothing(
    agency: Agency, server: Server, brochure: Site
) -> None:
    before = server.sh(SNAPSHOT)
    other = agency.site("static-brochure")
    used = agency.code(brochure.ref)
    agency.cli.run("token", "revoke", used.split("_")[1])
    token = agency.cli.json("token", "create", brochure.ref, "--scope", "install")["token"]
    bogus = "wst_0123456789abcdef_" + "A" * 43
    for code in (bogus, used, token, agency.code(other.ref)):
        out = one_liner(agency, server, brochure, code)
        assert "WEBSONIC-RESULT" not in out  # curl -f got an error: sh ran nothing
    assert server.sh(SNAPSHOT) == before


def test_updater_with_a_revoked_token_fails_clearly_and_the_site_keeps_serving(
    agency: Agency, server: Server, brochure: Site
) -> None:
    code = agency.code(brochure.ref)
    assert "status=succeeded" in one_liner(agency, server, brochure, code, "--auto-update")
    agency.cli.run("token", "revoke", server_token(server, brochure).split("_")[1])
    name = brochure.ref.replace("/", "-")
    server.sh(f"systemctl start websonic-update-{name}.service", check=False)
    journal = server.sh(f"journalctl -u websonic-update-{name}.service --no-pager")
    assert "refused the install code or token" in journal
    assert server.get("/").status_code == 200
