"""The host's side of an out-of-process adapter: its requests and its metrics are forwarded over loopback.

Failures of the worker are the host's to explain: a worker that is down or slow gets the node a JSON error in
the usual shape (503/504), and Prometheus a 503/502 for its metrics, never a hang or an HTML page.
"""

from __future__ import annotations

import logging

import requests
from flask import Request, Response

from app.core.errors import AdapterError, DataProviderError, ProviderTimeoutError, ServiceUnavailableError
from app.core.settings import Settings

log = logging.getLogger("pyea.remote")

FORWARDED_HEADERS = ("Content-Type", "Accept", "X-Correlation-Id", "User-Agent")
CONNECT_TIMEOUT_S = 0.5


class RemoteAdapter:
    """An adapter served by its own worker process on ``127.0.0.1:<port>``."""

    def __init__(self, name: str, port: int, settings: Settings) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}/"
        self.max_payload = settings.MAX_PAYLOAD_SIZE_LIMIT
        # The worker answers within its own provider timeout and retries; one more second covers the hop.
        self.read_timeout_s = settings.API_TIMEOUT * (settings.RETRY + 1) / 1000 + 1
        self.metrics_timeout_s = settings.PLUGIN_METRICS_TIMEOUT_MS / 1000
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=max(settings.EA_THREADS, 4))
        self.session.mount("http://", adapter)
        self.session.trust_env = False  # a proxy configured for the internet must never see loopback traffic
        if settings.EA_AUTH_TOKEN:  # the worker inherits the token and checks it too
            self.session.headers["Authorization"] = f"Bearer {settings.EA_AUTH_TOKEN}"

    def forward(self, request: Request, body: bytes) -> Response:
        """The worker's answer as it gave it; a JSON error in the adapter's shape when it gives none."""
        headers = {h: request.headers[h] for h in FORWARDED_HEADERS if h in request.headers}
        try:
            answer = self.session.request(request.method, self.url, params=request.args, data=body,
                                          headers=headers, timeout=(CONNECT_TIMEOUT_S, self.read_timeout_s))
        except requests.Timeout:
            raise ProviderTimeoutError(f"adapter {self.name} (its own process) did not answer within "
                                       f"{self.read_timeout_s:g} s") from None
        except requests.RequestException:
            raise self._down() from None
        return _relay(answer)

    def metrics(self, request: Request) -> Response:
        """``/plugins/<name>/metrics``: Prometheus' own Accept header decides the format the worker answers in;
        the wait is cut to its scrape timeout so a slow worker shows as a failed scrape, not a stuck one."""
        timeout = self.metrics_timeout_s
        scrape_timeout = _seconds(request.headers.get("X-Prometheus-Scrape-Timeout-Seconds"))
        if scrape_timeout:
            timeout = min(timeout, scrape_timeout * 0.9)
        headers = {"Accept": request.headers["Accept"]} if "Accept" in request.headers else {}
        try:
            answer = self.session.get(f"{self.url}metrics", headers=headers, timeout=timeout)
        except requests.Timeout:
            raise ServiceUnavailableError(f"adapter {self.name} did not send its metrics within "
                                          f"{timeout * 1000:.0f} ms") from None
        except requests.RequestException:
            raise self._down() from None
        if answer.status_code != 200:
            raise DataProviderError(f"adapter {self.name} answered its metrics request with HTTP "
                                    f"{answer.status_code}", provider_status_code=answer.status_code,
                                    name="AdapterMetricsError")
        return _relay(answer)

    def health(self, timeout_s: float = 1.0) -> AdapterError | None:
        try:
            answer = self.session.get(f"{self.url}health", timeout=timeout_s)
        except requests.RequestException:
            return self._down()
        if answer.status_code != 200:
            return ServiceUnavailableError(f"adapter {self.name} reports itself unhealthy ({answer.status_code})")
        return None

    def _down(self) -> ServiceUnavailableError:
        return ServiceUnavailableError(f"adapter {self.name} runs in its own process, which is not answering "
                                       f"on 127.0.0.1:{self.port}; the host restarts it")

    def close(self) -> None:
        self.session.close()


def _relay(answer: requests.Response) -> Response:
    return Response(answer.content, status=answer.status_code,
                    content_type=answer.headers.get("Content-Type", "application/octet-stream"))


def _seconds(header: str | None) -> float | None:
    try:
        value = float(header) if header else None
    except ValueError:
        return None
    return value if value and value > 0 else None
