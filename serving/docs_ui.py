"""``/api/docs`` (Swagger UI) and ``/api/redoc`` (ReDoc), served whole by the API: no CDN.

FastAPI's own pages load Swagger UI and ReDoc from jsDelivr and start Swagger UI with an inline
script, so they break offline and need a loose Content-Security-Policy. Here the files come from
the ``fastapi-offline`` package (Swagger UI 5, which reads OpenAPI 3.1, and ReDoc's standalone
bundle), mounted at ``/api/docs/assets``, and Swagger UI is started by a script file of our own,
so the pages live under the same strict policy as the rest of the site (``script-src 'self'``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

DOCS_URL = "/api/docs"
REDOC_URL = "/api/redoc"
ASSETS_URL = "/api/docs/assets"

_SWAGGER_INIT = """\
// Started from a file, not inline, so the page works under script-src 'self'.
window.addEventListener("DOMContentLoaded", () => {
  const node = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: node.dataset.openapi,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
});
"""


def _assets_dir() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def _page(title: str, head: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="{ASSETS_URL}/favicon.png">
{head}
</head>
<body>
{body}
</body>
</html>
"""


def install_docs(app: FastAPI, *, title: str, openapi_url: str) -> None:
    """Add the two documentation pages, their assets and Swagger UI's start-up script."""
    app.mount(ASSETS_URL, StaticFiles(directory=_assets_dir()), name="docs-assets")
    swagger = _page(
        f"{title} - Swagger UI",
        f'<link rel="stylesheet" href="{ASSETS_URL}/swagger-ui.css">',
        f'<div id="swagger-ui" data-openapi="{openapi_url}"></div>\n'
        f'<script src="{ASSETS_URL}/swagger-ui-bundle.js"></script>\n'
        f'<script src="{DOCS_URL}/init.js"></script>',
    )
    redoc = _page(
        f"{title} - ReDoc",
        "",
        f'<redoc spec-url="{openapi_url}"></redoc>\n'
        f'<script src="{ASSETS_URL}/redoc.standalone.js"></script>',
    )

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(swagger)

    @app.get(f"{DOCS_URL}/init.js", include_in_schema=False)
    async def swagger_init() -> Response:
        return Response(_SWAGGER_INIT, media_type="text/javascript")

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc_ui() -> HTMLResponse:
        return HTMLResponse(redoc)
