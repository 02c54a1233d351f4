"""Out-of-process adapters (``<NAME>_CMD``) under real gunicorn: routing, supervision, /discovery and the
metrics proxy, as an operator and Prometheus see them.

The worker is either pyea itself (``pyea serve``) or ``tests/stub_worker.py``, whose misbehaviour each test
chooses: any command serving ``/health`` and ``/metrics`` on ``127.0.0.1:$EA_PORT`` is a worker.
"""

from __future__ import annotations

import itertools
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from adapters.coinmarketcap.tests.test_coinmarketcap import KEY, cmc
from app import create_app
from app.config import load_config
from app.core.adapter_processes import PORTS_ENV
from app.core.setting_specs import SettingsError
from app.core.settings import Settings
from app.devkit.fake_http import FakeProvider
from app.devkit.testing import REPO, wait_for
from app.hosting.supervisor import Supervisor, plan_workers, process_running
from tests.serving import assert_json_error, gunicorn, post, pyea_env

pytestmark = pytest.mark.process  # every test here starts gunicorn, Redis, Prometheus or the CLI

STUB = f"{shlex.quote(sys.executable)} {shlex.quote(str(REPO / 'tests' / 'stub_worker.py'))}"
CMC_REQUEST = {"id": "9", "data": {"base": "ETH", "quote": "USD"}}


def host_env(tmp_path: Path, provider: FakeProvider, cmd: str, **settings: str) -> dict[str, str]:
    """coingecko in the host, coinmarketcap in its own process."""
    return pyea_env(tmp_path / "cache", provider, **{
        "ADAPTERS": "coingecko,coinmarketcap", "EA_WORKERS": "1", "COINMARKETCAP_API_KEY": KEY,
        "COINMARKETCAP_API_ENDPOINT": provider.url, "COINMARKETCAP_CMD": cmd, "PLUGIN_HEALTH_INTERVAL_MS": "200",
        "PLUGIN_RESTART_BACKOFF_MS": "100", **settings})



def worker(url: str) -> dict[str, Any]:
    adapters = requests.get(f"{url}/status", timeout=5).json()["adapters"]
    return next(a for a in adapters if a["name"] == "coinmarketcap")


def worker_up(url: str) -> dict[str, Any] | None:
    process = worker(url)["process"]
    return process if process and process["state"] == "up" else None


# ---------------------------------------------------------------------------------- a real pyea worker


def test_requests_reach_the_worker_and_survive_its_death(tmp_path: Path, provider: FakeProvider) -> None:
    provider.respond(lambda call: cmc(call, provider))
    env = host_env(tmp_path, provider, "pyea serve", PLUGIN_RESTART_BACKOFF_MS="1000")
    with gunicorn(env, tmp_path / "host.log") as host:
        first = wait_for(lambda: worker_up(host.url), 20, "the worker answers /health")
        answer = post(f"{host.url}/coinmarketcap/", CMC_REQUEST)
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"] == 3021.5 and answer.json()["meta"]["adapterName"] == "COINMARKETCAP"
        assert post(f"{host.url}/").json()["meta"]["adapterName"] == "COINGECKO"  # the default stays in the host
        status = worker(host.url)
        assert status["outOfProcess"] is True and status["port"] == first["port"]

        os.kill(first["pid"], signal.SIGKILL)
        # (a list: a 503 Response is falsy)
        [down] = wait_for(lambda: (r := post(f"{host.url}/coinmarketcap/", CMC_REQUEST)).status_code == 503 and [r],
                          3, "requests to the dead worker are 503")
        body = assert_json_error(down, 503)
        assert body["jobRunID"] == "9" and body["error"]["name"] == "AdapterServiceUnavailableError"
        assert "coinmarketcap" in body["error"]["message"]

        again = wait_for(lambda: worker_up(host.url), 20, "the worker is restarted")
        assert again["pid"] != first["pid"] and again["port"] == first["port"]
        assert again["restarts"] == 1 and again["lastExit"] == "killed by SIGKILL"
        answer = post(f"{host.url}/coinmarketcap/", CMC_REQUEST)
        assert answer.status_code == 200 and answer.json()["meta"]["cacheHit"] is True  # its cache outlived it
    assert not process_running(again["pid"]), "stopping the host stops its workers"


