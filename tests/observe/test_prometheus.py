"""A real Prometheus finds the host and its out-of-process adapter through ``/discovery`` and scrapes them,
sees a killed worker go down, and sees it come back once the host has restarted it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from adapters.coinmarketcap.tests.test_coinmarketcap import cmc
from app.devkit.fake_http import FakeProvider
from app.devkit.testing import wait_for
from tests.hosting.test_out_of_process import CMC_REQUEST, host_env, worker_up
from tests.servers import PrometheusServer
from tests.serving import gunicorn, post

pytestmark = pytest.mark.process  # every test here starts gunicorn, Redis, Prometheus or the CLI


def test_prometheus_scrapes_every_adapter_and_sees_a_dead_worker(tmp_path: Path, provider: FakeProvider) -> None:
    provider.respond(lambda call: cmc(call, provider))
    # a long first back-off keeps the dead worker down for several scrapes
    env = host_env(tmp_path, provider, "pyea serve", PLUGIN_RESTART_BACKOFF_MS="4000",
                   PLUGIN_RESTART_BACKOFF_MAX_MS="8000")
    with gunicorn(env, tmp_path / "host.log") as host:
        worker = wait_for(lambda: worker_up(host.url), 20, "the worker answers /health")
        assert post(f"{host.url}/coinmarketcap/", CMC_REQUEST).status_code == 200
        assert post(f"{host.url}/").status_code == 200
        with PrometheusServer(tmp_path, f"{host.url}/discovery") as prometheus:
            both_up = {"coingecko": "up", "coinmarketcap": "up"}
            wait_for(lambda: prometheus.health() == both_up, 30, f"both targets up ({prometheus.log()})")
            paths = {t["labels"]["adapter"]: t["scrapeUrl"] for t in prometheus.targets()}
            assert paths == {"coingecko": f"http://127.0.0.1:{host.metrics_port}/metrics",
                             "coinmarketcap": f"{host.url}/plugins/coinmarketcap/metrics"}
            up = {s["metric"]["adapter"]: s["value"][1] for s in prometheus.query("up")}
            assert up == {"coingecko": "1", "coinmarketcap": "1"}
            # the worker's own counters arrive through the host's proxy
            served = prometheus.query('http_requests_total{adapter="coinmarketcap",status_code="200"}')
            assert {s["metric"]["app_name"] for s in served} == {"coinmarketcap"}

            os.kill(worker["pid"], signal.SIGKILL)
            wait_for(lambda: prometheus.health() == {"coingecko": "up", "coinmarketcap": "down"}, 10,
                     "the dead worker is scraped as down")
            assert wait_for(lambda: prometheus.query('up{adapter="coinmarketcap"} == 0'), 5, "up == 0 recorded")
            wait_for(lambda: prometheus.health() == both_up, 30, "the restarted worker is scraped as up")
