"""The web face: the JSON API under /api/v1 and the portal pages, over the same services.

``create_app(settings)`` (in :mod:`websonic.web.app`) builds the ASGI app; ``serve`` (in
:mod:`websonic.web.server`) runs it with uvicorn and in-process job workers.
"""
