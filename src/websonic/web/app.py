"""``create_app(settings)``: the API, the portal and the in-process job workers in one app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from websonic import __version__
from websonic.accounts.sessions import LoginThrottle
from websonic.platform import Platform, open_platform
from websonic.settings import Settings
from websonic.web import api, errors, pages, policy, registry
from websonic.web.security import SecurityHeaders, secure_cookies
from websonic.web.templating import STATIC_DIR
from websonic.worker import Workers


def create_app(
    settings: Settings, *, platform: Platform | None = None, start_workers: bool = True
) -> FastAPI:
    """The web app over an initialised state folder.

    While the app runs (its lifespan), job worker threads run builds and other jobs; with
    ``start_workers=False`` jobs are only queued. A platform opened here is closed on shutdown.
    ``settings`` rule the web side (cookies, session lifetime); a given ``platform`` keeps its own.
    """
    owned = platform is None
    platform = platform or open_platform(settings)
    workers = Workers(platform)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        policy.install(_app)  # again: no route added since create_app may serve without a rule
        if start_workers:
            await run_in_threadpool(workers.start)
        try:
            yield
        finally:
            if start_workers:
                await run_in_threadpool(workers.stop)
            if owned:
                platform.close()

    app = FastAPI(
        title="WebSonic",
        version=__version__,
        lifespan=lifespan,
        openapi_url=f"{api.PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(policy.gate)],  # every route: the rule of policy.ROUTES
    )
    app.state.settings = settings
    app.state.platform = platform
    app.state.workers = workers
    app.state.login_throttle = LoginThrottle()
    app.add_middleware(SecurityHeaders, https_only=secure_cookies(settings))
    errors.install(app)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(registry.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    policy.install(app)
    return app
