"""The plan reader, fuzzed (hypothesis): Python's ``plan.parse`` answers with values or
InvalidInput, and the installer's ``read_plan`` accepts a value exactly when WebSonic's own
check of the plan does (the grammar is one, in Python and in the script)."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from websonic.core.errors import InvalidInput
from websonic.installer import plan as plans

from installer.test_plan_grammar import a_plan, read_plan

#: Characters that make trouble in paths, units, shells, env files and URLs, and good ones
#: (no line break: one value a line is the format, checked by the plan's own tests).
NASTY = "/._-~%?=&:;$`'\"*[]{}()\\ \t\r\x00\x1b\x7f\u00e9,#!|<>@+"
SAFE = "abcz019ABZ"
values = st.text(alphabet=NASTY + SAFE, max_size=30)
SHELL = settings(database=None, deadline=None, max_examples=40)


@settings(database=None, deadline=None, max_examples=300)
@given(st.binary(max_size=300))
def test_parse_gives_values_or_invalid_input(text: bytes) -> None:
    try:
        parsed = plans.parse(text)
    except InvalidInput:
        return
    assert all("\n" not in value for found in parsed.values() for value in found)


def verdicts(plan: plans.InstallPlan) -> tuple[bool, bool, str]:
    """(WebSonic accepts the plan, the installer accepts it, what the installer read)."""
    try:
        plans.check_values(plan)
        python = True
    except InvalidInput:
        python = False
    with tempfile.TemporaryDirectory() as folder:
        shown = 'printf "%s|" "$P_HEALTH" "$P_PORT" "$P_DOMAINS" "$P_DB_NAME"'
        proc = read_plan(Path(folder), plans.render(plan), shown, 'printf %s "$P_VOLUMES$P_ENV"')
    assert proc.returncode in (0, 4), proc.stdout + proc.stderr
    return python, proc.returncode == 0, proc.stdout


def read_back(plan: plans.InstallPlan) -> str:
    volumes = "".join(f"{n}:{p}\n" for n, p in plan.volumes)
    env = "".join(f"{n}={v}\n" for n, v in plan.env)
    fields = (plan.health, plan.port, " ".join(plan.domains), plan.database.name)
    return "".join(f"{f}|" for f in fields) + volumes + env


def changed(field: str, value: str | int) -> plans.InstallPlan:
    plan = a_plan()
    if field == "volume path":
        return replace(plan, volumes=(("uploads", str(value)),))
    if field == "volume name":
        return replace(plan, volumes=((str(value), "/srv/site/uploads"),))
    if field == "env name":
        return replace(plan, env=((str(value), "x"),))
    if field == "domain":
        return replace(plan, domains=(str(value),))
    if field == "database name":
        return replace(plan, database=replace(plan.database, name=str(value)))
    return replace(plan, **{field: value})  # type: ignore[arg-type]


@SHELL
@given(
    st.sampled_from(
        ["volume path", "volume name", "env name", "domain", "database name", "health"]
    ),
    values,
)
def test_the_installer_accepts_a_value_exactly_when_websonic_does(field: str, value: str) -> None:
    plan = changed(field, value)
    python, shell, shown = verdicts(plan)
    assert python == shell, (field, value)
    if shell:
        assert shown == read_back(plan)


@SHELL
@given(st.integers(0, 70000))
def test_the_installer_accepts_a_port_exactly_when_websonic_does(port: int) -> None:
    python, shell, _ = verdicts(changed("port", port))
    assert python == shell, port


@SHELL
@given(values)
def test_an_env_value_websonic_accepts_reaches_the_site_unchanged(value: str) -> None:
    plan = replace(a_plan(), env=(("GREETING", value),))
    python, shell, shown = verdicts(plan)
    if python:
        assert shell and shown == read_back(plan)
    if any(0 < ord(c) < 32 or ord(c) == 127 for c in value):  # (a shell variable has no NUL)
        assert not shell
