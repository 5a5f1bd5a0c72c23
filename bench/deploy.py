"""Deploy benchmark: `websonic deploy` vs the same site installed and updated by hand.

In one run, on disposable Debian servers of the test bed (tests/testbed, podman system
containers on a podman network this script creates and removes), with `websonic serve` over
HTTPS on the network's gateway as the agency's portal and registry. The servers are minimal
Debian 12 ones by default (`--server minimal`: systemd and sshd, no podman, no Caddy, empty
package lists, as a new cloud server comes), or the test bed's servers with podman already
installed (`--server podman`):

  fresh     on N fresh servers per method (alternating), the wall time from the start of the
            command until https://SERVER/ answers 200 with the release's page; the part spent
            in apt-get (package lists + packages from the Debian mirror) reported on its own,
            timed from the output lines as they arrive.
  update    under bounded `hey` loads against the server (a rate-limited one and one as fast
            as hey goes), a new release (a one-file edit) put in place by `websonic deploy`
            (blue/green) and by hand (`podman pull`, `podman stop`/`rm`, `podman run` on the
            same port); then `websonic rollback` under the same load. Per run: the command's
            time, when the new release answered, the longest time without a 200 (a probe
            beside hey), hey's slowest answer, requests, non-2xx answers and errors.

The by-hand method is what a user without WebSonic writes: a POSIX sh script over SSH with
`apt-get install caddy` (podman too on a minimal server), the agency's CA in
/etc/containers/certs.d, `podman pull --creds`, `podman run -d -p 127.0.0.1:PORT:8080`, a
Caddyfile with `reverse_proxy`, `systemctl reload caddy`. It checks no signature, runs no
preflight and has no rollback.

Traffic goes only to loopback and to the servers this script creates. When a WebSonic run
under load sees a failed request, the hey output and the server's logs are written to the
diagnostics file (its path is printed).

    python bench/deploy.py [--server minimal|podman] [--fresh-only] [--rounds 3] [--hosts 3]
                           [--load-seconds 40] [--rates 25 0]

``--fresh-only`` measures fresh server -> serving alone and writes its own section
("Deploys onto a fresh minimal server"), leaving the full "Deploys" section as it is.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from common import ROOT, WebSonic, machine, median, run, write_section

sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

import httpx  # noqa: E402

from servers import free_port, serving  # noqa: E402
from testbed.hosts import (  # noqa: E402
    HostFactory,
    TestHost,
    TestNetwork,
    remove_stale_podman_objects,
)
from testbed.image import FULL, MINIMAL, HostRecipe, ensure_host_image  # noqa: E402
from testbed.ssh import generate_keypair  # noqa: E402
from testbed.tls import make_server_tls  # noqa: E402

EXAMPLE = "static-brochure"
CUSTOMER = "acme"
SITE = f"{CUSTOMER}/brochure"
FIRST_PAGE = "<h1>Furniture made to last</h1>"
MANUAL_PORT = 18080  # the loopback port the by-hand container publishes
SERVING_TIMEOUT = 180.0
WEBSONIC = "`websonic deploy`"
MANUAL = "by hand (sh over SSH)"
#: What `websonic deploy` installs on each kind of server (the installer's runtime packages).
RUNTIME_PACKAGES = {
    "minimal": "podman, runc, netavark, aardvark-dns, iptables, caddy, iproute2",
    "podman": "caddy",
}
#: The kinds of fresh server (``--server``): the test bed's image recipe and how it is described.
SERVERS: dict[str, tuple[HostRecipe, str]] = {
    "minimal": (MINIMAL, "systemd, sshd, curl; no podman, no Caddy, package lists empty"),
    "podman": (FULL, "systemd, sshd, podman; no caddy"),
}


# --- the test bed: agency, servers --------------------------------------------------------------


@dataclass
class Bed:
    ws: WebSonic
    factory: HostFactory
    server: str  # a key of SERVERS
    registry: str  # gateway:port, as the servers reach `websonic serve`
    ca_pem: str
    pull_token: str
    source: Path
    logs: Path  # the agency's job logs
    release: int = 1
    diagnostics: Path = field(
        default_factory=lambda: Path(tempfile.gettempdir()) / f"bench-deploy-{os.getpid()}.txt"
    )

    def image(self, release: int) -> str:
        return f"{self.registry}/{SITE}:{release}"

    def register(self, host: TestHost) -> str:
        ref = f"{CUSTOMER}/{host.name}"
        self.ws("host", "add", ref, "--ssh", host.ssh_target(), "--key", str(host.key_path))
        return ref

    def build_next(self) -> int:
        """Release N+1 of the site: its page's heading says "Release N+1:"."""
        page = self.source / "index.html"
        heading = f"<h1>Release {self.release + 1}: Furniture made to last</h1>"
        page.write_text(re.sub(r"<h1>.*?</h1>", heading, page.read_text(), count=1))
        self.release = int(self.ws("build", SITE)["release"])
        assert self.release_page(self.release) in page.read_text()
        return self.release

    @staticmethod
    def release_page(release: int) -> str:
        """Text only release ``release``'s home page has."""
        return FIRST_PAGE if release == 1 else f"<h1>Release {release}:"


