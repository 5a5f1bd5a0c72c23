"""What every command shares: settings read once, the platform opened on first use."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field

import typer

from websonic.platform import Platform, open_platform
from websonic.settings import Settings


@dataclass
class CliContext:
    settings: Settings
    _platform: Platform | None = field(default=None, repr=False)

    @property
    def platform(self) -> Platform:
        if self._platform is None:
            self._platform = open_platform(self.settings)
        return self._platform

    @property
    def actor(self) -> str:
        return f"cli:{getpass.getuser()}"

    def close(self) -> None:
        if self._platform is not None:
            self._platform.close()


def get(ctx: typer.Context) -> CliContext:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliContext)
    return obj


JsonOption = typer.Option(False, "--json", help="Print one JSON object on stdout.")
