"""Rendering results: Rich tables for people, one JSON object for machines (--json)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


def emit_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, default=_default, sort_keys=True) + "\n")


def _default(value: object) -> object:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    view = Table(title=title, title_justify="left")
    for column in columns:
        view.add_column(column)
    for row in rows:
        view.add_row(*(_cell(v) for v in row))
    console.print(view)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)
