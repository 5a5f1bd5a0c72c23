"""The installer script itself, run locally: its shell is POSIX (shellcheck, sh -n, dash -n),
a truncated download runs nothing, the portal fills in only its five values and refuses
anything that could break out of their quotes, and bad arguments are refused with exit 2.

Nothing here changes the machine: the installer only ever runs as an unprivileged user (when
the tests run as root) in a temporary folder, and every case stops before it needs root."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from websonic.builds.signing import public_pem
from websonic.core.errors import InvalidInput
from websonic.installer.script import (
    PortalValues,
    installer_definitions,
    installer_text,
    portal_script,
)

NOBODY = 65534
FILLED = ("WS_PORTAL", "WS_SITE", "WS_CODE", "WS_SIGNING_KEY_B64", "WS_PORTAL_CA_B64")
TOKEN = "wst_0123456789abcdef_" + "Ab3-_" * 8 + "xyz"
CA_PEM = b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n"
#: Arguments of a real run (no --help): were `main` to run, it would say so on stdout.
RUN_ARGS = ("--site", "acme/shop", "--portal", "http://127.0.0.1:9", "--dry-run")


def values(**changes: object) -> PortalValues:
    fields: dict[str, object] = {
        "portal": "https://websonic.example/",
        "site": "acme/shop",
        "code": TOKEN,
        "signing_key_pem": public_pem(Ed25519PrivateKey.generate().public_key()),
        "ca_pem": CA_PEM,
    }
    return PortalValues(**{**fields, **changes})  # type: ignore[arg-type]


# --- running the installer locally, harmlessly ------------------------------------------------


@pytest.fixture
def scratch() -> Iterator[Path]:
    """An empty folder the unprivileged user may write to (HOME, TMPDIR and the cwd)."""
    folder = Path(tempfile.mkdtemp(prefix="websonic-script-test."))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder)


def unprivileged() -> list[str]:
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot run the installer unprivileged")
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def run_sh(
    folder: Path, script: bytes, *args: str, from_stdin: bool = True
) -> subprocess.CompletedProcess[str]:
    """``sh`` on ``script`` as curl | sh does (stdin), or from a file, unprivileged."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder)}
    env.update(TMPDIR=str(folder), LC_ALL="C")
    if from_stdin:
        command, stdin = ["sh", "-s", "--", *args], script
    else:
        path = folder / "install.sh"
        path.write_bytes(script)
        path.chmod(0o644)
        command, stdin = ["sh", str(path), *args], b""
    proc = subprocess.run(
        [*unprivileged(), *command], input=stdin, capture_output=True, cwd=folder, env=env,
        timeout=60,
    )  # fmt: skip
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    )


# --- the shell is POSIX ------------------------------------------------------------------------


