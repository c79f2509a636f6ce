"""The /docs page: Swagger UI served from the pinned flask-swagger-ui package, same origin, no inline script.

A CDN copy (unpinned, without integrity checks) would run third-party code next to the operator's token and
leave the page blank on a machine without Internet access, which is how provincial networks often are. The
page loads only files that ship with the installed package, plus a small start-up script of ours, so the
strict Content-Security-Policy below holds without 'unsafe-inline' for scripts.
"""

from __future__ import annotations

import importlib.resources
from html import escape

from flask import Flask, Response, abort

__all__ = ["DOCS_ASSET_PREFIX", "DOCS_CSP", "DOCS_PATH", "register_docs", "swagger_ui_version"]

DOCS_PATH = "/docs"
DOCS_ASSET_PREFIX = "/docs/assets/"
# Swagger UI sets inline style attributes and uses data: images; everything else comes from this origin.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# The files of the package's dist folder the page uses, with their media types (nothing else is served).
_ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "index.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui-standalone-preset.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
_INIT_SCRIPT = "init.js"

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="icon" type="image/png" href="{prefix}favicon-32x32.png">
<link rel="stylesheet" href="{prefix}swagger-ui.css">
<link rel="stylesheet" href="{prefix}index.css">
</head>
<body>
<div id="swagger-ui" data-spec-url="{spec_url}"></div>
<script src="{prefix}swagger-ui-bundle.js"></script>
<script src="{prefix}swagger-ui-standalone-preset.js"></script>
<script src="{prefix}{init}"></script>
</body>
</html>
"""

_INIT = """window.addEventListener("load", function () {
  var node = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: node.getAttribute("data-spec-url"),
    domNode: node,
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout"
  });
});
"""


def _dist() -> importlib.resources.abc.Traversable:
    return importlib.resources.files("flask_swagger_ui").joinpath("dist")


def swagger_ui_version() -> str:
    """The Swagger UI version the installed package ships (its dist/VERSION file)."""
    return _dist().joinpath("VERSION").read_text(encoding="utf-8").strip()


def register_docs(app: Flask, *, title: str, spec_url: str) -> None:
    """Adds GET /docs and GET /docs/assets/<name> to the app (both public; see shared.web.PUBLIC_PATHS)."""
    page = _PAGE.format(
        title=escape(title), prefix=DOCS_ASSET_PREFIX, spec_url=escape(spec_url), init=_INIT_SCRIPT
    )

    def docs() -> Response:
        response = Response(page, mimetype="text/html")
        response.headers["Content-Security-Policy"] = DOCS_CSP
        return response

    def asset(name: str) -> Response:
        if name == _INIT_SCRIPT:
            response = Response(_INIT, content_type="text/javascript; charset=utf-8")
        elif name in _ASSETS:
            response = Response(_dist().joinpath(name).read_bytes(), content_type=_ASSETS[name])
            response.headers["Cache-Control"] = "public, max-age=86400"
        else:
            abort(404)
        response.headers["Content-Security-Policy"] = DOCS_CSP
        return response

    app.add_url_rule(DOCS_PATH, "docs", docs, methods=["GET"])
    app.add_url_rule(f"{DOCS_ASSET_PREFIX}<name>", "docs_asset", asset, methods=["GET"])
