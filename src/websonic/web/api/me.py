"""The caller: who is logged in, and the CSRF token to send with changes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from websonic.web.api.schemas import MeOut
from websonic.web.auth import Viewer, api_viewer

router = APIRouter(tags=["session"])


@router.get("/me")
def me(viewer: Annotated[Viewer, Depends(api_viewer)]) -> MeOut:
    return MeOut.of(viewer.user, viewer.csrf_token)
