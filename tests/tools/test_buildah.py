"""buildah / podman image argv builders and parsers (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from websonic.core.errors import InvalidInput
from websonic.tools import buildah

ID = "a" * 64


def test_build_is_reproducible_by_construction():
    cmd = buildah.build(
        Path("/ctx"),
        tag="localhost/x:1",
        timestamp=1700000000,
        containerfile=Path("/ctx/Containerfile"),
        iidfile=Path("/tmp/iid"),
        volumes=["/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro"],
        build_args={"B": "2", "A": "1"},
    )
    argv = list(cmd.argv)
    assert argv[:2] == ["buildah", "build"]
    for flag in ("--layers", "--timestamp=1700000000", "--identity-label=false", "--pull=never"):
        assert flag in argv
    assert "--no-cache" not in argv
    assert argv[argv.index("--tag") + 1] == "localhost/x:1"
    assert argv[argv.index("--file") + 1] == "/ctx/Containerfile"
    assert argv[argv.index("--volume") + 1].endswith(":ro")
    assert argv.index("A=1") < argv.index("B=2")  # sorted: same argv every time
    assert argv[-1] == "/ctx"


def test_build_no_cache_keeps_layers():
    argv = buildah.build(Path("."), tag="t", timestamp=0, no_cache=True).argv
    assert "--no-cache" in argv and "--layers" in argv


def test_parse_build_output_and_iidfile():
    out = f"STEP 1/2: FROM scratch\nCOMMIT x\n--> {ID[:11]}\nSuccessfully tagged x\n{ID}\n"
    assert buildah.parse_build_output(out) == f"sha256:{ID}"
    assert buildah.parse_iidfile(f"sha256:{ID}\n") == f"sha256:{ID}"
    assert buildah.parse_iidfile(ID) == f"sha256:{ID}"
    with pytest.raises(InvalidInput):
        buildah.parse_iidfile("nonsense")
    with pytest.raises(InvalidInput):
        buildah.parse_build_output("no id here\n")


INSPECT = [
    {
        "Id": ID,
        "Digest": "sha256:" + "b" * 64,
        "RepoTags": ["localhost/websonic/base-static:bookworm"],
        "Created": "2023-11-14T22:13:20Z",
        "Config": {
            "User": "10001:10001",
            "Env": ["PATH=/usr/bin", "PORT=8080"],
            "Cmd": ["caddy", "file-server"],
            "ExposedPorts": {"8080/tcp": {}},
            "Labels": {"io.websonic.kind": "static"},
        },
        "RootFS": {"Type": "layers", "Layers": ["sha256:" + "c" * 64, "sha256:" + "d" * 64]},
        "Size": 179673709,
    }
]


def test_parse_image_inspect():
    info = buildah.parse_image_inspect(json.dumps(INSPECT))
    assert info.id == info.config_digest == f"sha256:{ID}"
    assert info.size == 179673709
    assert info.layers == ("sha256:" + "c" * 64, "sha256:" + "d" * 64)
    assert info.user == "10001:10001"
    assert info.exposed_ports == ("8080/tcp",)
    assert info.labels["io.websonic.kind"] == "static"
    assert info.cmd == ("caddy", "file-server")


def test_parse_image_inspect_rejects_garbage():
    with pytest.raises(InvalidInput):
        buildah.parse_image_inspect("Error: no such image")
    with pytest.raises(InvalidInput):
        buildah.parse_image_inspect(json.dumps(INSPECT * 2))


def test_image_commands():
    assert buildah.image_inspect("x").argv == (
        "podman",
        "image",
        "inspect",
        "--format",
        "json",
        "x",
    )
    assert buildah.image_exists("x").argv == ("podman", "image", "exists", "x")
    assert buildah.rmi("a", "b").argv == ("podman", "rmi", "--ignore", "a", "b")
    assert buildah.rmi("a", force=True).argv == ("podman", "rmi", "--force", "--ignore", "a")


def test_base_containerfile():
    text = buildah.base_containerfile(
        rootfs="rootfs.tar", labels={"b": "2", "a": 'say "hi" $HOME'}, env={"LANG": "C.UTF-8"}
    )
    lines = text.splitlines()
    assert lines[0] == "FROM scratch"
    assert lines[1] == "ADD rootfs.tar /"
    assert 'ENV LANG="C.UTF-8"' in lines
    assert '"a"="say \\"hi\\" \\$HOME"' in text
    assert text.index('"a"=') < text.index('"b"=')


def test_quote_value_refuses_newlines():
    assert buildah.quote_value("a\\b") == '"a\\\\b"'
    with pytest.raises(InvalidInput):
        buildah.quote_value("two\nlines")


def test_base_containerfile_of_a_service():
    runtime = buildah.ImageRuntime(
        entrypoint=("/usr/local/bin/websonic-db",),
        cmd=("serve",),
        expose=("5432/tcp",),
        volumes=("/var/lib/websonic-db",),
        stop_signal="SIGINT",
    )
    text = buildah.base_containerfile(rootfs="rootfs.tar", labels={}, env={}, runtime=runtime)
    assert text.splitlines()[2:] == [
        "EXPOSE 5432/tcp",
        'VOLUME ["/var/lib/websonic-db"]',
        "STOPSIGNAL SIGINT",
        'ENTRYPOINT ["/usr/local/bin/websonic-db"]',
        'CMD ["serve"]',
    ]
    with pytest.raises(InvalidInput):
        buildah.base_containerfile(
            rootfs="r.tar", labels={}, env={}, runtime=buildah.ImageRuntime(stop_signal="INT\n")
        )


def test_base_containerfile_of_a_kind_ends_with_bash():
    text = buildah.base_containerfile(rootfs="rootfs.tar", labels={}, env={})
    assert text == 'FROM scratch\nADD rootfs.tar /\nCMD ["/bin/bash"]\n'
