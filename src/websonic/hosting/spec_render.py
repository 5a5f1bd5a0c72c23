"""Rendering a hosting specification: Markdown and HTML for people, JSON for machines."""

from __future__ import annotations

import json
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from websonic.core.errors import InvalidInput

FORMATS = ("md", "html", "json")


def render(document: dict[str, Any], fmt: str) -> str:
    """The document as ``fmt`` (md, html or json); always ends with a newline."""
    if fmt == "json":
        return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if fmt == "md":
        return _environment(autoescape=False).get_template("spec.md.j2").render(spec=document)
    if fmt == "html":
        return _environment(autoescape=True).get_template("spec.html.j2").render(spec=document)
    raise InvalidInput(f"Unknown format {fmt!r}: choose from {', '.join(FORMATS)}.")


def _environment(*, autoescape: bool) -> Environment:
    env = Environment(
        loader=PackageLoader("websonic.hosting", "templates"),
        autoescape=autoescape,  # noqa: S701 (Markdown escapes with the md filter)
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = markdown_cell
    env.filters["size"] = mib_text
    return env


def markdown_cell(value: object) -> str:
    """Text safe in a Markdown table cell: no raw HTML, no column breaks, one line."""
    if value is None:
        return "-"
    text = str(value)
    for raw, safe in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|")):
        text = text.replace(raw, safe)
    return " ".join(text.split())


def mib_text(mib: int) -> str:
    """4096 -> '4 GiB', 1536 -> '1.5 GiB', 1200 -> '1200 MiB', 300 -> '300 MiB'."""
    if mib >= 1024 and mib % 512 == 0:
        return f"{mib / 1024:g} GiB"
    return f"{mib} MiB"
