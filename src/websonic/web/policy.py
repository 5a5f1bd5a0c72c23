"""Who may call each HTTP route, and which tenant check applies: one table, enforced.

:data:`ROUTES` maps every route of the app, ``(method, path template)``, to a :class:`Rule`:
who may call it and what of a customer it may touch. It is enforced at the root, deny by
default:

- :func:`install` (called by ``create_app`` and again when the app starts serving) refuses an
  app with a route that is not in the table: WebSonic does not start.
- :func:`gate` is a dependency of every route of the app, run before the route's own
  dependencies. A route it has no rule for (one added after ``install``) answers 404. For a
  rule that needs a session, it checks the login (401, or the portal's redirect to /login),
  then the tenant check (another customer's customer, site or job answers exactly like a
  missing one: 404), then the role (403).

The routes' own checks (``accounts.access``, the installer's and the registry's tokens) stay:
the table is a second, central gate. ``docs/routes.md`` is generated from the table:
``python -m websonic.web.policy > docs/routes.md``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.routing import iter_route_contexts
from sqlalchemy.orm import Session

from websonic.accounts import access
from websonic.accounts.models import Role, User
from websonic.core.errors import NotFound, PermissionDenied
from websonic.web.auth import AuthRequired, platform_of, session_viewer

ANY_METHOD = "*"  # a mount (static files): whatever method, its app answers
RouteKey = tuple[str, str]  # (method, path template)


class Who(enum.Enum):
    """Who may call a route. Sessions are checked by the gate, tokens by the route itself."""

    ANYONE = "anyone"
    CREDENTIALS = "a token or code (checked by the route)"
    USER = "any logged-in user"
    AGENCY = "agency staff (admin, developer)"
    ADMIN = "agency admins"

    @property
    def roles(self) -> frozenset[Role] | None:
        """The roles allowed; ``None`` when no portal session is needed."""
        return ROLES_OF[self]


ROLES_OF: dict[Who, frozenset[Role] | None] = {
    Who.ANYONE: None,
    Who.CREDENTIALS: None,
    Who.USER: frozenset(Role),
    Who.AGENCY: frozenset({Role.ADMIN, Role.DEVELOPER}),
    Who.ADMIN: frozenset({Role.ADMIN}),
}


class Tenant(enum.Enum):
    """What of a customer a route may touch, and who checks it."""

    NONE = "none: nothing of a customer"
    OWN = "the caller's own account"
    VISIBLE = "only the customers the caller may see (the route filters)"
    CUSTOMER = "{customer} visible to the caller (gate)"
    SITE = "{customer}/{site} visible to the caller (gate)"
    JOB = "the customer of job {job_id} visible to the caller (gate)"
    INSTALL = "the install token's own customer and site (the route)"
    REPOSITORY = "only repositories the credentials grant (the registry)"


GATED = frozenset({Tenant.CUSTOMER, Tenant.SITE, Tenant.JOB})  # checked by the gate itself


@dataclass(frozen=True)
class Rule:
    who: Who
    tenant: Tenant
    does: str  # what the route does, as in "Only agency admins may <does>."


class RouteNotInPolicy(RuntimeError):
    """The app has a route that ROUTES does not list (a programming error: add its rule)."""


def _each(methods: str, path: str, rule: Rule) -> dict[RouteKey, Rule]:
    return {(method, path): rule for method in methods.split()}


SITE_PAGE = "/sites/{customer}/{site}"
RELEASE = SITE_PAGE + "/releases/{number}"
INSTALL = "/install/{customer}/{site}"

ROUTES: dict[RouteKey, Rule] = {
    # The JSON API
    **_each("GET HEAD", "/api/v1/openapi.json", Rule(Who.ANYONE, Tenant.NONE, "read the API")),
    ("GET", "/api/v1/me"): Rule(Who.USER, Tenant.OWN, "see who is logged in"),
    ("GET", "/api/v1/customers"): Rule(Who.USER, Tenant.VISIBLE, "list customers"),
    ("POST", "/api/v1/customers"): Rule(Who.ADMIN, Tenant.NONE, "add customers"),
    ("GET", "/api/v1/customers/{customer}/sites"): Rule(
        Who.USER, Tenant.CUSTOMER, "list a customer's sites"
    ),
    ("GET", "/api/v1/sites/{customer}/{site}"): Rule(Who.USER, Tenant.SITE, "see a site"),
    ("GET", "/api/v1/sites/{customer}/{site}/releases"): Rule(
        Who.USER, Tenant.SITE, "list a site's releases"
    ),
    ("POST", "/api/v1/sites/{customer}/{site}/builds"): Rule(
        Who.AGENCY, Tenant.SITE, "request builds"
    ),
    ("GET", "/api/v1/jobs/{job_id}"): Rule(Who.USER, Tenant.JOB, "see a job"),
    ("GET", "/api/v1/jobs/{job_id}/log"): Rule(Who.USER, Tenant.JOB, "read a job's log"),
    # The portal
    ("GET", "/login"): Rule(Who.ANYONE, Tenant.NONE, "see the login form"),
    ("POST", "/login"): Rule(Who.ANYONE, Tenant.NONE, "log in"),
    ("POST", "/logout"): Rule(Who.USER, Tenant.OWN, "log out"),
    ("GET", "/"): Rule(Who.USER, Tenant.VISIBLE, "see the dashboard"),
    ("GET", "/account"): Rule(Who.USER, Tenant.OWN, "see one's account"),
    ("POST", "/account/password"): Rule(Who.USER, Tenant.OWN, "change one's password"),
    ("POST", SITE_PAGE + "/build"): Rule(Who.AGENCY, Tenant.SITE, "request builds"),
    ("GET", "/jobs/{job_id}"): Rule(Who.USER, Tenant.JOB, "follow a job"),
    ("GET", SITE_PAGE + "/downloads"): Rule(Who.USER, Tenant.SITE, "see a site's downloads"),
    ("GET", RELEASE + "/image.tar"): Rule(Who.USER, Tenant.SITE, "download a release"),
    ("GET", RELEASE + "/image.tar.sha256"): Rule(
        Who.USER, Tenant.SITE, "read a release's checksum"
    ),
    ("GET", RELEASE + "/sbom.json"): Rule(Who.USER, Tenant.SITE, "download a release's SBOM"),
    ("GET", RELEASE + "/signature"): Rule(Who.USER, Tenant.SITE, "read a release's signature"),
    **_each("*", "/static/{path}", Rule(Who.ANYONE, Tenant.NONE, "fetch the portal's assets")),
    # The installer, fetched by a customer's server
    ("GET", "/install.sh"): Rule(Who.ANYONE, Tenant.NONE, "fetch the installer"),
    ("GET", "/install.sh.sig"): Rule(Who.ANYONE, Tenant.NONE, "fetch the installer's signature"),
    ("GET", INSTALL): Rule(Who.CREDENTIALS, Tenant.INSTALL, "fetch a site's one-liner installer"),
    ("POST", INSTALL + "/token"): Rule(
        Who.CREDENTIALS,
        Tenant.INSTALL,
        "exchange an install code for, or renew, a site's install token",
    ),
    ("GET", INSTALL + "/plan"): Rule(Who.CREDENTIALS, Tenant.INSTALL, "fetch a site's signed plan"),
    ("GET", INSTALL + "/secrets"): Rule(Who.CREDENTIALS, Tenant.INSTALL, "fetch a site's secrets"),
    # The image registry (pull only)
    ("GET", "/v2"): Rule(Who.CREDENTIALS, Tenant.NONE, "check registry support"),
    ("GET", "/v2/"): Rule(Who.CREDENTIALS, Tenant.NONE, "check registry support"),
    ("GET", "/token"): Rule(Who.CREDENTIALS, Tenant.REPOSITORY, "get a registry token"),
    ("GET", "/v2/token"): Rule(Who.CREDENTIALS, Tenant.REPOSITORY, "get a registry token"),
    ("GET", "/v2/_catalog"): Rule(Who.CREDENTIALS, Tenant.REPOSITORY, "list repositories"),
    **_each("GET HEAD", "/v2/{path}", Rule(Who.CREDENTIALS, Tenant.REPOSITORY, "pull images")),
    **_each(
        "DELETE PATCH POST PUT",
        "/v2/{path}",
        Rule(Who.ANYONE, Tenant.NONE, "be told the registry is read-only"),
    ),
}


# The app's routes against the table ----------------------------------------------------------


def app_routes(app: FastAPI) -> dict[RouteKey, Callable[..., object] | None]:
    """Every ``(method, path template)`` the app answers, with the function that answers it."""
    found: dict[RouteKey, Callable[..., object] | None] = {}
    for route in iter_route_contexts(app.routes):
        path = route.path_format or route.path or ""
        for method in sorted(route.methods or {ANY_METHOD}):
            found[(method, path)] = route.endpoint
    return found


def unlisted_routes(app: FastAPI) -> list[RouteKey]:
    """Routes of the app without a rule (deny by default: the app must not start)."""
    return sorted(set(app_routes(app)) - set(ROUTES))


def stale_entries(app: FastAPI) -> list[RouteKey]:
    """Rules for routes the app does not have."""
    return sorted(set(ROUTES) - set(app_routes(app)))


def install(app: FastAPI) -> None:
    """Refuse an app with a route outside :data:`ROUTES`; index the rules for :func:`gate`."""
    missing = unlisted_routes(app)
    if missing:
        names = ", ".join(f"{method} {path}" for method, path in missing)
        raise RouteNotInPolicy(
            f"Routes without a rule in websonic.web.policy.ROUTES: {names}. "
            "Add who may call each and its tenant check, then regenerate docs/routes.md."
        )
    app.state.route_rules = rules_by_endpoint(app)


def rules_by_endpoint(app: FastAPI) -> dict[tuple[str, object], Rule]:
    """``(method, endpoint function)`` -> rule; one function serving two paths needs one rule."""
    rules: dict[tuple[str, object], Rule] = {}
    for (method, path), endpoint in app_routes(app).items():
        if endpoint is None:
            continue  # a mount: no dependency runs in it
        rule = rules.setdefault((method, endpoint), ROUTES[(method, path)])
        if rule != ROUTES[(method, path)]:
            raise RouteNotInPolicy(f"{method} {path} shares its function with another rule.")
    return rules


# The gate --------------------------------------------------------------------------------


def rule_of(request: Request) -> Rule:
    """The request's rule; a route without one cannot be reached (deny by default)."""
    rules: dict[tuple[str, object], Rule] = getattr(request.app.state, "route_rules", {})
    rule = rules.get((request.method, request.scope.get("endpoint")))
    if rule is None:
        raise NotFound("Not found.")
    return rule