@contextmanager
def test_bed(work: Path, server: str) -> Iterator[Bed]:
    """An agency serving over HTTPS on a new podman network; every object removed after."""
    image = ensure_host_image(recipe=SERVERS[server][0]).ref
    remove_stale_podman_objects()
    network = TestNetwork.create()
    factory = HostFactory(image, network, generate_keypair(work / "ssh"), work)
    try:
        gateway = network.bring_up(image)
        tls = make_server_tls(work / "tls", gateway)
        port = free_port(gateway)
        ws = WebSonic(work / "home")
        ws.env |= {
            "WEBSONIC_PUBLIC_URL": f"https://{gateway}:{port}",
            "WEBSONIC_PUBLIC_CA_FILE": str(tls.ca),
        }
        ws("init")
        with serving({**os.environ, **ws.env}, host=gateway, port=port, tls=tls.files()):
            yield _agency(ws, factory, server, f"{gateway}:{port}", tls.ca.read_text(), work)
    finally:
        factory.remove_all()
        network.remove()


def _agency(
    ws: WebSonic, factory: HostFactory, server: str, registry: str, ca_pem: str, work: Path
) -> Bed:
    ws("customer", "add", CUSTOMER)
    ws("base", "build", "static")
    source = work / "sources" / "brochure"
    shutil.copytree(ROOT / "examples" / EXAMPLE, source)
    ws("site", "add", SITE, "--source", str(source))
    ws("build", SITE)
    token = ws("token", "create", CUSTOMER, "--scope", "pull", "--expires", "1d")["token"]
    return Bed(ws, factory, server, registry, ca_pem, token, source, work / "home" / "logs")


# --- timing what the servers answer ---------------------------------------------------------


def answers(address: str, text: str) -> bool:
    """https://ADDRESS/ answers 200 with ``text`` (Caddy's internal certificate not checked)."""
    try:
        page = httpx.get(f"https://{address}/", verify=False, timeout=2)
    except httpx.HTTPError:
        return False
    return page.status_code == 200 and text in page.text


def wait_serving(address: str, text: str) -> None:
    deadline = time.monotonic() + SERVING_TIMEOUT
    while not answers(address, text):
        if time.monotonic() > deadline:
            raise RuntimeError(f"https://{address}/ did not serve {text!r} in time")
        time.sleep(0.1)


Lines = list[tuple[float, str]]


