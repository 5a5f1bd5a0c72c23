"""Issue 8, finding 2: a site's container reaches nothing of its server or of another site.

Two sites with a volume each on one disposable server. The first plants symbolic links in its
own volume (to `/`, to /root, to the other site's data), then a new release of it starts on
fresh mounts: through them it still sees only its own container, and its unit carries the
confinement flags."""

from __future__ import annotations

import pytest

from installer.conftest import Agency, Server, Site

pytestmark = pytest.mark.hosts

VOLUME = '\n[[volumes]]\nname = "uploads"\npath = "/srv/site/uploads"\n'
#: Run inside the new release's container, as the site: each line says what it reached.
PROBE = r"""
try() { if "$@" >/dev/null 2>&1; then echo "REACHED: $*"; else echo "refused: $*"; fi; }
try cat /root/host-secret
try cat /srv/site/uploads/hostroot/host-secret
try cat /srv/site/uploads/root/root/host-secret
try cat /srv/site/uploads/other/volumes/uploads/other-secret
try ls /srv/site/uploads/other/volumes
try touch /srv/site/uploads/other/volumes/uploads/written
try touch /srv/site/uploads/root/etc/written
try touch /srv/site/uploads/hostroot/written
try cat /proc/1/root/root/host-secret
try mount -t tmpfs none /tmp
try chown 0 /srv/site/uploads
find / \( -path /proc -o -path /sys \) -prune -o \
  \( -name host-secret -o -name other-secret \) -print 2>/dev/null | sed 's/^/FOUND: /'
echo "uid $(id -u) gid $(id -g)"
grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs):' /proc/self/status
"""


def deploy(agency: Agency, site: Site, server: Server, domain: str) -> dict:
    return agency.cli.json("deploy", site.ref, "--host", server.ref, "--domain", domain)


def test_finding2_a_site_container_reaches_nothing_of_the_host_or_another_site(
    agency: Agency, server: Server
) -> None:
    one, other = agency.site("static-brochure"), agency.site("static-brochure")
    for site in (one, other):
        site.edit("websonic.toml", lambda text: text + VOLUME)
        site.build()
    assert deploy(agency, one, server, "one.example")["status"] == "succeeded"
    assert deploy(agency, other, server, "other.example")["status"] == "succeeded"
    a, b = (site.ref.replace("/", "-") for site in (one, other))
    data = "/var/lib/websonic/sites"
    server.sh(
        f"echo host > /root/host-secret && echo b > {data}/{b}/volumes/uploads/other-secret && "
        f"podman exec websonic-{a}-blue sh -c 'ln -s / /srv/site/uploads/root && "
        f"ln -s /root /srv/site/uploads/hostroot && ln -s {data}/{b} /srv/site/uploads/other'"
    )
    one.edit("index.html", lambda text: text.replace("Furniture", "Furniture, again"))
    one.build()
    assert deploy(agency, one, server, "one.example")["slot"] == "green"  # fresh mounts

    probe = server.sh(f"podman exec -i websonic-{a}-green sh -s <<'EOF'\n{PROBE}\nEOF")
    assert "REACHED" not in probe and "FOUND" not in probe, probe
    assert "uid 10001 gid 10001" in probe, probe
    status = dict(line.split(":\t") for line in probe.splitlines() if ":\t" in line)
    assert {status[k] for k in ("CapEff", "CapPrm", "CapBnd")} == {"0000000000000000"}, probe
    assert status["NoNewPrivs"] == "1", probe
    limits = "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}"
    assert server.sh(f"podman inspect --format '{limits}' websonic-{a}-green").split() == [
        str(128 * 1024 * 1024),
        "1024",
    ]

    unit = server.sh(f"systemctl cat websonic-{a}-green.service")
    start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    for flag in (
        "--cap-drop=all",
        "--security-opt=no-new-privileges",
        "--user 10001:10001",
        "--memory=128m",
        "--pids-limit=1024",
        f"--network websonic-{a} ",
        f"-v {data}/{a}/volumes/uploads:/srv/site/uploads ",
    ):
        assert flag in start, (flag, start)
    assert start.count(" -v ") == 1
    mounts = server.sh(
        f"podman inspect --format '{{{{range .Mounts}}}}{{{{.Source}}}} {{{{end}}}}' "
        f"websonic-{a}-green websonic-{b}-blue"
    ).split()
    assert mounts == [f"{data}/{a}/volumes/uploads", f"{data}/{b}/volumes/uploads"]
    networks = server.sh(
        "podman inspect --format '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}' "
        f"websonic-{a}-green websonic-{b}-blue"
    ).split()
    assert networks == [f"websonic-{a}", f"websonic-{b}"]
    assert server.sh("cat /root/host-secret") == "host\n"
    assert server.sh(f"ls {data}/{b}/volumes/uploads") == "other-secret\n"
    assert server.get("/", domain="one.example").text.count("Furniture, again") >= 1
