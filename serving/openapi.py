"""The served OpenAPI document, with the limits this instance enforces written into it.

The request models (serving/schemas.py) cannot know the configured limits (sampling-rate range,
strip duration, batch size, body size: ``ServingSettings``), so the document generated from them
would call requests valid that the API refuses with 422. ``install_openapi`` writes the limits in
as JSON-schema bounds, from the same settings the checks in serving/inference.py read: the
sampling-rate range exactly; the number of samples as the widest bounds any rate allows (the
duration rule, samples / fs, spans two fields and stays in the descriptions and the 422).
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from serving.settings import ServingSettings


def install_openapi(app: FastAPI, settings: ServingSettings) -> None:
    """Make ``app.openapi()`` return the document with ``settings``' limits (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            document_limits(document, settings)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_limits(document: dict[str, Any], settings: ServingSettings) -> None:
    """Write the strip limits into every strip schema of ``document`` (in place)."""
    lo_fs, hi_fs = settings.min_fs_hz, settings.max_fs_hz
    fewest = math.ceil(settings.min_strip_s * lo_fs)
    most = math.floor(settings.max_strip_s * hi_fs)
    duration = (
        f"{settings.min_strip_s:g} s to {settings.max_strip_s:g} s long at `fs` "
        f"({fewest:,} to {most:,} samples at the extreme rates)"
    )
    for schema in document.get("components", {}).get("schemas", {}).values():
        properties = schema.get("properties", {})
        if "signal" in properties and "fs" in properties:
            fs = properties["fs"]
            fs.update(minimum=lo_fs, maximum=hi_fs)
            fs["description"] = f"Sampling rate in Hz ({lo_fs:g}-{hi_fs:g})."
            signal = properties["signal"]
            signal.update(minItems=fewest, maxItems=most)
            signal["description"] = f"Samples in mV, one lead; {duration}."
        if "strips" in properties:
            properties["strips"]["maxItems"] = settings.max_batch_strips
