"""Real servers the suite runs against, each on a free loopback port and stopped by the test that started it.

The README's test command installs them (Debian packages) when missing; a missing binary fails the test with
that advice rather than skipping it, so a green run always means the real thing was exercised.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

from app.devkit.fake_http import free_port

INSTALL_HINT = "run the README's test command, which installs it (sh tests/require-servers.sh)"


def binary(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed: {INSTALL_HINT}"
    return path


def stop_process(proc: subprocess.Popen | None) -> None:
    """SIGTERM, then SIGKILL after 10 s: a test's server must never outlive it."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class PrometheusServer:
    """A Prometheus that discovers its targets from ``sd_url`` (http_sd) and scrapes them every ``interval_s``."""

    def __init__(self, workdir: Path, sd_url: str, interval_s: int = 1) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "prometheus.yml"
        self.config.write_text(
            "global:\n"
            f"  scrape_interval: {interval_s}s\n"
            f"  scrape_timeout: {interval_s}s\n"
            "scrape_configs:\n"
            "  - job_name: pyea\n"
            "    http_sd_configs:\n"
            f"      - url: {sd_url}\n"
            f"        refresh_interval: {interval_s}s\n")
        self.log_path = workdir / "prometheus.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> PrometheusServer:
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary("prometheus"), f"--config.file={self.config}", f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, f"prometheus exited: {self.log()}"
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"prometheus not ready: {self.log()}"
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        stop_process(self.proc)

    def targets(self) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.url}/api/v1/targets", params={"state": "active"}, timeout=5).json()
        return answer["data"]["activeTargets"]

    def health(self) -> dict[str, str]:
        """adapter label → "up" | "down" | "unknown" (not scraped yet)."""
        return {t["labels"].get("adapter", ""): t["health"] for t in self.targets()}

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5).json()
        return answer["data"]["result"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""


class RedisServer:
    """A throw-away ``redis-server`` (no persistence) on a free loopback port; ``stop()`` and ``start()`` again
    reuse the port, so clients configured with it see an outage and a recovery."""

    def __init__(self, workdir: Path, password: str = "", unix_socket: Path | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.password = password
        self.unix_socket = unix_socket
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), "--logfile", str(self.workdir / "redis.log"),
             *(["--requirepass", self.password] if self.password else []),
             *(["--unixsocket", str(self.unix_socket)] if self.unix_socket else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self.answers():
            assert self.proc.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not answer PING"
            time.sleep(0.02)
        return self

    def answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, password=self.password or None, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        stop_process(self.proc)

    def client(self) -> Any:
        import redis

        return redis.Redis(port=self.port, password=self.password or None, decode_responses=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
