"""The HTTP contract a Chainlink node (and a human with curl) sees: shapes, codes, endpoint resolution."""

from __future__ import annotations

import json

import pytest

from app.devkit.testing import node_request


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["status"] == "errored"
    assert body["statusCode"] == status
    assert isinstance(body["error"]["name"], str) and body["error"]["name"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body


def test_success_shape_for_the_node(client, provider):
    response = client.post("/", json={"id": "7", "data": {"from": "ETH", "to": "USD"}})
    assert response.status_code == 200
    body = response.get_json()
    assert body["jobRunID"] == "7"
    assert body["result"] == 3021.5 == body["data"]["result"]
    assert body["statusCode"] == 200
    assert body["providerStatusCode"] == 200
    stamps = body["timestamps"]
    assert stamps["providerDataRequestedUnixMs"] <= stamps["providerDataReceivedUnixMs"]
    assert stamps["providerIndicatedTimeUnixMs"] == 1763699999000
    assert body["meta"] == {"adapterName": "COINGECKO", "endpoint": "crypto", "cacheHit": False,
                            "staleness": body["meta"]["staleness"]}
    assert provider.count("/simple/price") == 1
    call = provider.calls[0]
    assert call.query["ids"] == "ethereum" and call.query["vs_currencies"] == "usd"


@pytest.mark.parametrize("job_id, echoed", [(None, "1"), ("abc", "abc"), (42, 42)])
def test_job_run_id_echo(client, job_id, echoed):
    body = {"data": {"base": "ETH", "quote": "USD"}}
    if job_id is not None:
        body["id"] = job_id
    assert client.post("/", json=body).get_json()["jobRunID"] == echoed


def test_error_keeps_job_run_id(client):
    body = error_of(client.post("/", json={"id": "9", "data": {"quote": "USD"}}), 400)
    assert body["jobRunID"] == "9"


@pytest.mark.parametrize("payload", [
    {"endpoint": "crypto", "data": {"base": "ETH", "quote": "USD"}},
    {"data": {"endpoint": "CRYPTO", "base": "ETH", "quote": "USD"}},
    {"endpoint": "Price", "data": {"base": "ETH", "quote": "USD"}},
    {"data": {"base": "ETH", "quote": "USD"}},
])
def test_endpoint_resolution(client, payload):
    response = client.post("/", json=payload)
    assert response.status_code == 200
    assert response.get_json()["meta"]["endpoint"] == "crypto"


def test_top_level_endpoint_wins_over_data_endpoint(client):
    response = client.post("/", json={"endpoint": "marketcap", "data": {"endpoint": "crypto", "base": "ETH",
                                                                          "quote": "USD"}})
    assert response.get_json()["meta"]["endpoint"] == "marketcap"


def test_unknown_endpoint_is_404_naming_valid_ones(client):
    body = error_of(client.post("/", json={"endpoint": "nope", "data": {}}), 404)
    assert "nope" in body["error"]["message"]
    assert "crypto" in body["error"]["message"] and "dominance" in body["error"]["message"]


def test_query_string_merges_into_data(client, provider):
    response = client.get("/?base=ETH&quote=USD")
    assert response.status_code == 200 and response.get_json()["result"] == 3021.5
    response = client.post("/?quote=EUR", json={"data": {"base": "ETH", "quote": "USD"}})
    assert response.get_json()["result"] == 2800.0  # the query string wins, as in v2
    response = client.get("/?base=ETH&quote=USD&maxAge=-1")
    assert response.status_code == 200 and response.get_json()["meta"]["cacheHit"] is False


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON"])
def test_json_content_types_accepted(client, content_type):
    response = client.post("/", data=json.dumps({"data": {"base": "ETH", "quote": "USD"}}),
                           headers={"Content-Type": content_type})
    assert response.status_code == 200


@pytest.mark.parametrize("raw, content_type, status, fragment", [
    (b"{bad", "application/json", 400, "not valid JSON"),
    (b"[]", "application/json", 400, "JSON object"),
    (b'"x"', "application/json", 400, "JSON object"),
    (b'{"data": [1]}', "application/json", 400, "data: must be an object"),
    (b'{"data": {"base": NaN, "quote": "USD"}}', "application/json", 400, "NaN"),
    (b'{"data": {"base": "ETH"}}', "text/plain", 400, "Content-Type must be application/json"),
    (b"\xff\xfe\x00", "application/json", 400, "not valid JSON"),
    (b"[" * 100000, "application/json", 400, "not valid JSON"),
])
def test_bad_bodies_are_400_json(client, raw, content_type, status, fragment):
    body = error_of(client.post("/", data=raw, headers={"Content-Type": content_type}), status)
    assert fragment in body["error"]["message"]


def test_empty_body_and_no_data_ask_for_parameters(client):
    for raw in (b"", b"{}"):
        body = error_of(client.post("/", data=raw, headers={"Content-Type": "application/json"}), 400)
        assert "data.quote" in body["error"]["message"]


def test_oversize_body_is_413_json(make_app):
    client = make_app(MAX_PAYLOAD_SIZE_LIMIT="2048").test_client()
    body = error_of(client.post("/", data=b'{"data": "' + b"x" * 4096 + b'"}',
                                headers={"Content-Type": "application/json"}), 413)
    assert "MAX_PAYLOAD_SIZE_LIMIT" in body["error"]["message"]


def test_default_limit_rejects_two_mebibytes(client):
    error_of(client.post("/", data=b'{"data": "' + b"x" * (2 * 1024 * 1024) + b'"}',
                        headers={"Content-Type": "application/json"}), 413)


def test_api_verbose_puts_provider_answer_in_data(make_app):
    body = node_request(make_app(API_VERBOSE="true").test_client()).get_json()
    assert body["result"] == 3021.5
    assert body["data"]["result"] == 3021.5
    assert body["data"]["ethereum"]["usd"] == 3021.5


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"message": "OK", "version": response.get_json()["version"]}
    deep = client.get("/health?deep=1")
    assert deep.status_code == 200