def gate(request: Request) -> None:
    """Apply the request's rule: login, then the tenant check (404), then the role (403)."""
    rule = rule_of(request)
    roles = rule.who.roles
    if roles is None:
        return
    viewer = session_viewer(request)
    if viewer is None:
        raise AuthRequired()
    if rule.tenant in GATED:
        with platform_of(request).sessions() as session:
            check_tenant(session, viewer.user, rule.tenant, request.path_params)
    if viewer.user.role not in roles:
        raise PermissionDenied(f"Only {rule.who.value} may {rule.does}.")


def check_tenant(session: Session, user: User, tenant: Tenant, params: Mapping[str, str]) -> None:
    """Raise NotFound, worded as for a missing thing, unless ``user`` may see the path's."""
    if tenant is Tenant.CUSTOMER:
        access.customer_for(session, user, params["customer"])
    elif tenant is Tenant.SITE:
        access.site_for(session, user, params["customer"], params["site"])
    elif tenant is Tenant.JOB and str(params["job_id"]).isdigit():
        access.job_for(session, user, int(params["job_id"]))


# The reference -------------------------------------------------------------------------------


def render_routes() -> str:
    """docs/routes.md: every route, who may call it and its tenant check."""
    lines = [
        "# HTTP routes",
        "",
        "Generated from `websonic.web.policy.ROUTES` by "
        "`python -m websonic.web.policy > docs/routes.md`; a test keeps it current.",
        "",
        "Every route of the app must be in the table, or WebSonic does not start. Routes that",
        "need a portal session are checked centrally: first the login, then the tenant check",
        "(another customer's customer, site or job answers 404 exactly like a missing one),",
        "then the role (403). Token routes check their token themselves: another customer's",
        "site or repository answers like a missing one.",
        "",
        "| Method | Path | Who may call it | Tenant check | What it does |",
        "|--------|------|-----------------|--------------|--------------|",
    ]
    for (method, path), rule in ROUTES.items():
        tenant = rule.tenant.value.replace("{", "`{").replace("}", "}`")
        lines.append(f"| {method} | `{path}` | {rule.who.value} | {tenant} | {rule.does} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_routes(), end="")
