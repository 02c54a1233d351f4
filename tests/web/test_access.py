"""Access control: a bearer token and client address ranges guard every route but /health; TLS through
gunicorn's own certificate settings; request parameters never reach the provider's host or path."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests

from app.config import load_config
from app.core.setting_specs import SettingsError
from app.devkit.fake_http import FakeProvider
from app.devkit.testing import GunicornProcess, node_request

TOKEN = "pyea-token-Zq93-DO-NOT-LEAK"
BODY = {"id": "5", "data": {"base": "ETH", "quote": "USD"}}


def test_every_route_but_health_needs_the_token(make_app) -> None:
    client = make_app(EA_AUTH_TOKEN=TOKEN, METRICS_USE_BASE_URL="true").test_client()
    good = {"Authorization": f"Bearer {TOKEN}"}
    for method, path in [("POST", "/"), ("POST", "/coingecko/"), ("GET", "/status"), ("GET", "/metrics"),
                         ("GET", "/discovery"), ("GET", "/plugins/x/metrics"), ("GET", "/no-such-route")]:
        refusals = [client.open(path, method=method, json=BODY, headers=headers) for headers in
                    ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                     {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN}x"})]
        bodies = {r.get_data(as_text=True) for r in refusals}
        assert {r.status_code for r in refusals} == {401}, (path, bodies)
        assert len(bodies) == 1, "every refusal is the same: it never says which part was wrong"
        assert refusals[0].headers["WWW-Authenticate"].startswith("Bearer")
        assert refusals[0].get_json()["error"]["name"] == "AdapterUnauthorizedError"
        assert client.open(path, method=method, json=BODY, headers=good).status_code != 401
    assert client.get("/health").status_code == 200
    assert node_request(client).status_code == 401
    assert client.post("/", json=BODY, headers=good).get_json()["result"] == 3021.5


def test_only_allowed_addresses_may_call(make_app) -> None:
    client = make_app(EA_ALLOWED_IPS="10.0.0.0/8, 192.168.1.7").test_client()
    assert client.post("/", json=BODY).status_code == 403  # the test client calls from 127.0.0.1
    assert client.post("/", json=BODY, environ_base={"REMOTE_ADDR": "10.2.3.4"}).status_code == 200
    assert client.post("/", json=BODY, environ_base={"REMOTE_ADDR": "192.168.1.7"}).status_code == 200
    refused = client.post("/", json=BODY, environ_base={"REMOTE_ADDR": "192.168.1.8"})
    assert refused.status_code == 403 and refused.get_json()["error"]["name"] == "AdapterForbiddenError"
    assert client.get("/health").status_code == 200


def test_bad_address_ranges_are_startup_errors() -> None:
    with pytest.raises(SettingsError, match=r"EA_ALLOWED_IPS='10.0.0.0/33': must be IP addresses or CIDR"):
        load_config({"EA_ALLOWED_IPS": "10.0.0.0/8,10.0.0.0/33"})


@pytest.mark.process
def test_tls_with_a_self_signed_certificate(tmp_path: Path, provider: FakeProvider) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    env = {"CACHE_DIR": str(tmp_path / "cache"), "API_ENDPOINT": provider.url, "EA_WORKERS": "1",
           "RATE_LIMIT_ENABLED": "false", "EA_AUTH_TOKEN": TOKEN}
    server = GunicornProcess(env, args=("--certfile", str(cert), "--keyfile", str(key)),
                             log_path=tmp_path / "gunicorn.log", tls_cert=cert)
    with server:  # started once /health answered over TLS, without the token
        answer = requests.post(server.url, json=BODY, headers={"Authorization": f"Bearer {TOKEN}"}, verify=str(cert),
                               timeout=10)
        assert answer.status_code == 200 and answer.json()["result"] == 3021.5
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.post(server.url.replace("https://", "http://"), json=BODY, timeout=5)


@pytest.mark.parametrize("symbol", ["../../etc", "ETH?x=1", "ETH#frag", "ETH%2Fx", "user@evil.example", "ETH\nHost: x",
                                    "ETH/../../v1"])
def test_parameters_never_change_the_provider_host_or_path(make_app, provider: FakeProvider, symbol: str) -> None:
    for adapters in ("coingecko", "coinbase"):
        client = make_app(ADAPTERS=adapters, API_ENDPOINT=provider.url).test_client()
        answer = node_request(client, {"base": symbol, "quote": "USD"})
        assert answer.status_code in (200, 400, 502), answer.get_json()
    assert all(call.path in ("/simple/price",) or call.path.startswith("/v2/prices/") for call in provider.calls)
    assert all(call.path.count("/") <= 3 for call in provider.calls), [c.path for c in provider.calls]
