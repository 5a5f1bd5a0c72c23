"""The portal's one-liner, run by the customer on their own server (no SSH for the agency)."""

from __future__ import annotations

import pytest

from installer.conftest import Agency, Server, Site
from installer.test_deploy import SNAPSHOT

pytestmark = pytest.mark.hosts


def one_liner(agency: Agency, server: Server, site: Site, token: str, args: str = "") -> str:
    """The command of the portal's download page, run on the server (it trusts the agency's
    private CA, as a customer of an agency with its own PKI would be told to)."""
    server.host.put(agency.ca, "/root/agency-ca.pem")
    url = f"{agency.url}/install/{site.ref}?token={token}"
    command = f"curl -fsSL --cacert /root/agency-ca.pem '{url}' | sh -s -- {args}"
    return server.host.ssh(command, check=False, timeout=600).stdout


def test_dry_run_changes_nothing_then_install_and_the_updater_applies_new_releases(
    agency: Agency, server: Server, brochure: Site
) -> None:
    token = agency.token()
    before = server.sh(SNAPSHOT)
    out = one_liner(agency, server, brochure, token, "--dry-run")
    assert "status=dry-run" in out, out
    assert "would: install packages: caddy" in out
    assert server.sh(SNAPSHOT) == before

    out = one_liner(agency, server, brochure, token, "--auto-update")
    assert "status=succeeded" in out, out
    assert "Furniture made to last" in server.get("/").text
    name = brochure.ref.replace("/", "-")
    assert server.sh(f"systemctl is-enabled websonic-update-{name}.timer").strip() == "enabled"
    token_file = server.sh(f"stat -c '%a %U' /etc/websonic/sites/{name}/token").split()
    assert token_file == ["600", "root"]
    kept = server.sh(f"cat /usr/local/lib/websonic/install.sh /var/log/websonic/{name}.log")
    assert token not in kept

    brochure.edit("index.html", lambda text: text.replace("<h1>", "<h1>Updated by the timer: "))
    brochure.build()
    server.sh(f"systemctl start websonic-update-{name}.service")  # what the timer runs
    assert "Updated by the timer" in server.get("/").text
    journal = server.sh(f"journalctl -u websonic-update-{name}.service --no-pager")
    assert "status=succeeded" in journal


def test_wrong_expired_or_pull_only_tokens_install_nothing(
    agency: Agency, server: Server, brochure: Site
) -> None:
    before = server.sh(SNAPSHOT)
    pull_only = agency.token(scope="pull")
    globex = agency.token(customer="globex")
    revoked = agency.token()
    revoked_id = revoked.split("_")[1]
    agency.cli.run("token", "revoke", revoked_id)
    bogus = "wst_0123456789abcdef_" + "A" * 43
    for token in (bogus, pull_only, globex, revoked):
        out = one_liner(agency, server, brochure, token)
        assert "WEBSONIC-RESULT" not in out  # curl -f got an error: sh ran nothing
    assert server.sh(SNAPSHOT) == before


def test_updater_with_a_revoked_token_fails_clearly_and_the_site_keeps_serving(
    agency: Agency, server: Server, brochure: Site
) -> None:
    token = agency.token()
    assert "status=succeeded" in one_liner(agency, server, brochure, token, "--auto-update")
    agency.cli.run("token", "revoke", token.split("_")[1])
    name = brochure.ref.replace("/", "-")
    server.sh(f"systemctl start websonic-update-{name}.service", check=False)
    journal = server.sh(f"journalctl -u websonic-update-{name}.service --no-pager")
    assert "refused the install token" in journal
    assert server.get("/").status_code == 200
