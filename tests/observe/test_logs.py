"""Logs an operator's pipeline can ingest, and secrets that never leave the process in any output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from app.devkit.fake_http import FakeProvider, Reply
from app.devkit.testing import GunicornProcess

pytestmark = pytest.mark.process  # every test here starts gunicorn, Redis, Prometheus or the CLI

SECRET = "sk-live-Zq9-DO-NOT-LEAK-7731"


def test_every_line_is_json_and_no_output_carries_the_key(tmp_path: Path, provider: FakeProvider) -> None:
    # The provider echoes the key it was sent, as some do in their error bodies.
    provider.respond(lambda call: Reply(401, {"error": f"bad key {call.headers.get('x-cg-pro-api-key')}"})
                     if call.query.get("ids") == "bitcoin" else provider._coingecko(call))
    log_path = tmp_path / "gunicorn.log"
    env = {"CACHE_DIR": str(tmp_path / "cache"), "API_ENDPOINT": provider.url, "API_KEY": SECRET,
           "LOG_LEVEL": "debug", "EA_WORKERS": "2", "RETRY": "0", "RATE_LIMIT_ENABLED": "false"}
    outputs = []
    with GunicornProcess(env, log_path=log_path) as server:
        for data in ({"base": "ETH", "quote": "USD"}, {"base": "BTC", "quote": "USD"}, {"base": 5}):
            outputs.append(requests.post(server.url, json={"id": "1", "data": data}, timeout=10,
                                         headers={"x-correlation-id": f"corr-{data['base']}"}).text)
        outputs.append(requests.get(f"{server.url}/status", timeout=10).text)
        outputs.append(requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).text)
    assert provider.calls[0].headers["x-cg-pro-api-key"] == SECRET  # the key was really used
    assert "[REDACTED]" in outputs[1]  # the provider's echo of it was censored
    log = log_path.read_text()
    for text in [*outputs, log]:
        assert SECRET not in text
    lines = [line for line in log.splitlines() if line.strip()]
    assert any("Booting worker" in line for line in lines)
    for line in lines:
        entry = json.loads(line)
        assert {"level", "time", "logger", "message"} <= entry.keys(), line
    assert any(json.loads(line)["logger"].startswith("pyea") for line in lines)  # pyea's own lines too
    # The failed BTC fetch's warning names the caller's correlation id; lines outside requests name none.
    tagged = [json.loads(line) for line in lines if "correlationId" in json.loads(line)]
    assert any(e["correlationId"] == "corr-BTC" and e["level"] == "warning" for e in tagged), tagged
    assert not any("Booting worker" in e["message"] for e in tagged)
