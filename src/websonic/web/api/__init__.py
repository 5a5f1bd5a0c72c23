"""The JSON API, version 1, under /api/v1 (OpenAPI at /api/v1/openapi.json)."""

from __future__ import annotations

from fastapi import APIRouter

from websonic.web.api import customers, jobs, me, sites

PREFIX = "/api/v1"

router = APIRouter(prefix=PREFIX)
for module in (me, customers, sites, jobs):
    router.include_router(module.router)