# ------------------------------------------------------------------------------------------ stub workers


def test_forwarding_and_the_worker_environment(tmp_path: Path, provider: FakeProvider) -> None:
    env = host_env(tmp_path, provider, STUB, API_KEY="host-default-adapter-key")
    with gunicorn(env, tmp_path / "host.log") as host:
        wait_for(lambda: worker_up(host.url), 10, "the stub answers /health")
        raw = b'{"id": "3", "data": {"base": "ETH"}}'
        answer = requests.post(f"{host.url}/coinmarketcap/?quote=USD", data=raw, timeout=5,
                               headers={"Content-Type": "application/json", "X-Correlation-Id": "abc-123"})
        assert answer.status_code == 201 and answer.headers["content-type"] == "application/json"
        seen = answer.json()
        assert seen["path"] == "/?quote=USD" and seen["body"] == raw.decode()
        assert seen["contentType"] == "application/json" and seen["correlationId"] == "abc-123"
        assert seen["env"] == {"ADAPTERS": "coinmarketcap", "EA_HOST": "127.0.0.1", "METRICS_USE_BASE_URL": "true",
                               # plain API_KEY is the host's default adapter's, not this one's
                               "PYEA_PREFIXED_SETTINGS_ONLY": "true",
                               # its own command and the master's metrics directory stay in the host
                               "COINMARKETCAP_CMD": None, "PROMETHEUS_MULTIPROC_DIR": None}
        too_big = requests.post(f"{host.url}/coinmarketcap/", data=b" " * 1_100_000, timeout=5,
                                headers={"Content-Type": "application/json"})
        assert_json_error(too_big, 413)


def test_discovery_and_the_metrics_proxy(tmp_path: Path, provider: FakeProvider) -> None:
    env = host_env(tmp_path, provider, f"{STUB} --metrics-delay 0.4")
    with gunicorn(env, tmp_path / "host.log") as host:
        wait_for(lambda: worker_up(host.url), 10, "the stub answers /health")
        discovery = requests.get(f"{host.url}/discovery", timeout=5)
        assert discovery.status_code == 200 and discovery.headers["content-type"] == "application/json"
        assert discovery.json() == [
            {"targets": [f"127.0.0.1:{host.metrics_port}"],
             "labels": {"__metrics_path__": "/metrics", "adapter": "coingecko"}},
            {"targets": [f"127.0.0.1:{host.port}"],
             "labels": {"__metrics_path__": "/plugins/coinmarketcap/metrics", "adapter": "coinmarketcap"}},
        ]
        metrics = f"{host.url}/plugins/coinmarketcap/metrics"
        text = requests.get(metrics, timeout=5)
        assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "stub_scrapes_total 1.0" in text.text
        open_metrics = requests.get(metrics, headers={"Accept": "application/openmetrics-text; version=1.0.0"},
                                    timeout=5)
        assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
        assert open_metrics.text.endswith("# EOF\n")

        started = time.monotonic()
        slow = requests.get(metrics, headers={"X-Prometheus-Scrape-Timeout-Seconds": "0.2"}, timeout=5)
        assert time.monotonic() - started < 0.4, "the proxy waits no longer than Prometheus does"
        assert "180 ms" in assert_json_error(slow, 503)["error"]["message"]
        assert_json_error(requests.get(f"{host.url}/plugins/coingecko/metrics", timeout=5), 404)
        assert_json_error(requests.get(f"{host.url}/plugins/nope/metrics", timeout=5), 404)


def test_discovery_publishes_the_configured_host_and_is_empty_without_metrics(make_app) -> None:
    app = make_app(ADAPTERS="coingecko,coinmarketcap", COINMARKETCAP_API_KEY=KEY, EA_PORT="8111",
                   EA_DISCOVERY_HOSTNAME="ea-1.internal", METRICS_USE_BASE_URL="true", BASE_URL="/ea")
    groups = app.test_client().get("/ea/discovery").get_json()
    assert groups == [{"targets": ["ea-1.internal:8111"],
                       "labels": {"__metrics_path__": "/ea/metrics", "adapter": "coingecko,coinmarketcap"}}]
    off = make_app(METRICS_ENABLED="false").test_client().get("/discovery")
    assert off.status_code == 200 and off.data == b"[]" and off.headers["content-type"] == "application/json"


