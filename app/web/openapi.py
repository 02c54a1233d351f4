"""``GET {BASE_URL}openapi.json``: the HTTP contract as an OpenAPI 3.1 document, generated from ``schemas/``.

Generated, never written by hand, so it cannot drift from what the validator enforces. OpenAPI 3.1 uses JSON
Schema 2020-12, the dialect of ``schemas/``, so each endpoint's input schema is embedded as it is (its
``x-aliases`` and ``x-case`` extensions included). Tools and fuzzers (schemathesis) can read it directly.
"""

from __future__ import annotations

from typing import Any

from app.config import AdapterConfig, Config

ERROR = {"type": "object", "required": ["jobRunID", "status", "statusCode", "error"],
         "properties": {"jobRunID": {}, "status": {"const": "errored"}, "statusCode": {"type": "integer"},
                        "providerStatusCode": {"type": "integer"},
                        "error": {"type": "object", "required": ["name", "message"],
                                  "properties": {"name": {"type": "string"}, "message": {"type": "string"}}}}}
SUCCESS = {"type": "object", "required": ["jobRunID", "data", "result", "statusCode"],
           "properties": {"jobRunID": {}, "data": {"type": "object", "required": ["result"]}, "result": {},
                          "statusCode": {"const": 200}, "providerStatusCode": {"type": ["integer", "null"]},
                          "timestamps": {"type": "object"},
                          "meta": {"type": "object", "properties": {"adapterName": {"type": "string"},
                                                                     "endpoint": {"type": "string"},
                                                                     "cacheHit": {"type": "boolean"},
                                                                     "staleness": {"type": "number"},
                                                                     "stale": {"type": "boolean"}}}}}
ERROR_STATUSES = {"400": "Invalid input", "401": "Token missing or wrong", "403": "Client address not allowed",
                  "404": "Unknown endpoint", "413": "Body over MAX_PAYLOAD_SIZE_LIMIT",
                  "429": "Provider quota used up, or the provider asked to wait", "502": "Provider failed",
                  "503": "Shared store or out-of-process adapter unavailable", "504": "Provider too slow"}


def openapi_document(config: Config, version: str) -> dict[str, Any]:
    """The document for the adapters of ``config``, built once at start-up."""
    base = config.settings.BASE_URL
    paths: dict[str, Any] = {}
    for cfg in config.adapters:
        operation = _operation(cfg)
        paths[f"{base}{cfg.adapter.name}/"] = {"post": operation}
        if cfg is config.adapters[0]:
            paths[base] = {"post": {**operation, "operationId": "default"}}
    paths[f"{base}health"] = {"get": {"operationId": "health", "summary": "Liveness (?deep=1: cache and lease)",
                                      "responses": {"200": {"description": "OK"}, "503": _error("Not healthy")}}}
    return {"openapi": "3.1.0",
            "info": {"title": "pyea", "version": version,
                     "description": "Chainlink External Adapter host: POST a job's request, get its value."},
            "paths": paths}


def _operation(cfg: AdapterConfig) -> dict[str, Any]:
    adapter = cfg.adapter
    names = sorted({e.name for e in adapter.endpoints} | {a for e in adapter.endpoints for a in e.aliases})
    data = {"anyOf": [{**cfg.schemas[e.name].schema, "title": e.name} for e in adapter.endpoints]}
    body = {"type": "object", "properties": {"id": {"description": "the job run id, echoed as jobRunID"},
                                             "endpoint": {"enum": names}, "data": data}}
    responses: dict[str, Any] = {"200": {"description": "The value", "content": {"application/json": {
        "schema": SUCCESS}}}}
    responses.update({code: _error(text) for code, text in ERROR_STATUSES.items()})
    return {"operationId": adapter.name, "summary": adapter.description or adapter.name,
            "requestBody": {"required": False, "content": {"application/json": {"schema": body}}},
            "responses": responses}


def _error(text: str) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"schema": ERROR}}}
