"""What `websonic deploy` sends on ssh's standard input, run here with ``sh -s``: every file
arrives byte for byte with mode 600, the temporary folder goes whatever happens, the
installer's exit code comes back, and secrets are never on a command line.

The bundles here are made by hand; their ``install.sh`` is a small test script that copies the
bundle's files (and their modes, its arguments, its folder) to a folder of the test."""

from __future__ import annotations

import base64
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from websonic.builds.signing import Signer, public_pem, verify
from websonic.core.errors import InvalidInput
from websonic.hosting.requirements import Requirements
from websonic.installer import plan as plans
from websonic.installer.bundle import (
    SECRET_FILES,
    Bundle,
    auth_json,
    make_bundle,
    runner_script,
    secrets_env,
)
from websonic.installer.script import installer_text

SECRET = "s3cr3t-Value with spaces = and 'quotes' \"too\" $(not run) `nor this`"
TOKEN = "wst_0123456789abcdef_" + "T0k3n-_" * 6 + "x"
#: The installer of these bundles: copies what it was given, then exits with --exit CODE.
COPIER = rb"""#!/bin/sh
out='' bundle='' code=0
printf '%s\n' "$@" >"$OUT_ARGS"
while [ $# -gt 0 ]; do
	case $1 in
	--bundle) bundle=$2 && shift ;;
	--out) out=$2 && shift ;;
	--exit) code=$2 && shift ;;
	--kill-runner) kill -TERM "$PPID" ;;
	esac
	shift
done
printf '%s\n' "$bundle" >"$out/.folder"
stat -c '%a' "$bundle" >"$out/.folder-mode"
for f in "$bundle"/*; do
	cp "$f" "$out/" && stat -c '%a %n' "$f" >>"$out/.modes"
done
# stdin is not the rest of the runner (it would be swallowed): it is /dev/null
cat >"$out/.stdin"
exit "$code"
"""


def files() -> dict[str, bytes]:
    rng = random.Random(7)
    return {
        "install.sh": COPIER,
        "plan": bytes(range(256)) * 3,  # every byte value, NUL and CR included
        "plan.sig": b"c2lnbmF0dXJl\n",
        "empty": b"",
        "no-final-newline": b"no newline at the end",
        "heredoc-end": b"before\nWEBSONIC_EOF\n'WEBSONIC_EOF'\nWEBSONIC_EOF \nafter\n",
        "random": rng.randbytes(300_000),
        "utf-8": "Atelier Lumière — ünïcødé ✓\n".encode(),
        "secrets.env": f"API_KEY={SECRET}\nOTHER=x\n".encode(),
        "auth.json": auth_json("websonic.example", "acme", TOKEN),
        "token": f"{TOKEN}\n".encode(),
    }


@dataclass
class Run:
    proc: subprocess.CompletedProcess[bytes]
    out: Path
    argv: list[list[str]]  # every command the runner executed, with its arguments
    folders: list[str]  # the temporary folders it made

    @property
    def folder(self) -> str:
        assert len(self.folders) == 1, self.folders
        return self.folders[0]


def shims(folder: Path, fail_base64_at: int) -> Path:
    """Commands the runner executes, each logging its argv before running the real one."""
    folder.mkdir()
    for name in ("mktemp", "base64", "rm", "sh"):
        real = shutil.which(name)
        assert real, name
        body = (
            '{ printf "%s" "$(basename "$0")"; for a in "$@"; do printf "\\037%s" "$a"; done; '
            'echo; } >>"$ARGV_LOG"\n'
        )
        if name == "mktemp":
            body += f'made=$({real} "$@") || exit; echo "$made" >>"$FOLDERS_LOG"; echo "$made"\n'
        else:
            if name == "base64":
                body += (
                    'n=$(($(cat "$ARGV_LOG.n" 2>/dev/null || echo 0) + 1))\n'
                    'echo $n >"$ARGV_LOG.n"\n'
                    f'if [ $n = {fail_base64_at} ]; then echo "base64: write error: '
                    'No space left on device" >&2; exit 1; fi\n'
                )
            body += f'exec {real} "$@"\n'
        shim = folder / name
        shim.write_text("#!/bin/sh\n" + body)
        shim.chmod(0o755)
    return folder