class JobLogWatch:
    """Timestamps every line written to the job logs that appear while it runs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.lines: Lines = []
        self._old = set(folder.glob("job-*.log"))
        self._offsets: dict[Path, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> JobLogWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            self._read()

    def _read(self) -> None:
        now = time.perf_counter()
        for path in sorted(set(self.folder.glob("job-*.log")) - self._old):
            with path.open("rb") as log:
                log.seek(self._offsets.get(path, 0))
                data = log.read()
            complete = data[: data.rfind(b"\n") + 1]
            self._offsets[path] = self._offsets.get(path, 0) + len(complete)
            self.lines += [(now, line) for line in complete.decode(errors="replace").splitlines()]


Steps = tuple[tuple[str, str | tuple[str, ...] | None], ...]

#: WebSonic's steps: each ends at the first job-log line (after the previous step's) that
#: starts with the text (or one of the texts); the last ends when the site answers.
WEBSONIC_STEPS: Steps = (
    ("CLI start", ""),
    ("preflight over SSH, signed plan", "websonic: "),
    ("installer's checks", ("websonic: refreshing the package lists", "websonic: installing")),
    ("apt-get", "websonic: pulling"),
    ("pull", "websonic: starting release"),
    ("start, health check", "websonic: slot "),
    ("Caddy switch, first answer", None),
)
#: The by-hand script's steps, from the marks it prints.
MANUAL_STEPS: Steps = (
    ("SSH login", "@@ apt"),
    ("apt-get", "@@ pull"),
    ("pull", "@@ run"),
    ("run, Caddyfile, reload", "@@ done"),
    ("first answer", None),
)


def steps(lines: Lines, started: float, ended: float, marks: Steps) -> dict[str, float]:
    """How long each step took, from timestamped output lines."""
    took, at, rest = {}, started, list(lines)
    for name, prefix in marks:
        end = ended
        if prefix is not None:
            found = next((i for i, (_, text) in enumerate(rest) if text.startswith(prefix)), None)
            if found is None:
                took[name] = 0.0
                continue
            end, rest = rest[found][0], rest[found + 1 :]
        took[name], at = end - at, end
    return took


def run_script(host: TestHost, script: str) -> Lines:
    """Run a POSIX sh script on ``host`` over SSH; its output lines with their arrival times."""
    proc = subprocess.Popen(
        [*host.ssh_argv(), "--", "sh -s"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(script)
    proc.stdin.close()
    lines = [(time.perf_counter(), line.rstrip("\n")) for line in proc.stdout]
    if proc.wait() != 0:
        output = "\n".join(text for _, text in lines[-30:])
        raise RuntimeError(f"script on {host.name} exited {proc.returncode}:\n{output}")
    return lines


# --- the by-hand method -------------------------------------------------------------------------


def manual_install(bed: Bed, address: str) -> str:
    """What a user writes to put the release on a fresh server by hand (podman too when the
    server has none: with apt's defaults, recommended packages included)."""
    certs = f"/etc/containers/certs.d/{bed.registry}"
    image = bed.image(1)
    # runc: this machine's hybrid cgroups need it (the test bed's containers.conf names it)
    packages = "podman runc caddy" if bed.server == "minimal" else "caddy"
    return f"""set -e
export DEBIAN_FRONTEND=noninteractive
echo '@@ apt'
apt-get update -q
apt-get install -y -q {packages}
echo '@@ pull'
mkdir -p {certs}
cat > {certs}/ca.crt <<'EOF'
{bed.ca_pem.strip()}
EOF
podman pull -q --creds {CUSTOMER}:{shlex.quote(bed.pull_token)} {image}
echo '@@ run'
podman run -d --name brochure -p 127.0.0.1:{MANUAL_PORT}:8080 {image}
cat > /etc/caddy/Caddyfile <<'EOF'
{address} {{
	tls internal
	reverse_proxy 127.0.0.1:{MANUAL_PORT}
}}
EOF
systemctl reload caddy
echo '@@ done'
"""


def manual_update(bed: Bed, release: int) -> str:
    """A hand-written update (what `podman auto-update` does too): replace the container."""
    image = bed.image(release)
    return f"""set -e
podman pull -q --creds {CUSTOMER}:{shlex.quote(bed.pull_token)} {image}
podman stop brochure
podman rm brochure
podman run -d --name brochure -p 127.0.0.1:{MANUAL_PORT}:8080 {image}
"""


# --- fresh server -> serving --------------------------------------------------------------------


@dataclass(frozen=True)
class Fresh:
    seconds: float
    steps: dict[str, float]

    @property
    def apt(self) -> float:
        return self.steps["apt-get"]


def fresh_websonic(bed: Bed, host: TestHost) -> Fresh:
    ref = bed.register(host)
    with JobLogWatch(bed.logs) as watch:
        started = time.perf_counter()
        bed.ws("deploy", SITE, "--host", ref)
        wait_serving(host.address, FIRST_PAGE)
        ended = time.perf_counter()
    return Fresh(ended - started, steps(watch.lines, started, ended, WEBSONIC_STEPS))


def fresh_manual(bed: Bed, host: TestHost) -> Fresh:
    started = time.perf_counter()
    lines = run_script(host, manual_install(bed, host.address))
    wait_serving(host.address, FIRST_PAGE)
    ended = time.perf_counter()
    return Fresh(ended - started, steps(lines, started, ended, MANUAL_STEPS))


def bench_fresh(bed: Bed, count: int) -> tuple[dict[str, list[Fresh]], dict[str, TestHost]]:
    """``count`` fresh servers per method; the last server of each stays for the updates."""
    results: dict[str, list[Fresh]] = {WEBSONIC: [], MANUAL: []}
    kept: dict[str, TestHost] = {}
    for index in range(count):
        order = [WEBSONIC, MANUAL] if index % 2 == 0 else [MANUAL, WEBSONIC]
        for method in order:
            host = bed.factory.create(f"{'ws' if method == WEBSONIC else 'hand'}{index + 1}")
            measure = fresh_websonic if method == WEBSONIC else fresh_manual
            results[method].append(measure(bed, host))
            took = results[method][-1]
            parts = ", ".join(f"{name} {seconds:.1f}" for name, seconds in took.steps.items())
            print(f"fresh {method} {host.name}: {took.seconds:.1f} s ({parts})", flush=True)
            if index == count - 1:
                kept[method] = host
            else:
                bed.factory.remove(host)
    return results, kept


# --- updates under load -------------------------------------------------------------------------


@dataclass(frozen=True)
class HeyReport:
    statuses: dict[int, int]
    errors: dict[str, int]
    slowest: float  # seconds

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())

    @property
    def non_2xx(self) -> int:
        return sum(n for code, n in self.statuses.items() if not 200 <= code < 300)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def parse_hey(output: str) -> HeyReport:
    """The status code and error distributions of hey's summary."""
    statuses: dict[int, int] = {}
    errors: dict[str, int] = {}
    section, slowest = "", 0.0
    for line in output.splitlines():
        if line.strip().startswith("Slowest:"):
            slowest = float(line.split()[1])
        if not line.startswith(" "):
            section = line.strip().rstrip(":")
            continue
        found = re.match(r"\s+\[(\d+)\]\s+(.*)", line)
        if found and section == "Status code distribution":
            statuses[int(found[1])] = int(found[2].split()[0])
        elif found and section == "Error distribution":
            message = re.sub(r'^\w+ "[^"]*": ', "", found[2].strip())
            errors[message] = errors.get(message, 0) + int(found[1])
    return HeyReport(statuses, errors, slowest)


