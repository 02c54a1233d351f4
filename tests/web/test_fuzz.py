"""Property-based fuzzing of the real app: thousands of generated and malformed bodies, headers and query strings.
Whatever arrives, the answer is JSON of the documented shape (a value, or {name, message} with a matching
status), never a 500, and nothing unexpected is logged. The shapes come from the generated OpenAPI document."""

from __future__ import annotations

import json
import logging
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.web.openapi import ERROR, SUCCESS

EXAMPLES = 500
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

PARAM_NAMES = ["base", "quote", "from", "to", "coin", "market", "coinid", "endpoint", "maxAge", "overrides",
               "BASE", "Quote", ""]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
data_objects = st.dictionaries(st.sampled_from(PARAM_NAMES) | st.text(max_size=10), json_values, max_size=6)
endpoints = st.sampled_from(["crypto", "PRICE", "marketcap", "volume", "globalmarketcap", "dominance", "nope"])
bodies = st.fixed_dictionaries({}, optional={"id": json_values, "endpoint": json_values | endpoints,
                                             "data": data_objects | json_values})
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain",
                                 "application/x-www-form-urlencoded", "", "application/vnd.api+json"])


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory: pytest.TempPathFactory):
    from app import close_app, create_app
    from app.devkit.fake_http import FakeProvider

    with FakeProvider() as provider:
        app = create_app(env={"API_ENDPOINT": provider.url, "CACHE_DIR": str(tmp_path_factory.mktemp("fuzz")),
                              "RATE_LIMIT_ENABLED": "false", "LOG_LEVEL": "warning", "API_TIMEOUT": "500",
                              "RETRY": "0", "WARMUP_ENABLED": "false"})
        errors: list[logging.LogRecord] = []
        handler = logging.Handler(logging.ERROR)
        handler.emit = errors.append  # type: ignore[method-assign]
        logging.getLogger("pyea").addHandler(handler)
        yield app.test_client(), errors
        logging.getLogger("pyea").removeHandler(handler)
        close_app(app)


def check(response: Any, errors: list) -> None:
    assert response.status_code != 500, response.get_data(as_text=True)
    assert response.content_type.startswith("application/json")
    body = json.loads(response.get_data(), parse_constant=lambda c: pytest.fail(f"{c} in a response"))
    jsonschema.validate(body, SUCCESS if response.status_code == 200 else ERROR)
    assert body["statusCode"] == response.status_code
    assert not errors, [r.getMessage() for r in errors]


@FUZZ
@given(body=bodies)
def test_generated_bodies(fuzz_client, body: dict) -> None:
    client, errors = fuzz_client
    check(client.post("/", json=body), errors)


@FUZZ
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode), content_type=content_types)
def test_malformed_bodies(fuzz_client, raw: bytes, content_type: str) -> None:
    client, errors = fuzz_client
    check(client.post("/", data=raw, headers={"Content-Type": content_type} if content_type else {}), errors)


@FUZZ
@given(query=st.dictionaries(st.sampled_from(PARAM_NAMES) | st.text(max_size=8), st.text(max_size=20), max_size=5),
       path=st.sampled_from(["/", "/coingecko/", "/coingecko", "/status", "/health", "/openapi.json"]),
       method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
def test_query_strings_paths_and_methods(fuzz_client, query: dict, path: str, method: str) -> None:
    client, errors = fuzz_client
    response = client.open(path, method=method, query_string=query)
    assert response.status_code != 500 and response.content_type.startswith("application/json")
    if path in ("/", "/coingecko/", "/coingecko") or response.status_code >= 400:
        check(response, errors)


@FUZZ
@given(headers=st.dictionaries(st.sampled_from(["Content-Length", "Content-Type", "Transfer-Encoding",
                                                 "X-Correlation-Id", "Authorization", "Accept"]),
                               st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
                               max_size=4))
def test_headers(fuzz_client, headers: dict) -> None:
    client, errors = fuzz_client
    response = client.post("/", data=b'{"data": {"base": "ETH", "quote": "USD"}}', headers=headers)
    check(response, errors)