def test_deep_health_reports_a_broken_cache(client, make_app, tmp_path):
    app = make_app()
    app.extensions["pyea"].cache.close()
    cache_dir = app.extensions["pyea"].settings.CACHE_DIR
    import shutil
    shutil.rmtree(cache_dir)
    open(cache_dir, "w").close()  # the cache directory is now a plain file: SQLite cannot reopen it
    response = app.test_client().get("/health?deep=1")
    error_of(response, 503)


def test_status_lists_settings_with_secrets_redacted(make_app):
    client = make_app(API_KEY="sk-live-SECRET-1234", CACHE_MAX_AGE="60000").test_client()
    response = client.get("/status")
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "sk-live-SECRET-1234" not in text
    status = response.get_json()
    settings = {row["name"]: row["value"] for row in status["configuration"]}
    assert settings["CACHE_MAX_AGE"] == 60000
    adapter = status["adapters"][0]
    assert adapter["name"] == "coingecko"
    assert {"name": "API_KEY", "value": "[REDACTED]"}.items() <= adapter["settings"][0].items()
    endpoints = {e["name"]: e for e in adapter["endpoints"]}
    assert endpoints["crypto"]["aliases"] == ["crypto-batched", "batched", "batch", "price"]
    assert endpoints["crypto"]["transport"] == "http"
    assert status["version"] and status["uptimeSeconds"] >= 0


def test_unknown_route_and_method_are_json(client):
    error_of(client.get("/does/not/exist"), 404)
    error_of(client.post("/health"), 405)


def test_adapter_also_served_under_its_name(client):
    for path in ("/coingecko/", "/coingecko"):
        response = client.post(path, json={"data": {"base": "ETH", "quote": "USD"}})
        assert response.status_code == 200, path


def test_base_url_moves_every_route(make_app):
    client = make_app(BASE_URL="/ea").test_client()
    assert client.post("/ea/", json={"data": {"base": "ETH", "quote": "USD"}}).status_code == 200
    assert client.get("/ea/health").status_code == 200
    assert client.get("/ea/status").status_code == 200
    assert client.post("/", json={"data": {"base": "ETH", "quote": "USD"}}).status_code == 404


@pytest.mark.parametrize("debug", [False, True])
def test_a_bug_is_a_500_json_without_stack_unless_debug(make_app, monkeypatch, debug):
    app = make_app(DEBUG=str(debug).lower())
    transport = app.extensions["pyea"].default.endpoints["crypto"].transport

    def broken(*args, **kwargs):
        raise RuntimeError("adapter bug")

    monkeypatch.setattr(transport, "fetch", broken)  # an adapter defect, as a real bug would surface
    response = node_request(app.test_client())
    body = error_of(response, 500)
    assert "adapter bug" not in body["error"]["message"]
    assert ("stack" in body["error"]) is debug
    if debug:
        assert "RuntimeError: adapter bug" in "".join(body["error"]["stack"])


@pytest.mark.parametrize("raw", [b'{"id": 1e999, "data": {}}',
                                 b'{"data": {"base": "ETH", "quote": "USD", "x": -1e400}}'])
def test_overflowing_numbers_are_400_not_invalid_json(client, raw):
    response = client.post("/", data=raw, headers={"Content-Type": "application/json"})
    body = error_of(response, 400)
    assert "out of range" in body["error"]["message"]
    json.loads(response.get_data(), parse_constant=lambda name: pytest.fail(f"{name} in response"))


def test_validation_memo_ignores_unknown_keys_and_large_inputs(make_app):
    app = make_app()
    client = app.test_client()
    memo = app.extensions["pyea"].default.endpoints["crypto"]._resolve_memo
    for i in range(20):
        assert node_request(client, {"base": "ETH", "quote": "USD", "pad": "x" * 1000 + str(i)}).status_code == 200
    assert memo.cache_info().currsize == 1
    for i in range(5):
        node_request(client, {"base": "ETH" + "H" * 600 + str(i), "quote": "USD"})
    assert memo.cache_info().currsize == 1