def test_shellcheck_finds_nothing(tmp_path: Path) -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip(
            "shellcheck is not installed (scripts/test installs it: apt-get install shellcheck)"
        )
    path = tmp_path / "install.sh"
    path.write_text(installer_text())
    proc = subprocess.run(
        ["shellcheck", "-s", "sh", "-e", "SC3043,SC2015", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("shell", ["sh", "dash", "bash"])
def test_the_installer_parses(shell: str, tmp_path: Path) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    for name, text in (("shipped", installer_text()), ("served", portal_script(values()))):
        path = tmp_path / f"{name}.sh"
        path.write_text(text)
        proc = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, (name, proc.stderr)


# --- a truncated download runs nothing --------------------------------------------------------

ASSIGNMENT = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*=('[^']*'|[^\s'\"`$;&|()<>\\]*)"
    r"(\s+[A-Za-z_][A-Za-z0-9_]*=('[^']*'|[^\s'\"`$;&|()<>\\]*))*"
    r"(\s+#.*)?"
)
FUNCTION = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\(\)\s*\{(.*)")
HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")


def top_level(text: str) -> list[tuple[int, str, str]]:
    """The script's top-level statements: (line number, kind, text), kind one of
    ``assignment`` (of literal values only), ``function``, or ``other``. Function bodies
    (and here-documents inside them, which may hold a ``}`` line) are skipped."""
    statements: list[tuple[int, str, str]] = []
    in_function = False
    heredocs: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if heredocs:
            if line.lstrip("\t") == heredocs[0]:
                heredocs.pop(0)
            continue
        if in_function:
            heredocs += [m.group(2) for m in HEREDOC.finditer(line)]
            in_function = not re.fullmatch(r"\}\s*(#.*)?", line)
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        opened = FUNCTION.fullmatch(line)
        if re.fullmatch(r"\{\s*(#.*)?", line):
            statements.append((number, "group", line))
        elif opened:
            rest = opened.group(2).strip()
            in_function = not rest or rest.startswith("#") or not rest.endswith("}")
            statements.append((number, "function", opened.group(1)))
        elif ASSIGNMENT.fullmatch(line):
            statements.append((number, "assignment", line))
        else:
            statements.append((number, "other", line))
    assert not in_function and not heredocs, "the script ends inside a function or heredoc"
    return statements


def test_the_parser_of_this_test_sees_what_it_must() -> None:
    """The structure check itself: it flags a command, a command substitution in an
    assignment, and a `}` line of a here-document is not the end of a function."""
    script = (
        "A=1 B='x y' # comment\n"
        "f() { echo one-liner; }\n"
        "g() {  # a comment\n"
        "\tcat <<EOF\n}\nEOF\n"
        "\tcat <<'END'\nrm -rf /\nEND\n"
        "}\n"
        "C=$(id)\n"
        "echo hi\n"
        'main "$@"\n'
    )
    kinds = [(kind, text) for _, kind, text in top_level(script)]
    assert kinds == [
        ("assignment", "A=1 B='x y' # comment"),
        ("function", "f"),
        ("function", "g"),
        ("other", "C=$(id)"),
        ("other", "echo hi"),
        ("other", 'main "$@"'),
    ]


@pytest.mark.parametrize(
    "text", [installer_text(), portal_script(values())], ids=["shipped", "served"]
)
def test_every_top_level_statement_but_the_last_defines_something(text: str) -> None:
    lines = text.rstrip("\n").splitlines()
    assert lines[-1] in LAST_LINES
    statements = top_level(text)
    others = [(number, line) for number, kind, line in statements if kind == "other"]
    assert others == [(len(lines), lines[-1])]
    # … and all of it is one brace group, opened before anything and closed by the last line
    assert statements[0][1] == "group" and [k for _, k, _ in statements].count("group") == 1
    assert lines[-1] == 'main "$@"; }'
    functions = [name for _, kind, name in statements if kind == "function"]
    assert "main" in functions and len(functions) == len(set(functions)) > 50


#: The one top-level command: `main "$@"` (braced, even its own truncations run nothing).
LAST_LINES = ('main "$@"', '{ main "$@"; }', 'main "$@"; }')


def cuts(text: bytes) -> dict[str, bytes]:
    """The script cut short at several points, as a dropped download leaves it."""
    last = text.rstrip(b"\n").rindex(b"\n") + 1
    points = {f"{p}%": len(text) * p // 100 for p in (1, 10, 25, 50, 75, 90, 99)}
    points |= {"inside a here-document": text.index(b"Usage: install.sh") + 10}
    points |= {"after a function": text.index(b"\n}\n", len(text) // 3) + 3}
    points |= {"all but the last line": last, "the last line's newline": len(text) - 1}
    return {name: text[:point] for name, point in points.items()}


@pytest.mark.parametrize("served", [False, True], ids=["shipped", "served"])
def test_a_truncated_download_runs_nothing(served: bool, scratch: Path) -> None:
    text = (portal_script(values()) if served else installer_text()).encode()
    for name, cut in cuts(text).items():
        proc = run_sh(scratch, cut, *RUN_ARGS)
        if name == "the last line's newline":  # the whole script: main runs (and needs root)
            assert "websonic: error: the installer needs root" in proc.stdout, proc
            continue
        assert proc.returncode in (0, 2), (name, proc)
        assert proc.returncode == 0 or "Syntax error" in proc.stderr, (name, proc.stderr)
        assert "websonic" not in proc.stdout + proc.stderr, (name, proc)
        assert proc.stdout == "", (name, proc.stdout)
        assert list(scratch.iterdir()) == [], (name, list(scratch.iterdir()))


def test_a_download_cut_inside_the_last_line_runs_nothing(scratch: Path) -> None:
    text = portal_script(values()).encode()
    start = text.rstrip(b"\n").rindex(b"\n") + 1
    for end in range(start + 1, len(text) - 1):
        proc = run_sh(scratch, text[:end], "--dry-run")
        assert "websonic" not in proc.stdout, (text[start:end], proc.stdout)


# --- the portal's values ----------------------------------------------------------------------


def test_the_portal_fills_exactly_its_five_lines() -> None:
    given = values()
    shipped, served = installer_text().splitlines(), portal_script(given).splitlines()
    assert len(shipped) == len(served)
    changed = [(a, b) for a, b in zip(shipped, served, strict=True) if a != b]
    assert [a for a, _ in changed] == [f"{name}=''" for name in FILLED]
    filled = dict(line.split("=", 1) for _, line in changed)
    assert filled["WS_PORTAL"] == "'https://websonic.example'"  # no trailing slash
    assert filled["WS_SITE"] == "'acme/shop'" and filled["WS_CODE"] == f"'{TOKEN}'"
    key = base64.b64decode(filled["WS_SIGNING_KEY_B64"].strip("'"))
    assert key == given.signing_key_pem and key.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    assert base64.b64decode(filled["WS_PORTAL_CA_B64"].strip("'")) == CA_PEM


def test_without_a_private_ca_its_line_stays_empty() -> None:
    served = portal_script(values(ca_pem=b"")).splitlines()
    assert "WS_PORTAL_CA_B64=''" in served
    assert (
        sum(line != ref for line, ref in zip(served, installer_text().splitlines(), strict=True))
        == 4
    )


def test_the_shell_reads_back_exactly_the_values_filled_in(scratch: Path) -> None:
    given = values()
    text = portal_script(given)
    head = text[: text.index("# -- End of the portal's values.")]
    show = "".join(f'printf "%s\\n" "${name}"\n' for name in FILLED)
    show += "}\n"  # (closes the script's brace group)
    proc = subprocess.run(["sh", "-c", head + show], capture_output=True, text=True, check=True)
    assert proc.stdout.splitlines() == [
        "https://websonic.example",
        "acme/shop",
        TOKEN,
        base64.b64encode(given.signing_key_pem).decode(),
        base64.b64encode(CA_PEM).decode(),
    ]


@pytest.mark.parametrize("field", ["portal", "site", "code"])
@pytest.mark.parametrize(
    "bad",
    [
        "x'y",
        "x';touch /tmp/pwned;'",
        'x"y',
        "x y",
        "x$y",
        "x$(id)",
        "x`id`",
        "x\ny",
        "x\n",
        "x\r",
        "x;y",
        "x\\y",
        "x\ty",
        "x&y",
        "x|y",
        "x\0y",
        "x\u00a0y",
    ],
)
def test_values_that_could_break_out_of_their_quotes_are_refused(field: str, bad: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        portal_script(values(**{field: f"https://{bad}" if field == "portal" else bad}))
    assert f"WS_{field.upper()}" in refused.value.message


def test_an_injection_through_the_portal_url_never_reaches_a_script(scratch: Path) -> None:
    marker = scratch / "pwned"
    with pytest.raises(InvalidInput):
        portal_script(values(portal=f"https://x.example';touch {marker};'"))
    assert not marker.exists()


# --- arguments --------------------------------------------------------------------------------


def test_help(scratch: Path) -> None:
    for flag in ("--help", "-h"):
        proc = run_sh(scratch, installer_text().encode(), flag, from_stdin=False)
        assert proc.returncode == 0, proc
        assert proc.stdout.startswith("Usage: install.sh [options]\n")
        for option in ("--site CUSTOMER/SITE", "--dry-run", "--rollback", "--tls internal|acme"):
            assert option in proc.stdout
        assert "error" not in proc.stdout and proc.stderr == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--site", "BAD"],
            "--site must be CUSTOMER/SITE (lowercase letters, digits, -), got 'BAD'",
        ),
        (["--site", "acme"], "--site must be CUSTOMER/SITE"),
        (["--site", "acme/shop/x"], "--site must be CUSTOMER/SITE"),
        (["--site", "acme/sh$op"], "--site must be CUSTOMER/SITE"),
        (["--site", "acme/shop", "--release", "x"], "--release must be a number"),
        (["--site", "acme/shop", "--release", "-1"], "--release must be a number"),
        (["--site", "acme/shop", "--tls", "foo"], "--tls must be internal or acme"),
        (["--site", "acme/shop", "--domain", "Shop.example"], "invalid --domain 'Shop.example'"),
        (["--site", "acme/shop", "--domain", "a..b"], "invalid --domain 'a..b'"),
        (["--site", "acme/shop", "--health-timeout", "soon"], "--health-timeout must be a number"),
        (["--site", "acme/shop", "--drain-seconds", "1.5"], "--drain-seconds must be a number"),
        (["--site", "acme/shop"], "no --portal or --bundle given"),
        (["--site", "acme/shop", "--bundle", "/nonexistent"], "no plan in --bundle /nonexistent"),
        (["--frobnicate"], "unknown option: --frobnicate"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args: list[str], message: str, scratch: Path) -> None:
    proc = run_sh(scratch, installer_text().encode(), *args, from_stdin=False)
    assert proc.returncode == 2, proc
    assert f"websonic: error: {message}" in proc.stdout, proc.stdout
    last = proc.stdout.rstrip().rsplit("\n", 1)[-1]
    assert re.fullmatch(r"WEBSONIC-RESULT status=failed release= slot= previous= seconds=\d+", last)
    if args == ["--frobnicate"]:
        assert proc.stdout.startswith("Usage: install.sh")
    assert "needs root" not in proc.stdout  # refused before anything else
    assert {p.name for p in scratch.iterdir()} == {"install.sh"}


def test_an_option_without_its_value_is_refused_by_the_installer(scratch: Path) -> None:
    proc = run_sh(scratch, installer_text().encode(), "--site", from_stdin=False)
    assert proc.returncode == 2
    assert "websonic: error: --site needs a value" in proc.stdout, proc


# --- functions of the installer, called on their own -------------------------------------------


def call(shell: str, folder: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run one of the installer's functions: its definitions (all but the last line, which
    runs main) are sourced, then ``command`` runs."""
    definitions = folder / "definitions.sh"
    definitions.write_text(installer_definitions())
    script = f". {definitions}; " + " ".join(command)
    return subprocess.run([shell, "-c", script], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("shell", ["dash", "bash"])
@pytest.mark.parametrize(
    ("subnet", "layout"),
    [
        ("10.89.0.0/24", "10.89.0.0/25 10.89.0.254"),  # podman's default pool
        ("10.89.7.0/24", "10.89.7.0/25 10.89.7.254"),
        ("10.89.7.33/24", "10.89.7.0/25 10.89.7.254"),  # host bits are ignored
        ("172.20.0.0/16", "172.20.0.0/17 172.20.255.254"),
        ("192.168.200.16/28", "192.168.200.16/29 192.168.200.30"),
        ("255.255.255.0/24", "255.255.255.0/25 255.255.255.254"),  # no sign trouble at the top
    ],
)
def test_the_site_network_leases_its_lower_half_and_keeps_the_last_address_for_the_database(
    shell: str, subnet: str, layout: str, tmp_path: Path
) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    proc = call(shell, tmp_path, "network_layout", subnet)
    assert (proc.returncode, proc.stdout.strip()) == (0, layout), proc.stderr


@pytest.mark.parametrize("subnet", ["10.0.0.0/29", "10.0.0.0/7", "fd00::/64", "10.0.0.0", ""])
def test_a_subnet_too_small_or_not_ipv4_has_no_layout(subnet: str, tmp_path: Path) -> None:
    proc = call("dash", tmp_path, "network_layout", f"'{subnet}'")
    assert proc.returncode == 1 and proc.stdout == "", proc


def test_finding9_two_installs_of_different_sites_never_pick_the_same_ports(
    tmp_path: Path,
) -> None:
    """Four sites' installers allocate at once; each looks slowly at each port (as `ss` on a
    busy server does), so without the server-wide lock all would read the same free ports."""
    etc, sites = tmp_path / "etc", ["a", "b", "c", "d"]
    for site in sites:
        (etc / "sites" / site).mkdir(parents=True)
    (etc / "sites" / "a" / "state").write_text("active_slot=blue\n")
    runs = " ".join(f"(NAME={s}; STATE={etc}/sites/{s}/state; allocate_ports) &" for s in sites)
    proc = call(
        "dash", tmp_path,
        f"ETC={etc}; PORTS_LOCK={tmp_path}/ports.lock; DRY_RUN=0;",
        "port_holder() { sleep 0.1; };",
        f"{runs} wait",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ports = {}
    for site in sites:
        state = dict(
            line.split("=", 1) for line in (etc / "sites" / site / "state").read_text().split()
        )
        ports[site] = (state["port_blue"], state["port_green"])
    every = [port for pair in ports.values() for port in pair]
    assert len(set(every)) == 8, ports
    assert sorted(every) == [str(p) for p in range(20000, 20008)]
    assert not (tmp_path / "ports.lock").exists()


def test_a_lock_left_by_a_dead_installer_is_taken_over(tmp_path: Path) -> None:
    lock = tmp_path / "ports.lock"
    lock.mkdir()
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout
    (lock / "pid").write_text(dead)
    (tmp_path / "etc" / "sites" / "a").mkdir(parents=True)
    proc = call(
        "dash", tmp_path,
        f"ETC={tmp_path}/etc; PORTS_LOCK={lock}; DRY_RUN=0; STATE={tmp_path}/etc/sites/a/state;",
        "port_holder() { :; }; allocate_ports && cat $STATE",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split() == ["port_blue=20000", "port_green=20001"]
    assert not lock.exists()
