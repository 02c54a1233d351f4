"""Prometheus metrics: the v2/v3 catalogue, correct across gunicorn workers, never carrying secrets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from app.devkit.fake_http import FakeProvider
from app.devkit.testing import node_request, wait_for
from app.observe.metrics import FLUSH_INTERVAL_S
from tests.serving import gunicorn, post, pyea_env, served_by


def samples(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric in Prometheus text format."""
    found = {}
    for line in text.splitlines():
        match = re.match(rf"^{name}(\{{.*\}})? (\S+)$", line)
        if match:
            found[match.group(1) or ""] = float(match.group(2))
    return found


def test_catalogue_at_base_url(make_app, provider):
    client = make_app(METRICS_USE_BASE_URL="true", METRICS_NAME="my-ea", API_KEY="sk-METRICS-SECRET").test_client()
    node_request(client)
    node_request(client)
    node_request(client, {"base": 5})
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    requests_total = samples(text, "http_requests_total")
    by_type = {re.search(r'type="(\w+)"', k).group(1): v for k, v in requests_total.items()}
    assert by_type == {"dataProviderHit": 1.0, "cacheHit": 1.0, "inputError": 1.0}
    assert all('app_name="my-ea"' in k and "app_version=" in k for k in requests_total)
    assert 'feed_id="{\\"base\\":\\"ethereum\\",\\"quote\\":\\"USD\\"}"' in text
    assert sum(samples(text, "data_provider_requests").values()) == 1
    assert sum(samples(text, "cache_data_get_count").values()) == 1
    assert sum(samples(text, "cache_data_set_count").values()) == 1
    assert sum(samples(text, "rate_limit_credits_spent_total").values()) == 1
    for name in ("http_request_duration_seconds_count", "data_provider_request_duration_seconds_count",
                 "cache_data_staleness_seconds"):
        assert samples(text, name), name
    assert "sk-METRICS-SECRET" not in text
    assert client.get("/status").get_json()["metrics"] == {"enabled": True, "endpoint": "/metrics"}


def test_metrics_can_be_turned_off(make_app):
    for setting in ("METRICS_ENABLED", "EXPERIMENTAL_METRICS_ENABLED"):
        client = make_app(**{setting: "false", "METRICS_USE_BASE_URL": "true"}).test_client()
        assert client.get("/metrics").status_code == 404
        assert client.get("/status").get_json()["metrics"] == {"enabled": False}


@pytest.mark.process
def test_counts_add_up_over_four_gunicorn_workers(tmp_path: Path, provider: FakeProvider) -> None:
    env = pyea_env(tmp_path / "cache", provider, EA_WORKERS="4")
    log_path = tmp_path / "gunicorn.log"
    with gunicorn(env, log_path) as server:
        for i in range(10):  # a new connection each: gunicorn spreads them over the workers
            assert post(server.url, headers={"x-test-id": f"m-{i}"}).status_code == 200

        def all_counted() -> str | None:
            text = requests.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).text
            return text if sum(samples(text, "http_requests_total").values()) >= 10 else None

        # Workers write their request counts out every FLUSH_INTERVAL_S.
        text = wait_for(all_counted, FLUSH_INTERVAL_S * 4, "every request counted")
        workers = set(served_by(log_path, "m-", 10).values())
    assert len(workers) >= 2  # several workers answered, so the total below was summed over processes
    assert sum(samples(text, "http_requests_total").values()) == 10
    assert sum(samples(text, "data_provider_requests").values()) == 1
    assert sum(samples(text, "cache_data_get_count").values()) == 9
    durations = samples(text, "http_request_duration_seconds_bucket")
    assert samples(text, "http_request_duration_seconds_count") == {durations_count_labels(durations): 10.0}
    assert durations[next(k for k in durations if 'le="+Inf"' in k)] == 10.0


def durations_count_labels(buckets: dict[str, float]) -> str:
    """The labels of a histogram's ``_count`` series, from those of its buckets."""
    return re.sub(r'le="[^"]*",?', "", next(iter(buckets))).replace(",}", "}")


def test_request_durations_are_added_up_as_observe_would(monkeypatch):
    """The hot path adds durations up in memory and writes them out in one go: the exposed histogram must be
    the one prometheus_client's own observe() builds, bucket edges included."""
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from app.observe.metrics import Metrics

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    metrics = Metrics("test", "1")
    reference_registry = CollectorRegistry()
    reference = Histogram("http_request_duration_seconds", "d", ("app_name", "app_version"),
                          registry=reference_registry).labels("test", "1")
    durations = [0.0, 0.0049, 0.005, 0.0051, 0.1, 0.75, 2.5, 9.9, 10.0, 42.0]
    for seconds in durations:
        metrics.request("POST", 200, True, "feed", seconds)
        reference.observe(seconds)
    text = metrics.render().decode()  # which writes out what was added up
    ours = samples(text, "http_request_duration_seconds_bucket")
    theirs = samples(generate_latest(reference_registry).decode(), "http_request_duration_seconds_bucket")
    assert ours == theirs and len(ours) > 10
    assert sum(samples(text, "http_request_duration_seconds_count").values()) == len(durations)
    assert sum(samples(text, "http_request_duration_seconds_sum").values()) == sum(durations)


def test_counters_keep_the_v3_frameworks_names(make_app):
    """Dashboards built for the TypeScript framework query these exact names (no ``_total`` added)."""
    client = make_app(METRICS_USE_BASE_URL="true").test_client()
    node_request(client)
    text = client.get("/metrics").get_data(as_text=True)
    for name in ("data_provider_requests", "cache_data_get_count", "cache_data_set_count", "bg_execute_errors",
                 "ws_connection_errors", "http_requests_total", "bg_execute_total", "rate_limit_credits_spent_total",
                 "ws_subscription_total", "ws_message_total"):
        assert f"# TYPE {name} " in text, name
    for name in ("data_provider_requests", "cache_data_get_count", "cache_data_set_count", "bg_execute_errors",
                 "ws_connection_errors"):
        assert f"{name}_total" not in text, name


def test_feed_labels_are_capped_so_endless_feeds_cannot_grow_a_worker(make_app, monkeypatch):
    monkeypatch.setattr("app.observe.metrics.MAX_FEED_LABELS", 2)
    client = make_app(METRICS_USE_BASE_URL="true").test_client()
    for coin in ("ETH", "BTC", "LINK", "DOGE"):
        node_request(client, {"base": coin, "quote": "USD"})
    text = client.get("/metrics").get_data(as_text=True)
    feeds = set(re.findall(r'^http_requests_total\{.*?feed_id="((?:[^"\\]|\\.)*)"', text, re.MULTILINE))
    assert len(feeds) == 3 and "[other]" in feeds, feeds