def run_runner(
    tmp_path: Path,
    script: bytes,
    *,
    fail_base64_at: int = 0,
) -> Run:
    out = tmp_path / "out"  # named in the script: emptied for each run
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    logs = work / "logs"
    logs.mkdir()
    shim_dir = shims(work / "shims", fail_base64_at)
    env = {
        "PATH": f"{shim_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "ARGV_LOG": str(logs / "argv"),
        "FOLDERS_LOG": str(logs / "folders"),
        "OUT_ARGS": str(out / ".args"),
        "LC_ALL": "C",
    }
    proc = subprocess.run(
        [shutil.which("sh") or "/bin/sh", "-s"], input=script, capture_output=True, env=env,
        timeout=60,
    )  # fmt: skip
    argv = [["sh", "-s"]]
    if (logs / "argv").exists():
        argv += [line.split("\x1f") for line in (logs / "argv").read_text().splitlines()]
    made = (logs / "folders").read_text().split() if (logs / "folders").exists() else []
    return Run(proc, out, argv, made)


def bundle(*extra_args: str) -> Bundle:
    return Bundle(files(), ("--out", "OUT", *extra_args))


def script_for(tmp_path: Path, made: Bundle) -> bytes:
    args = tuple(str(tmp_path / "out") if a == "OUT" else a for a in made.args)
    return runner_script(Bundle(made.files, args), "acme/shop")


# --- transport ---------------------------------------------------------------------------------


def test_every_file_arrives_byte_identical_with_mode_600(tmp_path: Path) -> None:
    made = bundle()
    run = run_runner(tmp_path, script_for(tmp_path, made))
    assert run.proc.returncode == 0, run.proc.stderr
    for name, content in made.files.items():
        assert (run.out / name).read_bytes() == content, name
    modes = {}  # file name -> its mode in the bundle's folder (lines "MODE PATH")
    for line in (run.out / ".modes").read_text().splitlines():
        mode, path = line.split(" ", 1)
        modes[Path(path).name] = mode
    assert modes == dict.fromkeys(made.files, "600")
    assert (run.out / ".folder-mode").read_text() == "700\n"
    assert (run.out / ".folder").read_text().strip() == run.folder
    assert (run.out / ".stdin").read_bytes() == b""
    assert run.proc.stdout == b"" and run.proc.stderr == b""


def test_the_installer_gets_the_site_the_bundle_and_the_options(tmp_path: Path) -> None:
    made = bundle("--domain", "shop.example", "--dry-run", "it's; $(quoted)")
    run = run_runner(tmp_path, script_for(tmp_path, made))
    assert run.proc.returncode == 0, run.proc.stderr
    args = (run.out / ".args").read_text().splitlines()
    assert args == [
        "--site", "acme/shop", "--bundle", run.folder, "--out", str(run.out),
        "--domain", "shop.example", "--dry-run", "it's; $(quoted)",
    ]  # fmt: skip


def test_the_temporary_folder_is_removed(tmp_path: Path) -> None:
    run = run_runner(tmp_path, script_for(tmp_path, bundle()))
    assert run.folder.startswith("/tmp/websonic-bundle.")
    assert not Path(run.folder).exists()
    assert ["rm", "-rf", run.folder] in run.argv


@pytest.mark.parametrize("code", [1, 4, 6, 127])
def test_a_failing_installer_exit_code_comes_back_and_the_folder_goes(
    tmp_path: Path, code: int
) -> None:
    run = run_runner(tmp_path, script_for(tmp_path, bundle("--exit", str(code))))
    assert run.proc.returncode == code
    assert (run.out / "plan").read_bytes() == files()["plan"]  # it did run
    assert not Path(run.folder).exists()


def test_a_runner_stopped_by_a_signal_removes_its_folder(tmp_path: Path) -> None:
    run = run_runner(tmp_path, script_for(tmp_path, bundle("--kill-runner")))
    assert run.proc.returncode == 130
    assert not Path(run.folder).exists()


