"""The API documentation pages, /docs (Swagger UI) and /redoc, with their scripts and styles served
by this server: they work offline, and under a Content-Security-Policy that allows no inline script."""

from __future__ import annotations

from html import escape
from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from assistant.http.browser_security import PAGE_CSP

ASSETS = "/docs/assets"

# Swagger UI runs under the chat page's policy, once its icons (data: URLs in its stylesheet) may load.
SWAGGER_CSP = PAGE_CSP.replace("img-src 'self'", "img-src 'self' data:")
# ReDoc also sets style attributes and inserts <style> elements as it renders, and runs its
# search in a worker made from a blob. Scripts still come only from this server.
REDOC_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; worker-src blob:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
POLICIES = {"/docs": SWAGGER_CSP, "/redoc": REDOC_CSP}

# Relative addresses, so that the pages also work when the server is mounted under a prefix.
SWAGGER_HTML = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} - Swagger UI</title>
  <link rel="stylesheet" href="docs/assets/swagger-ui.css">
  <link rel="icon" href="docs/assets/favicon.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/assets/swagger-ui-bundle.js"></script>
  <script src="docs/assets/init.js"></script>
</body>
</html>
"""

SWAGGER_INIT = """window.ui = SwaggerUIBundle({
  url: new URL("openapi.json", document.baseURI).href,
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
"""

REDOC_HTML = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} - ReDoc</title>
  <link rel="icon" href="docs/assets/favicon.png">
  <style>body {{ margin: 0; }}</style>
</head>
<body>
  <redoc spec-url="openapi.json"></redoc>
  <script src="docs/assets/redoc.standalone.js"></script>
</body>
</html>
"""


def add_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc, their scripts and styles from the installed ``fastapi_offline``
    package. The app must be built with ``docs_url=None, redoc_url=None``."""
    swagger_page = SWAGGER_HTML.format(title=escape(app.title))
    redoc_page = REDOC_HTML.format(title=escape(app.title))

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return HTMLResponse(swagger_page)

    @app.get(f"{ASSETS}/init.js", include_in_schema=False)
    async def swagger_init() -> Response:
        return Response(SWAGGER_INIT, media_type="text/javascript")

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return HTMLResponse(redoc_page)

    app.mount(ASSETS, StaticFiles(directory=str(files("fastapi_offline") / "static")), name="docs-assets")
