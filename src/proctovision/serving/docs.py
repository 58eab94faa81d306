"""``/docs``: Swagger UI served from the installed package ``swagger-ui-bundle-v2`` (its assets, and a start script
of ours), never from a public CDN, so the page works on a hospital network without the internet and no foreign script
runs on the service's origin. Under sign-in it needs a session. Without the package there is no ``/docs``."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ProctoVision API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script src="assets/docs.js"></script>
</body></html>
"""


def swagger_assets() -> str | None:
    """The folder of the installed Swagger UI, or None when the package is missing."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    return str(swagger_ui_path)


def add_docs(app: FastAPI, auth: object | None = None) -> None:
    """``GET /docs`` and its assets, when Swagger UI is installed; with ``auth`` the page needs a session."""
    from proctovision.serving.auth import sign_in_page

    folder = swagger_assets()
    if folder is None:
        return
    app.mount("/docs/assets", StaticFiles(directory=folder), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        if auth is not None and auth.session(request.cookies.get(auth.cookie_name)) is None:
            return sign_in_page(request, 401)
        return HTMLResponse(DOCS_PAGE, headers={"Cache-Control": "no-store"})