@pytest.mark.parametrize("failing", [1, 9, 11])  # auth.json, secrets.env, utf-8
def test_a_file_that_cannot_be_written_runs_no_installer(tmp_path: Path, failing: int) -> None:
    """A full disk (here: base64 failing on the Nth file) must not start the installer with a
    partial bundle (e.g. an empty secrets.env would remove the site's secrets)."""
    run = run_runner(tmp_path, script_for(tmp_path, bundle()), fail_base64_at=failing)
    assert run.proc.returncode != 0
    assert b"No space left on device" in run.proc.stderr
    assert not (run.out / ".args").exists(), "the installer ran"
    assert not Path(run.folder).exists()


def test_a_runner_cut_short_runs_nothing(tmp_path: Path) -> None:
    """A dropped connection leaves `sh -s` with part of the program: it must not start the
    installer, least of all with part of its arguments (a cut before --dry-run)."""
    script = script_for(tmp_path, bundle("--dry-run"))
    last = script.rstrip(b"\n").rindex(b"\n") + 1
    points = [len(script) * p // 100 for p in (5, 30, 60, 90, 99)]
    points += [script.index(b"--dry-run"), script.index(b"</dev/null"), last]
    points += list(range(last - 40, last, 7))
    for point in sorted(set(points)):
        run = run_runner(tmp_path, script[:point])
        assert not (run.out / ".args").exists(), (point, script[point - 60 : point])
        for folder in run.folders:
            assert not Path(folder).exists(), point
    # the whole program but its last newline is the whole program: it runs
    run = run_runner(tmp_path, script[:-1])
    assert run.proc.returncode == 0 and (run.out / ".args").exists()


# --- secrets ---------------------------------------------------------------------------------


def secret_strings(made: Bundle) -> tuple[list[str], list[str]]:
    """The secrets as they are, and as the runner carries them (the base64 lines of the
    files that hold them)."""
    plain = [SECRET, TOKEN, base64.b64encode(f"acme:{TOKEN}".encode()).decode()]
    carried = []
    for name in SECRET_FILES:
        encoded = base64.b64encode(made.files[name]).decode()
        carried += [encoded[i : i + 76] for i in range(0, len(encoded), 76)]
    return plain, carried


def test_secrets_are_never_on_a_command_line(tmp_path: Path) -> None:
    made = bundle()
    run = run_runner(tmp_path, script_for(tmp_path, made))
    assert run.proc.returncode == 0, run.proc.stderr
    assert {argv[0] for argv in run.argv} >= {"sh", "mktemp", "base64", "rm"}
    plain, carried = secret_strings(made)
    for argv in run.argv:
        for element in argv:
            for secret in plain + carried:
                assert secret not in element, (argv, secret)


def test_secrets_are_only_inside_here_documents(tmp_path: Path) -> None:
    made = bundle()
    text = script_for(tmp_path, made).decode("ascii")
    heredoc = re.compile(r"<<'WEBSONIC_EOF'([^\n]*)\n.*?\nWEBSONIC_EOF\n", flags=re.S)
    outside = heredoc.sub(r"<<HEREDOC\1\n", text)
    assert outside.count("<<HEREDOC") == len(made.files)
    plain, carried = secret_strings(made)
    for secret in plain + carried:
        assert secret not in outside
    for line in carried:
        assert f"\n{line}\n" in text  # they do travel, in here-documents


def test_secrets_env_is_name_value_lines() -> None:
    text = secrets_env({"B_KEY": "two words = x", "A_KEY": "'quoted' $(x)", "EMPTY": ""})
    assert text == b"A_KEY='quoted' $(x)\nB_KEY=two words = x\nEMPTY=\n"
    assert secrets_env({}) == b""


@pytest.mark.parametrize("value", ["two\nlines", "cr\r", "\nleading", "nul\0"])
def test_secrets_env_refuses_line_breaks(value: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        secrets_env({"OK": "fine", "PEM_KEY": value})
    assert "PEM_KEY" in refused.value.message and "line break" in refused.value.message
    assert refused.value.hint and "base64" in refused.value.hint
    assert value not in str(refused.value)  # the value itself is never in the message


def test_auth_json_is_containers_auth(tmp_path: Path) -> None:
    text = auth_json("websonic.example:8443", "acme", TOKEN)
    document = json.loads(text)
    assert list(document) == ["auths"] and list(document["auths"]) == ["websonic.example:8443"]
    encoded = document["auths"]["websonic.example:8443"]["auth"]
    assert base64.b64decode(encoded) == f"acme:{TOKEN}".encode()
    # the installer reads the credentials back with sed: the same value
    (tmp_path / "auth.json").write_bytes(text)
    read = subprocess.run(
        ["sed", "-n", r's/.*"auth": *"\([^"]*\)".*/\1/p', str(tmp_path / "auth.json")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert read.stdout == encoded + "\n"


# --- make_bundle -------------------------------------------------------------------------------


def a_plan() -> plans.InstallPlan:
    return plans.InstallPlan(
        site="acme/shop",
        release=3,
        issued_at=1_750_000_000,
        registry=plans.Registry("websonic.example", insecure=False),
        digest="sha256:" + "ab" * 32,
        payload=b"{}",
        signature="c2ln",
        kind="static",
        port=8080,
        health="/healthz",
        requirements=Requirements(site="acme/shop"),
    )


def test_make_bundle_gives_the_files_the_installer_reads() -> None:
    signer = Signer(Ed25519PrivateKey.generate())
    pem = public_pem(signer.public)
    made = make_bundle(
        a_plan(), sign=signer.sign, public_pem=pem, secrets={"API_KEY": SECRET},
        pull_user="acme", pull_token=TOKEN, ca_pem=b"CA", updater=("https://p.example", TOKEN),
        args=["--dry-run"],
    )  # fmt: skip
    assert made.args == ("--dry-run",)
    assert made.files["plan"] == plans.render(a_plan())
    assert made.files["install.sh"] == installer_text().encode()
    for name in ("plan", "install.sh"):
        verify(signer.public, made.files[name], made.files[f"{name}.sig"].decode().strip())
    assert made.files["signing.pub.pem"] == pem
    assert made.files["secrets.env"] == f"API_KEY={SECRET}\n".encode()
    assert json.loads(made.files["auth.json"]) == json.loads(
        auth_json("websonic.example", "acme", TOKEN)
    )
    assert made.files["ca.pem"] == b"CA"
    assert made.files["remote"] == b"portal=https://p.example\n"
    assert made.files["token"] == f"{TOKEN}\n".encode()
    # every file is one the installer copies out of --bundle
    loop = re.search(r"for f in (plan plan\.sig[^;]*); do", installer_text().replace("\\\n", " "))
    assert loop is not None
    assert set(made.files) <= set(loop.group(1).split())


def test_make_bundle_leaves_out_what_is_not_given() -> None:
    signer = Signer(Ed25519PrivateKey.generate())
    made = make_bundle(
        a_plan(), sign=signer.sign, public_pem=public_pem(signer.public), secrets={},
        pull_user="acme", pull_token=TOKEN,
    )  # fmt: skip
    assert set(made.files) == {
        "plan", "plan.sig", "install.sh", "install.sh.sig", "signing.pub.pem", "secrets.env",
        "auth.json",
    }  # fmt: skip
    assert made.files["secrets.env"] == b"" and made.args == ()


def test_a_real_bundle_travels_intact(tmp_path: Path) -> None:
    """make_bundle's own files through the runner (its install.sh swapped for the copier)."""
    signer = Signer(Ed25519PrivateKey.generate())
    made = make_bundle(
        a_plan(), sign=signer.sign, public_pem=public_pem(signer.public),
        secrets={"API_KEY": SECRET}, pull_user="acme", pull_token=TOKEN,
        updater=("https://p.example", TOKEN), args=["--out", "OUT"],
    )  # fmt: skip
    copied = Bundle({**made.files, "install.sh": COPIER}, made.args)
    run = run_runner(tmp_path, script_for(tmp_path, copied))
    assert run.proc.returncode == 0, run.proc.stderr
    for name, content in copied.files.items():
        assert (run.out / name).read_bytes() == content, name
