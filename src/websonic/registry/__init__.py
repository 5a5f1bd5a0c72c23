"""The built-in image registry: the pull side of the OCI distribution spec, per customer.

Pure parts (names, ranges, manifests, scopes) and services (tokens, integrity, store); the web
face is ``websonic.web.registry``. See docs/registry.md.
"""
