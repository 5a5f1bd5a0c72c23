"""The portal's Jinja2 templates (autoescaped) and the filters they use."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from websonic.core.units import human_size

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


def short_digest(digest: str | None, length: int = 12) -> str:
    """``sha256:0123456789ab…`` -> ``sha256:0123456789ab``."""
    if not digest:
        return ""
    algorithm, _, value = digest.partition(":")
    return f"{algorithm}:{value[:length]}" if value else digest[:length]


def when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if value else ""


templates = Jinja2Templates(directory=TEMPLATES_DIR)
templates.env.filters.update(short_digest=short_digest, human_size=human_size, when=when)


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return templates.TemplateResponse(
        request, name, context, status_code=status_code, headers=headers
    )
