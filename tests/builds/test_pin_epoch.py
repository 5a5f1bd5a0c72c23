from __future__ import annotations

from websonic.builds.pipeline import buildah_build_command, pin_epoch


def test_epoch_follows_every_from() -> None:
    text = "FROM a AS deps\nRUN x\nfrom b\nCOPY . /srv\n"
    assert pin_epoch(text, 42) == (
        "FROM a AS deps\nENV SOURCE_DATE_EPOCH=42\nRUN x\nfrom b\nENV SOURCE_DATE_EPOCH=42\n"
        "COPY . /srv\n"
    )


def test_build_command_is_reproducible_and_never_pulls(tmp_path) -> None:  # type: ignore[no-untyped-def]
    argv = buildah_build_command(
        tmp_path / "Cf", tmp_path, "localhost/x:1", 99, ca_bundle=tmp_path / "ca.crt"
    ).argv
    assert argv[:3] == ("buildah", "build", "--layers")
    assert "--timestamp=99" in argv and "--identity-label=false" in argv
    assert "--pull=never" in argv
    assert (
        argv[argv.index("--volume") + 1]
        == f"{tmp_path}/ca.crt:/etc/ssl/certs/ca-certificates.crt:ro"
    )
