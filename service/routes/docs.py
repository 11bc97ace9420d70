"""`/docs` (Swagger UI) and `/redoc` served offline, from the assets of the installed `fastapi-offline` package.

FastAPI's own pages load their JavaScript and CSS from a public CDN, so on a network without internet
they stay blank. These pages reference only this service's own URLs (no Google fonts, no online
validator), and their Content-Security-Policy keeps the browser on this origin: ReDoc's bundle itself
would fetch its "API docs by Redocly" footer logo from cdn.redoc.ly, which the policy refuses before
any request leaves the machine. `create_app()` turns FastAPI's pages off (`docs_url=None,
redoc_url=None`) and includes this router.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"
# Same origin only. 'unsafe-inline': the pages' own inline start-up script and the UIs' inline styles;
# data: for the icons in swagger-ui.css; blob: for ReDoc's search worker.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    )
)

router = APIRouter(include_in_schema=False)
# swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js and favicon.png, shipped inside the wheel.
router.mount(ASSETS_URL, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _same_origin_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI for the OpenAPI schema."""
    app, root = request.app, _root(request)
    page = get_swagger_ui_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        oauth2_redirect_url=f"{root}{app.swagger_ui_oauth2_redirect_url}",
        # validatorUrl: never send the schema to swagger.io's online validator.
        swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
    )
    return _same_origin_only(page)


@router.get("/docs/oauth2-redirect")
async def swagger_ui_oauth2_redirect() -> HTMLResponse:
    """Swagger UI's OAuth2 redirect page (as FastAPI serves it next to its own `/docs`)."""
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc for the OpenAPI schema."""
    app, root = request.app, _root(request)
    page = get_redoc_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    )
    return _same_origin_only(page)
