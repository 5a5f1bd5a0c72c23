"""The portal: server-rendered pages (Jinja2) with a small script to follow jobs live."""

from __future__ import annotations

from fastapi import APIRouter

from websonic.web.pages import account, downloads, install, login, portal

router = APIRouter(include_in_schema=False)
for module in (login, portal, account, downloads, install):
    router.include_router(module.router)