def test_a_crashing_worker_is_restarted_with_backoff_and_the_host_keeps_serving(tmp_path: Path,
                                                                                 provider: FakeProvider) -> None:
    # Exit code 3 is gunicorn's "worker failed to boot": it must not stop the host's own gunicorn.
    starts = tmp_path / "starts"
    env = host_env(tmp_path, provider, f"{STUB} --exit-code 3 --record {starts}", PLUGIN_RESTART_BACKOFF_MS="200",
                   PLUGIN_RESTART_BACKOFF_MAX_MS="600")
    with gunicorn(env, tmp_path / "host.log") as host:
        wait_for(lambda: starts.exists() and len(starts.read_text().split()) >= 5, 10, "five starts")
        times = [float(t) for t in starts.read_text().split()]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)][:4]
        # each gap is the back-off (0.2, 0.4, then capped at 0.6 s) plus a process start and exit
        for gap, backoff in zip(gaps, [0.2, 0.4, 0.6, 0.6], strict=True):
            assert backoff * 0.9 <= gap <= backoff + 0.6, gaps  # uncapped, the fourth would be 1.6 s
        process = worker(host.url)["process"]
        assert process["restarts"] >= 4 and process["lastExit"] == "exited with code 3", process
        assert_json_error(post(f"{host.url}/coinmarketcap/", CMC_REQUEST), 503)
        assert post(f"{host.url}/").status_code == 200


def test_a_worker_that_never_becomes_healthy_is_restarted(tmp_path: Path, provider: FakeProvider) -> None:
    env = host_env(tmp_path, provider, f"{STUB} --health-status 500", PLUGIN_START_TIMEOUT_MS="600")
    with gunicorn(env, tmp_path / "host.log") as host:
        process = wait_for(lambda: (p := worker(host.url)["process"]) and p["restarts"] >= 1 and p, 5,
                           "the unhealthy worker is replaced")
        assert process["lastExit"] == "not healthy 600 ms after starting"
        deep = requests.get(f"{host.url}/health?deep=1", timeout=5)
        assert "coinmarketcap" in assert_json_error(deep, 503)["error"]["message"]


# ------------------------------------------------------------------------------------ configuration


def test_backoff_doubles_up_to_its_cap() -> None:
    settings = Settings.parse({"PLUGIN_RESTART_BACKOFF_MS": "100", "PLUGIN_RESTART_BACKOFF_MAX_MS": "400"})[0]
    supervisor = Supervisor([], settings, "unused-dir-never-written")
    for failures, expected in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.4), (30, 0.4)]:
        assert expected * 0.9 <= supervisor.backoff_s(failures) <= expected


def test_bad_commands_and_missing_supervision_are_startup_errors(tmp_path: Path) -> None:
    base = {"CACHE_DIR": str(tmp_path), "ADAPTERS": "coingecko,coinmarketcap", "COINMARKETCAP_API_KEY": KEY}
    with pytest.raises(SettingsError) as bad:
        load_config({**base, "COINMARKETCAP_CMD": "no-such-program-here --x", "COINGECKO_CMD": "'unclosed",
                     PORTS_ENV: "coinmarketcap=notaport"})
    message = str(bad.value)
    assert "COINMARKETCAP_CMD='no-such-program-here --x': must be a command that exists" in message
    assert "COINGECKO_CMD=\"'unclosed\": must be a shell-style command line" in message
    assert f"{PORTS_ENV}='coinmarketcap=notaport'" in message
    with pytest.raises(SettingsError, match=r"COINMARKETCAP_CMD=.*gunicorn.conf.py"):
        create_app(env={**base, "COINMARKETCAP_CMD": STUB})


