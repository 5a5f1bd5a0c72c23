"""A database unit stopped while it starts leaves its fixed address free for the next start.

systemd kills a unit's `podman run` when the unit is stopped during its start. Killed after
podman reserved the container's address but before it recorded the container's network, the
address stayed reserved (in /run/containers/networks/ipam.db) for a container that was gone, and
every later start of the database with its fixed address failed ("requested ip address ... is
already allocated to container ID ...") until the server rebooted. That is how a database image
that never became healthy, stopped amid its restarts, left the database unable to start again
on its previous image (CI, test_database_update's finding 7).

On its own the window is a few milliseconds of each start. Here netavark's `setup` (run by
`podman run` after the address is reserved) waits at a gate the test opens, so the stop always
comes inside that window. The installer's own functions (its definitions, sourced) make the
network and the database's unit and stop it; the database is a tiny image that sleeps.
"""

from __future__ import annotations

import shlex
import time

import pytest

from websonic.installer.script import installer_definitions

from testbed.hosts import HostFactory, TestHost

pytestmark = pytest.mark.hosts

UNIT = "websonic-acme-t-db.service"
CONTAINER = "websonic-acme-t-db"
IMAGE = "localhost/websonic-test/sleeper:1"
ENTERED = "/run/test-netavark-setup-entered"
GATE = "/run/test-netavark-gate-open"
DEFINITIONS = "/root/installer-definitions.sh"
# podman looks for netavark in /usr/local/libexec/podman before /usr/lib/podman.
WRAPPER = "/usr/local/libexec/podman/netavark"
WRAPPER_TEXT = f"""#!/bin/sh
# netavark, its setup held at a gate: podman has reserved the address and waits here. Like
# netavark's own few milliseconds, the wait is not cut short by a stop: only podman is.
trap '' TERM
for arg in "$@"; do
\tif [ "$arg" = setup ]; then
\t\ttouch {ENTERED}
\t\twhile [ ! -e {GATE} ]; do
\t\t\tkill -0 $PPID 2>/dev/null || exit 1
\t\t\tsleep 0.1
\t\tdone
\tfi
done
exec /usr/lib/podman/netavark "$@"
"""
# What the installer sets before it makes a site's database unit (site_paths and the plan).
SITE = (
    "NAME=acme-t SITE=acme/t NETWORK=websonic-acme-t CONF=/etc/websonic/sites/acme-t "
    "DATA=/var/lib/websonic/sites/acme-t P_DB=postgresql P_DB_NAME=shop P_DB_USER=shop "
    f"P_DB_LIMIT_MEMORY=256 P_DB_LIMIT_PIDS=100 P_DB_IMAGE='{IMAGE} /bin/sleep 600'"
)
WAIT = 120  # seconds: a bound for what must happen, never reached when it works


def installer(host: TestHost, command: str) -> str:
    """Run installer functions on the host as root over SSH, after ensure_network (which makes
    the site's network the first time, and sets DB_ADDRESS); their output."""
    script = f". {DEFINITIONS}; {SITE}; ensure_network >/dev/null; {command}"
    return host.ssh(f"sh -c {shlex.quote(script)} 2>&1", timeout=300).stdout


def prepare(host: TestHost) -> str:
    """The installer's definitions, a sleeping image, the site's network and database unit, and
    the gated netavark; the database's fixed address."""
    host.write_file(DEFINITIONS, installer_definitions())
    host.ssh(
        "set -e; r=$(mktemp -d); mkdir -p $r/bin $r/lib/x86_64-linux-gnu $r/lib64 $r/tmp; "
        "cp /bin/sleep $r/bin/; cp /lib/x86_64-linux-gnu/libc.so.6 $r/lib/x86_64-linux-gnu/; "
        "cp /lib64/ld-linux-x86-64.so.2 $r/lib64/; "
        f"tar -C $r -cf $r.tar . && podman import -q $r.tar {IMAGE} >/dev/null; rm -rf $r $r.tar",
        timeout=300,
    )
    installer(
        host,
        'mkdir -p "$CONF" "$DATA/database" && echo pw >"$CONF/db-password" && '
        f"database_unit >/etc/systemd/system/{UNIT} && systemctl daemon-reload",
    )
    host.ssh(f"mkdir -p {WRAPPER.rsplit('/', 1)[0]}")
    host.write_file(WRAPPER, WRAPPER_TEXT, "0755")
    address = installer(host, "echo $DB_ADDRESS").strip()
    assert address.count(".") == 3, f"the site's network has no database address: {address!r}"
    return address


def wait_until(host: TestHost, condition: str, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while host.exec("sh", "-c", condition, check=False).returncode != 0:
        if time.monotonic() > deadline:
            journal = host.exec("journalctl", "-u", UNIT, "-n", "40", "--no-pager").stdout
            raise AssertionError(f"{what}: not within {WAIT} s\n{journal}")
        time.sleep(0.2)


def start_into_the_window(host: TestHost) -> None:
    """Start the database unit; return once its podman run has reserved the address."""
    host.exec("rm", "-f", ENTERED, GATE)
    host.exec("systemctl", "start", "--no-block", UNIT)
    wait_until(host, f"test -e {ENTERED}", "podman run reaching netavark's setup")


def test_a_database_stopped_while_it_starts_can_start_again_on_its_address(
    host_factory: HostFactory,
) -> None:
    host = host_factory.create("dbstop")
    address = prepare(host)
    start_into_the_window(host)

    # stop_failed_unit is what stopped the unhealthy image amid its restarts in CI.
    host.exec(
        "systemd-run", "--unit=test-stop", "--collect", "sh", "-c",
        f". {DEFINITIONS}; stop_failed_unit {UNIT} 'the database' >/run/test-stop.out 2>&1; "
        "echo $? >/run/test-stop.rc",
    )  # fmt: skip
    # The start is let through once the stop is done, or held back to wait for the start.
    wait_until(
        host,
        f"test -e /run/test-stop.rc || [ $(systemctl show -p Restart --value {UNIT}) = no ]",
        "the stop finishing, or holding the unit's restarts",
    )
    host.exec("touch", GATE)
    wait_until(host, "test -e /run/test-stop.rc", "the stop finishing")

    state = host.exec("systemctl", "show", "-p", "ActiveState", "-p", "Restart", UNIT).stdout
    assert sorted(state.split()) == ["ActiveState=inactive", "Restart=on-failure"], state
    assert host.exec("test", "-e", f"/run/systemd/system/{UNIT}.d", check=False).returncode == 1
    started = host.exec("systemctl", "start", UNIT, check=False)
    journal = host.exec("journalctl", "-u", UNIT, "-n", "30", "--no-pager").stdout
    assert started.returncode == 0, journal
    fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    assert host.exec("podman", "inspect", "--format", fmt, CONTAINER).stdout.strip() == address


def test_an_address_reserved_for_a_container_that_is_gone_is_named_with_its_remedy(
    host_factory: HostFactory,
) -> None:
    """A server where an older installer left the address reserved: the start fails, and the
    installer says why and what frees it."""
    host = host_factory.create("dbheld")
    address = prepare(host)
    start_into_the_window(host)
    host.exec("systemctl", "stop", UNIT)  # what the installer did before: the start is cut short
    host.exec("touch", GATE)

    out = installer(host, f"restart_unit {UNIT}; echo rc=$?; address_held_note {UNIT}")
    assert "rc=0" not in out, out
    assert (
        f"websonic: warning: podman still reserves the database's address {address} for a "
        "container that is gone (a start cut short by an earlier run); restarting the server "
        "frees it, then run again"
    ) in out
