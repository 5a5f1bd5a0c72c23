"""The manifest parser, fuzzed (hypothesis): whatever the text, it answers with a manifest or
InvalidInput, and what it accepts holds to the grammar of values that reach a server."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from websonic.core.errors import InvalidInput
from websonic.sites import grammar
from websonic.sites.manifest import KINDS, Manifest, parse_manifest, validate_manifest

FUZZ = settings(database=None, deadline=None, max_examples=300)
#: Characters that make trouble in paths, units, shells, env files and URLs, and good ones.
NASTY = "/._-~%?=&:;$`'\"*[]{}()\\ \t\n\r\x00\x1b\x7f\x85\u00e9\u2028,#!|<>@+"
SAFE = "abcz019ABZ"
values = st.text(alphabet=NASTY + SAFE, max_size=40)


def assert_in_grammar(manifest: Manifest) -> None:
    grammar.health_path(manifest.site.health)
    grammar.port(manifest.site.port)
    for volume in manifest.volumes:
        grammar.volume_name(volume.name)
        grammar.volume_path(volume.path)
    for name, value in manifest.env.items():
        grammar.env_name(name)
        if isinstance(value, str):
            grammar.env_value(name, value)


@FUZZ
@given(st.text(max_size=300))
def test_any_text_gives_a_manifest_or_invalid_input(text: str) -> None:
    try:
        manifest = parse_manifest(text)
    except InvalidInput:
        return
    assert_in_grammar(manifest)


manifests = st.fixed_dictionaries(
    {
        "site": st.fixed_dictionaries(
            {"kind": st.sampled_from(KINDS)},
            optional={"health": values, "port": st.integers(-5, 70000)},
        ),
        "volumes": st.lists(st.fixed_dictionaries({"name": values, "path": values}), max_size=3),
        "env": st.dictionaries(values, values | st.just({"secret": True}), max_size=3),
    }
)


@FUZZ
@given(manifests)
def test_what_is_accepted_holds_to_the_grammar_and_round_trips(data: dict[str, Any]) -> None:
    try:
        manifest = validate_manifest(data)
    except InvalidInput as refused:
        assert "is invalid" in refused.message
        return
    assert_in_grammar(manifest)
    for first in manifest.volumes:
        others = [v for v in manifest.volumes if v is not first]
        assert not any(grammar.nested(first.path, other.path) for other in others)
    assert validate_manifest(manifest.to_record()) == manifest


@FUZZ
@given(values)
def test_a_volume_path_is_accepted_only_as_one_plain_absolute_path(path: str) -> None:
    try:
        grammar.volume_path(path)
    except grammar.GrammarError:
        return
    assert path.startswith("/") and path != "/" and "//" not in path
    assert not path.endswith("/") and ":" not in path and "," not in path
    assert all(part not in (".", "..") and not part.startswith(".") for part in path.split("/"))
    assert all(c.isascii() and (c.isalnum() or c in "/._-") for c in path)