@dataclass(frozen=True)
class Load:
    seconds: int
    workers: int
    rate: int  # requests per second per worker (0: as fast as it goes)
    lead: float  # seconds of load before the update starts

    @property
    def label(self) -> str:
        return f"{self.workers * self.rate} req/s" if self.rate else "unlimited"


class Probe:
    """Asks https://ADDRESS/ ten times a second (one keep-alive client) and keeps the answers:
    when a page first came, and the longest time without a 200 answer."""

    def __init__(self, address: str) -> None:
        self.url = f"https://{address}/"
        self.answers: list[tuple[float, int, str]] = []  # (time, status or 0, page)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._ask, daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _ask(self) -> None:
        with httpx.Client(verify=False, timeout=5) as client:
            while not self._stop.wait(0.1):
                try:
                    page = client.get(self.url)
                    answer = (time.perf_counter(), page.status_code, page.text)
                except httpx.HTTPError:
                    answer = (time.perf_counter(), 0, "")
                self.answers.append(answer)

    def first(self, text: str) -> float | None:
        return next(
            (at for at, status, page in self.answers if status == 200 and text in page), None
        )

    def longest_gap(self) -> float:
        """The longest time between two 200 answers (a normal gap is ~0.1 s plus latency)."""
        times = [at for at, status, _ in self.answers if status == 200]
        return max((b - a for a, b in pairwise(times)), default=0.0)


@dataclass(frozen=True)
class Loaded:
    command: float  # the update command's wall time
    serving: float  # until the new release's page answered
    gap: float  # the probe's longest time without a 200 answer
    covered: bool  # hey's load lasted beyond the change
    report: HeyReport
    output: str


def hey_argv(load: Load, address: str) -> list[str]:
    rate = ["-q", str(load.rate)] if load.rate else []
    return ["hey", "-z", f"{load.seconds}s", "-c", str(load.workers), *rate, f"https://{address}/"]


