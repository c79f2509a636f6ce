"""Row 1's baseline: a bare Flask JSON endpoint (no auth, database or store) served like the services."""

from __future__ import annotations

import hashlib
import uuid

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue


def create_app() -> Flask:
    """Parses the same multipart body intake gets (so the upload itself is in the baseline) and answers
    201 with a small JSON document; nothing else happens."""
    app = Flask("bench-baseline")
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        return jsonify({"status": "ok"})

    @app.post("/v1/directives")
    def create() -> ResponseReturnValue:
        metadata = request.form.get("metadata", "")
        files = request.files.getlist("files")
        sizes = [len(f.read()) for f in files]
        body = {
            "id": str(uuid.uuid4()),
            "metadata_sha256": hashlib.sha256(metadata.encode("utf-8")).hexdigest(),
            "sizes": sizes,
        }
        return jsonify(body), 201, {"Location": f"/v1/directives/{body['id']}"}

    return app
