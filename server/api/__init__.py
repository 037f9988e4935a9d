"""The JSON API: flask-smorest blueprints under ``/v1``, OpenAPI at ``/v1/openapi.json``."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from server.api import (
    app_users,
    changes,
    entities,
    exports,
    forms,
    odata,
    projects,
    sessions,
    submissions,
    system,
    users,
)

BLUEPRINTS = (sessions.blp, users.blp, projects.blp, app_users.blp, forms.blp, submissions.blp,
              system.blp, exports.blp, odata.blp, changes.blp, entities.blp)

OPENAPI_CONFIG = {
    "API_TITLE": "dodoso",
    "API_VERSION": "1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/v1",
    "OPENAPI_JSON_PATH": "openapi.json",
}


class DodosoApi(Api):
    """flask-smorest's Api, minus its error handler: ``server.api.errors`` renders errors."""

    def _register_error_handlers(self) -> None:
        pass


def init_api(app: Flask) -> Api:
    app.config.update(OPENAPI_CONFIG)
    api = DodosoApi(app, spec_kwargs={
        "info": {"description": "dodoso: ODK-compatible survey data collection for "
                                "labour-migration research."},
    })
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    api.spec.components.security_scheme("basic", {"type": "http", "scheme": "basic"})
    api.spec.options["security"] = [{"bearer": []}, {"basic": []}]
    for blp in BLUEPRINTS:
        api.register_blueprint(blp)
    return api
