"""The logged-in user's own account: who they are, and changing their password.

A wrong current password counts as a failed login (the same throttle), so a stolen session
cannot be used to guess the password. A change ends the user's other sessions.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from websonic.accounts import sessions
from websonic.accounts.passwords import HashingBusy
from websonic.core.errors import InvalidInput
from websonic.web.auth import Viewer, client_addr, form_viewer, page_viewer, platform_of
from websonic.web.templating import render

router = APIRouter()


def account_page(
    request: Request, viewer: Viewer, *, error: str | None = None, status_code: int = 200
) -> Response:
    ended = request.query_params.get("ended", "")
    context = {
        "viewer": viewer,
        "error": error,
        "changed": ended.isdigit(),
        "ended": int(ended) if ended.isdigit() else 0,
    }
    return render(request, "account.html", context, status_code=status_code)


@router.get("/account")
def account(request: Request, viewer: Annotated[Viewer, Depends(page_viewer)]) -> Response:
    return account_page(request, viewer)


@router.post("/account/password")
def change_password(
    request: Request,
    viewer: Annotated[Viewer, Depends(form_viewer)],
    current: Annotated[str, Form(max_length=1000)],
    new: Annotated[str, Form(max_length=1000)],
    confirm: Annotated[str, Form(max_length=1000)],
) -> Response:
    if new != confirm:
        return account_page(request, viewer, error="The two new passwords differ.", status_code=422)
    try:
        ended = sessions.change_password(
            platform_of(request).sessions,
            viewer.user.username,
            current,
            new,
            session_id=viewer.session_id,
            remote_addr=client_addr(request),
            throttle=request.app.state.login_throttle,
        )
    except (sessions.TooManyAttempts, HashingBusy) as exc:
        status = 429 if isinstance(exc, sessions.TooManyAttempts) else 503
        response = account_page(
            request, viewer, error=f"{exc.message} {exc.hint}", status_code=status
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except InvalidInput as exc:
        return account_page(request, viewer, error=exc.message, status_code=422)
    return RedirectResponse(f"/account?ended={ended}", status_code=303)
