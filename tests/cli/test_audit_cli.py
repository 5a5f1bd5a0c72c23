"""websonic audit list: the append-only log, filtered by customer and action."""

from __future__ import annotations

from conftest import EXAMPLES, Cli


def test_audit_list_filters_by_customer_and_action(cli: Cli) -> None:
    cli.run("customer", "add", "acme")
    cli.run("customer", "add", "globex")
    cli.run("site", "add", "acme/brochure", "--source", str(EXAMPLES / "static-brochure"))
    cli.run("token", "create", "globex", "--expires", "1d")

    acme = cli.json("audit", "list", "--customer", "acme")["events"]
    assert {e["action"] for e in acme} == {"customer.add", "site.add"}
    assert all(e["actor"].startswith("cli:") for e in acme)
    tokens = cli.json("audit", "list", "--action", "token.")["events"]
    assert [e["action"] for e in tokens] == ["token.create"]
    newest = cli.json("audit", "list", "--limit", "1")["events"]
    assert newest[0]["action"] == "token.create"
    assert "Unknown customer" in cli.fails("audit", "list", "--customer", "nobody", code=3)