def under_load(load: Load, address: str, change: Callable[[], None], page: str) -> Loaded:
    """Run ``change`` while hey loads https://ADDRESS/ (and a probe watches it)."""
    hey = subprocess.Popen(
        hey_argv(load, address), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        time.sleep(load.lead)
        with Probe(address) as probe:
            started = time.perf_counter()
            change()
            command = time.perf_counter() - started
            wait_serving(address, page)
            time.sleep(1)
        output, _ = hey.communicate(timeout=load.seconds + 120)
    finally:
        if hey.poll() is None:
            hey.kill()
            hey.wait()
    serving = (probe.first(page) or time.perf_counter()) - started
    covered = load.lead + max(command, serving) < load.seconds - 2
    if not covered:
        print(f"!! the change took {command:.1f} s: raise --load-seconds", flush=True)
    return Loaded(command, serving, probe.longest_gap(), covered, parse_hey(output), output)


SERVER_LOGS = (
    "tail -n 40 /var/log/websonic/*.log; "
    "echo '--- Caddy access log, answers other than 200 ---'; "
    "grep -hv '\"status\":200' /var/log/caddy/websonic-*.access.log | tail -n 20; "
    "echo '--- journal of caddy ---'; journalctl -u caddy --no-pager -n 30"
)


def diagnose(bed: Bed, what: str, host: TestHost, loaded: Loaded) -> None:
    """Keep hey's output and the server's logs of a WebSonic run that failed a request."""
    logs = host.ssh(SERVER_LOGS, check=False).stdout
    with bed.diagnostics.open("a") as out:
        out.write(f"===== {what} on {host.name} ({time.strftime('%H:%M:%S')})\n")
        out.write(f"{loaded.output}\n--- server ---\n{logs}\n")
    print(f"!! {what}: failed requests; details in {bed.diagnostics}", flush=True)


def websonic_update(bed: Bed, load: Load, host: TestHost, ref: str) -> dict[str, Loaded]:
    runs = {
        "`websonic deploy` (blue/green)": (("deploy", SITE, "--host", ref), bed.release),
        "`websonic rollback`": (("rollback", SITE, "--host", ref), 1),
    }
    results = {}
    for name, (command, expected) in runs.items():
        results[name] = websonic_run(bed, load, host, command, expected)
        if results[name].report.non_2xx or results[name].report.error_count:
            diagnose(bed, name, host, results[name])
    return results


def websonic_run(
    bed: Bed, load: Load, host: TestHost, command: tuple[str, ...], release: int
) -> Loaded:
    outcome: dict = {}
    loaded = under_load(
        load, host.address, lambda: outcome.update(bed.ws(*command)), bed.release_page(release)
    )
    assert (outcome["status"], outcome["release"]) == ("succeeded", release), outcome
    return loaded


def manual_run(bed: Bed, load: Load, host: TestHost) -> dict[str, Loaded]:
    script = manual_update(bed, bed.release)
    page = bed.release_page(bed.release)
    return {
        "by hand: pull, stop, rm, run": under_load(
            load, host.address, lambda: run_script(host, script), page
        )
    }


Results = dict[tuple[str, str], list[Loaded]]  # (load, method) -> runs


def bench_updates(bed: Bed, hosts: dict[str, TestHost], rounds: int, loads: list[Load]) -> Results:
    """Each round and load: a new release, by both methods in alternating order."""
    ws_host, hand_host = hosts[WEBSONIC], hosts[MANUAL]
    ws_ref = f"{CUSTOMER}/{ws_host.name}"
    results: Results = {}
    for index in range(rounds):
        for turn, load in enumerate(loads, start=index):
            bed.build_next()
            methods = [
                lambda load=load: websonic_update(bed, load, ws_host, ws_ref),
                lambda load=load: manual_run(bed, load, hand_host),
            ]
            for method in methods if turn % 2 == 0 else reversed(methods):
                for name, loaded in method().items():
                    results.setdefault((load.label, name), []).append(loaded)
                    print(f"round {index + 1} release {bed.release} {load.label} {name}: "
                          f"{describe(loaded)}", flush=True)  # fmt: skip
    return results


def describe(loaded: Loaded) -> str:
    report = loaded.report
    return (
        f"command {loaded.command:.1f} s, serving {loaded.serving:.1f} s, gap "
        f"{loaded.gap:.1f} s, slowest {report.slowest:.2f} s, {report.requests} requests, "
        f"{report.non_2xx} non-2xx "
        f"{report.statuses}, {report.error_count} errors {report.errors}"
    )


# --- the report ---------------------------------------------------------------------------------


def ensure_hey() -> None:
    """hey comes from Debian's package; install it when the machine has none."""
    if shutil.which("hey"):
        return
    try:
        run(["apt-get", "install", "-y", "-q", "hey"])
    except RuntimeError:
        run(["apt-get", "update", "-q"])
        run(["apt-get", "install", "-y", "-q", "hey"])


def fresh_rows(results: dict[str, list[Fresh]]) -> list[str]:
    rows = []
    for method, runs in results.items():
        total = [one.seconds for one in runs]
        apt = median([one.apt for one in runs])
        rows.append(
            f"| {method} | {median(total):.1f} s ({min(total):.1f}-{max(total):.1f}) | "
            f"{apt:.1f} s | {median([one.seconds - one.apt for one in runs]):.1f} s |"
        )
    return rows


def where_time_goes(runs: list[Fresh], marks: Steps) -> str:
    return ", ".join(
        f"{name} {median([one.steps[name] for one in runs]):.1f} s" for name, _ in marks
    )


def update_rows(results: Results) -> list[str]:
    rows = []
    for (load, method), runs in sorted(results.items(), key=_row_order):
        cells = [
            _median_worst([one.command for one in runs], "{:.1f} s"),
            _median_worst([one.serving for one in runs], "{:.1f} s"),
            _median_worst([one.gap for one in runs], "{:.1f} s"),
            _median_worst([one.report.slowest for one in runs], "{:.2f} s"),
            f"{median([float(one.report.requests) for one in runs]):.0f}",
            _median_worst([one.report.non_2xx for one in runs], "{:.0f}"),
            _median_worst([one.report.error_count for one in runs], "{:.0f}"),
        ]
        rows.append(f"| {load} | {method} | {' | '.join(cells)} |")
    return rows


def _row_order(item: tuple[tuple[str, str], list[Loaded]]) -> tuple[bool, str, bool]:
    (load, method), _ = item
    return load == "unlimited", load, method.startswith("by hand")


def _median_worst(values: list, fmt: str) -> str:
    return f"{fmt.format(median(values))} ({fmt.format(max(values))})"


def failures_seen(results: Results) -> str:
    lines = []
    for (load, method), runs in sorted(results.items(), key=_row_order):
        seen: dict[str, int] = {}
        for one in runs:
            for code, n in one.report.statuses.items():
                if not 200 <= code < 300:
                    seen[f"HTTP {code}"] = seen.get(f"HTTP {code}", 0) + n
            for message, n in one.report.errors.items():
                seen[f"`{message}`"] = seen.get(f"`{message}`", 0) + n
        listed = ", ".join(f"{what} x{n}" for what, n in seen.items()) or "none"
        lines.append(f"- {load}, {method}: {listed}.")
    return "\n".join(lines)


def uncovered(results: Results) -> str:
    late = sum(not one.covered for runs in results.values() for one in runs)
    return f" In {late} runs the change ended less than 2 s before hey did." if late else ""


def command_line(args: argparse.Namespace) -> str:
    if args.fresh_only:
        return f"python bench/deploy.py --server {args.server} --fresh-only --hosts {args.hosts}"
    return (
        f"python bench/deploy.py --server {args.server} --rounds {args.rounds} "
        f"--hosts {args.hosts} --load-seconds {args.load_seconds} "
        f"--concurrency {args.concurrency} --rates {' '.join(map(str, args.rates))}"
    )


def fresh_section(args: argparse.Namespace, fresh: dict[str, list[Fresh]], minutes: float) -> str:
    """The run's description and the fresh server -> serving results."""
    installs = "podman, runc and caddy" if args.server == "minimal" else "caddy"
    return f"""`{command_line(args)}` — {machine()}; the whole run took {minutes:.0f} min. \
The static-brochure example; the servers are fresh Debian 12 system containers of the test bed \
(tests/testbed, the {args.server} image: {SERVERS[args.server][1]}) on a podman network of \
their own; the agency is `websonic serve` over HTTPS (a private CA) on that network's gateway. \
The site is served at the server's address with a certificate of Caddy's internal CA. Methods \
alternate.

### Fresh server → serving

{args.hosts} fresh servers per method. From the start of the command until `https://SERVER/` \
answers 200 with the release's page.

| method | until serving: median (range) | of it apt-get (lists + {installs}) | the rest |
|---|---|---|---|
{chr(10).join(fresh_rows(fresh))}

Where the time goes (medians, from the output lines as they arrive):

- {WEBSONIC}: {where_time_goes(fresh[WEBSONIC], WEBSONIC_STEPS)}.
- {MANUAL}: {where_time_goes(fresh[MANUAL], MANUAL_STEPS)}.

{WEBSONIC} includes the CLI's start, its preflight over SSH, making and signing the plan and a \
short-lived pull token, then the installer's checks (plan and release signatures, preflight, \
registry), apt-get (`update` once, as the lists are missing, then `install \
--no-install-recommends` of {RUNTIME_PACKAGES[args.server]}), the pull by digest with the \
digest check, the systemd unit, the health check and Caddy's configuration. Registering the \
server (`websonic host add`, host key pinned) is done before and not timed. The by-hand script \
is what a user would write and run with `ssh root@SERVER sh -s`: `apt-get update`, `apt-get \
install -y {installs.replace(",", "").replace(" and ", " ")}` (recommended packages \
included, apt's default), the \
agency's CA in `/etc/containers/certs.d`, `podman pull --creds`, `podman run -d -p \
127.0.0.1:{MANUAL_PORT}:8080`, a Caddyfile with `tls internal` and `reverse_proxy`, \
`systemctl reload caddy`. It checks no signature or digest, runs no preflight, writes no \
systemd unit (the container does not come back after a reboot), has no health check and no \
rollback. apt-get downloads from Debian's mirror: the noisiest part.
"""


def write_results(
    args: argparse.Namespace, fresh: dict[str, list[Fresh]], updates: Results, minutes: float
) -> None:
    loads = " and ".join(f"`{' '.join(hey_argv(load, 'SERVER')[:-1])}`" for load in loads_of(args))
    body = f"""{fresh_section(args, fresh, minutes)}
### Update under load

{args.rounds} rounds; in each round and for each load a new release (a one-file edit of the \
page, built with `websonic build`) is put in place by both methods, in alternating order, while \
{loads} (keep-alive HTTPS, hey's default) run against `https://SERVER/`; the change starts \
{args.lead:.0f} s into the load. Times are from the start of the command. "New release answers \
after" and "longest without a 200" (the longest time between two 200 answers; ~0.1 s when \
nothing stalls) are seen by a probe asking the page ten times a second beside hey; the slowest \
answer, requests, non-2xx answers and errors (hey's "Error distribution": no HTTP answer) are \
hey's, over its whole run. Median (worst) of the rounds; requests: median.{uncovered(updates)}

| load | method | command | new release answers after | longest without a 200 | slowest \
answer | requests | non-2xx answers | errors |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(update_rows(updates))}

- `websonic deploy` starts the new release beside the old one on the other loopback port, waits \
for its health path, switches Caddy's upstream with a graceful reload, and stops the old \
release after 3 s of draining (the command returns after the drain, hence its longer time). \
`websonic rollback` does the same back to the previous release, whose image is kept.
- by hand: `podman pull` of the new release, then `podman stop`, `podman rm` and `podman run` \
on the same port, as a hand-written script or `podman auto-update` does; the Caddyfile stays \
as it is (plain `reverse_proxy`, no retries). A 502 is Caddy's answer when nothing \
listens on the upstream port.

Failed requests seen, all rounds together:

{failures_seen(updates)}
"""
    write_section("Deploys", body)


def write_fresh_results(
    args: argparse.Namespace, fresh: dict[str, list[Fresh]], minutes: float
) -> None:
    write_section(f"Deploys onto a fresh {args.server} server", fresh_section(args, fresh, minutes))


def loads_of(args: argparse.Namespace) -> list[Load]:
    return [Load(args.load_seconds, args.concurrency, rate, args.lead) for rate in args.rates]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", choices=sorted(SERVERS), default="minimal")
    parser.add_argument("--fresh-only", action="store_true", help="no updates under load")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--load-seconds", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--rates",
        type=int,
        nargs="+",
        default=[25, 0],
        help="hey's requests/s per worker, one load each (0: as fast as it goes)",
    )
    parser.add_argument("--lead", type=float, default=3.0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on SIGTERM too
    if not args.fresh_only:
        ensure_hey()
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp,
        test_bed(Path(tmp), args.server) as bed,
    ):
        fresh, hosts = bench_fresh(bed, args.hosts)
        if args.fresh_only:
            write_fresh_results(args, fresh, (time.monotonic() - started) / 60)
            return
        updates = bench_updates(bed, hosts, args.rounds, loads_of(args))
    write_results(args, fresh, updates, (time.monotonic() - started) / 60)


if __name__ == "__main__":
    main()
