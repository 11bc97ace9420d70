"""The methods a path supports, over every route on it: what a 405's `Allow` header must list.

Starlette answers a method no route takes from the first route whose path matches, so its `Allow`
names only that route's methods (`PUT` for `/v1/vital-signs/{key}`, though GET and DELETE work
too). The HTTP edge replaces it with `allow_header()`: each method is tried against every route of
the app through the routes' own `matches()`, so included routers and their prefixes count as they do
when routing.
"""

from __future__ import annotations

from starlette.routing import Match
from starlette.types import ASGIApp, Scope

METHODS = ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")


def allowed_methods(app: ASGIApp, scope: Scope) -> list[str]:
    """Every method some route of `app` takes on the request's path, sorted (HEAD comes with GET)."""
    routes = list(getattr(getattr(app, "router", None), "routes", ()))
    allowed = []
    for method in METHODS:
        for route in routes:
            probe = {"type": "http", "path": scope["path"], "root_path": scope.get("root_path", ""), "method": method}
            if route.matches(probe)[0] is Match.FULL:
                allowed.append(method)
                break
    return allowed


def allow_header(app: ASGIApp, scope: Scope) -> str:
    """The `Allow` header value for the request's path."""
    return ", ".join(allowed_methods(app, scope))