def test_worker_plan_narrows_the_environment_to_its_adapter(tmp_path: Path) -> None:
    env = {"CACHE_DIR": str(tmp_path), "ADAPTERS": "coinmarketcap,coingecko", "API_KEY": KEY,
           "COINGECKO_CMD": STUB, "PROMETHEUS_MULTIPROC_DIR": "/somewhere", PORTS_ENV: "coingecko=40001"}
    [plan] = plan_workers(Settings.parse(env)[0], env, {"coingecko": 40001})
    assert plan.name == "coingecko" and plan.port == 40001 and plan.argv == shlex.split(STUB)
    assert {k: plan.env.get(k) for k in ("ADAPTERS", "EA_HOST", "EA_PORT")} == {
        "ADAPTERS": "coingecko", "EA_HOST": "127.0.0.1", "EA_PORT": "40001"}
    assert not {"COINGECKO_CMD", "PROMETHEUS_MULTIPROC_DIR", PORTS_ENV} & set(plan.env)
    assert plan.env["CACHE_DIR"] == str(tmp_path / "adapters" / "coingecko")
    # In the host, plain API_KEY is coinmarketcap's (the first adapter); coingecko's own process agrees.
    assert load_config(plan.env).adapters[0].values["API_KEY"] is None
    assert load_config({**plan.env, "COINGECKO_API_KEY": "cg-key-123456"}).adapters[0].values["API_KEY"] == \
        "cg-key-123456"
    [first] = plan_workers(Settings.parse(env)[0], {**env, "COINMARKETCAP_CMD": STUB, "COINGECKO_CMD": ""},
                           {"coinmarketcap": 40002})
    assert "PYEA_PREFIXED_SETTINGS_ONLY" not in first.env  # the host's first adapter keeps the plain names


def test_a_token_protected_host_reaches_its_token_protected_worker(tmp_path: Path, provider: FakeProvider) -> None:
    provider.respond(lambda call: cmc(call, provider))
    token = "host-token-Zq93-DO-NOT-LEAK"
    env = host_env(tmp_path, provider, "pyea serve", EA_AUTH_TOKEN=token, EA_ALLOWED_IPS="127.0.0.0/8")
    auth = {"Authorization": f"Bearer {token}"}
    with gunicorn(env, tmp_path / "host.log") as host:
        wait_for(lambda: worker_up_with(host.url, auth), 20, "the worker answers /health")
        assert post(f"{host.url}/coinmarketcap/", CMC_REQUEST).status_code == 401
        answer = post(f"{host.url}/coinmarketcap/", CMC_REQUEST, headers=auth)
        assert answer.status_code == 200 and answer.json()["result"] == 3021.5
        metrics = requests.get(f"{host.url}/plugins/coinmarketcap/metrics", headers=auth, timeout=5)
        assert metrics.status_code == 200 and "http_requests_total" in metrics.text


def worker_up_with(url: str, headers: dict[str, str]) -> bool:
    adapters = requests.get(f"{url}/status", headers=headers, timeout=5).json()["adapters"]
    process = next(a for a in adapters if a["name"] == "coinmarketcap")["process"]
    return bool(process) and process["state"] == "up"


def test_a_killed_supervisor_leaves_no_orphan_holding_the_port(tmp_path: Path, provider: FakeProvider) -> None:
    env = host_env(tmp_path, provider, STUB)
    with gunicorn(env, tmp_path / "host.log") as host:
        first = wait_for(lambda: worker_up(host.url), 10, "the stub answers /health")
        supervisor = int(subprocess.run(["pgrep", "-P", str(host.proc.pid), "-f", "app supervise"],
                                        capture_output=True, text=True).stdout.split()[0])
        os.kill(supervisor, signal.SIGKILL)  # as the OOM killer would: its worker lives on
        again = wait_for(lambda: (p := worker_up(host.url)) and p["pid"] != first["pid"] and p, 15,
                         "a new supervisor runs a new worker on the same port")
        assert again["port"] == first["port"]
        assert not process_running(first["pid"]), "the orphan was stopped"
        assert requests.post(f"{host.url}/coinmarketcap/", json=CMC_REQUEST, timeout=5).status_code == 201
