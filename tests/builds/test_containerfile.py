"""What a site's own Containerfile may build from: the parser and its refusals (fast)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from websonic.builds import containerfile as cf
from websonic.builds.pipeline import pin_epoch
from websonic.core.errors import BuildFailed

BASE = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
POLICY = cf.Policy("bob/site", frozenset({BASE}))
ALICE = "localhost/websonic/build/alice/site:cache"


def refused(text: str) -> str:
    with pytest.raises(BuildFailed) as caught:
        cf.check(text, POLICY)
    return f"{caught.value.message}\n{caught.value.hint}"


@pytest.mark.parametrize(
    "text",
    [
        f"FROM {ALICE}\n",
        f"FROM {BASE}\nCOPY --from={ALICE} /srv /srv\n",
        f"FROM {BASE}\nRUN --mount=type=bind,from={ALICE},target=/a cat /a/x\n",
        f"ARG IMG={ALICE}\nFROM $IMG\n",
        "ARG C=alice\nFROM localhost/websonic/build/${C}/site:cache\n",
        f"ARG X\nFROM ${{X:-{ALICE}}}\n",
        f"FROM --platform=linux/amd64 {ALICE} AS a\n",
        f"FROM {BASE}\nONBUILD COPY --from={ALICE} / /\n",
        f"FROM \\\n  {ALICE}\n",
        f"# escape=`\nFROM {BASE}\nCOPY `\n  --from={ALICE} / /\n",
        f"FROM {BASE}\nRUN echo \\\n# a comment inside the continuation\n&& true\nFROM {ALICE}\n",
    ],
)
def test_finding3_another_customers_image_is_refused(text: str) -> None:
    message = refused(text)
    assert "alice" in message and "is not allowed" in message
    assert "localhost/websonic/build/bob/site[:TAG]" in message  # what is allowed instead


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("FROM websonic/build/alice/site:cache\n", "is not allowed"),  # resolved to localhost/
        ("FROM 0bde0eca5a4f\n", "is not allowed"),  # a short image ID
        (f"FROM {OTHER}\n", "is not allowed"),  # a digest that is not a WebSonic base
        ("FROM localhost/websonic/base-static:bookworm\n", "is not allowed"),  # by name
        ("FROM docker.io/library/debian\n", "is not allowed"),
        ("FROM localhost/websonic/build/bob/site/../../alice/site\n", "is not allowed"),
        ("FROM localhost/websonic/build/bob/sitex:1\n", "is not allowed"),
        ("FROM $NOWHERE\n", "has no default"),
        ("FROM $TARGETARCH\n", "has no default"),
        (f"FROM {BASE}\nCOPY --from=later / /\nFROM {BASE} AS later\n", "is not allowed"),
        (f"FROM {BASE}\nCOPY --from=$X / /\n", "without $VARIABLES"),
        ("ARG X\nFROM $X\n", "is not allowed"),  # empty
        (f'FROM "{BASE}"\n', "without quotes"),
        (f"FROM {BASE}\nRUN --mount=type=cache,target=/c true\n", "type=cache"),
        (f"FROM {BASE}\nRUN --network=host true\n", "--network is not allowed"),
        (f"FROM {BASE}\nRUN --security=insecure true\n", "--security is not allowed"),
        (f"FROM {BASE}\nADD https://127.0.0.1:8000/api/v1/x /x\n", "only files of the source"),
        (f"FROM {BASE}\nADD git@example.org:a/b.git /x\n", "only files of the source"),
        (f"FROM {BASE}\nONBUILD FROM {BASE}\n", "ONBUILD FROM"),
        (f"FROM {BASE} AS Upper\n", "stage name"),
        (f"FROM {BASE}\nFRUM x\n", "not a Containerfile instruction"),
        ("# nothing\n", "no FROM"),
        (f"# escape=x\nFROM {BASE}\n", "escape character"),
        (f"# syntax=x\n# escape=`\nFROM {BASE}\n", "on the first line"),  # newer parsers only
        (f"# escape=`\n# escape=\\\nFROM {BASE}\n", "only one escape"),
    ],
)
def test_containerfile_refusals_say_why(text: str, why: str) -> None:
    assert why in refused(text)


@pytest.mark.parametrize(
    "text",
    [
        f"FROM {BASE}\nRUN true\n",
        "FROM scratch\nCOPY . /srv\n",
        f"FROM {BASE} AS deps\nRUN make\nFROM {BASE}\nCOPY --from=deps /out /srv\n",
        f"FROM {BASE}\nFROM {BASE}\nCOPY --from=0 /etc/os-release /x\n",
        f"ARG BASE={BASE}\nFROM ${{BASE}}\n",
        f"ARG B\nFROM ${{B:-{BASE}}}\n",
        f"FROM --platform=linux/amd64 {BASE}\n",
        "FROM localhost/websonic/build/bob/site\n",
        "FROM localhost/websonic/build/bob/site:cache\n",
        f"FROM {BASE} AS b\nRUN --mount=type=bind,from=b,target=/b ls /b\n",
        f"FROM {BASE}\nRUN --mount=type=tmpfs,target=/t true\n",
        f'from {BASE}\ncopy --chown=1:1 ["a b", "/srv/"]\n',
        f"FROM {BASE}\nADD --chmod=644 site.tar /srv\nONBUILD RUN true\n",
        f"\ufeff# syntax=docker/dockerfile:1\nFROM {BASE}\n",
    ],
)
def test_stages_bases_by_digest_and_own_images_are_allowed(text: str) -> None:
    cf.check(text, POLICY)
    cf.check(pin_epoch(text, 42), POLICY)


def test_finding3_a_from_hidden_by_an_escape_buildah_ignores_is_refused() -> None:
    """buildah 1.28 reads `# escape=` only first: after `# syntax=` it continues lines with
    a backslash, so `FROM alice` below is an instruction for it, whatever a newer parser says."""
    text = f"# syntax=x\n# escape=`\nFROM {BASE}\nRUN echo `\nFROM {ALICE}\n"
    assert "escape directive on the first line" in refused(text)
    later = f"# note=x\n# escape=`\nFROM {BASE}\nRUN echo `\nFROM {ALICE}\n"
    assert "alice" in refused(later)  # an unknown directive ends them for both: `\` continues


def test_logical_lines_are_joined_as_buildah_joins_them() -> None:
    text = "# escape=`\n\nFROM a `\n  # dropped\n\n  AS b\nRUN x \\\n"
    assert [(i.line, i.keyword, i.rest) for i in cf.instructions(text)] == [
        (3, "FROM", "a AS b"),
        (7, "RUN", "x \\"),
    ]


NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/:._-@$", min_size=1, max_size=40)


def allowed_name(name: str) -> bool:
    own = POLICY.own_image
    tag = name.removeprefix(own + ":")
    return name in (BASE, "scratch", own) or (tag != name and bool(cf.TAG.match(tag)))


def accepted(text: str) -> bool:
    try:
        cf.check(text, POLICY)
    except BuildFailed:
        return False
    return True


@given(NAMES)
def test_any_image_name_is_allowed_only_if_it_is_a_base_or_our_own(name: str) -> None:
    assert accepted(f"FROM {name}\n") == allowed_name(name)
    in_copy = allowed_name(name) or name == "0"  # stage 0, the one before
    assert accepted(f"FROM {BASE}\nCOPY --from={name} / /\n") == in_copy


@given(st.text(max_size=300))
def test_any_text_is_either_checked_or_refused_cleanly(text: str) -> None:
    try:
        cf.check(text, POLICY)
    except BuildFailed as exc:
        assert exc.message.startswith("Containerfile line ")
